"""The pix2pix update and its checkpoints.

One ``tf.function`` with a fixed input signature (batch dimension left open, so a short last
batch does not retrace) runs G forward once, D on the real and the fake pair, and updates both
nets from one persistent tape, as in the TF tutorial: D and G are updated simultaneously from
the same forward pass rather than re-running D after its own update (junyanz), which saves a
third D pass per step.

With ``ema_decay`` > 0 the step also updates a moving average of the generator's weights, the
weights inference uses (see :meth:`Trainer.update_average`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from pix2pix.config import ModelConfig, TrainConfig, saved_model_config, saved_train_options
from pix2pix.errors import ModelError
from pix2pix.model.losses import (clip_gradients, discriminator_loss, feature_matching_loss,
                                  generator_loss, gradient_penalty)
from pix2pix.model.networks import MultiScaleDiscriminator, build_generator
from pix2pix.model.optim import Adam
from pix2pix.model.precision import choose, reduced_candidates

log = logging.getLogger(__name__)

CHECKPOINT_SUBDIR = "checkpoints"
OPTIONS_FILE = "options.json"
# The weight average covers the last 1/EMA_RAMP of the steps so far (until 1/(1 - ema_decay)).
EMA_RAMP = 4.0


class Trainer:
    """Generator, discriminator, their Adam optimisers, the step counter and the train step."""

    def __init__(self, model: ModelConfig, train: TrainConfig):
        self.model_cfg, self.cfg = model, train
        self.dtype = training_policy(model, train)
        # float16's 5-bit exponent underflows small gradients: scale the losses (bfloat16 and
        # float32 need no scaling).
        self.loss_scale = LossScale() if self.dtype == "mixed_float16" else None
        self.generator = build_generator(model, test_stats=train.test_stats, dtype=self.dtype)
        self.D = MultiScaleDiscriminator(model, features=train.lambda_feat > 0, dtype=self.dtype)
        self.discriminator = self.D.nets[0]  # the full-size one
        self.perceptual = None
        if train.perceptual_loss == "vgg19":
            from pix2pix.model.perceptual import VGGLoss
            self.perceptual = VGGLoss(train.vgg_weights, dtype=self.dtype)
        self.g_opt = Adam(self.generator.trainable_variables, lr=train.lr, beta1=train.beta1,
                          name="g_adam")
        self.d_opt = Adam(self.D.trainable_variables, lr=train.lr, beta1=train.beta1,
                          name="d_adam")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        # One discriminator is checkpointed as before num_D existed; several as a list.
        parts = dict(generator=self.generator,
                     discriminator=self.D.nets[0] if len(self.D.nets) == 1 else self.D.nets,
                     g_opt=self.g_opt, d_opt=self.d_opt, step=self.step)
        # The average is a float32 generator (whatever the training precision), so a restore
        # loads it like any generator; it starts as the initial weights.
        self.generator_average = None
        if train.ema_decay > 0:
            self.generator_average = build_generator(model, test_stats=train.test_stats)
            for avg, w in zip(self.generator_average.weights, self.generator.weights):
                avg.assign(w)
            parts["generator_average"] = self.generator_average
        self.checkpoint = tf.train.Checkpoint(**parts)
        self._infer = None  # the generator in inference mode, for validation_l1
        s = model.crop_size
        self.train_step = tf.function(
            self._train_step, jit_compile=train.jit_compile, reduce_retracing=True,
            input_signature=[tf.TensorSpec([None, s, s, model.input_nc], tf.float32),
                             tf.TensorSpec([None, s, s, model.output_nc], tf.float32),
                             tf.TensorSpec([], tf.float32)])

    def _train_step(self, inp: tf.Tensor, tar: tf.Tensor, lr: tf.Tensor):
        """One update of D and G on a batch; returns (scalar losses, generated batch)."""
        G, D, c = self.generator, self.D, self.cfg
        self.g_opt.learning_rate.assign(lr)
        self.d_opt.learning_rate.assign(lr)
        scale = self.loss_scale
        with tf.GradientTape(persistent=True) as tape:
            fake = G(inp, training=True)
            real_out = D(inp, tar, training=True)   # per scale: [activations..., logits]
            fake_out = D(inp, fake, training=True)
            losses = self.g_losses(fake, tar, real_out, fake_out)
            losses.update(self.d_losses(inp, tar, fake, real_out, fake_out))
            g_obj, d_obj = losses["g_total"], losses["d_loss"]
            if scale is not None:
                g_obj, d_obj = g_obj * scale.value, d_obj * scale.value
        g_grads = tape.gradient(g_obj, G.trainable_variables)
        d_grads = tape.gradient(d_obj, D.trainable_variables)
        del tape
        if scale is not None:
            g_grads, d_grads = scale.unscale(g_grads), scale.unscale(d_grads)
        g_grads, losses["g_grad_norm"] = clip_gradients(g_grads, c.clip_grad)
        d_grads, losses["d_grad_norm"] = clip_gradients(d_grads, c.clip_grad)
        if scale is None:
            self.g_opt.apply(g_grads, G.trainable_variables)
            self.d_opt.apply(d_grads, D.trainable_variables)
        else:
            # An overflow anywhere skips both updates and halves the scale (the step counts).
            finite = scale.finite(g_grads + d_grads)
            tf.cond(finite, lambda: self._apply(g_grads, d_grads), tf.no_op)
            scale.update(finite)
            losses["loss_scale"] = tf.identity(scale.value)
        self.step.assign_add(1)
        if self.generator_average is not None:
            self.update_average()
        return losses, fake

    def _apply(self, g_grads, d_grads):
        self.g_opt.apply(g_grads, self.generator.trainable_variables)
        self.d_opt.apply(d_grads, self.D.trainable_variables)
        return tf.no_op()

    def g_losses(self, fake, tar, real_out, fake_out) -> dict[str, tf.Tensor]:
        """GAN + lambda L1 (the paper), + lambda_feat feature matching and lambda_perceptual
        VGG distance where asked for (pix2pixHD)."""
        c = self.cfg
        losses = generator_loss([o[-1] for o in fake_out], fake, tar, mode=c.gan_mode,
                                gan_weight=c.gan_weight, l1_weight=c.l1_weight)
        if c.lambda_feat > 0:
            losses["g_feat"] = feature_matching_loss(real_out, fake_out)
            losses["g_total"] += c.lambda_feat * losses["g_feat"]
        if self.perceptual is not None:
            losses["g_perceptual"] = self.perceptual(fake, tar)
            losses["g_total"] += c.lambda_perceptual * losses["g_perceptual"]
        return losses

    def d_losses(self, inp, tar, fake, real_out, fake_out) -> dict[str, tf.Tensor]:
        """Real as real, fake as fake, halved; + WGAN-GP's gradient penalty under wgangp."""
        c = self.cfg
        d_loss = discriminator_loss([o[-1] for o in real_out], [o[-1] for o in fake_out],
                                    mode=c.gan_mode)
        if c.gan_mode != "wgangp":
            return {"d_loss": d_loss}
        critic = lambda a, b: [o[-1] for o in self.D(a, b, training=True)]  # noqa: E731
        gp = gradient_penalty(critic, inp, tar, fake, weight=c.lambda_gp)
        return {"d_loss": d_loss + gp, "d_gp": gp}

    def validation_l1(self, batches) -> float:
        """Mean |G(input) - target| (the [-1, 1] scale of g_l1) of the generator being trained,
        in inference mode, over ``batches`` of (input, target, name); pairs larger than
        crop_size (patch training) are cut into the crop_size tiles that cover them."""
        import numpy as np

        from pix2pix.tiling import grid
        s = self.model_cfg.crop_size
        if self._infer is None:
            self._infer = tf.function(lambda x: self.generator(x, training=False),
                                      input_signature=[tf.TensorSpec(
                                          [None, s, s, self.model_cfg.input_nc], tf.float32)])
        total, count = 0.0, 0
        for inp, tar, _name in batches:
            inp, tar = inp.numpy(), tar.numpy()
            h, w = inp.shape[1:3]
            if (h, w) != (s, s):
                cut = lambda x: np.stack([x[i, y:y + s, x0:x0 + s]  # noqa: E731
                                          for i in range(x.shape[0]) for y in grid(h, s, 0)
                                          for x0 in grid(w, s, 0)])
                inp, tar = cut(inp), cut(tar)
            out = self._infer(tf.constant(inp)).numpy()
            total += float(np.abs(out - tar).sum())
            count += tar.size
        return total / max(count, 1)

    def update_average(self) -> None:
        """avg <- d * avg + (1 - d) * w for every generator weight (batch-norm statistics too).

        d = 1 - 1/h, where h, the average's horizon in steps, is a quarter of the steps done so
        far, capped at 1/(1 - ema_decay): a short run averages its last quarter, a long one its
        last 1/(1 - ema_decay) steps (1000 by default), and the first steps (h <= 1) just copy
        the weights. The ramp follows StyleGAN2-ADA's ``ema_rampup`` (Karras et al. 2020).
        Averaging a GAN generator's weights over its late steps cancels much of the step-to-step
        oscillation the adversarial game leaves in them (Yazici et al. 2019); on facades it
        raised L1, PSNR and SSIM alike (docs/quality.md).
        """
        t = tf.cast(self.step, tf.float32)
        cap = 1.0 / (1.0 - self.cfg.ema_decay)
        rate = 1.0 / tf.minimum(cap, tf.maximum(1.0, t / EMA_RAMP))  # 1 - d
        for avg, w in zip(self.generator_average.weights, self.generator.weights):
            # avg - (1 - d) (avg - w) in TensorFlow's fused kernel: the same average at half
            # the memory traffic of assign(d * avg + (1 - d) * w) (memory-bound on CPU).
            tf.raw_ops.ResourceApplyGradientDescent(var=avg.handle, alpha=rate, delta=avg - w)


class LossScale(tf.Module):
    """Dynamic loss scaling for float16 training (Micikevicius et al. 2018, as Keras'
    LossScaleOptimizer): losses are multiplied by the scale before the gradients and the
    gradients divided by it after, so small gradients do not flush to zero in float16. A step
    whose gradients overflow is skipped and halves the scale; ``growth_interval`` good steps in
    a row double it. Not checkpointed: it re-adapts within a few steps of a resume."""

    def __init__(self, initial: float = 2.0 ** 15, growth_interval: int = 2000):
        super().__init__(name="loss_scale")
        self.value = tf.Variable(initial, dtype=tf.float32, trainable=False, name="scale")
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")
        self.growth_interval = growth_interval

    def unscale(self, grads):
        return [None if g is None else g / self.value for g in grads]

    @staticmethod
    def finite(grads) -> tf.Tensor:
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads
                              if g is not None])

    def update(self, finite: tf.Tensor) -> None:
        grow = tf.logical_and(finite, self.good_steps + 1 >= self.growth_interval)
        self.value.assign(tf.where(finite, tf.where(grow, self.value * 2.0, self.value),
                                   tf.maximum(self.value / 2.0, 1.0)))
        self.good_steps.assign(tf.where(finite & ~grow, self.good_steps + 1,
                                        tf.zeros_like(self.good_steps)))


def _rng_state():
    """Every random state a model build or a step draws from (Python's, NumPy's, TensorFlow's
    eager op seeds), so the precision probe can leave them as it found them."""
    import random

    import numpy as np
    from tensorflow.python.eager import context
    ctx = context.context()
    rng = getattr(ctx, "_rng", None)
    return random.getstate(), np.random.get_state(), rng.getstate() if rng else None


def _set_rng_state(state) -> None:
    import random

    import numpy as np
    from tensorflow.python.eager import context
    py, npy, tf_rng = state
    random.setstate(py)
    np.random.set_state(npy)
    rng = getattr(context.context(), "_rng", None)
    if rng is not None and tf_rng is not None:
        rng.setstate(tf_rng)


def training_policy(model: ModelConfig, train: TrainConfig, **choose_kwargs) -> str:
    """The Keras dtype policy ``train.precision`` asks for; for "auto", the faster of float32
    and the reduced precision (mixed_bfloat16 on a CPU, mixed_float16 on a GPU), timed on this
    model at this batch size (pix2pix.model.precision.choose) and cached.

    The probe builds a trainer of each precision, runs a first step (the trace), then times
    steps alternately on constant inputs; the random states are restored afterwards, so a
    seeded run starts from the same weights whether the probe ran or the cache answered.
    ``choose_kwargs`` go to :func:`choose` (tests inject a timer and a cache file).
    """
    if train.precision != "auto":
        return train.precision
    s, reduced = model.crop_size, "mixed_" + reduced_candidates()[0]

    def candidate(policy: str):
        def build():
            t = Trainer(model, dataclasses.replace(train, precision=policy))
            x = tf.fill([train.batch_size, s, s, model.input_nc], 0.5)
            y = tf.fill([train.batch_size, s, s, model.output_nc], -0.5)
            lr = tf.constant(train.lr)
            step = lambda: float(t.train_step(x, y, lr)[0]["g_total"])  # noqa: E731  blocks
            step()
            return step
        return build

    # What the step's cost depends on: the architecture, the batch and the loss terms.
    shape = {"model": dataclasses.asdict(model), "batch_size": train.batch_size,
             "losses": [train.gan_mode, train.lambda_feat > 0, train.perceptual_loss,
                        train.ema_decay > 0, train.jit_compile]}
    state = _rng_state()
    try:
        return choose("train", shape, {"float32": candidate("float32"),
                                       reduced: candidate(reduced)}, **choose_kwargs)
    finally:
        _set_rng_state(state)


def checkpoint_manager(checkpoint: tf.train.Checkpoint, output_dir: Path, *, keep: int,
                       step: tf.Variable | None = None) -> tf.train.CheckpointManager:
    """Manager for ``output_dir/checkpoints``.

    Atomicity: TensorFlow writes a checkpoint's data and index first and only then rewrites the
    small ``checkpoint`` state file, through a temp file and a rename. A kill mid-save therefore
    leaves the state file naming the previous, complete checkpoint; :func:`restore_latest` also
    falls back to older ones should the newest still fail to read.
    """
    directory = Path(output_dir) / CHECKPOINT_SUBDIR
    try:
        return tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=keep,
                                          step_counter=step)
    except ValueError as e:  # an empty state file: TensorFlow refuses it
        bad = directory / "checkpoint"
        log.warning("%s: %s; set aside as %s.damaged, resuming from the checkpoint files",
                    bad, e, bad.name)
        os.replace(bad, bad.with_name("checkpoint.damaged"))
        return tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=keep,
                                          step_counter=step)


def restore_latest(checkpoint: tf.train.Checkpoint, directory: Path, *,
                   partial: bool = False) -> str | None:
    """Restore the newest readable checkpoint in ``directory``; None when there is none.

    Raises:
        ModelError: checkpoints are listed but none can be read.
    """
    try:
        state = tf.train.get_checkpoint_state(str(directory))
    except ValueError:  # an empty state file
        state = None
    candidates = []
    if state is not None:
        candidates = list(reversed(list(state.all_model_checkpoint_paths)))
        if state.model_checkpoint_path and state.model_checkpoint_path not in candidates:
            candidates.insert(0, state.model_checkpoint_path)
    # Then the checkpoints on disk, newest first: a lost or damaged state file (TensorFlow
    # ignores one it cannot parse) must not silently restart a run from step 0.
    on_disk = sorted(Path(directory).glob("ckpt-*.index"),
                     key=lambda p: int(p.stem.split("-")[-1]) if p.stem.split("-")[-1].isdigit()
                     else -1, reverse=True)
    candidates += [str(p.with_suffix("")) for p in on_disk
                   if str(p.with_suffix("")) not in candidates]
    if not candidates:
        return None
    errors = []
    for path in candidates:
        try:
            status = checkpoint.restore(path)
            if partial:
                status.expect_partial()
            status.assert_existing_objects_matched()
            return path
        except Exception as e:  # noqa: BLE001  OpError, IndexError (truncated data), ...
            # A partial restore may have assigned some variables; the next candidate overwrites
            # them all, and if none is readable we raise.
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            log.warning("checkpoint %s cannot be read (%s); trying an older one", path, first)
            errors.append(f"{Path(path).name}: {first}")
    raise ModelError(f"{directory}: no readable checkpoint ({'; '.join(errors)}); "
                     "delete the folder to start afresh")


def read_options(directory: Path) -> dict[str, Any]:
    """``options.json`` of a training output or export folder, as a dict of groups."""
    path = Path(directory) / OPTIONS_FILE
    if not path.is_file():
        raise ModelError(f"{path}: not found; is {directory} a `pix2pix train` output folder?")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: cannot read options ({e})") from None
    if not isinstance(data, dict) or "model" not in data:
        raise ModelError(f"{path}: no 'model' group; was it written by `pix2pix train`?")
    return data


def restore_generator(checkpoint_dir: Path, *, test_dropout: bool | None = None,
                      test_stats: str | None = None,
                      last_weights: bool = False) -> tuple[keras.Model, dict[str, Any]]:
    """Generator of a ``pix2pix train`` output folder from its latest checkpoint, and its options
    (with ``"weights"``: "average" or "last", the weights restored).

    Args:
        checkpoint_dir: the folder given to ``pix2pix train --output_dir``.
        test_dropout: keep dropout on at inference (default: the saved train option).
        test_stats: batch-norm statistics at inference (default: the saved train option).
        last_weights: the generator's last weights even when the run kept a weight average
            (``ema_decay`` > 0), which is otherwise what is restored.

    Raises:
        ModelError: the folder, its options.json or a readable checkpoint is missing.
    """
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        raise ModelError(f"{checkpoint_dir}: checkpoint folder not found")
    options = read_options(checkpoint_dir)
    model = saved_model_config(options["model"], source=str(checkpoint_dir / OPTIONS_FILE))
    saved_train = saved_train_options(options.get("train"))
    if test_dropout is None:
        test_dropout = bool(saved_train.get("test_dropout", False))
    if test_stats is None:
        test_stats = saved_train.get("test_stats", "image")
    generator = build_generator(model, test_dropout=test_dropout, test_stats=test_stats)
    # The weight average when the run kept one, else the last weights.
    ema = float(saved_train["ema_decay"]) > 0
    options["weights"] = "average" if ema and not last_weights else "last"
    key = {"average": "generator_average", "last": "generator"}[options["weights"]]
    found = restore_latest(tf.train.Checkpoint(**{key: generator}),
                           checkpoint_dir / CHECKPOINT_SUBDIR, partial=True)
    if found is None:
        raise ModelError(f"{checkpoint_dir / CHECKPOINT_SUBDIR}: no checkpoint; "
                         "train first with `pix2pix train --output_dir "
                         f"{checkpoint_dir}`")
    log.info("restored generator from %s", found)
    return generator, options
