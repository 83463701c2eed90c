"""The project's speed figures, as ratios measured in ONE run against references run alongside.

    python bench/run.py                 # all six figures (figures 1 and 3 alone: 11 minutes on 2 cores)
    python bench/run.py --quick         # the same plumbing with few steps and small inputs
    python bench/run.py --only 1,3      # some figures
    python bench/run.py --shared DIR    # the folder with bench/tf_reference.py etc.

Figures (256x256, the default model unless said otherwise):
  1  training step on in-memory tensors, batch 1 and 4: project / TF tutorial reference,
     project / PyTorch (junyanz) reference, achieved GFLOP/s against the cores' peak; and the
     forward pass of the production path (an export called as `pix2pix generate` calls it:
     float32 with per-image batch norm, float32 with batch norm folded, bfloat16 folded)
     against the references' forward passes
  2  training from JPEG files through make_dataset (jitter on) and the real train loop,
     against figure 1's in-memory rate
  3  `pix2pix generate` over a folder of PNG files against serving_default on an in-memory
     batch, and against one process per image (the public Pachyderm pix2pix example)
  4  incremental pipelines on the embedded engine: one image added to 200, against one image
     into an empty repo
  5  `pix2pix generate --tile on` of a 5000x5000 image: time and peak RSS
  6  `pix2pix demo`: wall time and peak RSS

Every measurement runs in its own child process (printing one JSON line), implementations of
figure 1 alternate (A B C A B C) so that a noisy neighbour hits all of them alike. Writes
bench/results/latest.json and, for a full (not --quick) run, bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
# The shared README's nominal peak: 2 cores x 32 FP32 FLOP/cycle (AVX2, 2 FMA units) x 2.45 GHz.
# Figure 1 measures the attainable peak too (a GEMM, float32 and bfloat16) in the same run.
NOMINAL_PEAK_GFLOPS = 157.0
GiB = 1 << 30


@dataclass
class Row:
    figure: str
    measure: str
    value: float
    unit: str = ""
    target: str = ""
    met: bool | None = None
    commands: list[int] = field(default_factory=list)  # indexes into Bench.commands
    load: float | None = None  # the highest 1-minute load average as its commands started


class ChildError(RuntimeError):
    pass


class Bench:
    def __init__(self, *, shared: Path, tmp: Path, quick: bool, log=print):
        self.shared, self.tmp, self.quick, self.log = shared, tmp, quick, log
        self.rows: list[Row] = []
        self.commands: list[str] = []
        self.raw: dict[str, list[dict]] = {}
        self._cache: dict[str, object] = {}
        self.loads: dict[int, float] = {}  # command -> highest 1-minute load at a start

    # -- children ----------------------------------------------------------------------------
    def show(self, argv: list[str]) -> str:
        """The command as a user would type it from the repo root (temp folders as $TMP)."""
        parts = []
        for a in argv:
            a = str(a)
            if a == sys.executable:
                a = "python"
            a = a.replace(str(self.tmp), "$TMP").replace(str(REPO) + "/", "")
            a = a.replace(str(self.shared), "../shared" if self.shared == REPO.parent / "shared"
                          else "$SHARED")
            parts.append(a)
        return " ".join(shlex.quote(p) if " " in p else p for p in parts)

    def child(self, argv: list[str], *, key: str, json_out: bool = True,
              timeout: float | None = None) -> tuple[dict, float, float, int]:
        """Run one measurement; returns (its JSON line, wall seconds, max RSS MiB, command id).

        The RSS is the largest of the child and its waited-for descendants (wait4's rusage)."""
        cmd = self.show(argv)
        if cmd not in self.commands:
            self.commands.append(cmd)
        idx = self.commands.index(cmd)
        load = os.getloadavg()[0]
        self.loads[idx] = max(load, self.loads.get(idx, 0.0))
        self.log(f"  [{idx}] {cmd}  (load {load:.2f})")
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        t0 = time.perf_counter()
        out = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen([str(a) for a in argv], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
        deadline = None if timeout is None else t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
        # Linux: KiB. It is at least this process's own peak at the fork (Linux carries it across
        # exec); this process stays small (bench_process_peak_mib in latest.json), far below
        # the figures it bounds.
        rss_mib = usage.ru_maxrss / 1024
        if proc.returncode != 0:
            tail = "\n".join(text.strip().splitlines()[-15:])
            raise ChildError(f"[{idx}] {cmd} exited {proc.returncode}:\n{tail}")
        result: dict = {}
        if json_out:
            lines = [ln for ln in text.strip().splitlines() if ln.startswith("{")]
            if not lines:
                raise ChildError(f"[{idx}] {cmd} printed no JSON line:\n{text[-2000:]}")
            result = json.loads(lines[-1])
        result.update(_wall_s=round(wall, 2), _max_rss_mib=round(rss_mib, 1), _command=idx,
                      _load_at_start=round(load, 2))
        self.raw.setdefault(key, []).append(result)
        return result, wall, rss_mib, idx

    def add(self, figure: str, measure: str, value: float, unit: str = "", *, target: str = "",
            met: bool | None = None, commands: list[int] | None = None) -> None:
        cmds = sorted(set(commands or []))
        loads = [self.loads[c] for c in cmds if c in self.loads]
        row = Row(figure, measure, round(float(value), 3), unit, target, met, cmds,
                  round(max(loads), 2) if loads else None)
        self.rows.append(row)
        flag = "" if met is None else ("  OK" if met else "  MISSED")
        self.log(f"  -> {measure}: {row.value:g} {unit} {('(target ' + target + ')') if target else ''}{flag}")

    # -- shared inputs ---------------------------------------------------------------------
    def export(self, ngf: int = 64, test_stats: str = "image") -> Path:
        """An export of an untrained model (``test_stats`` running: batch norm folded)."""
        key = f"export{ngf}-{test_stats}"
        if key not in self._cache:
            out = self.tmp / f"model-ngf{ngf}" if test_stats == "image" \
                else self.tmp / f"model-ngf{ngf}-{test_stats}"
            self.child([sys.executable, BENCH / "figures.py", "export-random", "--out", out,
                        "--ngf", str(ngf), "--test_stats", test_stats], key="setup")
            self._cache[key] = out
        return self._cache[key]  # type: ignore[return-value]

    def png_folder(self, count: int) -> Path:
        """256x256 PNG inputs: facades label maps when ../shared has them, else synthetic."""
        key = f"pngs{count}"
        if key in self._cache:
            return self._cache[key]  # type: ignore[return-value]
        import numpy as np
        from PIL import Image
        out = self.tmp / f"pngs-{count}"
        out.mkdir(parents=True, exist_ok=True)
        sources = sorted((self.shared / "datasets" / "facades" / "test").glob("*.jpg"))
        for i in range(count):
            if sources:
                pair = np.asarray(Image.open(sources[i % len(sources)]).convert("RGB"))
                img = pair[:, pair.shape[1] // 2:]  # B: the label map (facades is BtoA)
            else:
                from pix2pix.demo import synthetic
                img = synthetic.make_pair(256, i)[0]
            Image.fromarray(np.ascontiguousarray(img)).save(out / f"{i:04d}.png")
        self._cache[key] = out
        return out

    def training_folder(self) -> tuple[Path, str]:
        facades = self.shared / "datasets" / "facades" / "train"
        if facades.is_dir() and any(facades.glob("*.jpg")):
            return facades, "../shared/datasets/facades/train (400 JPEG A|B pairs)"
        from pix2pix.demo import synthetic
        out = self.tmp / "pairs"
        synthetic.write_pairs(out, count=100, seed=0)
        return out, "100 synthetic A|B pairs"

    # -- figure 1 ----------------------------------------------------------------------------
    def fig1(self) -> dict[int, float]:
        self.log("figure 1: training step on in-memory tensors")
        reps = 1 if self.quick else 2
        impls = {"project": [sys.executable, BENCH / "train_step.py"],
                 "project_float32": [sys.executable, BENCH / "train_step.py", "--precision",
                                     "float32"],
                 "tf_ref": [sys.executable, self.shared / "bench" / "tf_reference.py"]}
        if _has_torch():
            impls["torch_ref"] = [sys.executable, self.shared / "bench" / "torch_reference.py"]
        else:
            self.log("  torch is not installed: no PyTorch reference (pip install torch==2.13.0)")
        # The production path's forward pass: exports called through pix2pix.generate.load_model.
        exports = {"image": self.export(64), "running": self.export(64, "running")}
        production = {"export float32 (per-image batch norm, the default)": ("image", "float32"),
                      "export float32 (batch norm folded)": ("running", "float32"),
                      "export bfloat16 (batch norm folded)": ("running", "bfloat16")}
        project_rates: dict[int, float] = {}
        pk, *_, peak_idx = self.child([sys.executable, BENCH / "figures.py", "peak", "--n",
                                       "1024" if self.quick else "4096"], key="fig1-peak")
        self.add("1", "attainable peak, float32 GEMM", pk["float32_gflops"], "GFLOP/s",
                 commands=[peak_idx])
        self.add("1", "attainable peak, bfloat16 GEMM", pk["bfloat16_gflops"], "GFLOP/s",
                 commands=[peak_idx])
        for batch in (1, 4):
            steps, warmup = ((2, 1) if self.quick else ((8, 2) if batch == 1 else (4, 1)))
            results: dict[str, list[dict]] = {k: [] for k in impls}
            cmds: dict[str, int] = {}
            forward: dict[str, list[float]] = {k: [] for k in production}
            for _ in range(reps):
                for name, argv in impls.items():
                    r, *_, idx = self.child([*argv, "--batch", str(batch), "--steps", str(steps),
                                             "--warmup", str(warmup)], key=f"fig1-{name}-b{batch}")
                    results[name].append(r)
                    cmds[name] = idx
                for name, (stats, prec) in production.items():
                    r, *_, idx = self.child(
                        [sys.executable, BENCH / "figures.py", "pure-model", "--model",
                         exports[stats], "--batch", str(batch), "--precision", prec,
                         "--steps", str(steps * (3 if batch == 1 else 2)), "--warmup", "2"],
                        key=f"fig1-forward-{stats}-{prec}-b{batch}")
                    forward[name].append(r["generate_img_per_s"])
                    cmds[name] = idx
            mean = {k: statistics.mean(r["train_img_per_s"] for r in v) for k, v in results.items()}
            gen = {k: statistics.mean(r["generate_img_per_s"] for r in v) for k, v in results.items()}
            project_rates[batch] = mean["project"]
            f = f"1 b{batch}"
            for name in impls:
                self.add(f, f"{name} train", mean[name], "img/s", commands=[cmds[name]])
            self.add(f, "project / TF reference (train)", mean["project"] / mean["tf_ref"], "x",
                     target=">= 1.3", met=mean["project"] / mean["tf_ref"] >= 1.3,
                     commands=[cmds["project"], cmds["tf_ref"]])
            if "torch_ref" in impls:
                ratio = mean["project"] / mean["torch_ref"]
                self.add(f, "project / PyTorch reference (train)", ratio, "x", target=">= 1.1",
                         met=ratio >= 1.1, commands=[cmds["project"], cmds["torch_ref"]])
            self.add(f, "project (default precision) / project float32", mean["project"]
                     / mean["project_float32"], "x",
                     commands=[cmds["project"], cmds["project_float32"]])
            for ref in [k for k in ("tf_ref", "torch_ref") if k in impls]:
                ratio = mean["project_float32"] / mean[ref]
                self.add(f, f"project float32 / {ref} (train)", ratio, "x", target=">= 1.3",
                         met=ratio >= 1.3, commands=[cmds["project_float32"], cmds[ref]])
            gflop = results["project"][0]["train_gflop_per_img"]
            prec = results["project"][0].get("precision", "float32")
            peak = pk["bfloat16_gflops"] if prec == "mixed_bfloat16" else pk["float32_gflops"]
            for name, label in (("project", f"project ({prec})"),
                                ("project_float32", "project float32"),
                                ("tf_ref", "TF reference (float32)")):
                achieved = mean[name] * gflop
                self.add(f, f"{label}: achieved GFLOP/s ({gflop:g} GFLOP/img/step, conv only)",
                         achieved, "GFLOP/s", commands=[cmds[name]])
                own = peak if name == "project" else pk["float32_gflops"]
                self.add(f, f"{label}: share of the attainable {own:g} GFLOP/s GEMM peak",
                         100 * achieved / own, "%", target=">= 70" if name == "project" else "",
                         met=achieved / own >= 0.7 if name == "project" else None,
                         commands=[cmds[name], peak_idx])
            self.add(f, f"project: share of the shared README's nominal {NOMINAL_PEAK_GFLOPS:g} "
                     "GFLOP/s float32 peak", 100 * mean["project"] * gflop
                     / NOMINAL_PEAK_GFLOPS, "%", commands=[cmds["project"]])
            for name in impls:
                self.add(f, f"{name} generate (forward only)", gen[name], "img/s",
                         commands=[cmds[name]])
            refs = [k for k in ("tf_ref", "torch_ref") if k in impls]
            best = max(refs, key=lambda k: gen[k])
            for name in production:
                rate = statistics.mean(forward[name])
                self.add(f, f"{name} forward", rate, "img/s", commands=[cmds[name]])
                ratio = rate / gen[best]
                target = {"export float32 (batch norm folded)": 1.2,
                          "export bfloat16 (batch norm folded)": 2.0}.get(name)
                self.add(f, f"{name} / best reference forward ({best}, float32)", ratio, "x",
                         target="" if target is None else f">= {target:g}",
                         met=None if target is None else ratio >= target,
                         commands=[cmds[name], cmds[best]])
        self._cache["fig1"] = project_rates
        return project_rates

    # -- figure 2 ----------------------------------------------------------------------------
    def fig2(self) -> None:
        self.log("figure 2: training from JPEG files through make_dataset and the train loop")
        data, what = self.training_folder()
        in_memory = self._cache.get("fig1") or {}
        for batch in (1, 4):
            steps, warmup = (3, 1) if self.quick else ((20, 3) if batch == 1 else (6, 2))
            out = self.tmp / f"train-b{batch}"
            shutil.rmtree(out, ignore_errors=True)
            r, _, rss, idx = self.child(
                [sys.executable, BENCH / "figures.py", "train-files", "--data", data, "--out", out,
                 "--batch", str(batch), "--steps", str(steps), "--warmup", str(warmup)],
                key=f"fig2-b{batch}")
            cmds = [idx]
            if batch not in in_memory:
                m, *_, i2 = self.child([sys.executable, BENCH / "train_step.py", "--batch",
                                        str(batch), "--steps", str(max(2, steps // 3)),
                                        "--warmup", "1"], key=f"fig2-memory-b{batch}")
                in_memory[batch] = m["train_img_per_s"]
                cmds.append(i2)
            f = f"2 b{batch}"
            self.add(f, f"from files: {what}", r["train_img_per_s"], "img/s", commands=[idx])
            ratio = r["train_img_per_s"] / in_memory[batch]
            self.add(f, "files / in-memory (figure 1)", 100 * ratio, "%", target=">= 95",
                     met=ratio >= 0.95, commands=cmds)
            self.add(f, "start-up to first step (decode + cache + trace)", r["first_step_s"], "s",
                     commands=[idx])

    # -- figure 3 ----------------------------------------------------------------------------
    def fig3(self) -> None:
        self.log("figure 3: generate over a folder of PNG files")
        model = self.export(64, "running")  # the fast production form (batch norm folded)
        count = 8 if self.quick else 48
        folder = self.png_folder(count)
        # Alternated (pure, files, pure, files) and averaged: one pass over 48 files is ~5 s,
        # short enough for a neighbour's burst to move a single measurement by 5-10%.
        rates: dict[str, list[float]] = {"pure": [], "files": []}
        for _ in range(1 if self.quick else 2):
            pure, *_, i1 = self.child([sys.executable, BENCH / "figures.py", "pure-model",
                                       "--model", model, "--batch", "4", "--steps",
                                       "2" if self.quick else "10"], key="fig3-pure")
            shutil.rmtree(self.tmp / "gen-out", ignore_errors=True)
            gen, *_, i2 = self.child([sys.executable, BENCH / "figures.py", "generate", "--model",
                                      model, "--input", folder, "--out", self.tmp / "gen-out",
                                      "--batch", "4"], key="fig3-generate")
            rates["pure"].append(pure["generate_img_per_s"])
            rates["files"].append(gen["generate_img_per_s"])
        pure_rate, files_rate = (statistics.mean(rates[k]) for k in ("pure", "files"))
        self.add("3", "the export (float32, folded) on an in-memory batch of 4, as generate "
                 "calls it", pure_rate, "img/s", commands=[i1])
        self.add("3", f"pix2pix generate, {count} PNG files (decode+translate+encode+write)",
                 files_rate, "img/s", commands=[i2])
        ratio = files_rate / pure_rate
        self.add("3", "files / pure model", 100 * ratio, "%", target=">= 95", met=ratio >= 0.95,
                 commands=[i1, i2])
        walls, idxs = [], []
        for i in range(1 if self.quick else 3):
            src = sorted(folder.glob("*.png"))[i]
            _, wall, _, idx = self.child([sys.executable, BENCH / "figures.py", "per-image",
                                          "--model", model, "--input", src,
                                          "--out", self.tmp / f"per-image-{i}.png"],
                                         key="fig3-per-image")
            walls.append(wall)
            idxs.append(idx)
        per = statistics.mean(walls)
        self.add("3", "one process per image (Pachyderm example): cost per image", per, "s",
                 commands=idxs)
        speedup = per * files_rate
        self.add("3", "generate / per-image processes", speedup, "x", target=">= 20",
                 met=speedup >= 20, commands=idxs + [i2])

    # -- figure 4 ----------------------------------------------------------------------------
    def fig4(self) -> None:
        self.log("figure 4: incremental pipelines on the embedded engine")
        base = 20 if self.quick else 200
        runs = {}
        for n in (0, base):
            r, *_, idx = self.child([sys.executable, BENCH / "figures.py", "incremental",
                                     "--state", self.tmp / f"engine-{n}", "--base", str(n)],
                                    key=f"fig4-{n}")
            runs[n] = (r, idx)
        one, many = runs[0][0]["put_and_run_s"], runs[base][0]["put_and_run_s"]
        self.add("4", "put 1 image into an empty input_images + run", one, "s",
                 commands=[runs[0][1]])
        self.add("4", f"put 1 image next to {base} + run", many, "s", commands=[runs[base][1]])
        self.add("4", f"{base}+1 / 0+1", many / one, "x", target="<= 1.5", met=many / one <= 1.5,
                 commands=[runs[0][1], runs[base][1]])

    # -- figure 5 ----------------------------------------------------------------------------
    def fig5(self) -> None:
        side = 1200 if self.quick else 5000
        self.log(f"figure 5: tiled generation of a {side}x{side} image")
        model = self.export(64)
        big = self.tmp / f"big-{side}.png"
        if not big.exists():
            import numpy as np
            from PIL import Image
            small = np.asarray(Image.open(sorted(self.png_folder(8).glob("*.png"))[0]))
            Image.fromarray(small).resize((side, side), Image.Resampling.NEAREST).save(
                big, compress_level=1)
        out = self.tmp / "tiled-out"
        shutil.rmtree(out, ignore_errors=True)
        _, wall, rss, idx = self.child([sys.executable, "-m", "pix2pix", "generate", "--model",
                                        model, "--input", big, "--output_dir", out, "--tile",
                                        "on"], key="fig5", json_out=False)
        tiles = _tile_count(side)
        self.add("5", f"generate --tile on, {side}x{side} ({tiles} tiles), whole command", wall,
                 "s", commands=[idx])
        self.add("5", "tiles per second (incl. start-up)", tiles / wall, "tile/s", commands=[idx])
        self.add("5", "peak RSS", rss / 1024, "GiB", target="<= 3", met=rss / 1024 <= 3,
                 commands=[idx])

    # -- figure 6 ----------------------------------------------------------------------------
    def fig6(self) -> None:
        self.log("figure 6: pix2pix demo")
        out = self.tmp / "demo"
        shutil.rmtree(out, ignore_errors=True)
        extra = ["--steps", "20", "--train-pairs", "10", "--images", "2"] if self.quick else []
        _, wall, rss, idx = self.child([sys.executable, "-m", "pix2pix", "demo", "--out", out,
                                        *extra], key="fig6", json_out=False)
        self.add("6", "pix2pix demo wall time" + (" (--quick: 20 steps)" if self.quick else ""),
                 wall, "s", target="< 300", met=wall < 300, commands=[idx])
        self.add("6", "peak RSS (largest process)", rss / 1024, "GiB", commands=[idx])


def _tile_count(side: int, tile: int = 256, overlap: int = 32) -> int:
    from pix2pix.tiling import grid
    return len(grid(side, tile, overlap)) ** 2


def _own_peak_mib() -> float | None:
    """This process's peak RSS (VmHWM), the floor of every child's ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith("VmHWM"))
    except (OSError, StopIteration):
        return None


def _has_torch() -> bool:
    return subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode == 0


# The /proc/cpuinfo flags that decide the speed of float32 and 16-bit convolutions here.
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")


def machine() -> dict:
    from pix2pix.model.precision import cpu_info
    cpu, flags = cpu_info()
    versions = subprocess.run(
        [sys.executable, "-c", "import tensorflow as tf, json\n"
         "try:\n import torch; t = torch.__version__\nexcept ImportError:\n t = None\n"
         "print(json.dumps({'tensorflow': tf.__version__, 'torch': t}))"],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        v = json.loads(versions.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        v = {}
    return {"cpu": cpu, "cpu_flags": [f for f in SPEED_FLAGS if f in flags],
            "cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "platform": platform.platform(), **v}


def cpu_line(info: dict, rows: list[Row] = ()) -> str:
    """The CPU that measured: model, cores, the speed-relevant flags and, when figure 1 ran,
    the GEMM peaks it measured."""
    text = (f"{info['cpu']} ({info['cpus']} CPUs; flags: "
            f"{' '.join(info.get('cpu_flags', [])) or 'none of ' + ' '.join(SPEED_FLAGS)})")
    peaks = {r.measure.rsplit(" ", 2)[1]: r.value for r in rows
             if r.measure.startswith("attainable peak")}
    if peaks:
        text += ", GEMM peaks measured in the run: " + ", ".join(
            f"{v:g} GFLOP/s {k}" for k, v in peaks.items())
    return text


def table(rows: list[Row], *, markdown: bool) -> str:
    head = ["fig", "measure", "value", "unit", "target", "met", "load", "cmd"]
    body = [[r.figure, r.measure, f"{r.value:g}", r.unit, r.target,
             "" if r.met is None else ("yes" if r.met else "NO"),
             "" if r.load is None else f"{r.load:.2f}",
             ",".join(f"[{c}]" for c in r.commands)] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(b) for b in body])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few steps and small inputs (plumbing)")
    ap.add_argument("--only", default="1,2,3,4,5,6", help="figures to run, e.g. 1,3")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared",
                    help="the shared folder holding bench/ references and datasets/ "
                         "(default: ../shared beside the repository)")
    ap.add_argument("--results", type=Path, default=BENCH / "results",
                    help="where latest.json goes (default: bench/results)")
    ap.add_argument("--markdown", type=Path, default=None,
                    help="also write the table here (default: bench/RESULTS.md on a full run)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = ap.parse_args(argv)
    try:
        figures = sorted({int(x) for x in a.only.split(",") if x.strip()})
    except ValueError:
        ap.error(f"--only {a.only!r}: a comma-separated list of figure numbers 1-6")
    if not figures or not set(figures) <= set(range(1, 7)):
        ap.error(f"--only {a.only!r}: figure numbers are 1 to 6")
    shared = a.shared.resolve()
    if 1 in figures and not (shared / "bench" / "tf_reference.py").is_file():
        ap.error(f"{shared / 'bench' / 'tf_reference.py'}: not found; pass --shared DIR")

    started = dt.datetime.now(dt.timezone.utc)
    load_start = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="pix2pix-bench-"))
    sys.path.insert(0, str(REPO))
    bench = Bench(shared=shared, tmp=tmp, quick=a.quick)
    info = machine()
    print(f"bench {started:%Y-%m-%d %H:%M} UTC on {cpu_line(info)}, "
          f"load {load_start[0]:.2f}; figures {figures}{' (quick)' if a.quick else ''}")
    failures = []
    try:
        for n in figures:
            try:
                getattr(bench, f"fig{n}")()
            except ChildError as e:
                failures.append(f"figure {n}: {e}")
                print(f"figure {n} FAILED: {e}", file=sys.stderr)
    finally:
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    finished = dt.datetime.now(dt.timezone.utc)
    load_end = os.getloadavg()
    print()
    print(table(bench.rows, markdown=False))
    print()
    for i, c in enumerate(bench.commands):
        print(f"[{i}] {c}")
    meta = {"started": started.isoformat(timespec="seconds"),
            "finished": finished.isoformat(timespec="seconds"),
            "minutes": round((finished - started).total_seconds() / 60, 1),
            "load_average_start": load_start, "load_average_end": load_end,
            "quick": a.quick, "figures": figures, "machine": info,
            "bench_process_peak_mib": _own_peak_mib()}
    a.results.mkdir(parents=True, exist_ok=True)
    latest = a.results / "latest.json"
    latest.write_text(json.dumps({**meta, "rows": [asdict(r) for r in bench.rows],
                                  "commands": bench.commands, "raw": bench.raw,
                                  "failures": failures}, indent=1) + "\n")
    print(f"\nwrote {latest}")
    md_path = a.markdown or (None if a.quick else BENCH / "RESULTS.md")
    if md_path is not None:
        md = ["# Benchmark results\n",
              f"`python bench/run.py{' --only ' + a.only if a.only != '1,2,3,4,5,6' else ''}`, "
              f"{started:%Y-%m-%d %H:%M}-{finished:%H:%M} UTC, on {cpu_line(info, bench.rows)}, "
              f"Python {info['python']}, TensorFlow {info.get('tensorflow')}, "
              f"torch {info.get('torch')}; load average {load_start[0]:.2f} at the start, "
              f"{load_end[0]:.2f} at the end (the load column: the highest 1-minute load as "
              "each row's commands started).\n",
              "Ratios compare implementations measured in this same run (see bench/run.py's "
              "docstring for what each figure is). Commands are run from the repository root; "
              "$TMP is the run's temporary folder.\n",
              table(bench.rows, markdown=True), "",
              *[f"- [{i}] `{c}`" for i, c in enumerate(bench.commands)]]
        if failures:
            md += ["", "## Failures", *[f"```\n{f}\n```" for f in failures]]
        md_path.write_text("\n".join(md) + "\n")
        print(f"wrote {md_path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
