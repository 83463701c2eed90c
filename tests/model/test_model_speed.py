"""The fast inference forms give the outputs of the trained network, every precision an export
offers round-trips, and precision auto is measured, honoured and cached (fake timers: nothing
here asserts a speed)."""
from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from pix2pix.config import ModelConfig, TrainConfig
from pix2pix.errors import ModelError
from pix2pix.model import precision
from pix2pix.model.inference import compute_policy, fold_batch_norm
from pix2pix.model.networks import BatchNorm, build_generator
from pix2pix.model.upconv import UpConv

TINY = ModelConfig(generator="unet_128", ngf=8, ndf=8, crop_size=128)
# float32 sums over at most 16 x 128 products per output, through ~16 layers, in another
# order after folding: ~1e-6 relative. 1e-4 on outputs in [-1, 1] is 1/80 of one uint8 level.
FOLD_ATOL = 1e-4


def _with_running_stats(g: keras.Model, size: int, seed: int = 0) -> keras.Model:
    """Running statistics as training leaves them (forward passes in training mode until the
    moving averages settle), then non-trivial scales and offsets."""
    x = tf.random.uniform([2, size, size, 3], -1, 1, seed=seed)
    for _ in range(40):
        g(x, training=True)
    rng = np.random.default_rng(seed)
    for layer in g.layers:
        if isinstance(layer, BatchNorm):
            c = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.8, 1.2, c).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.2, c).astype(np.float32))
    out = g.get_layer("output")  # N(0, 0.02) init: outputs near 0; spread them over [-1, 1]
    out.kernel.assign(out.kernel * 30.0)
    return g


@pytest.mark.parametrize("cfg", [TINY, ModelConfig(generator="resnet_6blocks", ngf=4, ndf=4,
                                                   crop_size=32)],
                         ids=["unet_128", "resnet_6blocks"])
@pytest.mark.parametrize("subpixel", [False, True])
def test_folded_batch_norm_gives_the_unfolded_outputs(cfg, subpixel):
    keras.utils.set_random_seed(0)
    g = _with_running_stats(build_generator(cfg, test_stats="running"), cfg.crop_size)
    folded = fold_batch_norm(g, cfg, subpixel=subpixel)
    x = tf.random.uniform([2, cfg.crop_size, cfg.crop_size, 3], -1, 1, seed=1)
    y, yf = g(x, training=False).numpy(), folded(x, training=False).numpy()
    assert y.std() > 0.05  # outputs that vary: the comparison means something
    np.testing.assert_allclose(yf, y, atol=FOLD_ATOL)
    # The folded variables are valid running statistics too (see fold_batch_norm).
    plain = build_generator(cfg, test_stats="running")
    plain.set_weights(folded.get_weights())
    np.testing.assert_allclose(plain(x, training=False).numpy(), y, atol=FOLD_ATOL)
    # The source network is untouched.
    np.testing.assert_array_equal(g(x, training=False).numpy(), y)


def test_fold_refuses_instance_norm():
    cfg = ModelConfig(generator="unet_128", ngf=8, norm="instance", crop_size=128)
    with pytest.raises(ValueError, match="only batch norm"):
        fold_batch_norm(build_generator(cfg), cfg)


@pytest.mark.parametrize("cin, cout, side, bias", [
    (6, 16, 1, False), (10, 9, 2, False), (5, 12, 8, True),  # phases
    (6, 3, 8, True), (4, 3, 40, True),                           # merged 3x3 (RGB output)
    (4, 8, 40, False),                                           # plain (input over 32)
])
def test_phase_transposed_conv_equals_the_plain_op(cin, cout, side, bias):
    keras.utils.set_random_seed(0)
    kw = dict(filters=cout, kernel_size=4, strides=2, padding="same", use_bias=bias,
              bias_initializer="random_normal")
    plain, phases = keras.layers.Conv2DTranspose(**kw), UpConv(subpixel=True, **kw)
    x = tf.random.normal([2, side, side, cin], seed=2)
    y = plain(x)
    phases(x)
    phases.set_weights(plain.get_weights())
    np.testing.assert_allclose(phases(x, training=False).numpy(), y.numpy(), atol=1e-5)
    # Training always runs the plain op (its gradient is TensorFlow's).
    np.testing.assert_array_equal(phases(x, training=True).numpy(), plain(x).numpy())


def test_compute_policy_traces_16_bit_over_the_same_variables():
    g = build_generator(TINY, test_stats="running", subpixel=True)
    spec = tf.TensorSpec([None, 128, 128, 3], tf.float32)
    f32 = tf.function(lambda x: g(x, training=False)).get_concrete_function(spec)
    with compute_policy(g, "mixed_bfloat16"):
        f16 = tf.function(lambda x: g(x, training=False)).get_concrete_function(spec)
    convs = lambda f: {op.outputs[0].dtype for op in f.graph.get_operations()  # noqa: E731
                       if op.type == "Conv2D"}
    assert convs(f32) == {tf.float32} and convs(f16) == {tf.bfloat16}
    assert {v.ref() for v in f32.variables} == {v.ref() for v in f16.variables}
    assert all(layer.dtype_policy.name == "float32" for layer in g.layers)  # restored


# --------------------------------------------------------------------------- precision auto

def _timer(costs: list[float]):
    """A fake clock for :func:`precision.probe`: each timed call of the candidates, in their
    order and round after round, takes the next of ``costs`` seconds."""
    state = {"now": 0.0, "calls": 0}

    def timer() -> float:
        if state["calls"] % 2:  # the end of a timed call
            state["now"] += costs[(state["calls"] // 2) % len(costs)]
        state["calls"] += 1
        return state["now"]
    return timer


def _never():
    raise AssertionError("the cache should have answered: nothing may be built or timed")


def test_choose_keeps_the_faster_and_never_the_slower(tmp_path):
    built = []

    def cand(name):
        def make():
            built.append(name)
            return lambda: None
        return make
    kw = dict(cache=tmp_path / "c.json", machine="cpu X", rounds=2)
    cands = {"float32": cand("float32"), "bfloat16": cand("bfloat16")}
    assert precision.choose("generate", {"n": 1}, cands, timer=_timer([2.0, 1.0]), **kw) \
        == "bfloat16"
    assert built == ["float32", "bfloat16"]
    assert precision.choose("generate", {"n": 2}, cands, timer=_timer([1.0, 2.0]), **kw) \
        == "float32"
    assert precision.choose("generate", {"n": 3}, cands, timer=_timer([1.0, 1.0]), **kw) \
        == "float32"  # a tie keeps float32
    # Cached per shape (and machine): asked again, nothing is built or timed.
    never = {"float32": _never, "bfloat16": _never}
    assert precision.choose("generate", {"n": 1}, never, timer=_never, **kw) == "bfloat16"
    assert precision.choose("generate", {"n": 2}, never, timer=_never, **kw) == "float32"
    entries = json.loads((tmp_path / "c.json").read_text())
    assert len(entries) == 3
    measured = next(e for k, e in entries.items() if json.loads(k)["shape"] == {"n": 1})
    assert measured["seconds"] == {"float32": 2.0, "bfloat16": 1.0}
    # Another CPU measures again.
    assert precision.choose("generate", {"n": 1}, cands, timer=_timer([1.0, 3.0]),
                            cache=tmp_path / "c.json", machine="cpu Y") == "float32"


def test_probe_takes_each_candidates_best_round():
    seconds = precision.probe({"a": lambda: None, "b": lambda: None}, rounds=3,
                              timer=_timer([5.0, 1.0, 2.0, 4.0, 3.0, 6.0]))
    assert seconds == {"a": 2.0, "b": 1.0}  # rounds: a 5, 2, 3; b 1, 4, 6


def test_cpu_info_reads_model_and_flags():
    text = "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu avx2 amx_bf16\n"
    assert precision.cpu_info(text) == ("Some CPU", ["fpu", "avx2", "amx_bf16"])
    assert precision.cpu_has_native_bf16(text)
    assert not precision.cpu_has_native_bf16("flags\t: fpu avx2\n")


@pytest.mark.slow
def test_training_auto_is_measured_honoured_and_cached(tmp_path, monkeypatch):
    """The probe times both precisions on the real model (fake clock), the trainer computes in
    the winner, a second trainer takes it from the cache, and the probe leaves the seeded
    initial weights as they were."""
    from pix2pix.model import trainer as trainer_mod
    cache = tmp_path / "precision.json"
    reduced = "mixed_" + precision.reduced_candidates()[0]
    clock = {"timer": _timer([2.0, 1.0])}  # float32 2 s a step, the reduced format 1 s

    def choose(*a, **kw):
        return precision.choose(*a, **kw, timer=clock["timer"], cache=cache)
    monkeypatch.setattr(trainer_mod, "choose", choose)
    keras.utils.set_random_seed(3)
    t = trainer_mod.Trainer(TINY, TrainConfig(precision="auto"))
    assert t.dtype == reduced
    assert t.generator.get_layer("down2_conv").compute_dtype == reduced.removeprefix("mixed_")
    clock["timer"] = _never
    keras.utils.set_random_seed(3)
    cached = trainer_mod.Trainer(TINY, TrainConfig(precision="auto"))
    assert cached.dtype == reduced
    for a, b in zip(t.generator.weights, cached.generator.weights):  # probe or cache: same init
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Slower reduced precision: float32, for another shape (batch size) of the same model.
    clock["timer"] = _timer([1.0, 2.0])
    assert trainer_mod.Trainer(TINY, TrainConfig(precision="auto", batch_size=2)).dtype \
        == "float32"
    assert len(json.loads(cache.read_text())) == 2


# --------------------------------------------------------------------------- float16 training

def test_loss_scale_halves_on_overflow_and_grows_after_good_steps():
    from pix2pix.model.trainer import LossScale
    s = LossScale(initial=8.0, growth_interval=3)
    for _ in range(2):
        s.update(tf.constant(True))
    assert float(s.value) == 8.0 and int(s.good_steps) == 2
    s.update(tf.constant(True))
    assert float(s.value) == 16.0 and int(s.good_steps) == 0
    s.update(tf.constant(False))
    assert float(s.value) == 8.0 and int(s.good_steps) == 0
    assert not bool(LossScale.finite([tf.constant([1.0, np.inf])]))
    assert bool(LossScale.finite([tf.constant([1.0]), None]))


@pytest.mark.slow
def test_mixed_float16_step_learns_and_skips_an_overflow():
    from pix2pix.model.trainer import Trainer
    keras.utils.set_random_seed(0)
    t = Trainer(TINY, TrainConfig(precision="mixed_float16", ema_decay=0))
    assert t.generator.get_layer("down2_conv").compute_dtype == "float16"
    x = tf.random.uniform([1, 128, 128, 3], -1, 1, seed=4)
    before = [w.numpy() for w in t.generator.trainable_weights]
    losses, fake = t.train_step(x, -x, tf.constant(2e-4))
    assert all(np.isfinite(float(v)) for v in losses.values())
    assert fake.dtype == tf.float32
    moved = [w.numpy() for w in t.generator.trainable_weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, moved))
    t.loss_scale.value.assign(3e38)  # the scaled loss overflows float32: skip, halve
    t.train_step(x, -x, tf.constant(2e-4))
    for a, b in zip(moved, t.generator.trainable_weights):
        np.testing.assert_array_equal(a, b.numpy())
    assert float(t.loss_scale.value) == pytest.approx(1.5e38)


# --------------------------------------------------------------------------- export and load

@pytest.fixture(scope="module")
def folded_export(trained_run, tmp_path_factory):
    """The tiny run exported with running statistics (batch norm folded)."""
    from pix2pix.export import export
    run, _ = trained_run
    return export(checkpoint=run, output_dir=tmp_path_factory.mktemp("exp") / "m",
                  test_stats="running")


def _frozen_conv_dtypes(model_dir, signature: str) -> set:
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)
    loaded = tf.saved_model.load(str(model_dir))  # alive while its variables are read
    f = convert_variables_to_constants_v2(loaded.signatures[signature])
    return {n.attr["T"].type for n in f.graph.as_graph_def().node if n.op == "Conv2D"}


def test_export_offers_every_precision_and_each_round_trips(trained_run, folded_export):
    from pix2pix.generate import load_model
    run, _ = trained_run
    options = json.loads((folded_export / "options.json").read_text())
    assert options["export"]["batch_norm"] == "folded"
    assert options["export"]["transposed_conv"] == "phases"
    images = np.random.default_rng(0).integers(0, 256, (3, 128, 128, 3), np.uint8)
    from pix2pix.model.trainer import restore_generator
    g, _ = restore_generator(run, test_stats="running")
    reference = np.round((np.clip(g(images / 127.5 - 1.0, training=False).numpy(), -1, 1) + 1)
                         * 127.5)
    for name, dtype, levels in (("float32", tf.float32, 1), ("bfloat16", tf.bfloat16, 8),
                                ("float16", tf.float16, 2)):
        t = load_model(model=folded_export, precision=name)
        assert t.precision == name
        out = t(images)
        assert out.dtype == np.uint8 and out.shape == images.shape
        # float32: the fold's rounding can flip a pixel by one level. 16 bits: bfloat16 keeps
        # 8 significant bits (~1/256 relative), float16 11.
        diff = np.abs(out.astype(int) - reference)
        assert diff.max() <= levels, (name, diff.max())
        assert _frozen_conv_dtypes(folded_export, f"serving_{name}" if name != "float32"
                                   else "serving_default") == {dtype.as_datatype_enum}


def test_generate_auto_is_measured_honoured_and_cached(folded_export, tmp_path):
    from pix2pix.generate import load_model
    cache = tmp_path / "precision.json"
    reduced = precision.reduced_candidates()[0]
    assert load_model(model=folded_export).precision == "float32"  # the default: no probe
    t = load_model(model=folded_export, precision="auto", timer=_timer([2.0, 1.0]),
                   cache=cache)
    assert t.precision == reduced
    t2 = load_model(model=folded_export, precision="auto", timer=_never, cache=cache)
    assert t2.precision == reduced
    np.testing.assert_array_equal(t(np.zeros((1, 128, 128, 3), np.uint8)),
                                  t2(np.zeros((1, 128, 128, 3), np.uint8)))
    slow16 = load_model(model=folded_export, precision="auto", timer=_timer([1.0, 2.0]),
                        cache=cache, batch_size=2)
    assert slow16.precision == "float32"


def test_an_export_without_16_bit_signatures_runs_float32(folded_export, tmp_path):
    """An export from before the 16-bit signatures: auto is float32, asking for 16 bits says
    what to do."""
    from pix2pix.generate import load_model
    old = tmp_path / "old"
    loaded = tf.saved_model.load(str(folded_export))
    tf.saved_model.save(loaded, str(old),
                        signatures={"serving_default": loaded.signatures["serving_default"]})
    (old / "options.json").write_text((folded_export / "options.json").read_text())
    assert load_model(model=old, precision="auto", timer=_never,
                      cache=tmp_path / "c.json").precision == "float32"
    with pytest.raises(ModelError, match="no serving_bfloat16 signature"):
        load_model(model=old, precision="bfloat16")


def test_xla_inference_gives_the_same_images(folded_export):
    from pix2pix.generate import load_model
    images = np.random.default_rng(1).integers(0, 256, (2, 128, 128, 3), np.uint8)
    plain = load_model(model=folded_export, precision="float32")(images)
    xla = load_model(model=folded_export, precision="float32", jit_compile=True)(images)
    assert np.abs(plain.astype(int) - xla.astype(int)).max() <= 1


def test_generate_cli_runs_the_precision_asked_for_and_says_so(folded_export, tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from pix2pix.cli import cli
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((128, 128, 3), 90, np.uint8)).save(src / "a.png")
    runner = CliRunner()
    r = runner.invoke(cli, ["generate", "--model", str(folded_export), "--input", str(src),
                            "--output_dir", str(tmp_path / "o16"), "--precision", "bfloat16"])
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1].endswith("(bfloat16)")
    assert Image.open(tmp_path / "o16" / "a.png").size == (128, 128)
    r = runner.invoke(cli, ["generate", "--checkpoint", str(tmp_path), "--input", str(src),
                            "--output_dir", str(tmp_path / "x"), "--precision", "bfloat16"])
    assert r.exit_code != 0 and "needs an export" in r.output
