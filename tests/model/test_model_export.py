"""Export: plain tf.saved_model.load gives the checkpoint's output via both signatures;
test mode writes the affinelayer layout, index.html and metrics.json."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pix2pix.errors import ModelError
from pix2pix.export import export
from pix2pix.model import restore_generator
from pix2pix.testmode import run_test
from tests.model.conftest import write_pairs


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    run, _ = trained_run
    return export(checkpoint=run, output_dir=tmp_path_factory.mktemp("exp") / "model")


def test_export_matches_checkpoint_via_both_signatures(trained_run, exported):
    run, _ = trained_run
    assert (exported / "saved_model.pb").is_file()
    assert json.loads((exported / "options.json").read_text())["model"]["ngf"] == 8
    assert not list(exported.parent.glob(".*tmp*"))  # temp folder renamed away
    generator, options = restore_generator(run)
    assert options["model"]["crop_size"] == 128
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 128, 128, 3), dtype=np.uint8)
    expected = np.round((np.clip(generator(images / 127.5 - 1.0, training=False).numpy(), -1, 1)
                         + 1) * 127.5)

    loaded = tf.saved_model.load(str(exported))
    served = loaded.signatures["serving_default"](images=tf.constant(images))["output"]
    assert served.dtype == tf.uint8 and served.shape == (2, 128, 128, 3)
    assert np.abs(served.numpy().astype(int) - expected).max() <= 1

    png = tf.io.encode_png(images[0]).numpy()
    out = loaded.signatures["translate_png"](image=tf.constant(png))["output"]
    decoded = tf.io.decode_png(out).numpy()
    assert decoded.shape == (128, 128, 3)
    assert np.abs(decoded.astype(int) - expected[0]).max() <= 1


def test_export_loads_without_this_package(exported, tmp_path):
    code = ("import sys; sys.modules['pix2pix'] = None; import tensorflow as tf;"
            "m = tf.saved_model.load(sys.argv[1]);"
            "o = m.signatures['serving_default'](images=tf.zeros([1,128,128,3], tf.uint8));"
            "print(o['output'].shape)")
    r = subprocess.run([sys.executable, "-I", "-c", code, str(exported)], capture_output=True,
                       text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "(1, 128, 128, 3)" in r.stdout


def test_export_refuses_a_foreign_non_empty_folder(trained_run, tmp_path):
    run, _ = trained_run
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(Exception, match="not empty"):
        export(checkpoint=run, output_dir=tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_export_into_existing_empty_folder(trained_run, tmp_path):
    run, _ = trained_run
    out = tmp_path / "out"
    out.mkdir()
    export(checkpoint=run, output_dir=out)
    names = ["assets", "fingerprint.pb", "options.json", "saved_model.pb", "variables"]
    assert sorted(p.name for p in out.iterdir()) == names
    # Exporting again replaces that earlier export whole, and leaves nothing beside it.
    (out / "stale.txt").write_text("from the first export")
    export(checkpoint=run, output_dir=out)
    assert sorted(p.name for p in out.iterdir()) == names
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_restore_keeps_the_norm_epsilon_the_run_was_trained_with(trained_run, tmp_path):
    import shutil
    run, _ = trained_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    options = json.loads((copy / "options.json").read_text())
    options["model"]["norm_epsilon"] = 1e-3
    (copy / "options.json").write_text(json.dumps(options))
    generator, _ = restore_generator(copy)
    assert generator.get_layer("down2_norm").epsilon == 1e-3
    # A run saved before the option existed was trained with the paper's 1e-5.
    del options["model"]["norm_epsilon"]
    (copy / "options.json").write_text(json.dumps(options))
    generator, _ = restore_generator(copy)
    assert generator.get_layer("down2_norm").epsilon == 1e-5


def test_restore_gives_the_weight_average_when_the_run_kept_one(tmp_path, make_dataset):
    import shutil

    from pix2pix.config import DataConfig, ModelConfig, TrainConfig
    from pix2pix.model.trainer import CHECKPOINT_SUBDIR, Trainer, restore_latest
    from pix2pix.train import train
    model = ModelConfig(generator="unet_128", ngf=8, ndf=8, crop_size=128)
    cfg = TrainConfig(max_steps=12, seed=0, summary_freq=0, ema_decay=0.999)
    run = tmp_path / "run"
    train(input_dir=write_pairs(tmp_path / "pairs", n=3, size=128), output_dir=run, model=model,
          data=DataConfig(load_size=128), train=cfg, progress=False, dataset_fn=make_dataset)
    saved = Trainer(model, cfg)
    restore_latest(saved.checkpoint, run / CHECKPOINT_SUBDIR)
    average, last = saved.generator_average.get_weights(), saved.generator.get_weights()
    assert any(not np.array_equal(x, y) for x, y in zip(average, last))
    generator, options = restore_generator(run)
    assert options["weights"] == "average"
    for x, y in zip(generator.get_weights(), average):
        np.testing.assert_array_equal(x, y)
    generator, options = restore_generator(run, last_weights=True)  # test/export --last_weights
    assert options["weights"] == "last"
    for x, y in zip(generator.get_weights(), last):
        np.testing.assert_array_equal(x, y)
    # An export says which weights it serves.
    out = export(checkpoint=run, output_dir=tmp_path / "exp", last_weights=True)
    assert json.loads((out / "options.json").read_text())["weights"] == "last"
    # A run saved before the option existed has no average: its last weights.
    copy = tmp_path / "old"
    shutil.copytree(run, copy)
    options = json.loads((copy / "options.json").read_text())
    del options["train"]["ema_decay"]
    (copy / "options.json").write_text(json.dumps(options))
    generator, _ = restore_generator(copy)
    for x, y in zip(generator.get_weights(), last):
        np.testing.assert_array_equal(x, y)


def test_restore_generator_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        restore_generator(tmp_path / "nope")
    with pytest.raises(ModelError, match="options.json"):
        restore_generator(tmp_path)
    (tmp_path / "options.json").write_text(json.dumps({"model": {"ngf": 8}}))
    with pytest.raises(ModelError, match="no checkpoint"):
        restore_generator(tmp_path)


@pytest.mark.parametrize("source", ["checkpoint", "model"])
def test_test_mode_writes_images_index_and_metrics(trained_run, exported, tmp_path,
                                                    make_dataset, source):
    run, pairs = trained_run
    where = {"checkpoint": run} if source == "checkpoint" else {"model": exported}
    metrics = run_test(input_dir=pairs, output_dir=tmp_path, dataset_fn=make_dataset, **where)
    names = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert names == sorted(f"{i}-{r}.png" for i in range(3) for r in ("inputs", "outputs",
                                                                         "targets"))
    out = np.asarray(Image.open(tmp_path / "images" / "0-outputs.png"))
    assert out.shape == (128, 128, 3)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["count"] == 3 and saved["mean"]["l1"] == pytest.approx(metrics["mean"]["l1"])
    html = (tmp_path / "index.html").read_text()
    assert "images/2-targets.png" in html and "<th>output</th>" in html


def test_training_wrote_options_and_tensorboard_summaries(trained_run):
    run, _ = trained_run
    options = json.loads((run / "options.json").read_text())
    assert set(options) == {"model", "data", "train"} and options["train"]["max_steps"] == 3
    tags = set()
    for events in (run / "logs").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            tags.update(v.tag for v in event.summary.value)
    assert {"g_l1", "g_gan", "d_loss", "lr", "input", "output", "target"} <= tags
