"""Mixed bfloat16 training: learns like float32, keeps float32 weights, and its checkpoints
restore into the float32 networks that test, export and generate build. (How auto chooses it:
tests/model/test_model_speed.py.)"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from pix2pix.config import ModelConfig, TrainConfig
from pix2pix.model import precision
from pix2pix.model.networks import unet_generator
from pix2pix.model.trainer import CHECKPOINT_SUBDIR, Trainer, checkpoint_manager, restore_latest

TINY = ModelConfig(generator="unet_128", ngf=8, ndf=8, crop_size=128)


@pytest.mark.parametrize("flags, native", [
    ("fpu sse2 avx2 fma avx512f avx512_bf16 avx512_vnni", True),   # Zen 4, Cooper Lake
    ("fpu sse2 avx2 avx512f amx_bf16 amx_tile", True),              # Sapphire Rapids
    ("fpu sse2 avx2 fma avx512f avx512bw", False),                  # Skylake-SP: emulated
    ("fpu sse2 avx2 fma", False),
])
def test_native_bfloat16_is_read_from_the_cpu_flags(flags, native):
    cpuinfo = f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n"
    assert precision.cpu_has_native_bf16(cpuinfo) is native
    assert precision.cpu_has_native_bf16("processor\t: 0\n") is False  # no flags line


def test_bfloat16_trainer_keeps_float32_state_and_restores_into_float32(tmp_path):
    rng = np.random.default_rng(0)
    a = tf.constant(rng.uniform(-1, 1, (1, 128, 128, 3)), tf.float32)
    b = tf.constant(rng.uniform(-1, 1, (1, 128, 128, 3)), tf.float32)
    t = Trainer(TINY, TrainConfig(precision="mixed_bfloat16"))
    assert t.dtype == "mixed_bfloat16"
    losses, fake = t.train_step(a, b, tf.constant(2e-4))
    losses, fake = t.train_step(a, b, tf.constant(2e-4))
    assert fake.dtype == tf.float32 and all(v.dtype == tf.float32 for v in losses.values())
    assert all(np.isfinite(float(v)) for v in losses.values())
    for v in [*t.generator.weights, *t.discriminator.weights, *t.g_opt.m, *t.d_opt.v]:
        assert v.dtype == tf.float32, v.name
    # bfloat16 arithmetic really is used in training (else the option does nothing).
    conv = t.generator.get_layer("down2_conv")
    assert conv.compute_dtype == "bfloat16" and conv.variable_dtype == "float32"

    manager = checkpoint_manager(t.checkpoint, tmp_path, keep=1, step=t.step)
    manager.save(checkpoint_number=int(t.step))
    g32 = unet_generator(TINY, dtype="float32")
    assert restore_latest(tf.train.Checkpoint(generator=g32), tmp_path / CHECKPOINT_SUBDIR,
                          partial=True)
    for w16, w32 in zip(t.generator.weights, g32.weights):
        np.testing.assert_array_equal(w16.numpy(), w32.numpy())
    y32 = g32(a, training=False).numpy()
    y16 = t.generator(a, training=False).numpy()
    assert y32.dtype == np.float32 and y16.dtype == np.float32
    # bfloat16 keeps ~3 significant digits: outputs in [-1, 1] agree to a few hundredths.
    assert np.abs(y32 - y16).max() < 0.05 and np.abs(y32 - y16).mean() < 0.01


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_both_precisions_build_the_same_variables(dtype):
    from pix2pix.model.networks import patch_discriminator
    g, d = unet_generator(TINY, dtype=dtype), patch_discriminator(TINY, dtype=dtype)
    ref_g, ref_d = unet_generator(TINY), patch_discriminator(TINY)
    for model, ref in ((g, ref_g), (d, ref_d)):
        assert [(w.path, w.shape, w.dtype) for w in model.weights] == \
            [(w.path, w.shape, w.dtype) for w in ref.weights]
