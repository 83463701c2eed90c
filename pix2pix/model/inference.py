"""Inference forms of a trained generator, same outputs up to float rounding: batch norm
folded into the convolutions (:func:`fold_batch_norm`) and 16-bit tracing over the float32
variables (:func:`compute_policy`). pix2pix.export writes them; training never uses them."""
from __future__ import annotations

import contextlib

import keras
import numpy as np
from keras import layers

from pix2pix.config import ModelConfig
from pix2pix.model.networks import BatchNorm, build_generator


def fold_batch_norm(generator: keras.Model, cfg: ModelConfig, *, test_dropout: bool = False,
                    subpixel: bool = False, dtype: str = "float32") -> keras.Model:
    """A copy of ``generator`` with every batch norm folded into the conv before it.

    At inference with running statistics a batch norm is a fixed per-channel affine map,
    y = s * (conv(x) - mean) + beta with s = gamma / sqrt(var + eps); since conv is linear, the
    same y is conv'(x) + (beta - s * mean) where conv' has its kernel scaled by s on the output
    channels. The copy computes that: one convolution and a bias add, which Grappler fuses with
    the activation, instead of a convolution and a normalisation pass. Its norm layers keep
    valid running-statistics variables (gamma 1, mean 0, var 1 - eps, beta the offset), so
    restoring them into an unfolded network gives the same outputs too.

    Args:
        generator: a generator of ``cfg`` (any precision); its weights are read, not changed.
        cfg: its architecture; ``cfg.norm`` must be "batch".
        test_dropout: keep dropout on in the copy.
        subpixel: build the copy with phase-form transposed convolutions (:class:`UpConv`).
        dtype: the copy's dtype policy (its variables are float32 under either policy).
    """
    if cfg.norm != "batch":
        raise ValueError(f"fold_batch_norm: norm {cfg.norm!r} normalises with each image's own "
                         "statistics; only batch norm with running statistics folds")
    folded = build_generator(cfg, test_dropout=test_dropout, test_stats="folded",
                             subpixel=subpixel, dtype=dtype)
    folded.set_weights(generator.get_weights())
    for norm in folded.layers:
        if not isinstance(norm, BatchNorm):
            continue
        conv = folded.get_layer(norm.name.removesuffix("_norm") + "_conv")
        # In float64, so the fold itself adds no rounding beyond the final float32 cast.
        gamma, beta, mean, var = (np.asarray(w, np.float64) for w in
                                  (norm.gamma, norm.beta, norm.moving_mean, norm.moving_var))
        scale = gamma / np.sqrt(var + norm.epsilon)
        kernel = np.asarray(conv.kernel, np.float64)
        # Output channels: the last kernel axis of a Conv2D (h, w, in, out), the third of a
        # Conv2DTranspose (h, w, out, in).
        axis = 2 if isinstance(conv, layers.Conv2DTranspose) else 3
        shape = [1, 1, 1, 1]
        shape[axis] = -1
        conv.kernel.assign((kernel * scale.reshape(shape)).astype(np.float32))
        norm.beta.assign((beta - scale * mean).astype(np.float32))
        norm.gamma.assign(np.ones_like(gamma, np.float32))
        norm.moving_mean.assign(np.zeros_like(mean, np.float32))
        norm.moving_var.assign(np.full_like(var, 1.0 - norm.epsilon, np.float32))
    return folded


@contextlib.contextmanager
def compute_policy(model: keras.Model, policy: str):
    """Within the block, ``model``'s layers compute in ``policy`` (e.g. "mixed_bfloat16"):
    a function traced inside computes in 16 bits over the same float32 variables. The final
    float32 output layer (``*_float32``) keeps float32."""
    saved = {}
    for layer in model.layers:
        if not layer.name.endswith("_float32"):
            saved[layer.name] = layer.dtype_policy
            layer.dtype_policy = policy
    try:
        yield model
    finally:
        for layer in model.layers:
            if layer.name in saved:
                layer.dtype_policy = saved[layer.name]
