"""The new loss terms on known values (WGAN-GP, feature matching, the VGG19 perceptual loss)
and the learning-rate schedules against hand computations, plateau's state across a restore."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pix2pix.config import TrainConfig
from pix2pix.errors import UsageError
from pix2pix.model.losses import (discriminator_loss, feature_matching_loss, gan_loss,
                                  generator_loss, gradient_penalty, learning_rate)
from pix2pix.model.schedule import Plateau
from pix2pix.train import decay_steps


# --------------------------------------------------------------------------- wgangp

def test_wgangp_loss_is_the_critics_mean_score():
    scores = tf.constant([[0.5, -2.0], [3.0, 1.0]])
    assert float(gan_loss(scores, True, "wgangp")) == pytest.approx(-0.625)
    assert float(gan_loss(scores, False, "wgangp")) == pytest.approx(0.625)
    # D: 0.5 (-E[D(real)] + E[D(fake)]); G: -E[D(fake)]; no sigmoid anywhere.
    real, fake = tf.constant([2.0, 4.0]), tf.constant([-1.0, 0.0])
    assert float(discriminator_loss(real, fake, mode="wgangp")) == pytest.approx(0.5 * (-3 - 0.5))
    out = generator_loss(fake, fake, fake, mode="wgangp", gan_weight=1.0, l1_weight=0.0)
    assert float(out["g_gan"]) == pytest.approx(0.5) and float(out["g_total"]) == pytest.approx(0.5)


def test_losses_sum_over_several_discriminators():
    a, b = tf.constant([1.0, 2.0]), tf.constant([[0.5]])
    for mode in ("vanilla", "lsgan", "wgangp"):
        assert float(gan_loss([a, b], True, mode)) == pytest.approx(
            float(gan_loss(a, True, mode)) + float(gan_loss(b, True, mode)))


def test_gradient_penalty_of_a_linear_critic_is_hand_computed():
    """D(a, b) = sum(w_a a + w_b b): its gradient is (w_a, w_b) at every point, so the penalty
    is lambda (||(w_a, w_b)||_2 - 1)^2 whatever the interpolation."""
    rng = np.random.default_rng(0)
    wa, wb = (rng.normal(size=(2, 4, 4, 3)).astype(np.float32) * 0.1 for _ in range(2))
    def critic(a, b):
        return [tf.reduce_sum(a * wa, [1, 2, 3]) + tf.reduce_sum(b * wb, [1, 2, 3])]

    inp, real, fake = (tf.constant(rng.uniform(-1, 1, (2, 4, 4, 3)), tf.float32) for _ in range(3))
    gp = gradient_penalty(critic, inp, real, fake, weight=10.0)
    norms = [np.sqrt((wa[i] ** 2).sum() + (wb[i] ** 2).sum()) for i in range(2)]
    assert float(gp) == pytest.approx(10 * np.mean([(n - 1) ** 2 for n in norms]), rel=1e-4)


def test_gradient_penalty_of_a_quadratic_critic_at_the_interpolate():
    """D(a, b) = sum(b^2) / 2 (score maps summed, as junyanz's grad_outputs=ones): the gradient
    is x = alpha real + (1 - alpha) fake on b and 0 on a."""
    rng = np.random.default_rng(1)
    inp, real, fake = (rng.uniform(-1, 1, (3, 5, 5, 2)).astype(np.float32) for _ in range(3))
    alpha = np.array([0.0, 0.3, 1.0], np.float32)
    critic = lambda a, b: [0.5 * tf.square(b), tf.zeros_like(a)]  # noqa: E731
    gp = gradient_penalty(critic, tf.constant(inp), tf.constant(real), tf.constant(fake),
                          weight=10.0, alpha=tf.constant(alpha))
    x = alpha[:, None, None, None] * real + (1 - alpha[:, None, None, None]) * fake
    norms = np.sqrt(((x + 1e-16) ** 2).sum(axis=(1, 2, 3)) + (1e-16 ** 2) * inp[0].size)
    assert float(gp) == pytest.approx(10 * np.mean((norms - 1) ** 2), rel=1e-5)


# --------------------------------------------------------------------------- feature matching

def test_feature_matching_is_pix2pixhd_weighted_l1():
    rng = np.random.default_rng(2)
    shapes = [[(1, 4, 4, 2), (1, 2, 2, 3), (1, 1, 1, 1)], [(1, 2, 2, 2), (1, 1, 1, 1)]]
    real = [[rng.normal(size=s).astype(np.float32) for s in d] for d in shapes]
    fake = [[rng.normal(size=s).astype(np.float32) for s in d] for d in shapes]
    got = feature_matching_loss([[tf.constant(x) for x in d] for d in real],
                                [[tf.constant(x) for x in d] for d in fake])
    # D 1: two feature layers, weight 4/2; D 2: one, weight 4/1; each D 1/2; logits left out.
    expected = (0.5 * 2 * (np.abs(fake[0][0] - real[0][0]).mean()
                           + np.abs(fake[0][1] - real[0][1]).mean())
                + 0.5 * 4 * np.abs(fake[1][0] - real[1][0]).mean())
    assert float(got) == pytest.approx(expected, rel=1e-5)
    same = feature_matching_loss([[tf.constant(x) for x in d] for d in real],
                                 [[tf.constant(x) for x in d] for d in real])
    assert float(same) == 0.0
    # Only the fake side is trained: the real activations are constants.
    r = tf.Variable(real[1][0])
    with tf.GradientTape() as tape:
        loss = feature_matching_loss([[r, tf.zeros([1])]],
                                     [[tf.constant(fake[1][0]), tf.zeros([1])]])
    assert tape.gradient(loss, r) is None


# --------------------------------------------------------------------------- perceptual

@pytest.fixture(scope="module")
def vgg_files(tmp_path_factory) -> dict[str, Path]:
    """Randomly initialised VGG19 weights, in Keras 3's format and in the legacy .h5 layout of
    Keras' own vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5; and wrong files."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    root = tmp_path_factory.mktemp("vgg")
    keras.utils.set_random_seed(0)
    vgg = keras.applications.VGG19(include_top=False, weights=None)
    files = {"keras3": root / "vgg19.weights.h5", "legacy": root / "vgg19_notop.h5",
             "wrong": root / "other.weights.h5", "text": root / "notes.h5",
             "vgg16": root / "vgg16.weights.h5"}
    vgg.save_weights(files["keras3"])
    keras.applications.VGG16(include_top=False, weights=None).save_weights(files["vgg16"])
    with h5py.File(files["legacy"], "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, vgg)
    keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)]).save_weights(files["wrong"])
    files["text"].write_text("not weights")
    return files


@pytest.mark.parametrize("kind", ["keras3", "legacy"])
def test_perceptual_loss_with_random_vgg_weights(vgg_files, kind):
    from pix2pix.model.perceptual import VGGLoss
    loss = VGGLoss(vgg_files[kind])
    rng = np.random.default_rng(3)
    a = tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)), tf.float32)
    b = tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)), tf.float32)
    assert float(loss(a, a)) == 0.0
    differ = float(loss(a, b))
    assert differ > 0 and float(loss(a, a + 0.1 * (b - a))) < differ
    # The file's weights are the ones used (not a fresh random VGG).
    import keras
    ref = keras.applications.VGG19(include_top=False, weights=None)
    ref.load_weights(vgg_files["keras3"])
    np.testing.assert_array_equal(loss.features.get_layer("block3_conv1").kernel.numpy(),
                                  ref.get_layer("block3_conv1").kernel.numpy())
    assert not any(v.trainable for v in loss.features.weights)


def test_perceptual_loss_bad_weight_files_are_one_line_errors(vgg_files, tmp_path):
    from pix2pix.model.perceptual import VGGLoss
    with pytest.raises(UsageError, match=r"--vgg_weights .*missing.h5: file not found .*model.md"):
        VGGLoss(tmp_path / "missing.h5")
    with pytest.raises(UsageError, match=r"needs --vgg_weights FILE"):
        VGGLoss(None)
    for bad in ("wrong", "text", "vgg16"):  # VGG16: 3 convs short, never half loaded
        with pytest.raises(UsageError, match=r"--vgg_weights .*: not VGG19 weights") as e:
            VGGLoss(vgg_files[bad])
        assert "\n" not in str(e.value)
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(UsageError, match="not a Keras .h5 weights file"):
        VGGLoss(tmp_path / "w.npz")


# --------------------------------------------------------------------------- schedules

def _curve(policy: str, total: int, decay: int, base: float = 2e-4) -> np.ndarray:
    return np.array([learning_rate(s, base=base, policy=policy, total_steps=total,
                                   decay_steps=decay) for s in range(total)])


def test_step_policy_is_x01_every_lr_decay_iters():
    cfg = TrainConfig(lr_policy="step")  # junyanz: 50 of 200 epochs
    period = decay_steps(cfg, total=200 * 10, steps_per_epoch=10)
    assert period == 500  # 50 epochs of 10 steps
    s = np.arange(2000)
    np.testing.assert_allclose(_curve("step", 2000, period), 2e-4 * 0.1 ** (s // 500), rtol=1e-12)
    # A --max_steps run steps at the same fractions of its length (a quarter).
    assert decay_steps(TrainConfig(lr_policy="step", max_steps=1000), total=1000,
                       steps_per_epoch=400) == 250


def test_cosine_policy_anneals_to_zero_over_the_run():
    s = np.arange(1000)
    np.testing.assert_allclose(_curve("cosine", 1000, 0), 1e-4 * (1 + np.cos(np.pi * s / 1000)),
                               rtol=1e-12)
    assert learning_rate(1000, base=2e-4, policy="cosine", total_steps=1000, decay_steps=0) \
        == pytest.approx(0.0, abs=1e-20)
    assert learning_rate(500, base=2e-4, policy="cosine", total_steps=1000, decay_steps=0) \
        == pytest.approx(1e-4)


def _torch_plateau(metrics, factor=0.2, threshold=0.01, patience=5):
    """ReduceLROnPlateau(mode='min', threshold_mode='rel') written out from its definition."""
    best, bad, lr, out = math.inf, 0, 1.0, []
    for m in metrics:
        if m < best * (1 - threshold):
            best, bad = m, 0
        else:
            bad += 1
        if bad > patience:
            lr, bad = lr * factor, 0
        out.append(lr)
    return out


def test_plateau_follows_reduce_lr_on_plateau():
    rng = np.random.default_rng(4)
    # Improving, then flat with noise under 1%, then a real improvement, then flat again.
    metrics = [1.0, 0.9, 0.8, *(0.8 + rng.uniform(-0.005, 0.005, 14)), 0.5, *([0.499] * 13)]
    p = Plateau(2e-4)
    rates = []
    for m in metrics:
        p.observe(m)
        rates.append(p.rate())
    np.testing.assert_allclose(rates, 2e-4 * np.array(_torch_plateau(metrics)), rtol=1e-12)
    # Each flat stretch of 13-14 values holds two runs of 6 non-improvements: 4 reductions.
    assert sorted(set(np.round(np.array(rates) / 2e-4, 6))) == [0.0016, 0.008, 0.04, 0.2, 1.0]
    assert rates[16] == pytest.approx(2e-4 * 0.04) and rates[17] == rates[16]  # 0.5 improves


def test_plateau_state_survives_a_checkpoint_and_attaches_after_a_restore(tmp_path):
    p = Plateau(1e-3)
    for m in (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.999):  # one reduction, then 1 bad
        p.observe(m)
    assert (p.rate(), int(p.num_bad.numpy())) == (pytest.approx(2e-4), 1)
    step = tf.Variable(3, dtype=tf.int64)
    path = tf.train.Checkpoint(step=step, plateau=p).save(str(tmp_path / "with"))
    # As train() does: the checkpoint restored first, the plateau attached afterwards.
    ckpt = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64))
    ckpt.restore(path).assert_existing_objects_matched()
    ckpt.plateau = restored = Plateau(1e-3)
    assert restored.rate() == pytest.approx(2e-4)
    assert float(restored.best.numpy()) == 1.0 and int(restored.num_bad.numpy()) == 1
    # A checkpoint written under another policy: a fresh plateau state.
    old = tf.train.Checkpoint(step=step).save(str(tmp_path / "without"))
    ckpt = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64))
    ckpt.restore(old).assert_existing_objects_matched()
    ckpt.plateau = fresh = Plateau(1e-3)
    assert fresh.rate() == 1e-3 and math.isinf(float(fresh.best.numpy()))
