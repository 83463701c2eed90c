"""The train step learns, clips, and its checkpoint restores the whole state; a half-written
checkpoint is never the one a resume picks."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pix2pix.config import ModelConfig, TrainConfig
from pix2pix.errors import ModelError
from pix2pix.model.trainer import CHECKPOINT_SUBDIR, Trainer, checkpoint_manager, restore_latest
from tests.conftest import make_pair_image

TINY = ModelConfig(generator="unet_128", ngf=8, ndf=8, crop_size=128)


@pytest.fixture(scope="module")
def fixed_pairs(tmp_path_factory):
    d = tmp_path_factory.mktemp("pairs")
    ab = np.stack([np.asarray(Image.open(make_pair_image(d / f"{i}.png", size=128, seed=i)))
                   for i in range(4)]).astype(np.float32) / 127.5 - 1.0
    return tf.constant(ab[:, :, :128]), tf.constant(ab[:, :, 128:])


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_overfits_four_pairs(fixed_pairs, precision):
    """A broken loss, gradient or optimiser leaves L1 near its initial ~0.5; in either
    precision (bfloat16 runs emulated, slower, on a CPU without it, but runs)."""
    a, b = fixed_pairs
    tf.keras.utils.set_random_seed(0)
    t = Trainer(TINY, TrainConfig(lr=1e-3, precision=precision))
    l1 = lambda: float(tf.reduce_mean(tf.abs(t.generator(a, training=False) - b)))  # noqa: E731
    before = l1()
    for s in range(200):
        losses, fake = t.train_step(a[s % 4:s % 4 + 1], b[s % 4:s % 4 + 1], tf.constant(1e-3))
    after = l1()
    assert after < 0.12 and after < 0.3 * before, (before, after)
    assert int(t.step) == 200 and int(t.g_opt.iterations) == 200
    assert fake.shape == (1, 128, 128, 3)
    t.train_step(a[:2], b[:2], tf.constant(1e-3))  # another batch size: same graph
    assert t.train_step.experimental_get_tracing_count() == 1
    assert set(losses) >= {"g_total", "g_gan", "g_l1", "d_loss"}


def test_weight_average_follows_its_ramp_and_cap(fixed_pairs):
    """avg <- d avg + (1 - d) w after every step, d = 1 - 1/h, h = steps/4 within [1, 1/(1 - ema_decay)]."""
    a, b = fixed_pairs
    t = Trainer(TINY, TrainConfig(ema_decay=0.75))  # cap: an average over 4 steps, from step 16
    picks = [0, 3, len(t.generator.weights) - 1]  # a kernel, a batch-norm scale, the output bias
    expected = [t.generator.weights[i].numpy().astype(np.float64) for i in picks]
    for step in range(1, 21):
        t.train_step(a[step % 4:step % 4 + 1], b[step % 4:step % 4 + 1], tf.constant(2e-4))
        d = 1 - 1 / min(4.0, max(1.0, step / 4))
        expected = [d * e + (1 - d) * t.generator.weights[i].numpy()
                    for e, i in zip(expected, picks)]
    for e, i in zip(expected, picks):
        avg, last = t.generator_average.weights[i].numpy(), t.generator.weights[i].numpy()
        np.testing.assert_allclose(avg, e, rtol=1e-4, atol=1e-6)
        assert not np.allclose(avg, last, rtol=0, atol=1e-7)  # it is not the last weights
    assert Trainer(TINY, TrainConfig(ema_decay=0.0)).generator_average is None


def test_clip_grad_limits_the_applied_gradient(fixed_pairs):
    a, b = fixed_pairs
    t = Trainer(TINY, TrainConfig(clip_grad=0.01))
    losses, _ = t.train_step(a[:1], b[:1], tf.constant(2e-4))
    assert float(losses["g_grad_norm"]) > 0.01  # the raw norm is reported, before clipping
    # After one Adam step the first moment is (1 - beta1) * the applied gradient.
    m_norm = float(tf.linalg.global_norm(t.g_opt.m))
    assert m_norm == pytest.approx(0.5 * 0.01, rel=1e-3)


def test_checkpoint_restores_weights_optimiser_and_step(tmp_path, fixed_pairs):
    a, b = fixed_pairs
    t = Trainer(TINY, TrainConfig())
    for _ in range(3):
        t.train_step(a[:1], b[:1], tf.constant(2e-4))
    manager = checkpoint_manager(t.checkpoint, tmp_path, keep=2, step=t.step)
    manager.save(checkpoint_number=int(t.step))
    fresh = Trainer(TINY, TrainConfig())
    assert restore_latest(fresh.checkpoint, tmp_path / CHECKPOINT_SUBDIR).endswith("ckpt-3")
    assert int(fresh.step) == 3 and int(fresh.g_opt.iterations) == 3
    for x, y in [(t.g_opt.v[5], fresh.g_opt.v[5]), (t.d_opt.m[0], fresh.d_opt.m[0]),
                 (t.generator.weights[3], fresh.generator.weights[3])]:
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_half_written_checkpoint_is_never_picked(tmp_path, fixed_pairs):
    a, b = fixed_pairs
    t = Trainer(TINY, TrainConfig())
    manager = checkpoint_manager(t.checkpoint, tmp_path, keep=3, step=t.step)
    t.train_step(a[:1], b[:1], tf.constant(2e-4))
    manager.save(checkpoint_number=1)
    t.train_step(a[:1], b[:1], tf.constant(2e-4))
    manager.save(checkpoint_number=2)
    ckpts = tmp_path / CHECKPOINT_SUBDIR
    # A kill mid-save: data/index of step 3 on disk, state file not yet rewritten.
    (ckpts / "ckpt-3.index").write_bytes(b"\x00partial")
    (ckpts / "ckpt-3.data-00000-of-00001").write_bytes(b"\x00" * 10)
    fresh = Trainer(TINY, TrainConfig())
    assert restore_latest(fresh.checkpoint, ckpts).endswith("ckpt-2")
    assert int(fresh.step) == 2
    # Even a state file naming a damaged newest checkpoint falls back to the older one.
    (ckpts / "ckpt-2.data-00000-of-00001").write_bytes(b"\x00" * 10)
    fresh = Trainer(TINY, TrainConfig())
    assert restore_latest(fresh.checkpoint, ckpts).endswith("ckpt-1")
    assert int(fresh.step) == 1
    (ckpts / "ckpt-1.index").write_bytes(b"junk")
    with pytest.raises(ModelError, match="no readable checkpoint"):
        restore_latest(Trainer(TINY, TrainConfig()).checkpoint, ckpts)


def test_linear_decay_of_a_step_bounded_run_starts_at_the_full_rate():
    """--max_steps with --lr_policy linear: constant for the first half, then down to 0."""
    from pix2pix.config import TrainConfig
    from pix2pix.model.losses import learning_rate
    from pix2pix.train import decay_steps

    cfg = TrainConfig(max_steps=1000, lr_policy="linear")  # max_epochs 200, lr_decay_epochs 100
    decay = decay_steps(cfg, total=1000, steps_per_epoch=400)
    assert decay == 500
    lr = [learning_rate(s, base=2e-4, policy="linear", total_steps=1000, decay_steps=decay)
          for s in (0, 499, 750, 999)]
    assert lr[0] == lr[1] == 2e-4
    assert 0.9e-4 < lr[2] < 1.1e-4 and lr[3] < 1e-6
    # An epoch-bounded run keeps the paper's schedule: the last lr_decay_epochs epochs.
    assert decay_steps(TrainConfig(), total=200 * 400, steps_per_epoch=400) == 100 * 400
