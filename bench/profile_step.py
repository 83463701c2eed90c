"""Where the training step's time goes, op by op (TensorFlow's profiler), for docs/bench.md.

    python bench/profile_step.py --batch 1 --precision float32 [--steps 3] [--top 15]

Builds the default model (or --ngf), runs warm-up steps, records --steps steps with
tf.profiler.experimental, and reads the trace (the XSpace protobuf the profiler writes) back:
every TensorFlow op event on the executor threads, summed by op type and by layer (the op's
name scope). Prints one JSON line: the step's wall time and both tables, in milliseconds per
step and as shares of the summed op time (ops on two executor threads overlap, so the sum can
exceed the wall time). Keeps the trace with --logdir for TensorBoard's profile plugin.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from pix2pix.config import ModelConfig, TrainConfig  # noqa: E402
from pix2pix.model.trainer import Trainer  # noqa: E402


def op_times(logdir: Path) -> tuple[dict[str, float], dict[str, float]]:
    """Picoseconds summed by op type and by layer over the trace's executor-thread op events
    (event names are "scope/.../name:OpType")."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    by_type: dict[str, float] = collections.Counter()
    by_layer: dict[str, float] = collections.Counter()
    for path in logdir.rglob("*.xplane.pb"):
        space = xplane_pb2.XSpace()
        space.ParseFromString(path.read_bytes())
        for plane in space.planes:
            for line in plane.lines:
                if not line.name.startswith("tf_Compute"):
                    continue
                for event in line.events:
                    name = plane.event_metadata[event.metadata_id].name
                    if ":" not in name or "::" in name:
                        continue  # executor bookkeeping, not an op
                    scope, op = name.rsplit(":", 1)
                    by_type[op] += event.duration_ps
                    by_layer[_layer(scope)] += event.duration_ps
    return by_type, by_layer


def _layer(scope: str) -> str:
    """"G down5_conv" for unet_256_1/down5_conv_1/Conv2D (and its gradient under
    gradient_tape/...); the model's own ops (losses, optimiser) keep their first name."""
    parts = [p for p in scope.split("/") if p != "gradient_tape"]
    if len(parts) < 3:
        return parts[0]
    net = "G" if parts[0].startswith(("unet", "resnet")) else "D"
    return f"{net} {re.sub(r'_[0-9]+$', '', parts[1])}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--precision", default="float32")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--logdir", type=Path, default=None, help="keep the trace here")
    a = ap.parse_args()
    trainer = Trainer(ModelConfig(ngf=a.ngf, ndf=a.ngf), TrainConfig(precision=a.precision))
    x = tf.random.uniform([a.batch, 256, 256, 3], -1, 1)
    y = tf.random.uniform([a.batch, 256, 256, 3], -1, 1)
    lr = tf.constant(2e-4)
    for _ in range(a.warmup):
        float(trainer.train_step(x, y, lr)[0]["g_total"])
    t = time.perf_counter()
    for _ in range(a.steps):
        float(trainer.train_step(x, y, lr)[0]["g_total"])
    unprofiled = (time.perf_counter() - t) / a.steps
    logdir = a.logdir or Path(tempfile.mkdtemp(prefix="profile-step-"))
    tf.profiler.experimental.start(str(logdir))
    t = time.perf_counter()
    for _ in range(a.steps):
        float(trainer.train_step(x, y, lr)[0]["g_total"])
    profiled = (time.perf_counter() - t) / a.steps
    tf.profiler.experimental.stop()
    by_type, by_layer = op_times(logdir)
    if a.logdir is None:
        shutil.rmtree(logdir, ignore_errors=True)
    total = sum(by_type.values())

    def table(counts):
        return [[k, round(v / 1e9 / a.steps, 1), round(100 * v / total, 1)]
                for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:a.top]]
    print(json.dumps({"batch": a.batch, "precision": trainer.dtype,
                      "step_ms": round(1e3 * unprofiled, 1),
                      "step_ms_profiled": round(1e3 * profiled, 1),
                      "op_ms_summed": round(total / 1e9 / a.steps, 1),
                      "by_op_type_ms_pct": table(by_type), "by_layer_ms_pct": table(by_layer)}))


if __name__ == "__main__":
    main()
