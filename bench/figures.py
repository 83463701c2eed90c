"""Child processes of bench/run.py, one per measurement, each printing ONE JSON line.

Each runs on its own so that TensorFlow's start-up, memory and threads of one figure do not leak
into the next, and so that every figure in the table has a command that reproduces it:

    python bench/figures.py export-random --out DIR [--ngf 64] [--test_stats running]
    python bench/figures.py train-files --data DIR --batch 1 --steps 30 --warmup 3
    python bench/figures.py pure-model --model DIR --batch 4 --steps 10 [--precision bfloat16]
    python bench/figures.py generate --model DIR --input DIR --batch 4 [--precision bfloat16]
    python bench/figures.py psnr --model DIR --input DIR [--precision bfloat16]
    python bench/figures.py forward-variants --batch 1 [--rounds 5]
    python bench/figures.py per-image --model DIR --input FILE --out FILE
    python bench/figures.py incremental --state DIR --base 200
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]


def emit(**values) -> None:
    print(json.dumps(values), flush=True)


# --------------------------------------------------------------------------- models

def export_random(out: Path, *, ngf: int, crop: int = 256, test_stats: str = "image") -> None:
    """A `pix2pix export` folder of an untrained (step 0) model: same graph and cost as a trained
    one, made in seconds. Written through the real checkpoint -> export path (``test_stats``
    running: batch norm folded into the convolutions)."""
    from pix2pix.config import DataConfig, ModelConfig, TrainConfig, save_options
    from pix2pix.export import export
    from pix2pix.model.trainer import Trainer, checkpoint_manager

    t0 = time.perf_counter()
    model = ModelConfig(ngf=ngf, ndf=ngf, crop_size=crop)
    train = TrainConfig(seed=0, test_stats=test_stats, precision="float32")
    work = Path(tempfile.mkdtemp(prefix="bench-ckpt-"))
    try:
        trainer = Trainer(model, train)
        save_options(work / "options.json", model=model, data=DataConfig(), train=train)
        checkpoint_manager(trainer.checkpoint, work, keep=1, step=trainer.step).save()
        export(checkpoint=work, output_dir=out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    emit(export=str(out), ngf=ngf, test_stats=test_stats,
         seconds=round(time.perf_counter() - t0, 2))


# --------------------------------------------------------------------------- figure 2

def train_files(data: Path, *, batch: int, steps: int, warmup: int, out: Path) -> None:
    """The real `pix2pix train` loop (pix2pix.train.train with make_dataset, jitter on) on JPEG
    files; the train step is wrapped only to time the steady state (calls warmup+1 .. end)."""
    import pix2pix.model.trainer as trainer_mod
    from pix2pix.config import DataConfig, ModelConfig, TrainConfig
    from pix2pix.train import train

    stamps: list[float] = []

    class TimedTrainer(trainer_mod.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            step = self.train_step

            def timed(*a):
                result = step(*a)
                stamps.append(time.perf_counter())  # the step ran: tf.function calls block
                return result
            self.train_step = timed

    trainer_mod.Trainer = TimedTrainer
    t0 = time.perf_counter()
    train(input_dir=data, output_dir=out, model=ModelConfig(),
          data=DataConfig(direction="BtoA"),
          train=TrainConfig(max_steps=warmup + steps, batch_size=batch, save_freq=10 ** 9,
                            seed=0), progress=False)
    total = time.perf_counter() - t0
    rate = steps * batch / (stamps[-1] - stamps[warmup - 1])
    emit(batch=batch, steps=steps, train_img_per_s=round(rate, 3),
         first_step_s=round(stamps[0] - t0, 2), total_s=round(total, 2))


# --------------------------------------------------------------------------- figure 3

def pure_model(model: Path, *, batch: int, steps: int, warmup: int, precision: str) -> None:
    """The export on one in-memory uint8 batch, called as `pix2pix generate` calls it
    (pix2pix.generate.load_model at ``precision``): the model's own rate on the production
    path, without files."""
    import numpy as np

    from pix2pix.generate import load_model

    translator = load_model(model=model, precision=precision, batch_size=batch)
    x = np.random.default_rng(0).integers(0, 256, (batch, 256, 256, 3), np.uint8)
    for _ in range(warmup):
        translator(x)
    t = time.perf_counter()
    for _ in range(steps):
        translator(x)  # returns a NumPy array: the call has finished
    emit(batch=batch, precision=translator.precision,
         generate_img_per_s=round(steps * batch / (time.perf_counter() - t), 3))


def psnr(model: Path, inputs: Path, *, precision: str, batch: int = 4) -> None:
    """PSNR (dB, uint8 peak 255) of the export's ``precision`` outputs against its float32
    outputs over the PNG/JPEG files of ``inputs`` (the right half of an A|B pair when the file
    is twice as wide as tall, as facades' test set): what the reduced precision changes."""
    import numpy as np
    from PIL import Image

    from pix2pix.generate import load_model

    f32 = load_model(model=model, precision="float32")
    low = load_model(model=model, precision=precision)
    files = sorted(p for p in inputs.iterdir() if p.suffix.lower() in (".png", ".jpg"))
    errors = []
    for i in range(0, len(files), batch):
        images = []
        for p in files[i:i + batch]:
            img = np.asarray(Image.open(p).convert("RGB"))
            if img.shape[1] == 2 * img.shape[0]:
                img = img[:, img.shape[1] // 2:]
            images.append(np.asarray(Image.fromarray(img).resize((f32.size, f32.size),
                                                                 Image.Resampling.BICUBIC)))
        x = np.stack(images)
        d = f32(x).astype(np.float64) - low(x).astype(np.float64)
        errors.extend((d ** 2).reshape(len(x), -1).mean(axis=1))
    mse = np.asarray(errors)
    per_image = 10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12))
    emit(images=len(mse), precision=low.precision, psnr_db_of_mean_mse=round(
        float(10 * np.log10(255.0 ** 2 / max(mse.mean(), 1e-12))), 2),
         psnr_db_min=round(float(per_image.min()), 2),
         psnr_db_median=round(float(np.median(per_image)), 2))


def forward_variants(*, batch: int, rounds: int, calls: int, ngf: int = 64) -> None:
    """What each inference change is worth, in ONE process, timed interleaved (best of
    ``rounds`` runs of ``calls`` calls each): the default generator (per-image batch norm) as
    a tf.function over variables, then with running statistics, folded, folded with phase
    transposed convolutions, and that with its variables frozen into constants (the exported
    float32 path), then bfloat16 frozen. uint8 in and out, as the export."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    from pix2pix.config import ModelConfig
    from pix2pix.export import from_uint8, to_uint8
    from pix2pix.model.inference import compute_policy, fold_batch_norm
    from pix2pix.model.networks import build_generator

    cfg = ModelConfig(ngf=ngf, ndf=ngf)
    spec = tf.TensorSpec([None, 256, 256, 3], tf.uint8)

    def fn(g, policy=None):
        f = tf.function(lambda x: to_uint8(g(from_uint8(x), training=False)))
        if policy is None:
            return f.get_concrete_function(spec)
        with compute_policy(g, policy):
            return f.get_concrete_function(spec)

    base = build_generator(cfg, test_stats="image")
    running = build_generator(cfg, test_stats="running")
    running.set_weights(base.get_weights())
    folded = fold_batch_norm(running, cfg)
    phases = fold_batch_norm(running, cfg, subpixel=True)
    variants = {"per-image batch norm (variables)": fn(base),
                "running statistics (variables)": fn(running),
                "folded (variables)": fn(folded),
                "folded + phase transposed convs (variables)": fn(phases),
                "folded + phases, frozen constants (the export's float32)":
                    convert_variables_to_constants_v2(fn(phases)),
                "folded + phases, frozen, bfloat16":
                    convert_variables_to_constants_v2(fn(phases, "mixed_bfloat16"))}
    x = tf.constant(np.random.default_rng(0).integers(0, 256, (batch, 256, 256, 3), np.uint8))

    def run(f):
        y = f(x)  # a frozen function returns a list of its outputs
        return (y[0] if isinstance(y, (list, tuple)) else y).numpy()
    for f in variants.values():  # warm-up: oneDNN primitives, reordered weights
        run(f)
        run(f)
    best = {k: float("inf") for k in variants}
    for _ in range(rounds):
        for name, f in variants.items():
            t = time.perf_counter()
            for _ in range(calls):
                run(f)
            best[name] = min(best[name], (time.perf_counter() - t) / calls)
    emit(batch=batch, img_per_s={k: round(batch / v, 2) for k, v in best.items()})


def generate_folder(model: Path, inputs: Path, *, batch: int, out: Path,
                    precision: str = "float32") -> None:
    """`pix2pix generate --model M --input DIR --output_dir OUT` as the CLI runs it
    (load_model, then generate: decode, translate, encode, write), timed after the model load
    and one warm-up pass over the first batch."""
    from pix2pix.generate import GenerateOptions, generate, load_model

    t0 = time.perf_counter()
    translator = load_model(model=model, precision=precision, batch_size=batch)
    options = GenerateOptions(batch_size=batch, workers=min(4, os.cpu_count() or 1))
    files = sorted(p for p in inputs.iterdir() if p.suffix == ".png")
    warm = out / "warm"
    generate(translator=translator, inputs=files[:batch], output_dir=warm, options=options)
    load_s = time.perf_counter() - t0
    t = time.perf_counter()
    result = generate(translator=translator, inputs=[inputs], output_dir=out / "run",
                      options=options)
    seconds = time.perf_counter() - t
    emit(images=result.written, batch=batch, precision=translator.precision,
         generate_img_per_s=round(result.written / seconds, 3),
         load_and_warmup_s=round(load_s, 2))


def per_image(model: Path, image: Path, out: Path) -> None:
    """What the public Pachyderm pix2pix example pays per image: a fresh process imports
    TensorFlow, loads the model and translates one file (here through the export's PNG-bytes
    signature). run.py times the whole process."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model))
    png = loaded.signatures["translate_png"](image=tf.constant(image.read_bytes()))["output"]
    out.write_bytes(png.numpy())
    emit(written=str(out))


# --------------------------------------------------------------------------- figure 4

def incremental(state: Path, *, base: int, steps: int) -> None:
    """The four real pipelines/ specs on the embedded engine (process executor), with a tiny
    training budget in params.yaml; ``base`` images are committed to input_images first
    (untimed), then ONE more image is put and the run it triggers is timed."""
    import numpy as np
    import yaml
    from PIL import Image

    from pix2pix.demo import synthetic
    from pix2pix.pachyderm.engine import Engine
    from pix2pix.pachyderm.specfile import load_spec_file

    shutil.rmtree(state, ignore_errors=True)
    work = state.parent / f"{state.name}-files"
    shutil.rmtree(work, ignore_errors=True)
    engine = Engine(state)
    specs = [doc for s in ("checkpoint", "model", "preprocess_images", "generate_images")
             for doc in load_spec_file(REPO / "pipelines" / f"{s}.json")]
    for repo in ("training", "input_images"):
        engine.create_repo(repo)
    engine.create_pipelines(specs)
    t0 = time.perf_counter()
    pairs = synthetic.write_pairs(work / "train", count=4, seed=0)
    params = {"model": {"ngf": 8, "ndf": 8},
              "train": {"max_steps": steps, "batch_size": 1, "seed": 0, "summary_freq": 0}}
    with engine.commit("training") as c:
        for p in pairs:
            c.put_file(f"/train/{p.name}", p.read_bytes())
        c.put_file("/params.yaml", yaml.safe_dump(params).encode())
    # generate_images reads the promoted model (model@production)
    engine.create_branch("model", "production", head=engine.inspect_branch("model", "master").head)
    setup_s = time.perf_counter() - t0

    def image(i: int) -> bytes:
        rng = np.random.default_rng(i)
        path = work / f"q{i}.png"
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), np.uint8)).save(path)
        return path.read_bytes()

    t0 = time.perf_counter()
    if base:
        with engine.commit("input_images") as c:
            for i in range(base):
                c.put_file(f"/img{i:04d}.png", image(i))
    base_s = time.perf_counter() - t0
    new = image(base)
    t0 = time.perf_counter()
    with engine.commit("input_images") as c:  # finishing the commit runs the pipelines
        c.put_file(f"/img{base:04d}.png", new)
    seconds = time.perf_counter() - t0
    jobs = [j for j in engine.list_jobs() if j.id == c.id]
    bad = [f"{j.pipeline}: {j.state} {j.reason}" for j in jobs if j.state != "success"]
    if bad:
        raise SystemExit(f"incremental run failed: {'; '.join(bad)}")
    engine.get_file("generate_images", "master", f"/img{base:04d}.png")  # the output is there
    shutil.rmtree(work, ignore_errors=True)
    emit(base=base, put_and_run_s=round(seconds, 2), base_commit_s=round(base_s, 2),
         training_setup_s=round(setup_s, 2), jobs=sorted(j.pipeline for j in jobs))


def peak(*, n: int, reps: int) -> None:
    """The cores' attainable FLOP rate: an n x n x n matmul (oneDNN's GEMM), float32 and
    bfloat16, best of 5 timings of ``reps`` products. A nominal peak (cores x FLOP/cycle x
    clock) depends on a boost clock nobody reports; the GEMM rate is what dense code reaches."""
    import tensorflow as tf
    rates = {}
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.cast(tf.random.normal((n, n)), dtype)
        f = tf.function(lambda x: tf.matmul(x, x))
        f(a).numpy()
        best = 0.0
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(reps):
                y = f(a)
            y.numpy()
            best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9)
        rates[dtype.name] = round(best, 1)
    emit(n=n, float32_gflops=rates["float32"], bfloat16_gflops=rates["bfloat16"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("export-random")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--test_stats", choices=["image", "running"], default="image")
    p = sub.add_parser("train-files")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p = sub.add_parser("pure-model")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--precision", default="float32")
    p = sub.add_parser("generate")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--precision", default="float32")
    p = sub.add_parser("forward-variants")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=4)
    p.add_argument("--ngf", type=int, default=64)
    p = sub.add_parser("psnr")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--precision", default="bfloat16")
    p = sub.add_parser("per-image")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--input", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("peak")
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--reps", type=int, default=10)
    p = sub.add_parser("incremental")
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--base", type=int, default=200)
    p.add_argument("--steps", type=int, default=2)
    a = ap.parse_args(argv)
    if a.cmd == "export-random":
        export_random(a.out, ngf=a.ngf, test_stats=a.test_stats)
    elif a.cmd == "train-files":
        train_files(a.data, batch=a.batch, steps=a.steps, warmup=a.warmup, out=a.out)
    elif a.cmd == "pure-model":
        pure_model(a.model, batch=a.batch, steps=a.steps, warmup=a.warmup,
                   precision=a.precision)
    elif a.cmd == "generate":
        generate_folder(a.model, a.input, batch=a.batch, out=a.out, precision=a.precision)
    elif a.cmd == "forward-variants":
        forward_variants(batch=a.batch, rounds=a.rounds, calls=a.calls, ngf=a.ngf)
    elif a.cmd == "psnr":
        psnr(a.model, a.input, precision=a.precision)
    elif a.cmd == "per-image":
        per_image(a.model, a.input, a.out)
    elif a.cmd == "peak":
        peak(n=a.n, reps=a.reps)
    elif a.cmd == "incremental":
        incremental(a.state, base=a.base, steps=a.steps)


if __name__ == "__main__":
    sys.exit(main())
