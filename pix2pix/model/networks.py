"""pix2pix networks (arXiv 1611.07004, appendix 6.1): the U-Net generator and the PatchGAN
discriminator, plus the small layers they need (normalisation, switchable dropout, reflection
padding); junyanz's ResNet generator; pix2pixHD's multi-scale discriminator.

Shape comments are for the defaults: a 256x256 input, ngf = ndf = 64, batch ``bs``.
Weights are drawn from N(0, 0.02), norm scales from N(1, 0.02), as in the paper's code.

``dtype`` is a Keras dtype policy for every layer: "float32", or "mixed_bfloat16" (float32
weights, bfloat16 arithmetic; see pix2pix.model.precision). Both builds have the same layers and
variables, so a checkpoint written by one restores into the other; the networks take float32
inputs and always return float32.
"""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf
from keras import layers

from pix2pix.config import ModelConfig
from pix2pix.model.upconv import UpConv


def init():
    """N(0, 0.02) for one layer's kernel (the paper's init).

    A new initializer per layer: Keras 3 fixes an unseeded initializer's seed when it is
    constructed, so one shared instance would give every kernel of the same shape the same
    values, and a module-level one would draw that seed at import, before ``--seed`` is set.
    Constructed here, the seed comes from Python's RNG, which ``keras.utils.set_random_seed``
    seeds.
    """
    return keras.initializers.RandomNormal(0.0, 0.02)


class BatchNorm(layers.Layer):
    """Batch normalisation on TensorFlow's fused kernel (faster on CPU than Keras' generic one).

    At inference ``test_stats`` picks the statistics: "image" normalises each image with its own
    mean and variance, which is what training at batch size 1 did (the paper applies "the
    statistics of the test batch" at test time) and keeps outputs independent of the other images
    in a batch; "running" uses the moving averages, the usual choice after large-batch training;
    "folded" is "running" after :func:`pix2pix.model.inference.fold_batch_norm` moved the
    scale into the preceding conv (only the offset ``beta`` is left to add).
    """

    def __init__(self, momentum: float = 0.9, epsilon: float = 1e-5, test_stats: str = "image",
                 **kwargs):
        super().__init__(**kwargs)
        self.momentum, self.epsilon, self.test_stats = momentum, epsilon, test_stats

    def build(self, input_shape):
        c = input_shape[-1]
        # autocast=False: under mixed_bfloat16 the fused kernel takes bfloat16 activations with
        # float32 scale, offset and statistics (and computes the statistics in float32).
        self.gamma = self.add_weight(shape=(c,), name="gamma", autocast=False,
                                     initializer=keras.initializers.RandomNormal(1.0, 0.02))
        self.beta = self.add_weight(shape=(c,), initializer="zeros", name="beta", autocast=False)
        self.moving_mean = self.add_weight(shape=(c,), initializer="zeros", trainable=False,
                                           name="moving_mean", autocast=False)
        self.moving_var = self.add_weight(shape=(c,), initializer="ones", trainable=False,
                                          name="moving_var", autocast=False)

    def call(self, x, training=False):
        if training:
            y, mean, var = tf.compat.v1.nn.fused_batch_norm(
                x, self.gamma, self.beta, epsilon=self.epsilon, is_training=True)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_var.assign(self.moving_var * m + var * (1.0 - m))
            return y
        if self.test_stats == "image":
            return _instance_normalize(x, self.gamma, self.beta, self.epsilon)
        if self.test_stats == "folded":
            # The scale lives in the conv kernel before this layer (fold_batch_norm): a bias
            # add, which Grappler fuses into that conv with the activation after it.
            return tf.nn.bias_add(x, tf.cast(self.beta, x.dtype))
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            x, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_var,
            epsilon=self.epsilon, is_training=False)
        return y

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon,
                "test_stats": self.test_stats}


class InstanceNorm(layers.Layer):
    """Instance normalisation (Ulyanov et al. 2016): each image and channel over its own H x W,
    with a learned per-channel scale and offset; identical in training and inference."""

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, input_shape):
        c = input_shape[-1]
        self.gamma = self.add_weight(shape=(c,), initializer="ones", name="gamma", autocast=False)
        self.beta = self.add_weight(shape=(c,), initializer="zeros", name="beta", autocast=False)

    def call(self, x, training=False):
        return _instance_normalize(x, self.gamma, self.beta, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def _instance_normalize(x, gamma, beta, epsilon):
    """Per image and channel; the statistics in float32 whatever the activations' dtype."""
    dtype = x.dtype
    x = tf.cast(x, tf.float32)
    mean, var = tf.nn.moments(x, axes=[1, 2], keepdims=True)
    return tf.cast((x - mean) * tf.math.rsqrt(var + epsilon) * gamma + beta, dtype)


class Dropout(layers.Dropout):
    """Dropout that can stay on at inference (``always``): the paper's only source of noise."""

    def __init__(self, rate: float, always: bool = False, **kwargs):
        super().__init__(rate, **kwargs)
        self.always = always

    def call(self, x, training=False):
        return super().call(x, training=bool(training) or self.always)

    def get_config(self):
        return {**super().get_config(), "always": self.always}


class LeakyReLU(layers.Layer):
    """LeakyReLU(0.2). In training as max(x, 0.2 x): with tf.nn.leaky_relu after a biased conv,
    Grappler's remapper (TF 2.19) fails on the fused op's gradient and logs an error on every
    run. At inference as tf.nn.leaky_relu, the same function, which the remapper fuses into the
    conv before it (one oneDNN call instead of conv, bias, multiply, maximum)."""

    def call(self, x, training=False):
        if training:
            return tf.maximum(x, 0.2 * x)
        return tf.nn.leaky_relu(x, 0.2)


def _norm(kind: str, name: str, test_stats: str, dtype: str, epsilon: float) -> layers.Layer:
    if kind == "instance":
        return InstanceNorm(epsilon=epsilon, name=name, dtype=dtype)
    return BatchNorm(epsilon=epsilon, test_stats=test_stats, name=name, dtype=dtype)


def _down(x, filters: int, *, norm: str | None, name: str, epsilon: float,
          test_stats: str = "image", dtype: str = "float32"):
    """Ck: 4x4 conv stride 2 -> norm -> LeakyReLU(0.2). No bias before a norm (it cancels)."""
    x = layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=norm is None,
                      kernel_initializer=init(), name=f"{name}_conv", dtype=dtype)(x)
    if norm is not None:
        x = _norm(norm, f"{name}_norm", test_stats, dtype, epsilon)(x)
    return LeakyReLU(name=f"{name}_lrelu", dtype=dtype)(x)


def _up(x, skip, filters: int, *, norm: str, dropout: bool, test_dropout: bool, name: str,
        test_stats: str, dtype: str, epsilon: float, subpixel: bool = False):
    """(C|CD)k: 4x4 transposed conv stride 2 -> norm -> [dropout 0.5] -> ReLU -> concat skip."""
    x = UpConv(filters, 4, strides=2, padding="same", use_bias=False, subpixel=subpixel,
               kernel_initializer=init(), name=f"{name}_conv", dtype=dtype)(x)
    x = _norm(norm, f"{name}_norm", test_stats, dtype, epsilon)(x)
    if dropout:
        x = Dropout(0.5, always=test_dropout, name=f"{name}_dropout", dtype=dtype)(x)
    x = layers.ReLU(name=f"{name}_relu", dtype=dtype)(x)
    return layers.Concatenate(name=f"{name}_skip", dtype=dtype)([x, skip])


def _float32(x, name: str):
    """The network's output in float32 (a no-op in a float32 build)."""
    return layers.Activation("linear", dtype="float32", name=name)(x)


def unet_generator(cfg: ModelConfig, *, test_dropout: bool = False,
                   test_stats: str = "image", dtype: str = "float32",
                   subpixel: bool = False) -> keras.Model:
    """U-Net: unet_256 has 8 encoder levels (1x1 bottleneck at 256), unet_128 has 7.

    Args:
        cfg: architecture (generator, ngf, norm, channels, crop_size).
        test_dropout: keep dropout on at inference.
        test_stats: batch-norm statistics at inference, "image" or "running" (see BatchNorm).
        dtype: Keras dtype policy of the layers, "float32" or "mixed_bfloat16".
        subpixel: run the transposed convolutions at inference as four phase convolutions
            (:class:`UpConv`; same weights and outputs, faster with constant weights).
    """
    f, n = cfg.ngf, cfg.norm
    levels = {"unet_256": 8, "unet_128": 7}[cfg.generator]
    if cfg.crop_size % 2 ** levels:
        raise ValueError(f"{cfg.generator} needs crop_size divisible by {2 ** levels}, "
                         f"got {cfg.crop_size}")
    encoder = [  # (filters, norm): the paper's C64-C128-C256-C512-C512-C512-C512-C512
        (f, None),      # (bs, 128, 128, 64)  no norm on the first layer (paper 6.1.1)
        (f * 2, n),     # (bs, 64, 64, 128)
        (f * 4, n),     # (bs, 32, 32, 256)
        (f * 8, n),     # (bs, 16, 16, 512)
        (f * 8, n),     # (bs, 8, 8, 512)
        (f * 8, n),     # (bs, 4, 4, 512)
        (f * 8, n),     # (bs, 2, 2, 512)
        (f * 8, None),  # (bs, 1, 1, 512)  bottleneck: a 1x1 map normalises to all zeros, so no norm
    ]
    decoder = [  # (filters, dropout): CD512-CD512-CD512-C512-C256-C128-C64, each + skip concat
        (f * 8, True),   # (bs, 2, 2, 1024)
        (f * 8, True),   # (bs, 4, 4, 1024)
        (f * 8, True),   # (bs, 8, 8, 1024)
        (f * 8, False),  # (bs, 16, 16, 1024)
        (f * 4, False),  # (bs, 32, 32, 512)
        (f * 2, False),  # (bs, 64, 64, 256)
        (f, False),      # (bs, 128, 128, 128)
    ]
    if cfg.no_dropout:
        decoder = [(filters, False) for filters, _ in decoder]
    if levels == 7:  # unet_128: one 512 level fewer on each side
        encoder = encoder[:6] + encoder[7:]
        decoder = decoder[:3] + decoder[4:]

    s = cfg.crop_size
    inputs = keras.Input((s, s, cfg.input_nc), name="input")  # (bs, 256, 256, 3)
    x, skips = inputs, []
    for i, (filters, norm) in enumerate(encoder):
        x = _down(x, filters, norm=norm, name=f"down{i + 1}", test_stats=test_stats,
                  dtype=dtype, epsilon=cfg.norm_epsilon)
        skips.append(x)
    for i, ((filters, dropout), skip) in enumerate(zip(decoder, reversed(skips[:-1]))):
        x = _up(x, skip, filters, norm=n, dropout=dropout, test_dropout=test_dropout,
                name=f"up{i + 1}", test_stats=test_stats, dtype=dtype, epsilon=cfg.norm_epsilon,
                subpixel=subpixel)
    x = UpConv(cfg.output_nc, 4, strides=2, padding="same", activation="tanh",
               kernel_initializer=init(), name="output", subpixel=subpixel,
               dtype=dtype)(x)  # (bs, 256, 256, 3)
    return keras.Model(inputs, _float32(x, "output_float32"), name=cfg.generator)


class ReflectionPad(layers.Layer):
    """Pad H and W by ``pad`` pixels mirrored at the border (PyTorch's ReflectionPad2d)."""

    def __init__(self, pad: int, **kwargs):
        super().__init__(**kwargs)
        self.pad = pad

    def call(self, x):
        p = self.pad
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


RESNET_BLOCKS = {"resnet_9blocks": 9, "resnet_6blocks": 6}


def _conv_norm_relu(x, filters: int, kernel: int, *, name: str, norm: str, test_stats: str,
                    dtype: str, epsilon: float, stride: int = 1, pad: str = "reflect"):
    """Conv (no bias: the norm cancels it) -> norm -> ReLU, with reflection or zero padding."""
    p = kernel // 2
    x = (ReflectionPad(p, name=f"{name}_pad", dtype=dtype) if pad == "reflect"
         else layers.ZeroPadding2D(p, name=f"{name}_pad", dtype=dtype))(x)
    x = layers.Conv2D(filters, kernel, strides=stride, use_bias=False, kernel_initializer=init(),
                      name=f"{name}_conv", dtype=dtype)(x)
    x = _norm(norm, f"{name}_norm", test_stats, dtype, epsilon)(x)
    return layers.ReLU(name=f"{name}_relu", dtype=dtype)(x)


def _res_block(x, filters: int, *, name: str, norm: str, dropout: bool, test_dropout: bool,
               test_stats: str, dtype: str, epsilon: float):
    """x + (reflect-pad, 3x3 conv, norm, ReLU, [dropout 0.5], reflect-pad, 3x3 conv, norm)(x)."""
    y = _conv_norm_relu(x, filters, 3, name=f"{name}a", norm=norm, test_stats=test_stats,
                        dtype=dtype, epsilon=epsilon)
    if dropout:
        y = Dropout(0.5, always=test_dropout, name=f"{name}_dropout", dtype=dtype)(y)
    y = ReflectionPad(1, name=f"{name}b_pad", dtype=dtype)(y)
    y = layers.Conv2D(filters, 3, use_bias=False, kernel_initializer=init(),
                      name=f"{name}b_conv", dtype=dtype)(y)
    y = _norm(norm, f"{name}b_norm", test_stats, dtype, epsilon)(y)
    return layers.Add(name=f"{name}_add", dtype=dtype)([x, y])


def resnet_generator(cfg: ModelConfig, *, test_dropout: bool = False,
                     test_stats: str = "image", dtype: str = "float32") -> keras.Model:
    """junyanz's ResnetGenerator (after Johnson et al. 2016): c7s1-64, d128, d256, N residual
    blocks R256 (9 for resnet_9blocks, 6 for resnet_6blocks), u128, u64, c7s1-3 with tanh.

    Any crop_size divisible by 4 (the two stride-2 steps) and at least 8 (reflection padding
    needs a 2x2 map at the bottom). Arguments as :func:`unet_generator`.
    """
    f, s, eps = cfg.ngf, cfg.crop_size, cfg.norm_epsilon
    if s % 4 or s < 8:
        raise ValueError(f"{cfg.generator} needs crop_size divisible by 4 and at least 8, "
                         f"got {s}")
    kw = dict(norm=cfg.norm, test_stats=test_stats, dtype=dtype, epsilon=eps)
    inputs = keras.Input((s, s, cfg.input_nc), name="input")            # (bs, 256, 256, 3)
    x = _conv_norm_relu(inputs, f, 7, name="c7s1", **kw)                # (bs, 256, 256, 64)
    # PyTorch's Conv2d(3, stride 2, padding 1): zero padding on both sides, then a valid conv.
    x = _conv_norm_relu(x, f * 2, 3, stride=2, pad="zero", name="down1",
                        **kw)                                           # (bs, 128, 128, 128)
    x = _conv_norm_relu(x, f * 4, 3, stride=2, pad="zero", name="down2",
                        **kw)                                           # (bs, 64, 64, 256)
    for i in range(RESNET_BLOCKS[cfg.generator]):                       # (bs, 64, 64, 256)
        x = _res_block(x, f * 4, name=f"res{i + 1}", dropout=not cfg.no_dropout,
                       test_dropout=test_dropout, **kw)
    for i, filters in enumerate((f * 2, f)):  # (bs, 128, 128, 128), then (bs, 256, 256, 64)
        # PyTorch's ConvTranspose2d(3, stride 2, padding 1, output_padding 1): the full
        # (2n + 1)-pixel output less its first row and column.
        x = layers.Conv2DTranspose(filters, 3, strides=2, padding="valid", use_bias=False,
                                   kernel_initializer=init(), name=f"up{i + 1}_conv",
                                   dtype=dtype)(x)
        x = layers.Cropping2D(((1, 0), (1, 0)), name=f"up{i + 1}_crop", dtype=dtype)(x)
        x = _norm(cfg.norm, f"up{i + 1}_norm", test_stats, dtype, eps)(x)
        x = layers.ReLU(name=f"up{i + 1}_relu", dtype=dtype)(x)
    x = ReflectionPad(3, name="output_pad", dtype=dtype)(x)            # (bs, 262, 262, 64)
    x = layers.Conv2D(cfg.output_nc, 7, activation="tanh", kernel_initializer=init(),
                      name="output", dtype=dtype)(x)                    # (bs, 256, 256, 3)
    return keras.Model(inputs, _float32(x, "output_float32"), name=cfg.generator)


def build_generator(cfg: ModelConfig, *, test_dropout: bool = False, test_stats: str = "image",
                    dtype: str = "float32", subpixel: bool = False) -> keras.Model:
    """The generator ``cfg.generator`` names (U-Net or ResNet); ``subpixel`` applies to the
    U-Net's transposed convolutions (see :class:`UpConv`)."""
    if cfg.generator in RESNET_BLOCKS:
        return resnet_generator(cfg, test_dropout=test_dropout, test_stats=test_stats,
                                dtype=dtype)
    return unet_generator(cfg, test_dropout=test_dropout, test_stats=test_stats, dtype=dtype,
                          subpixel=subpixel)


def generator_size_error(cfg: ModelConfig) -> str | None:
    """Why ``cfg.crop_size`` does not fit ``cfg.generator`` (with what to do), or None."""
    if cfg.generator in RESNET_BLOCKS:
        if cfg.crop_size % 4 or cfg.crop_size < 8:
            return (f"--crop_size {cfg.crop_size}: {cfg.generator} needs a multiple of 4, at "
                    "least 8")
        return None
    levels = {"unet_256": 8, "unet_128": 7}[cfg.generator]
    if cfg.crop_size < 2 ** levels or cfg.crop_size % 2 ** levels:
        return (f"--crop_size {cfg.crop_size}: {cfg.generator} needs a multiple of "
                f"{2 ** levels} (e.g. --crop_size {2 ** levels}); or pick another --generator")
    return None


# n_layers of stride-2 convs per receptive field, after junyanz's NLayerDiscriminator;
# 1 is the PixelGAN (1x1 convs only). The test suite computes each field from the built net.
_PATCH_LAYERS = {16: 1, 70: 3, 286: 5}


def patch_discriminator(cfg: ModelConfig, *, test_stats: str = "running",
                        dtype: str = "float32") -> keras.Model:
    """Conditional PatchGAN: classifies each receptive-field patch of concat(input, target).

    Receptive field 70 (default) on 256: C64-C128-C256 at stride 2, C512 at stride 1, then a
    1-channel conv at stride 1, giving a 30x30 grid of logits.
    """
    f, n, s = cfg.ndf, cfg.norm, cfg.crop_size
    a = keras.Input((s, s, cfg.input_nc), name="input")    # (bs, 256, 256, 3)
    b = keras.Input((s, s, cfg.output_nc), name="target")  # (bs, 256, 256, 3)
    x = layers.Concatenate(name="pair", dtype=dtype)([a, b])  # (bs, 256, 256, 6)
    if cfg.netd_receptive_field == 1:
        x = layers.Conv2D(f, 1, kernel_initializer=init(), name="pix1_conv",
                          dtype=dtype)(x)                                      # (bs, 256, 256, 64)
        x = LeakyReLU(name="pix1_lrelu", dtype=dtype)(x)
        x = layers.Conv2D(f * 2, 1, use_bias=False, kernel_initializer=init(),
                          name="pix2_conv", dtype=dtype)(x)                    # (bs, 256, 256, 128)
        x = _norm(n, "pix2_norm", test_stats, dtype, cfg.norm_epsilon)(x)
        x = LeakyReLU(name="pix2_lrelu", dtype=dtype)(x)
        x = layers.Conv2D(1, 1, kernel_initializer=init(), name="logits",
                          dtype=dtype)(x)                                      # (bs, 256, 256, 1)
        return keras.Model([a, b], _float32(x, "logits_float32"), name="pixelgan")
    n_layers = _PATCH_LAYERS[cfg.netd_receptive_field]
    x = _down(x, f, norm=None, name="d1", epsilon=cfg.norm_epsilon,
              dtype=dtype)                                 # (bs, 128, 128, 64)
    for i in range(1, n_layers):                           # (bs, 64, 64, 128), (bs, 32, 32, 256)
        x = _down(x, f * min(2 ** i, 8), norm=n, name=f"d{i + 1}", test_stats=test_stats,
                  dtype=dtype, epsilon=cfg.norm_epsilon)
    x = layers.ZeroPadding2D(1, name="pad1", dtype=dtype)(x)  # (bs, 34, 34, 256)
    x = layers.Conv2D(f * min(2 ** n_layers, 8), 4, use_bias=False, kernel_initializer=init(),
                      name="s1_conv", dtype=dtype)(x)      # (bs, 31, 31, 512)
    x = _norm(n, "s1_norm", test_stats, dtype, cfg.norm_epsilon)(x)
    x = LeakyReLU(name="s1_lrelu", dtype=dtype)(x)
    x = layers.ZeroPadding2D(1, name="pad2", dtype=dtype)(x)  # (bs, 33, 33, 512)
    x = layers.Conv2D(1, 4, kernel_initializer=init(), name="logits",
                      dtype=dtype)(x)                      # (bs, 30, 30, 1)
    return keras.Model([a, b], _float32(x, "logits_float32"),
                       name=f"patchgan_{cfg.netd_receptive_field}")


def patch_grid(size: int, receptive_field: int) -> int:
    """Side of the logit grid a PatchGAN gives on a ``size`` x ``size`` pair (< 1: too small)."""
    if receptive_field == 1:
        return size
    for _ in range(_PATCH_LAYERS[receptive_field]):
        size = (size + 1) // 2  # stride 2, "same" padding
    return size - 2  # two 4x4 convs at stride 1 after a 1-pixel zero padding each


def scale_sizes(cfg: ModelConfig) -> list[int]:
    """Image side each of the ``num_D`` discriminators sees: full size, then halved."""
    sizes = [cfg.crop_size]
    for _ in range(cfg.num_D - 1):
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


class Downsample(layers.Layer):
    """pix2pixHD's AvgPool2d(3, stride 2, padding 1, count_include_pad=False): the mean of
    each 3x3 window over the pixels inside the image."""

    def call(self, x):
        pad = [[0, 0], [1, 1], [1, 1], [0, 0]]
        total = tf.nn.avg_pool2d(tf.pad(x, pad), 3, 2, "VALID")
        inside = tf.nn.avg_pool2d(tf.pad(tf.ones_like(x[..., :1]), pad), 3, 2, "VALID")
        return total / inside


class MultiScaleDiscriminator:
    """``num_D`` PatchGANs, the k-th on the pair downsampled k times (pix2pixHD); with
    ``features`` each also returns its intermediate activations, for feature matching.

    Called as ``D(input, target)``, it returns one list per scale: ``[activation_1, ...,
    activation_n, logits]`` with ``features``, else ``[logits]``. ``nets`` are the Keras
    models (what a checkpoint holds); with num_D 1 the only one is the plain PatchGAN.
    """

    def __init__(self, cfg: ModelConfig, *, features: bool = False, dtype: str = "float32"):
        self.nets = [patch_discriminator(dataclasses.replace(cfg, crop_size=s), dtype=dtype)
                     for s in scale_sizes(cfg)]
        # Views of the same layers (shared weights) that also return every LeakyReLU's output:
        # pix2pixHD's intermediate features, all layers but the logits.
        self.taps = [keras.Model(d.inputs, [*(layer.output for layer in d.layers
                                              if isinstance(layer, LeakyReLU)), d.output])
                     if features else d for d in self.nets]
        self.down = Downsample(name="downsample")

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        return [v for d in self.nets for v in d.trainable_variables]

    def __call__(self, inp: tf.Tensor, tar: tf.Tensor, training: bool = False) -> list[list]:
        out = []
        for k, net in enumerate(self.taps):
            if k:
                inp, tar = self.down(inp), self.down(tar)
            y = net([inp, tar], training=training)
            out.append(list(y) if isinstance(y, (list, tuple)) else [y])
        return out
