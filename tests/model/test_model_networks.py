"""Generator and PatchGAN shapes, computed receptive fields, and the norm/dropout layers."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from pix2pix.config import ModelConfig
from pix2pix.model.networks import BatchNorm, InstanceNorm, patch_discriminator, unet_generator


@pytest.fixture(scope="session")
def generators():
    return {g: unet_generator(ModelConfig(generator=g, ngf=8, crop_size=s))
            for g, s in (("unet_256", 256), ("unet_128", 128))}


@pytest.mark.parametrize("name,size,levels", [("unet_256", 256, 8), ("unet_128", 128, 7)])
def test_generator_shapes_and_depth(generators, name, size, levels):
    g = generators[name]
    y = g(tf.random.uniform([2, size, size, 3], -1, 1), training=False)
    assert y.shape == (2, size, size, 3)
    assert float(tf.reduce_max(tf.abs(y))) <= 1.0  # tanh output
    convs = [layer for layer in g.layers if isinstance(layer, tf.keras.layers.Conv2D)
             and not isinstance(layer, tf.keras.layers.Conv2DTranspose)]
    assert len(convs) == levels
    bottleneck = g.get_layer(f"down{levels}_lrelu").output.shape
    assert bottleneck[1:] == (1, 1, 64)  # ngf 8 * 8 at a 1x1 map
    dropouts = [layer.name for layer in g.layers if "dropout" in layer.name]
    assert dropouts == ["up1_dropout", "up2_dropout", "up3_dropout"]


def test_generator_filters_follow_ngf():
    g = unet_generator(ModelConfig(ngf=16, crop_size=256))
    assert g.get_layer("down1_conv").filters == 16
    assert g.get_layer("down4_conv").filters == 128
    assert g.get_layer("up7_skip").output.shape[-1] == 32  # C64 decoder + 64-channel skip at ngf 16


def _kernels(model):
    return {v.path: v.numpy() for v in model.trainable_variables if v.path.endswith("kernel")}


def _seeded(build, seed):
    tf.keras.utils.set_random_seed(seed)
    return _kernels(build())


@pytest.mark.parametrize("build,shared_shapes", [
    (lambda: unet_generator(ModelConfig(generator="unet_128", ngf=8, crop_size=128)), True),
    (lambda: patch_discriminator(ModelConfig(ndf=8, crop_size=128)), False),
], ids=["generator", "discriminator"])
def test_initial_weights_follow_the_seed_and_differ_between_layers(build, shared_shapes):
    """`--seed` decides every kernel, and no two layers start from the same draw (a shared
    initializer instance in Keras 3 hands every same-shaped kernel identical values)."""
    a, b, other = _seeded(build, 3), _seeded(build, 3), _seeded(build, 4)
    assert all(np.array_equal(a[k], b[k]) for k in a), "same seed, same initial weights"
    assert not any(np.array_equal(a[k], other[k]) for k in a), "another seed, other weights"
    same_shape = [(i, j) for i in a for j in a if i < j and a[i].shape == a[j].shape]
    assert bool(same_shape) == shared_shapes
    clones = [(i, j) for i, j in same_shape if np.array_equal(a[i], a[j])]
    assert not clones
    assert all(abs(float(k.std()) - 0.02) < 0.01 for k in a.values())  # N(0, 0.02), the paper's


def test_generator_rejects_size_not_divisible():
    with pytest.raises(ValueError, match="divisible by 256"):
        unet_generator(ModelConfig(ngf=8, crop_size=128))


def _receptive_field(d, size: int) -> tuple[int, tuple]:
    """Extent (rows) of input pixels with a nonzero gradient on the centre output cell."""
    x = tf.random.uniform([1, size, size, 3], -1, 1)
    y = tf.random.uniform([1, size, size, 3], -1, 1)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = d([x, y], training=False)
        c = out.shape[1] // 2
        cell = out[0, c, c, 0]
    touched = np.abs(tape.gradient(cell, x).numpy()[0]).sum(-1) > 0
    rows, cols = np.where(touched.any(1))[0], np.where(touched.any(0))[0]
    assert 0 < rows.min() and rows.max() < size - 1, "field clipped by the image border"
    assert rows.max() - rows.min() == cols.max() - cols.min()
    return int(rows.max() - rows.min() + 1), tuple(out.shape)


@pytest.mark.parametrize("rf,size,grid", [(1, 64, 64), (16, 64, 30), (70, 256, 30),
                                          (286, 512, 14)])
def test_patchgan_receptive_field_is_computed(rf, size, grid):
    d = patch_discriminator(ModelConfig(ndf=8, netd_receptive_field=rf, crop_size=size))
    field, shape = _receptive_field(d, size)
    assert field == rf
    assert shape == (1, grid, grid, 1)


def test_patchgan_70_gives_30x30_on_256():
    d = patch_discriminator(ModelConfig(ndf=8))
    out = d([tf.zeros([1, 256, 256, 3]), tf.zeros([1, 256, 256, 3])], training=True)
    assert out.shape == (1, 30, 30, 1)


def test_instance_norm_normalises_each_image_and_channel():
    x = tf.random.normal([2, 8, 8, 3]) * tf.constant([1.0, 5.0, 9.0]) + 4.0
    y = InstanceNorm()(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(1, 2)), 1, atol=1e-2)


def test_batchnorm_training_uses_batch_stats_and_updates_moving_averages():
    bn = BatchNorm(test_stats="running")
    x = tf.random.normal([4, 8, 8, 2]) * 3.0 + 2.0
    y = bn(x, training=True).numpy() / bn.gamma.numpy()  # gamma ~ N(1, 0.02)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    assert np.all(bn.moving_mean.numpy() > 0.1)  # moved toward 2 (momentum 0.9)
    bn_img = BatchNorm(test_stats="image")
    bn_img(x, training=True)
    a = bn_img(x[:1], training=False).numpy()
    b = bn_img(x, training=False).numpy()[:1]
    np.testing.assert_allclose(a, b, atol=1e-5)  # "image" stats: independent of the batch


def test_test_dropout_keeps_inference_stochastic():
    cfg = ModelConfig(generator="unet_128", ngf=8, crop_size=128)
    x = tf.random.uniform([1, 128, 128, 3], -1, 1)
    plain = unet_generator(cfg)
    assert np.array_equal(plain(x, training=False).numpy(), plain(x, training=False).numpy())
    noisy = unet_generator(cfg, test_dropout=True)
    assert not np.array_equal(noisy(x, training=False).numpy(), noisy(x, training=False).numpy())


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_norm_epsilon_reaches_every_norm_layer_of_both_nets(norm):
    cfg = ModelConfig(generator="unet_128", ngf=8, ndf=8, crop_size=128, norm=norm,
                      norm_epsilon=1e-3)
    kind = {"batch": BatchNorm, "instance": InstanceNorm}[norm]
    for net in (unet_generator(cfg), patch_discriminator(cfg)):
        norms = [layer for layer in net.layers if isinstance(layer, kind)]
        assert norms and all(layer.epsilon == 1e-3 for layer in norms), net.name
    # And it is used: the same weights give another output with the paper's 1e-5.
    x = tf.random.uniform([1, 128, 128, 3], -1, 1)
    a = unet_generator(cfg)
    b = unet_generator(ModelConfig(generator="unet_128", ngf=8, crop_size=128, norm=norm,
                                   norm_epsilon=1e-5))
    b.set_weights(a.get_weights())
    assert not np.allclose(a(x, training=True).numpy(), b(x, training=True).numpy(), atol=1e-6)
