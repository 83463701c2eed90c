"""pix2pix objective (paper eq. 4): G* = arg min_G max_D L_cGAN(G, D) + lambda * L_L1(G), the
optional terms (WGAN-GP's gradient penalty, pix2pixHD's feature matching), and the
learning-rate policy. Pure functions of tensors, so tests check them on known values."""
from __future__ import annotations

import math
from typing import Callable

import tensorflow as tf


def _scales(logits) -> list[tf.Tensor]:
    """One discriminator's logits, or a list of them (multi-scale): always a list."""
    return list(logits) if isinstance(logits, (list, tuple)) else [logits]


def gan_loss(logits, real: bool, mode: str) -> tf.Tensor:
    """Mean loss of calling every patch ``real`` (label 1) or fake (label 0); summed over the
    discriminators when ``logits`` is a list of them (pix2pixHD).

    vanilla: sigmoid cross-entropy on logits (the paper); lsgan: least squares (Mao et al. 2017);
    wgangp: the critic's mean score, negated for real (Gulrajani et al. 2017; no sigmoid).
    """
    if isinstance(logits, (list, tuple)):
        return tf.add_n([gan_loss(x, real, mode) for x in logits])
    if mode == "wgangp":
        return -tf.reduce_mean(logits) if real else tf.reduce_mean(logits)
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


def feature_matching_loss(real: list[list[tf.Tensor]], fake: list[list[tf.Tensor]]) -> tf.Tensor:
    """pix2pixHD's feature matching: the L1 distance between each discriminator's intermediate
    activations on the fake and on the real pair (the real side held constant), each layer
    weighted 4 / (its discriminator's layers), each discriminator 1 / num_D.

    Args:
        real, fake: per discriminator, ``[activation_1, ..., activation_n, logits]``.
    """
    total = []
    for r, f in zip(real, fake):
        weight = 4.0 / (len(r) - 1) / len(real)
        total += [weight * tf.reduce_mean(tf.abs(tf.cast(fj, tf.float32)
                                                 - tf.stop_gradient(tf.cast(rj, tf.float32))))
                  for rj, fj in zip(r[:-1], f[:-1])]
    return tf.add_n(total)


def gradient_penalty(critic: Callable[[tf.Tensor, tf.Tensor], list], inp: tf.Tensor,
                     real: tf.Tensor, fake: tf.Tensor, *, weight: float,
                     alpha: tf.Tensor | None = None) -> tf.Tensor:
    """WGAN-GP's penalty as junyanz's ``cal_gradient_penalty`` (type "mixed", constant 1):
    ``weight * mean((||grad_x sum(D(x))||_2 - 1)^2)`` at x = alpha real + (1 - alpha) fake,
    one alpha ~ U(0, 1) per pair, the gradient taken over the whole (input, target) pair.

    Args:
        critic: ``critic(input, target)`` -> a list of score maps (summed).
        alpha: [batch] interpolation weights (drawn when None).
    """
    n = tf.shape(real)[0]
    if alpha is None:
        alpha = tf.random.uniform([n])
    alpha = tf.reshape(tf.cast(alpha, real.dtype), [-1, 1, 1, 1])
    mixed = alpha * real + (1.0 - alpha) * tf.stop_gradient(fake)
    with tf.GradientTape() as tape:
        tape.watch([inp, mixed])
        score = tf.add_n([tf.reduce_sum(tf.cast(s, tf.float32)) for s in critic(inp, mixed)])
    g_inp, g_mixed = tape.gradient(score, [inp, mixed],
                                   unconnected_gradients=tf.UnconnectedGradients.ZERO)
    grads = tf.concat([tf.reshape(g_inp, [n, -1]), tf.reshape(g_mixed, [n, -1])], axis=1)
    # + 1e-16 as junyanz: the norm's gradient is undefined at 0.
    return weight * tf.reduce_mean(tf.square(tf.norm(grads + 1e-16, axis=1) - 1.0))


def clip_gradients(grads: list[tf.Tensor], clip: float | None) -> tuple[list[tf.Tensor], tf.Tensor]:
    """Rescale ``grads`` so their global norm is at most ``clip`` (None: unchanged).

    Returns the gradients and their global norm *before* clipping (for the logs).
    """
    norm = tf.linalg.global_norm(grads)
    if clip is None:
        return grads, norm
    clipped, _ = tf.clip_by_global_norm(grads, clip, use_norm=norm)
    return clipped, norm


# junyanz's StepLR(step_size=lr_decay_iters, gamma=0.1).
STEP_GAMMA = 0.1


def learning_rate(step: int, *, base: float, policy: str, total_steps: int,
                  decay_steps: int) -> float:
    """The rate at ``step`` (0-based) of a run of ``total_steps``:

    constant; linear: constant, then linear decay to 0 over the last ``decay_steps`` (the
    paper's code decays over the last 100 of 200 epochs); step: x STEP_GAMMA every
    ``decay_steps``; cosine: ``base (1 + cos(pi step / total_steps)) / 2``, 0 at the end.
    plateau is stateful: :class:`pix2pix.model.schedule.Plateau` scales ``base``.
    """
    if policy == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    if policy == "step":
        return base * STEP_GAMMA ** (step // max(1, decay_steps))
    if policy != "linear" or decay_steps <= 0:
        return base
    remaining = total_steps - step
    return base * min(1.0, max(0.0, remaining / decay_steps))
