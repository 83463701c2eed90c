"""Loss values on known tensors, the learning-rate policy and gradient clipping."""
from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from pix2pix.model.losses import (clip_gradients, discriminator_loss, gan_loss, generator_loss,
                                  learning_rate)


def test_vanilla_gan_loss_is_bce_on_logits():
    logits = tf.constant([[0.0, 2.0], [-1.0, 3.0]])
    sig = 1 / (1 + np.exp(-logits.numpy()))
    assert float(gan_loss(logits, True, "vanilla")) == pytest.approx(np.mean(-np.log(sig)), 1e-5)
    assert float(gan_loss(logits, False, "vanilla")) == pytest.approx(np.mean(-np.log(1 - sig)),
                                                                      1e-5)
    assert float(gan_loss(tf.zeros([3]), True, "vanilla")) == pytest.approx(math.log(2), 1e-6)


def test_lsgan_loss_is_mean_squared_distance_to_label():
    logits = tf.constant([0.5, 2.0, -1.0])
    assert float(gan_loss(logits, True, "lsgan")) == pytest.approx((0.25 + 1 + 4) / 3, 1e-6)
    assert float(gan_loss(logits, False, "lsgan")) == pytest.approx((0.25 + 4 + 1) / 3, 1e-6)


@pytest.mark.parametrize("mode", ["vanilla", "lsgan"])
def test_discriminator_loss_is_halved_sum(mode):
    real, fake = tf.constant([1.0, -2.0]), tf.constant([0.3, 4.0])
    expected = 0.5 * (float(gan_loss(real, True, mode)) + float(gan_loss(fake, False, mode)))
    assert float(discriminator_loss(real, fake, mode=mode)) == pytest.approx(expected, 1e-6)


def test_generator_loss_weights_gan_and_l1():
    fake = tf.constant([[0.5, -0.5]])
    target = tf.constant([[1.0, 0.0]])
    out = generator_loss(tf.zeros([1, 2]), fake, target, mode="lsgan", gan_weight=2.0,
                         l1_weight=100.0)
    assert float(out["g_l1"]) == pytest.approx(0.5)
    assert float(out["g_gan"]) == pytest.approx(1.0)
    assert float(out["g_total"]) == pytest.approx(2.0 * 1.0 + 100.0 * 0.5)


def test_linear_policy_is_constant_then_decays_to_zero():
    kw = dict(base=2e-4, policy="linear", total_steps=200, decay_steps=100)
    assert learning_rate(0, **kw) == pytest.approx(2e-4)
    assert learning_rate(100, **kw) == pytest.approx(2e-4)
    assert learning_rate(150, **kw) == pytest.approx(1e-4)
    assert learning_rate(199, **kw) == pytest.approx(2e-6)
    assert learning_rate(200, **kw) == 0.0
    assert learning_rate(150, **{**kw, "policy": "constant"}) == pytest.approx(2e-4)


def test_clip_grad_bounds_the_global_norm():
    grads = [tf.constant([3.0, 4.0]), tf.constant([[12.0]])]  # global norm 13
    clipped, norm = clip_gradients(grads, 1.0)
    assert float(norm) == pytest.approx(13.0)
    assert float(tf.linalg.global_norm(clipped)) == pytest.approx(1.0, 1e-5)
    np.testing.assert_allclose(clipped[0].numpy(), [3 / 13, 4 / 13], rtol=1e-5)  # direction kept
    same, _ = clip_gradients(grads, 100.0)
    np.testing.assert_allclose(same[1].numpy(), [[12.0]])
    unclipped, _ = clip_gradients(grads, None)
    assert unclipped is grads
