"""pix2pix objective (paper eq. 4): G* = arg min_G max_D L_cGAN(G, D) + lambda * L_L1(G),
and the learning-rate policy. Pure functions of tensors, so tests check them on known values."""
from __future__ import annotations

import tensorflow as tf


def gan_loss(logits: tf.Tensor, real: bool, mode: str) -> tf.Tensor:
    """Mean loss of calling every patch ``real`` (label 1) or fake (label 0).

    vanilla: sigmoid cross-entropy on logits (the paper); lsgan: least squares (Mao et al. 2017).
    """
    labels = tf.ones_like(logits) if real else tf.zeros_like(logits)
    if mode == "lsgan":
        return tf.reduce_mean(tf.square(logits - labels))
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def generator_loss(fake_logits: tf.Tensor, fake: tf.Tensor, target: tf.Tensor, *, mode: str,
                   gan_weight: float, l1_weight: float) -> dict[str, tf.Tensor]:
    """Fool D on the fake patches, and stay close to the target in L1 (less blurring than L2)."""
    gan = gan_loss(fake_logits, True, mode)
    l1 = tf.reduce_mean(tf.abs(target - fake))
    return {"g_total": gan_weight * gan + l1_weight * l1, "g_gan": gan, "g_l1": l1}


def discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor, *, mode: str) -> tf.Tensor:
    """Real pairs as real, generated pairs as fake; halved to slow D relative to G (paper 3.3)."""
    return 0.5 * (gan_loss(real_logits, True, mode) + gan_loss(fake_logits, False, mode))


def clip_gradients(grads: list[tf.Tensor], clip: float | None) -> tuple[list[tf.Tensor], tf.Tensor]:
    """Rescale ``grads`` so their global norm is at most ``clip`` (None: unchanged).

    Returns the gradients and their global norm *before* clipping (for the logs).
    """
    norm = tf.linalg.global_norm(grads)
    if clip is None:
        return grads, norm
    clipped, _ = tf.clip_by_global_norm(grads, clip, use_norm=norm)
    return clipped, norm


def learning_rate(step: int, *, base: float, policy: str, total_steps: int,
                  decay_steps: int) -> float:
    """Constant, or constant then linear decay to 0 over the last ``decay_steps`` of
    ``total_steps`` (the paper's code decays over the last 100 of 200 epochs)."""
    if policy == "constant" or decay_steps <= 0:
        return base
    remaining = total_steps - step
    return base * min(1.0, max(0.0, remaining / decay_steps))
