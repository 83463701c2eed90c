"""Arithmetic precision, chosen by measurement: float32, or a reduced precision where it is faster.

Training: mixed bfloat16 (CPU) or mixed float16 (NVIDIA GPU) keep every variable, the optimiser
state, the losses and the network outputs in float32 and run the layers' arithmetic in 16 bits.
bfloat16's 8-bit exponent matches float32's, so it needs no loss scaling; float16's does (the
trainer scales the losses, see pix2pix.model.trainer). Inference: an export carries a float32
signature and 16-bit ones over the same weights (pix2pix.export), and generate and serve pick one.

"auto" does not read CPU flags: a flag says what the CPU can do, not what is faster on this
model, this batch and this machine (a loaded or throttled machine, emulated bfloat16, a small
model dominated by memory traffic). It times both candidates on the real shape
(:func:`choose`), interleaved, and keeps the reduced precision only when it was faster than
float32, so auto is never slower than float32 by more than the probe's noise. The choice is cached per
CPU (model name and flags), TensorFlow version, device and shape in ``precision.json`` under
``$PIX2PIX_CACHE_DIR`` (default ``$XDG_CACHE_HOME/pix2pix`` or ``~/.cache/pix2pix``), so the
probe runs once per machine and model shape.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Mapping

log = logging.getLogger(__name__)

CACHE_ENV = "PIX2PIX_CACHE_DIR"
CACHE_FILE = "precision.json"
_NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
# Keras dtype policy of each training precision option.
TRAIN_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def cpu_info(cpuinfo: str | None = None) -> tuple[str, list[str]]:
    """(model name, flags) of the first CPU in /proc/cpuinfo (Linux); elsewhere what
    ``platform`` says and no flags."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    name, flags = None, None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and name is None:
            name = value.strip()
        elif key.strip() == "flags" and flags is None:
            flags = value.split()
    return name or platform.processor() or platform.machine() or "unknown", flags or []


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bfloat16 dot products natively (Linux /proc/cpuinfo flags).
    Reported next to measurements; auto does not decide by it."""
    return bool(_NATIVE_BF16_FLAGS & set(cpu_info(cpuinfo)[1]))


def machine_key() -> str:
    """The CPU model, a digest of its flags, the TensorFlow version and the GPUs TensorFlow
    sees: what a cached choice is valid for."""
    import tensorflow as tf
    name, flags = cpu_info()
    digest = hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:12]
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return f"{name} | flags {digest} | tf {tf.__version__} | gpus {len(gpus)}"


def cache_path() -> Path:
    """Where choices are cached (see the module docstring)."""
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base) / CACHE_FILE
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "pix2pix" / CACHE_FILE


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, key: str, entry: dict[str, Any]) -> None:
    """Add one entry (read again just before, so two processes lose at most an entry)."""
    from pix2pix.fsutil import atomic_write
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache(path)
        data[key] = entry
        atomic_write(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError as e:  # a read-only home: measure again next time, say so once
        log.warning("%s: cannot cache the precision choice (%s)", path, e)


def probe(runs: Mapping[str, Callable[[], object]], *, rounds: int = 3,
          timer: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Seconds per call of each candidate: the minimum over ``rounds`` interleaved calls
    (A B A B ...), so a burst from a neighbour hits both alike and the minimum ignores it.
    Each run must block until its result is computed."""
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            t0 = timer()
            run()
            best[name] = min(best[name], timer() - t0)
    return best


def choose(kind: str, shape: Mapping[str, Any], candidates: Mapping[str, Callable[[], Callable]],
           *, rounds: int = 3, timer: Callable[[], float] = time.perf_counter,
           cache: Path | None = None, machine: str | None = None) -> str:
    """The fastest of ``candidates`` for ``kind`` ("train", "generate") and ``shape``, from
    the cache or measured now.

    Args:
        candidates: name -> factory; the factory builds (and warms up: traces, first call)
            the candidate and returns the function to time. The FIRST candidate is the
            baseline (float32): another is chosen only when it was faster.
        rounds: interleaved timed calls of each.
        timer, cache, machine: injectable for tests (defaults: perf_counter, cache_path(),
            machine_key()).

    Returns:
        The chosen name. The cache entry records every candidate's seconds and when.
    """
    names = list(candidates)
    if len(names) == 1:
        return names[0]
    cache = cache_path() if cache is None else cache
    key = json.dumps({"kind": kind, "machine": machine or machine_key(), "shape": shape,
                      "candidates": names}, sort_keys=True)
    hit = _read_cache(cache).get(key)
    if isinstance(hit, dict) and hit.get("choice") in names:
        log.info("precision auto (%s): %s, measured %s", kind, hit["choice"], hit.get("measured"))
        return hit["choice"]
    runs = {name: make() for name, make in candidates.items()}
    seconds = probe(runs, rounds=rounds, timer=timer)
    del runs  # the probe's models: free them before the real one is built
    base = names[0]
    choice = min(names, key=lambda n: (seconds[n], n != base))
    if seconds[choice] >= seconds[base]:
        choice = base
    log.info("precision auto (%s): %s (seconds per call: %s)", kind, choice,
             ", ".join(f"{n} {s:.4f}" for n, s in seconds.items()))
    _write_cache(cache, key, {"choice": choice, "seconds": seconds,
                              "measured": dt.datetime.now(dt.timezone.utc)
                              .isoformat(timespec="seconds")})
    return choice


def reduced_candidates() -> tuple[str, ...]:
    """The 16-bit formats worth probing here: float16 on an NVIDIA GPU (tensor cores),
    bfloat16 on a CPU (native on AVX512_BF16/AMX, emulated elsewhere: the probe tells)."""
    import tensorflow as tf
    return ("float16",) if tf.config.list_physical_devices("GPU") else ("bfloat16",)
