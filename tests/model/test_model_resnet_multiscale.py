"""junyanz's ResNet generators (shapes, layout, computed receptive field) and pix2pixHD's
multi-scale discriminator (scales, shapes, features, the downsampling)."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from pix2pix.config import ModelConfig
from pix2pix.model.networks import (BatchNorm, Downsample, MultiScaleDiscriminator, ReflectionPad,
                                    build_generator, patch_discriminator, patch_grid,
                                    resnet_generator)

BLOCKS = {"resnet_9blocks": 9, "resnet_6blocks": 6}


def _generator_field(g, size: int) -> tuple[int, int]:
    """(rows, cols) of input pixels with a nonzero gradient on the centre output pixel.
    Running batch-norm statistics: per-image statistics would couple every pixel."""
    x = tf.random.uniform([1, size, size, 3], -1, 1)
    with tf.GradientTape() as tape:
        tape.watch(x)
        centre = g(x, training=False)[0, size // 2, size // 2, 0]
    touched = np.abs(tape.gradient(centre, x).numpy()[0]).sum(-1) > 0
    rows, cols = np.where(touched.any(1))[0], np.where(touched.any(0))[0]
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def hand_field(blocks: int) -> int:
    """Receptive field of the ResNet generator, walked back from one output pixel by hand:
    the final 7x7 conv sees 7 rows of the last upsampling's output; each 3x3 stride-2
    transposed conv maps them onto 5, then 3 rows at quarter size; each of the 2 * blocks
    3x3 convs adds 2 rows there; each 3x3 stride-2 conv doubles the span and adds 1
    (2n + 1); the first 7x7 conv adds 6."""
    quarter = 3 + 2 * (2 * blocks)
    return 2 * (2 * quarter + 1) + 1 + 6  # = 16 * blocks + 21


@pytest.mark.parametrize("name", list(BLOCKS))
@pytest.mark.parametrize("size", [64, 256])
def test_resnet_shapes_layout_and_receptive_field(name, size):
    g = build_generator(ModelConfig(generator=name, ngf=8, crop_size=size), test_stats="running")
    y = g(tf.random.uniform([2, size, size, 3], -1, 1), training=False)
    assert y.shape == (2, size, size, 3) and y.dtype == tf.float32
    assert float(tf.reduce_max(tf.abs(y))) <= 1.0  # tanh
    blocks = [layer.name for layer in g.layers if layer.name.endswith("_add")]
    assert len(blocks) == BLOCKS[name]
    # c7s1-ngf, d(2 ngf), d(4 ngf), R(4 ngf) at a quarter of the size, u(2 ngf), u(ngf), c7s1-3.
    assert g.get_layer("c7s1_conv").kernel_size == (7, 7) and g.get_layer("c7s1_conv").filters == 8
    assert g.get_layer("down2_relu").output.shape[1:] == (size // 4, size // 4, 32)
    assert g.get_layer("res1_add").output.shape[1:] == (size // 4, size // 4, 32)
    assert g.get_layer("up2_relu").output.shape[1:] == (size, size, 8)
    assert g.get_layer("output").kernel_size == (7, 7)
    pads = [layer for layer in g.layers if isinstance(layer, ReflectionPad)]
    assert len(pads) == 2 + 2 * BLOCKS[name]  # both 7x7 convs and both convs of every block
    assert [layer.name for layer in g.layers if "dropout" in layer.name] == \
        [f"res{i + 1}_dropout" for i in range(BLOCKS[name])]
    rows, cols = _generator_field(g, size)
    if size == 256:
        assert rows == cols == hand_field(BLOCKS[name])  # 165 and 117
    else:
        assert rows == cols == size  # the centre pixel sees the whole 64x64 image


def test_resnet_honours_norm_dropout_and_sizes():
    cfg = ModelConfig(generator="resnet_6blocks", ngf=4, crop_size=36, norm="instance",
                      no_dropout=True)
    g = resnet_generator(cfg)
    assert g(tf.zeros([1, 36, 36, 3])).shape == (1, 36, 36, 3)  # any multiple of 4
    assert not [layer for layer in g.layers if "dropout" in layer.name]
    assert not [layer for layer in g.layers if isinstance(layer, BatchNorm)]
    noisy = resnet_generator(ModelConfig(generator="resnet_6blocks", ngf=4, crop_size=32),
                             test_dropout=True)
    x = tf.random.uniform([1, 32, 32, 3], -1, 1)
    assert not np.array_equal(noisy(x).numpy(), noisy(x).numpy())
    for bad in (30, 4):
        with pytest.raises(ValueError, match="divisible by 4 and at least 8"):
            resnet_generator(ModelConfig(generator="resnet_9blocks", crop_size=bad))


def test_no_dropout_reaches_the_unet():
    cfg = ModelConfig(generator="unet_128", ngf=8, crop_size=128, no_dropout=True)
    assert not [layer for layer in build_generator(cfg).layers if "dropout" in layer.name]


def test_downsample_is_a_3x3_mean_over_pixels_inside_the_image():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    y = Downsample()(tf.constant(x)).numpy()[0, ..., 0]
    # PyTorch AvgPool2d(3, stride 2, padding 1, count_include_pad=False): window rows/cols
    # -1..1 and 1..3, clipped to the image.
    img = x[0, ..., 0]
    expected = [[img[0:2, 0:2].mean(), img[0:2, 1:4].mean()],
                [img[1:4, 0:2].mean(), img[1:4, 1:4].mean()]]
    np.testing.assert_allclose(y, expected, rtol=1e-6)


@pytest.mark.parametrize("num_d,size", [(1, 64), (2, 64), (3, 128)])
def test_multiscale_discriminator_shapes_and_features(num_d, size):
    cfg = ModelConfig(ndf=8, crop_size=size, num_D=num_d)
    d = MultiScaleDiscriminator(cfg, features=True)
    a, b = tf.random.uniform([2, size, size, 3]), tf.random.uniform([2, size, size, 3])
    out = d(a, b, training=True)
    assert len(out) == len(d.nets) == num_d
    for k, scale in enumerate(out):
        s = size // 2 ** k
        grid = patch_grid(s, 70)
        assert scale[-1].shape == (2, grid, grid, 1)  # logits of the k-th discriminator
        # Features: the 4 LeakyReLU outputs of a 70x70 PatchGAN (pix2pixHD's intermediate
        # layers), at 1/2, 1/4, 1/8 of the scale and one stride-1 layer.
        assert [f.shape[1] for f in scale[:-1]] == [s // 2, s // 4, s // 8, s // 8 - 1]
    # The coarser discriminators see the downsampled pair, and have their own weights.
    assert d.nets[0] is not (d.nets[1] if num_d > 1 else None)
    n_vars = len(patch_discriminator(cfg).trainable_variables)
    assert len(d.trainable_variables) == num_d * n_vars
    plain = MultiScaleDiscriminator(cfg)(a, b)
    assert [len(scale) for scale in plain] == [1] * num_d


def test_patch_grid_matches_the_built_networks():
    for rf in (1, 16, 70, 286):
        for size in (32, 64, 100):
            grid = patch_grid(size, rf)
            if grid < 1:
                continue
            d = patch_discriminator(ModelConfig(ndf=4, crop_size=size, netd_receptive_field=rf))
            assert d([tf.zeros([1, size, size, 3])] * 2).shape[1] == grid, (rf, size)
