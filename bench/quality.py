"""Quality benchmark: the project's pix2pix against the TF tutorial reference, on real pairs.

Both models are trained from the same seed, for the same number of steps, on the SAME batches:
one input pipeline (``pix2pix.data.dataset.make_dataset`` with training jitter and a fixed seed)
feeds each batch to the project's train step and then to the reference's. Both are then run on
the test pairs, each in its own default inference mode and in the tutorial's, and scored by the
same code
(``pix2pix.evaluate.evaluate_pairs``: L1, PSNR, SSIM on [0, 1] RGB, outputs rounded to 8 bits as
a saved PNG would be). The report is ``index.html`` (samples, metrics, loss curves) and
``results.json`` (every number and the command that made it) under ``--out``.

Test-time normalisation differs between the two, and each keeps its own default:
  project   BatchNorm with ``test_stats="image"``: each test image is normalised with its own
            statistics, as training at batch size 1 saw it (the paper's "statistics of the test
            batch"); dropout off (``test_dropout=False``).
  reference ``keras.layers.BatchNormalization`` at ``training=False``: moving averages
            (momentum 0.99) of the training statistics; dropout off. The tutorial's own
            ``generate_images`` calls ``training=True`` instead; that mode is scored too, next to
            the project in the same mode (per-image statistics, dropout on).

Usage (from the repository root)::

    python bench/quality.py                      # facades, 1 seed, default budget
    python bench/quality.py --seeds 0 1          # the two-seed comparison
    python bench/quality.py --epochs 200         # the paper's schedule (a GPU job)
    python bench/quality.py --project norm=instance --project lr_policy=linear
    python bench/quality.py --steps 8000 --eval_at 1000,2000,4000 --seeds 0 1   # curves
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import html
import importlib.util
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"  # the `shared` folder beside the repository root
DEFAULT_DATA = SHARED / "datasets" / "facades"
DEFAULT_REFERENCE = SHARED / "bench" / "tf_reference.py"
DEFAULT_OUT = HERE / "results" / "quality"
REFERENCE_SIZE = 256  # tf_reference.py builds its networks for 256x256x3 only
METRICS = ("l1", "psnr", "ssim")
# Period of the grid artefact measure: the 70x70 PatchGAN's output stride (2^3), and a multiple
# of the period of the generator's three finest transposed convolutions (2, 4, 8 px).
GRID_PERIOD = 8
OTHER_STATS = {"image": "running", "running": "image"}
# Project options the benchmark sets itself or that do not apply to an in-memory run.
_NOT_PROJECT = {"max_steps", "max_epochs", "batch_size", "seed", "save_freq", "keep_checkpoints",
                "summary_freq", "crop_size", "wandb", "display_freq", "val_freq"}


# --------------------------------------------------------------------------- the two trainers

def load_reference(path: Path):
    """Import tf_reference.py by path; returns the module (``make_trainer()`` is what we use)."""
    from pix2pix.errors import UsageError
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: reference script not found; pass --reference "
                         "PATH/TO/shared/bench/tf_reference.py")
    spec = importlib.util.spec_from_file_location("tf_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "make_trainer"):
        raise UsageError(f"{path}: has no make_trainer(); is it the TF reference?")
    return module


def project_configs(overrides: dict[str, Any], *, crop_size: int, flag: str = "--project"):
    """ModelConfig and TrainConfig of the project, defaults overlaid by ``overrides``."""
    from pix2pix.config import ModelConfig, TrainConfig, build
    from pix2pix.errors import UsageError
    known = {f.name for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)}
    bad = sorted(set(overrides) - (known - _NOT_PROJECT))
    if bad:
        raise UsageError(f"{flag} {', '.join(bad)}: not a project model/train option the "
                         "benchmark can change (data options and the step budget are shared "
                         "by both models: use the benchmark's own flags)")
    model = build(ModelConfig, {**overrides, "crop_size": crop_size}, source=flag)
    train = build(TrainConfig, overrides, source=flag)
    if train.lr_policy == "plateau":
        raise UsageError(f"{flag} lr_policy=plateau: the benchmark holds no validation pairs "
                         "back; use pix2pix train with --val_fraction or --val_dir")
    from pix2pix.train import check_options
    check_options(model, train)
    return model, train


def parse_overrides(items: Sequence[str], flag: str = "--project") -> dict[str, str]:
    from pix2pix.errors import UsageError
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} {item!r}: expected KEY=VALUE, e.g. norm=instance")
        out[key.strip()] = value.strip()
    return out


def _smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average (the first points average what exists so far)."""
    v = np.asarray(values, np.float64)
    if window <= 1 or v.size == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def train_models(*, seed: int, steps: int, batches, projects: dict[str, tuple], reference,
                 log: Callable[[str], None],
                 on_step: Callable[[int, dict, Any], None] | None = None):
    """Train fresh project models and a fresh reference model on the same batches.

    Args:
        projects: {"project": (ModelConfig, TrainConfig)} and optionally {"baseline": (...)},
            a second project model with other options (an ablation), trained on the same batches.

        on_step: called as ``on_step(done, trainers, reference_generator)`` after each step
            (``done`` steps trained): the learning curve's scoring hook. Its time is not
            counted in the train seconds.

    Returns:
        (project Trainers by key, reference generator, losses by key ("reference" too),
         train seconds by key).
    """
    import tensorflow as tf

    from pix2pix.model.losses import learning_rate
    from pix2pix.model.trainer import Trainer
    from pix2pix.train import decay_steps

    # Same seed for every set of initial weights (and dropout masks): each build starts from it.
    trainers = {}
    for key, (model_cfg, train_cfg) in projects.items():
        tf.keras.utils.set_random_seed(seed)
        trainers[key] = Trainer(model_cfg, train_cfg)
        log(f"{key}: precision {trainers[key].dtype}, lr_policy {train_cfg.lr_policy}")
    ref_g = ref_step = None
    if reference is not None:  # None: project models only (--no_reference)
        tf.keras.utils.set_random_seed(seed)
        ref_g, _ref_d, ref_step = reference.make_trainer()

    # Decay as `pix2pix train --max_steps` does: the paper's last 100 of 200 epochs scaled to
    # the run's length, so a short run with lr_policy=linear decays over its last half.
    decay = {key: decay_steps(dataclasses.replace(t.cfg, max_steps=steps), total=steps,
                              steps_per_epoch=1) for key, t in trainers.items()}

    keys = ("g_gan", "g_l1", "g_total", "d_loss")
    losses = {k: {name: [] for name in keys} for k in trainers}
    if reference is not None:
        losses["reference"] = {"g_total": [], "d_loss": []}
    pending: list = []  # device tensors, read back in bulk so every step is not a sync point
    seconds = {k: 0.0 for k in losses}
    t_log = time.perf_counter()
    it = iter(batches)
    for step in range(steps):
        inp, tar, _name = next(it)
        row = {}
        for key, trainer in trainers.items():
            t = trainer.cfg
            lr = learning_rate(step, base=t.lr, policy=t.lr_policy, total_steps=steps,
                               decay_steps=decay[key])
            t0 = time.perf_counter()
            p, _fake = trainer.train_step(inp, tar, tf.constant(lr, tf.float32))
            row[key] = {k: p[k] for k in keys}
            row[key]["g_l1"].numpy()
            seconds[key] += time.perf_counter() - t0
        if ref_step is not None:
            t0 = time.perf_counter()
            gl, dl = ref_step(inp, tar)
            dl.numpy()
            seconds["reference"] += time.perf_counter() - t0
            row["reference"] = {"g_total": gl, "d_loss": dl}
        pending.append(row)
        due = time.perf_counter() - t_log > 60 or step in (0, steps - 1)
        if len(pending) >= 50 or due:
            for row in pending:
                for key, values in row.items():
                    for name, v in values.items():
                        losses[key][name].append(float(v))
            pending.clear()
        if due:
            t_log = time.perf_counter()
            per = "  ".join(f"{k} {v / (step + 1):.2f}" for k, v in seconds.items())
            msg = f"seed {seed} step {step + 1}/{steps}  s/step: {per}"
            if losses["project"]["g_l1"]:
                msg += f"  project g_l1 {np.mean(losses['project']['g_l1'][-50:]):.3f}"
            if losses.get("reference", {}).get("g_total"):
                msg += f"  reference g_total {np.mean(losses['reference']['g_total'][-50:]):.2f}"
            log(msg)
        if on_step is not None:
            on_step(step + 1, trainers, ref_g)
    return trainers, ref_g, losses, seconds


def float32_generator(trainer, test_stats: str | None = None, test_dropout: bool | None = None,
                      last: bool = False):
    """The trainer's generator rebuilt in float32 with the weights test, export and generate
    run, whatever precision training used: the weight average when the run kept one
    (``ema_decay`` > 0), else the last weights; ``last``: the last weights regardless.
    ``test_stats``, ``test_dropout``: None for the trained model's own settings."""
    from pix2pix.model.networks import build_generator
    c = trainer.cfg
    g = build_generator(trainer.model_cfg, test_stats=test_stats or c.test_stats,
                       test_dropout=c.test_dropout if test_dropout is None else test_dropout,
                       dtype="float32")
    source = trainer.generator_average
    if last or source is None:
        source = trainer.generator
    g.set_weights(source.get_weights())
    return g


# --------------------------------------------------------------------------- evaluation

def _copy_model(model):
    """A Keras model with the same weights and its own layers (and so its own batch-norm
    averages and dropout seeds)."""
    import tensorflow as tf
    copy = tf.keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def to_uint8(x) -> np.ndarray:
    """[-1, 1] float batch -> uint8, rounded as a saved 8-bit image would be."""
    return np.clip(np.round((np.asarray(x) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def generate(generator, test_ds, *, training: bool = False):
    """(inputs, outputs, targets, names) over the test set, uint8 arrays."""
    import tensorflow as tf
    # Plain graph code: AutoGraph has nothing to convert (and cannot parse a lambda's source).
    fn = tf.function(tf.autograph.experimental.do_not_convert(
        lambda x: generator(x, training=training)), reduce_retracing=True)
    inputs, outputs, targets, names = [], [], [], []
    for inp, tar, name in test_ds:
        inputs.extend(to_uint8(inp))
        outputs.extend(to_uint8(fn(inp)))
        targets.extend(to_uint8(tar))
        names.extend(n.decode() for n in name.numpy())
    return inputs, outputs, targets, names


def grid_share(image: np.ndarray, period: int = GRID_PERIOD) -> float:
    """Share of an image's spectral magnitude on the frequencies of a ``period``-pixel grid.

    A pattern repeating every ``period`` pixels (the checkerboard of transposed convolutions,
    the tiling a discriminator's stride leaves) has all its energy on the lattice of multiples
    of H/period and W/period cycles; a photo has little of its energy there. Computed on the
    luminance (mean of RGB) less its mean, so a flat image scores 0.
    """
    g = np.asarray(image, np.float64)
    if g.ndim == 3:
        g = g[..., :3].mean(axis=-1)
    g = g - g.mean()
    magnitude = np.abs(np.fft.fft2(g))
    total = magnitude.sum()
    if total <= 1e-9 * g.size:
        return 0.0
    h, w = g.shape
    rows = np.unique(np.round(np.arange(period) * h / period).astype(int) % h)
    cols = np.unique(np.round(np.arange(period) * w / period).astype(int) % w)
    return float(magnitude[np.ix_(rows, cols)].sum() / total)


def grid_ratio(outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray],
               period: int = GRID_PERIOD) -> float:
    """Mean grid share of the outputs over that of their targets: 1 means as much energy on
    the ``period``-pixel grid as the real images have, 2 twice as much (visible tiling)."""
    real = np.mean([grid_share(t, period) for t in targets])
    return float(np.mean([grid_share(o, period) for o in outputs]) / real) if real else 0.0


def summarise(values: Sequence[float]) -> dict:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "per_seed": [float(x) for x in v]}


def curve_points(steps: int, eval_at: Sequence[int] = (), eval_every: int = 0) -> set[int]:
    """The steps before the last at which the learning curve scores the test set.

    Raises:
        UsageError: a step past the run's budget (naming --eval_at).
    """
    from pix2pix.errors import UsageError
    late = sorted(p for p in eval_at if p > steps)
    if late:
        raise UsageError(f"--eval_at {','.join(map(str, late))}: past the run's {steps} steps")
    points = set(eval_at)
    if eval_every:
        points |= set(range(eval_every, steps, eval_every))
    return {p for p in points if p < steps}


def summarise_curves(runs: Sequence[dict]) -> dict:
    """{model: [{"step", "l1": summarise(per seed), ...}]} over the steps every run scored."""
    out = {}
    curves = [r.get("curve") or {} for r in runs]
    for key in curves[0] if curves else ():
        if not all(key in c for c in curves):
            continue
        steps = sorted(set.intersection(*({p["step"] for p in c[key]} for c in curves)))
        out[key] = [{"step": st, **{m: summarise([next(p[m] for p in c[key] if p["step"] == st)
                                                  for c in curves]) for m in METRICS}}
                    for st in steps]
    return out


# --------------------------------------------------------------------------- the report

def _plot(draw: Callable[[], None], log: Callable[[str], None]) -> bool:
    """Run a plotting call; without matplotlib (the [plots] extra), one warning line and no
    plot, since the scores are already in results.json."""
    try:
        draw()
        return True
    except ImportError as e:
        log(f"warning: no plots ({e}; pip install 'pix2pix-pachyderm[plots]'); the scores "
            "are in results.json")
        return False


def plot_curves(curves: dict, path: Path) -> None:
    """L1, PSNR and SSIM against the step, one line per model (mean over seeds, the seed
    spread as a band)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    for key, points in curves.items():
        steps = [p["step"] for p in points]
        for a, m in zip(ax, METRICS):
            mean = np.array([p[m]["mean"] for p in points])
            std = np.array([p[m]["std"] for p in points])
            a.plot(steps, mean, marker="o", label=key)
            a.fill_between(steps, mean - std, mean + std, alpha=0.2)
    for a, (m, better) in zip(ax, (("L1 [0,1]", "lower"), ("PSNR dB", "higher"),
                                   ("SSIM", "higher"))):
        a.set_title(f"{m} on the test pairs ({better} is better)")
        a.set_xlabel("training step")
        a.legend()
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)


def _save_png(array: np.ndarray, path: Path) -> str:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, compress_level=1)
    return path.name


def plot_losses(losses: dict, path: Path, *, seed: int, smooth: int) -> None:
    """Three panels: generator total (both, same formula), discriminator (both, same formula:
    BCE(real)+BCE(fake), the project's halved loss doubled), the project's L1 and GAN terms."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p, r = losses["project"], losses.get("reference")
    b = losses.get("baseline")
    steps = np.arange(1, len(p["g_total"]) + 1)
    fig, ax = plt.subplots(1, 3, figsize=(15, 4))
    ax[0].plot(steps, _smooth(p["g_total"], smooth), label="project")
    if r:
        ax[0].plot(steps, _smooth(r["g_total"], smooth), label="reference")
    if b:
        ax[0].plot(steps, _smooth(b["g_total"], smooth), label="project baseline", alpha=0.7)
    ax[0].set_title("generator: GAN + 100·L1 ([-1,1] scale)")
    ax[1].plot(steps, _smooth(2 * np.asarray(p["d_loss"]), smooth), label="project (×2)")
    if r:
        ax[1].plot(steps, _smooth(r["d_loss"], smooth), label="reference")
    if b:
        ax[1].plot(steps, _smooth(2 * np.asarray(b["d_loss"]), smooth),
                   label="project baseline (×2)", alpha=0.7)
    ax[1].set_title("discriminator: BCE(real) + BCE(fake)")
    ax[2].plot(steps, _smooth(p["g_l1"], smooth), label="L1 (left axis)")
    twin = ax[2].twinx()
    twin.plot(steps, _smooth(p["g_gan"], smooth), color="C3", label="GAN (right axis)")
    ax[2].set_title("project generator terms")
    ax[2].legend(loc="upper left")
    twin.legend(loc="upper right")
    for a in ax[:2]:
        a.legend()
    for a in ax:
        a.set_xlabel(f"step (moving average of {smooth})")
    fig.suptitle(f"training losses, seed {seed}")
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)


def _fmt(s: dict, key: str) -> str:
    digits = {"l1": 4, "psnr": 2, "ssim": 4, "grid": 2}[key]
    seeds = ", ".join(f"{v:.{digits}f}" for v in s["per_seed"])
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f} <small>({seeds})</small>"


def write_html(out: Path, result: dict) -> Path:
    base = result.get("baseline_options")
    rows = [("project", "project (defaults" + (", " + result["project_overrides"]
                                               if result.get("project_overrides") else "") + ")"),
            ("baseline", f"project baseline ({base})"),
            ("project_other_stats", "project, test_stats="
             + OTHER_STATS[result["project_options"]["train"]["test_stats"]]
             + " (same weights, the other batch-norm statistics at test time)"),
            ("project_last_weights", "project, last weights (same run, without the weight "
             "average)"),
            ("reference", "reference (training=False)"),
            ("project_training_mode", "project, training mode (per-image statistics, dropout on "
             "at test: the paper's and the tutorial's inference)"),
            ("reference_training_mode", "reference, training=True (tutorial's generate_images)")]
    table = ["<tr><th>model</th><th>L1 [0,1] ↓</th><th>PSNR dB ↑</th><th>SSIM ↑</th>"
             f"<th>{GRID_PERIOD}-px grid, output/target (1 = as the photos)</th></tr>"]
    for key, label in rows:
        if key in result["summary"]:
            s = result["summary"][key]
            table.append(f"<tr><td>{html.escape(label)}</td>"
                         + "".join(f"<td>{_fmt(s[m], m)}</td>" for m in (*METRICS, "grid"))
                         + "</tr>")
    short = {"input": "input", "project": "project", "baseline": f"baseline ({base})",
             "project_other_stats": "project, test_stats="
             + OTHER_STATS[result["project_options"]["train"]["test_stats"]],
             "project_last_weights": "project, last weights",
             "reference": "reference (training=False)",
             "project_training_mode": "project (training mode)",
             "reference_training_mode": "reference (training=True)", "target": "target"}
    sections = []
    for run in result["runs"]:
        columns = [c for c in short if run["samples"] and c in run["samples"][0]]
        imgs = "".join(
            "<tr><td>{}</td>{}</tr>".format(
                html.escape(s["name"]),
                "".join(f'<td><img src="{html.escape(s[c])}" width="160"></td>'
                        for c in columns))
            for s in run["samples"])
        head = "".join(f"<th>{html.escape(short[c])}</th>" for c in columns)
        sections.append(
            f"<h2>seed {run['seed']}</h2>"
            "<p>train seconds: " + ", ".join(f"{k} {v:.0f}"
                                             for k, v in run["train_seconds"].items()) + "</p>"
            + (f'<img src="{html.escape(run["loss_plot"])}" width="100%">'
               if run.get("loss_plot") else "<p>(no loss plot: matplotlib is not installed)</p>")
            +             f"<table><tr><th>name</th>{head}</tr>{imgs}</table>")
    c = result["config"]
    notes = [
        f"data: {c['data']} ({result['train_pairs']} train pairs, {result['test_pairs']} test "
        f"pairs scored), direction {c['direction']}, preprocess {c['preprocess']} "
        f"load_size {c['load_size']} crop_size {c['crop_size']}",
        f"steps {c['steps']} at batch size {c['batch_size']}, seeds {c['seeds']}; both models see "
        "identical batches",
        f"project options: {json.dumps(result['project_options'])}",
        "metrics: pix2pix.evaluate.evaluate_pairs on [0,1] RGB, outputs rounded to 8 bits; "
        "mean ± sample std over seeds (per-seed values in brackets)",
        f"grid: the outputs' share of spectral magnitude on a {GRID_PERIOD}-pixel grid's "
        "frequencies over the targets' share (checkerboard and tiling artefacts; 1 = as much "
        "as the real images, 2 = twice as much)",
        "test-time normalisation: project BatchNorm test_stats=" + result["project_options"]
        ["train"]["test_stats"] + " (image: each image's own statistics); reference "
        "training=False uses the moving averages",
        f"machine: {result['machine']}; date {result['date']}",
        f"command: {result['command']}",
    ]
    curve_html = ""
    if result.get("curves"):
        keys = list(result["curves"])
        head = "".join(f"<th>{html.escape(k)} L1 / PSNR / SSIM</th>" for k in keys)
        by_step: dict[int, dict] = {}
        for key, points in result["curves"].items():
            for pt in points:
                by_step.setdefault(pt["step"], {})[key] = pt
        rows_html = "".join(
            f"<tr><td>{st}</td>" + "".join(
                "<td>" + (" / ".join(f"{by_step[st][k][m]['mean']:.{d}f}"
                                     for m, d in (("l1", 4), ("psnr", 2), ("ssim", 4)))
                          if k in by_step[st] else "-") + "</td>" for k in keys) + "</tr>"
            for st in sorted(by_step))
        plot_html = (f'<img src="{html.escape(result["curve_plot"])}" width="100%">'
                     if result.get("curve_plot") else "")
        curve_html = ("<h2>learning curve (mean over seeds; one run per seed, the schedule of "
                      f"its {c['steps']} steps at every point)</h2>{plot_html}"
                      f"<table><tr><th>step</th>{head}</tr>{rows_html}</table>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>pix2pix quality benchmark"
            "</title><style>body{font-family:sans-serif;max-width:1200px}td,th{padding:4px 8px;"
            "text-align:left;vertical-align:top}</style></head><body>"
            "<h1>pix2pix quality: project vs TF tutorial reference</h1>"
            f"<table>{''.join(table)}</table><ul>"
            + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
            + "</ul>" + curve_html + "".join(sections) + "</body></html>\n")
    path = out / "index.html"
    tmp = out / "index.html.tmp"
    tmp.write_text(page)
    tmp.replace(path)
    return path


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    return (f"{cpu}, {os.cpu_count()} cores{', ' + str(len(gpus)) + ' GPU' if gpus else ''}, "
            f"TensorFlow {tf.__version__}, Python {platform.python_version()}")


# --------------------------------------------------------------------------- main

def main(*, data: Path = DEFAULT_DATA, reference: Path = DEFAULT_REFERENCE,
         out: Path = DEFAULT_OUT, steps: int = 1000, epochs: float | None = None,
         seeds: Sequence[int] = (0,), batch_size: int = 1, direction: str = "BtoA",
         load_size: int = 286, crop_size: int = 256, preprocess: str = "resize_and_crop",
         no_flip: bool = False, max_test: int | None = None, samples: int = 8,
         eval_batch: int = 8, project: dict[str, Any] | None = None,
         baseline: dict[str, Any] | None = None,
         reference_training_mode: bool = True, with_reference: bool = True,
         smooth: int = 50, threads: int = 0, eval_at: Sequence[int] = (),
         eval_every: int = 0,
         command: str | None = None, log: Callable[[str], None] = print) -> dict:
    """Train both models per seed on ``data/train``, score them on ``data/test``, write the report.

    Args:
        data: folder with train/ and test/ of paired images (A|B files or A/ and B/ folders).
        reference: path of tf_reference.py.
        out: report folder (index.html, results.json, loss and sample PNGs).
        steps: training steps per model and seed (ignored when ``epochs`` is given).
        epochs: train this many passes over train/ instead.
        project: project ModelConfig/TrainConfig overrides, e.g. {"norm": "instance"}.
        baseline: train a second project model, with these overrides on top of ``project``
            (e.g. {"lr_policy": "constant"}: the old default), on the same batches.
        max_test: score only the first N test pairs (name order); None: all.
        reference_training_mode: also score both models in the tutorial's inference mode
            (reference training=True; project per-image statistics and dropout on).
        with_reference: train and score the reference too; False: the project models only
            (an ablation between project options, at about half the time).
        threads: TensorFlow intra/inter-op threads (0: TensorFlow's default).
        eval_at, eval_every: the learning curve: also score the test set at these steps of
            the run (and every ``eval_every`` steps), each project model as users get it and
            the reference at training=False, on the same batches. The last step is always
            scored (in full). A schedule set by the budget (linear decay) is the one of this
            run's budget at every point, not that of a shorter run.

    Returns:
        The results dict also written to ``out/results.json``.
    """
    import tensorflow as tf

    from pix2pix.config import DataConfig, to_dict
    from pix2pix.data.dataset import make_dataset
    from pix2pix.errors import UsageError
    from pix2pix.evaluate import evaluate_pairs, write_json

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    data, out = Path(data), Path(out)
    if crop_size != REFERENCE_SIZE:
        raise UsageError(f"--crop_size {crop_size}: the reference is built for "
                         f"{REFERENCE_SIZE}x{REFERENCE_SIZE} only; resize other sizes with "
                         "--load_size/--preprocess")
    for sub in ("train", "test"):
        if not (data / sub).is_dir():
            raise UsageError(f"{data / sub}: not found; --data needs train/ and test/ folders")
    if not seeds:
        raise UsageError("--seeds: give at least one seed")
    for name, value in (("steps", steps), ("batch_size", batch_size), ("samples", samples),
                        ("eval_batch", eval_batch), ("smooth", smooth)):
        if value < 1:
            raise UsageError(f"--{name} {value}: must be at least 1")
    if eval_every < 0 or any(p < 1 for p in eval_at):
        raise UsageError("--eval_at/--eval_every: steps must be at least 1")
    ref_module = load_reference(reference) if with_reference else None
    project_model, project_train = project_configs(dict(project or {}), crop_size=crop_size)
    projects = {"project": (project_model, project_train)}
    if baseline:
        projects["baseline"] = project_configs({**(project or {}), **baseline},
                                               crop_size=crop_size, flag="--baseline")
    data_cfg = DataConfig(direction=direction, load_size=load_size, preprocess=preprocess,
                          no_flip=no_flip)

    test_ds, n_test = make_dataset(data / "test", data=data_cfg, crop_size=crop_size,
                                   batch_size=eval_batch, training=False, seed=0)
    if max_test is not None:
        test_ds = test_ds.unbatch().take(max_test).batch(eval_batch)
        n_test = min(n_test, max_test)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    n_train = 0
    precision = {}

    def make_result() -> dict:
        """Every number so far (written after each seed, so a later failure loses nothing)."""
        keys = [k for k in runs[0]["metrics"] if all(k in r["metrics"] for r in runs)]
        summary = {key: {**{m: summarise([r["metrics"][key]["mean"][m] for r in runs])
                            for m in METRICS},
                         "grid": summarise([r["metrics"][key]["grid_ratio"] for r in runs])}
                   for key in keys}
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": _machine(),
            "command": command or "main(...) from Python",
            "config": {"data": str(data),
                       "reference": str(reference) if with_reference else None,
                       "steps": runs[0]["steps"], "epochs": epochs, "seeds": list(seeds),
                       "seeds_done": [r["seed"] for r in runs], "batch_size": batch_size,
                       "direction": direction, "load_size": load_size,
                       "crop_size": crop_size, "preprocess": preprocess, "no_flip": no_flip,
                       "max_test": max_test, "smooth": smooth,
                       "eval_at": sorted(curve_points(runs[0]["steps"], eval_at, eval_every))},
            "project_options": to_dict(project_model, project_train),
            "project_precision": precision.get("project"),
            "project_overrides": ", ".join(f"{k}={v}" for k, v in (project or {}).items()),
            "baseline_options": (", ".join(f"{k}={v}" for k, v in baseline.items())
                                 if baseline else None),
            "train_pairs": n_train, "test_pairs": n_test,
            "summary": summary,
            "curves": summarise_curves(runs),
            "runs": runs,
        }
    for seed in seeds:
        # One pipeline, one seed: shuffling and jitter are the same for every seed's pair of
        # models only when the seed is; each batch goes to both trainers in turn. The shuffle's
        # seed pairs with TensorFlow's global seed, so set it here: a seed then draws the same
        # batches whatever ran before it in the process (before, only a process's first seed
        # reproduced).
        tf.keras.utils.set_random_seed(seed)
        train_ds, n_train = make_dataset(data / "train", data=data_cfg, crop_size=crop_size,
                                         batch_size=batch_size, training=True, seed=seed,
                                         repeat=True)
        run_steps = steps if epochs is None else max(1, int(round(epochs * n_train / batch_size)))
        log(f"seed {seed}: {n_train} train pairs, {run_steps} steps of batch {batch_size}")
        points = curve_points(run_steps, eval_at, eval_every)
        curve: dict[str, list[dict]] = {}

        def score_point(done: int, trainers: dict, ref_g) -> None:
            if done not in points:
                return
            models = {key: (lambda t=t: generate(float32_generator(t), test_ds))
                      for key, t in trainers.items()}
            if ref_g is not None:  # training=False: its averages are left as they are
                models["reference"] = lambda: generate(ref_g, test_ds)
            if reference_training_mode:
                # The tutorial's inference mode, as in the final scoring. The reference runs as
                # a copy, so neither its batch-norm averages nor its dropout state move.
                models["project_training_mode"] = lambda: generate(float32_generator(
                    trainers["project"], test_stats="image", test_dropout=True), test_ds)
                if ref_g is not None:
                    models["reference_training_mode"] = lambda: generate(
                        _copy_model(ref_g), test_ds.unbatch().batch(1), training=True)
            for key, fn in models.items():
                _, outputs, targets, names = fn()
                m = evaluate_pairs(outputs, targets, names)["mean"]
                curve.setdefault(key, []).append({"step": done, **{k: m[k] for k in METRICS}})
            log(f"seed {seed} step {done}: " + "  ".join(
                f"{key} " + " ".join(f"{m} {c[-1][m]:.4f}" for m in METRICS)
                for key, c in curve.items()))
            # A long run's points so far survive a run stopped before its end.
            write_json({"seed": seed, "steps": run_steps, "curve": curve},
                       out / f"curve_seed{seed}.partial.json")

        trainers, ref_g, losses, seconds = train_models(
            seed=seed, steps=run_steps, batches=train_ds, projects=projects,
            reference=ref_module, log=log, on_step=score_point if points else None)
        precision["project"] = trainers["project"].dtype

        scored = {}
        # Project models are scored as users get them: float32 networks with the trained weights.
        gen = {key: (lambda t=t: generate(float32_generator(t), test_ds))
               for key, t in trainers.items()}
        # The same weights at the other test-time statistics: what that default alone is worth.
        other = OTHER_STATS[trainers["project"].cfg.test_stats]
        gen["project_other_stats"] = lambda: generate(
            float32_generator(trainers["project"], test_stats=other), test_ds)
        if trainers["project"].generator_average is not None:
            # The same run without the weight average: what that default alone is worth.
            gen["project_last_weights"] = lambda: generate(
                float32_generator(trainers["project"], last=True), test_ds)
        if ref_g is not None:
            gen["reference"] = lambda: generate(ref_g, test_ds)
        if reference_training_mode:
            # The project in the tutorial's inference mode (per-image statistics, dropout on):
            # the like-for-like row for "reference, training=True".
            gen["project_training_mode"] = lambda: generate(
                float32_generator(trainers["project"], test_stats="image", test_dropout=True),
                test_ds)
            # Last: training=True also moves the reference's BatchNorm averages.
            # Batch size 1, as the tutorial calls it: batch statistics are then each image's own.
            if ref_g is not None:
                gen["reference_training_mode"] = lambda: generate(
                    ref_g, test_ds.unbatch().batch(1), training=True)
        images = {}
        for key, fn in gen.items():
            tf.keras.utils.set_random_seed(seed)  # the tutorial mode keeps dropout on
            inputs, outputs, targets, names = fn()
            images[key] = outputs
            scored[key] = evaluate_pairs(outputs, targets, names)
            scored[key]["grid_ratio"] = grid_ratio(outputs, targets)
            log(f"seed {seed} {key}: " + "  ".join(f"{m} {scored[key]['mean'][m]:.4f}"
                                                   for m in METRICS)
                + f"  grid {scored[key]['grid_ratio']:.2f}")
        sample_rows = []
        pick = np.unique(np.linspace(0, len(names) - 1, min(samples, len(names))).astype(int))
        for i in pick:
            stem = f"seed{seed}_{Path(names[i]).with_suffix('').as_posix().replace('/', '_')}"
            row = {"name": names[i], "input": _save_png(inputs[i], out / f"{stem}_input.png")}
            for key, outputs in images.items():  # every scored model, as the table lists them
                row[key] = _save_png(outputs[i], out / f"{stem}_{key}.png")
            row["target"] = _save_png(targets[i], out / f"{stem}_target.png")
            sample_rows.append(row)
        for key, c in curve.items():  # the last point: the full scoring above
            c.append({"step": run_steps, **{m: scored[key]["mean"][m] for m in METRICS}})
        runs.append({"seed": seed, "steps": run_steps, "train_seconds": seconds,
                     "metrics": scored, "losses": losses, "loss_plot": None,
                     "curve": curve, "samples": sample_rows})
        # Scores first, plots after: a missing or failing plotting package never loses a run.
        result = make_result()
        write_json(result, out / "results.json")
        plot = out / f"losses_seed{seed}.png"
        if _plot(lambda: plot_losses(losses, plot, seed=seed, smooth=smooth), log):
            runs[-1]["loss_plot"] = plot.name

    result = make_result()
    if any(r["curve"] for r in runs) and _plot(
            lambda: plot_curves(result["curves"], out / "curves.png"), log):
        result["curve_plot"] = "curves.png"
    write_json(result, out / "results.json")
    write_html(out, result)
    log(f"report: {out / 'index.html'}")
    return result


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="folder with train/ and test/ paired images")
    ap.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE,
                    help="tf_reference.py (the TF tutorial model)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report folder")
    ap.add_argument("--steps", type=int, default=1000, help="training steps per model and seed")
    ap.add_argument("--epochs", type=float, default=None,
                    help="longer runs: this many passes over train/ (overrides --steps; the "
                         "paper trains facades 200 epochs)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed")
    ap.add_argument("--batch_size", type=int, default=1)
    ap.add_argument("--direction", choices=("AtoB", "BtoA"), default="BtoA",
                    help="BtoA is labels->photo on facades")
    ap.add_argument("--load_size", type=int, default=286, help="resize before a random crop")
    ap.add_argument("--crop_size", type=int, default=256, help="model size (the reference: 256)")
    ap.add_argument("--preprocess", choices=("resize_and_crop", "crop", "none"),
                    default="resize_and_crop", help="training jitter")
    ap.add_argument("--no_flip", action="store_true", help="no random horizontal flips")
    ap.add_argument("--max_test", type=int, default=None, help="score the first N test pairs")
    ap.add_argument("--samples", type=int, default=8, help="test images shown in the report")
    ap.add_argument("--eval_batch", type=int, default=8, help="batch size for generation")
    ap.add_argument("--project", action="append", default=[], metavar="KEY=VALUE",
                    help="project model/train option, e.g. norm=instance, lr_policy=linear, "
                         "ngf=32 (repeatable)")
    ap.add_argument("--baseline", action="append", default=[], metavar="KEY=VALUE",
                    help="also train a project model with this option changed (on top of "
                         "--project), on the same batches: an ablation, e.g. "
                         "lr_policy=constant (repeatable)")
    ap.add_argument("--no_reference_training_mode", action="store_true",
                    help="skip scoring both models in the tutorial's inference mode "
                         "(training=True: per-image statistics, dropout on)")
    ap.add_argument("--no_reference", action="store_true",
                    help="train and score the project models only (with --baseline: an "
                         "ablation between project options, at about half the time)")
    ap.add_argument("--smooth", type=int, default=50, help="loss plot moving-average window")
    ap.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: default)")
    ap.add_argument("--eval_at", type=_steps_list, default=(), metavar="S1,S2,...",
                    help="learning curve: also score the test set at these steps of each run "
                         "(the last step is always scored)")
    ap.add_argument("--eval_every", type=int, default=0, metavar="N",
                    help="learning curve: also score the test set every N steps")
    return ap.parse_args(argv)


def _steps_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected steps like 1000,2000,4000") from None


def cli(argv: Sequence[str] | None = None) -> int:
    from pix2pix.errors import Pix2PixError
    a = _parse(argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        main(data=a.data, reference=a.reference, out=a.out, steps=a.steps, epochs=a.epochs,
             seeds=a.seeds, batch_size=a.batch_size, direction=a.direction,
             load_size=a.load_size, crop_size=a.crop_size, preprocess=a.preprocess,
             no_flip=a.no_flip, max_test=a.max_test, samples=a.samples,
             eval_batch=a.eval_batch, project=parse_overrides(a.project),
             baseline=parse_overrides(a.baseline, flag="--baseline"),
             reference_training_mode=not a.no_reference_training_mode,
             with_reference=not a.no_reference, smooth=a.smooth,
             threads=a.threads, eval_at=a.eval_at, eval_every=a.eval_every,
             command=shlex.join(["python", "bench/quality.py", *argv]))
    except Pix2PixError as e:
        print(f"Error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
