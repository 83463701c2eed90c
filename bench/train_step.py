"""Figure 1: the project's training step on in-memory tensors, same protocol as the references in
../shared/bench (random 256x256 tensors, warm-up steps, then timed steps). Prints one JSON line."""
from __future__ import annotations

import argparse
import json
import time

import tensorflow as tf

from pix2pix.config import ModelConfig, TrainConfig
from pix2pix.model.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--ngf", type=int, default=64)
    a = ap.parse_args()
    trainer = Trainer(ModelConfig(ngf=a.ngf, ndf=a.ngf), TrainConfig())
    x = tf.random.uniform([a.batch, 256, 256, 3], -1, 1)
    y = tf.random.uniform([a.batch, 256, 256, 3], -1, 1)
    lr = tf.constant(2e-4)
    for _ in range(a.warmup):
        trainer.train_step(x, y, lr)
    t = time.perf_counter()
    for _ in range(a.steps):
        losses, _ = trainer.train_step(x, y, lr)
    float(losses["g_total"])  # wait for the last step
    train = a.steps * a.batch / (time.perf_counter() - t)

    gen = tf.function(lambda v: trainer.generator(v, training=False))
    for _ in range(a.warmup):
        gen(x)
    t = time.perf_counter()
    for _ in range(a.steps):
        out = gen(x)
    out.numpy()
    generate = a.steps * a.batch / (time.perf_counter() - t)
    print(json.dumps({"impl": "pix2pix-pachyderm", "tensorflow": tf.__version__, "batch": a.batch,
                      "train_img_per_s": round(train, 3), "generate_img_per_s": round(generate, 3)}))


if __name__ == "__main__":
    main()
