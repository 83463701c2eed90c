"""Figure 1: the project's training step on in-memory tensors, same protocol as the references in
../shared/bench (random 256x256 tensors, warm-up steps, then timed steps). Prints one JSON line,
with the arithmetic of one step (GFLOP per image, counted from the built networks)."""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from pix2pix.config import ModelConfig, TrainConfig  # noqa: E402
from pix2pix.model.trainer import Trainer  # noqa: E402


def forward_gflop(model: keras.Model) -> float:
    """Multiply-adds x 2 of the conv and transposed-conv layers of ``model`` for one image."""
    flop = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, cin = layer.input.shape
            flop += 2 * h * w * cin * layer.filters * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, cout = layer.output.shape
            cin = layer.input.shape[-1]
            flop += 2 * h * w * cout * cin * layer.kernel_size[0] * layer.kernel_size[1]
    return flop / 1e9


def train_gflop_per_image(trainer: Trainer) -> dict[str, float]:
    """FLOP of one training step per image, convolutions only (everything else is < 2%).

    G runs forward once and backward once (input and weight gradients: 2x forward); D runs
    forward on the real and the fake pair, backward for its weights on both and, on the fake
    pair, also for its input (G's gradient flows through it): 3 F_G + 2 F_D + 3 F_D.
    """
    g, d = forward_gflop(trainer.generator), forward_gflop(trainer.discriminator)
    return {"g_forward_gflop": round(g, 2), "d_forward_gflop": round(d, 2),
            "train_gflop_per_img": round(3 * g + 5 * d, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--precision", default="auto", help="the train option (auto: the default)")
    ap.add_argument("--ema_decay", type=float, default=TrainConfig.ema_decay,
                    help="the train option (0: no weight average to update)")
    a = ap.parse_args()
    trainer = Trainer(ModelConfig(ngf=a.ngf, ndf=a.ngf),
                      TrainConfig(precision=a.precision, ema_decay=a.ema_decay))
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
                      "precision": trainer.dtype,
                      "train_img_per_s": round(train, 3), "generate_img_per_s": round(generate, 3),
                      **train_gflop_per_image(trainer)}))


if __name__ == "__main__":
    main()
