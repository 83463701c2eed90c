"""Training precision: float32, or mixed bfloat16 where the hardware computes it natively.

Mixed bfloat16 keeps every variable, the optimiser state, the losses and the network outputs in
float32 and runs the layers' arithmetic (convolutions, normalisation, activations) in bfloat16,
whose 8-bit exponent matches float32's, so unlike float16 it needs no loss scaling. On a CPU
with AVX512_BF16 or AMX-BF16, oneDNN's bfloat16 convolutions run at about twice the float32
rate. Without those instructions bfloat16 is emulated and slower, so "auto" picks it only
where it pays.

Only training uses it: inference (test, export, generate) builds float32 networks from the same
float32 weights, so an exported model runs the same everywhere.
"""
from __future__ import annotations

import functools
import logging
import platform

log = logging.getLogger(__name__)

_NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bfloat16 dot products natively (Linux /proc/cpuinfo flags)."""
    if cpuinfo is None:
        if platform.system() != "Linux":
            return False
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return bool(_NATIVE_BF16_FLAGS & set(line.split(":", 1)[1].split()))
    return False


@functools.lru_cache(maxsize=None)
def resolve(precision: str) -> str:
    """The Keras dtype policy for a ``precision`` option: "float32" or "mixed_bfloat16".

    "auto" is mixed_bfloat16 on a CPU-only machine whose CPU has native bfloat16, else float32
    (GPUs keep float32: not measured here).
    """
    if precision != "auto":
        return precision
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU"):
        chosen = "float32"
    else:
        chosen = "mixed_bfloat16" if cpu_has_native_bf16() else "float32"
    log.info("precision auto: %s", chosen)
    return chosen
