"""The options of issue 23 as users give them: saved in options.json and kept on resume,
accepted by a params.yaml, refused in one line when unusable, trained end to end, honoured by
test, export and generate; mixed bfloat16 with each; wandb offline."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from pix2pix.config import DataConfig, ModelConfig, TrainConfig, save_options
from pix2pix.errors import UsageError
from pix2pix.train import load_params, resolve_options
from tests.model.conftest import write_pairs
from tests.model.test_model_cli import main_in_process, one_error_line

REPO = Path(__file__).resolve().parents[2]

# One non-default value for every new option (val_dir need not exist here; the params.yaml test
# makes the vgg_weights file, since resolving a params file checks its values as train does).
NEW_MODEL = {"generator": "resnet_6blocks", "no_dropout": True, "num_D": 2}
NEW_DATA = {"preprocess": "patches", "patches_per_image": 3, "patch_sampling": "grid",
            "val_fraction": 0.25}
NEW_TRAIN = {"gan_mode": "wgangp", "lambda_gp": 5.0, "perceptual_loss": "vgg19",
             "lambda_perceptual": 2.0, "vgg_weights": "vgg19.h5", "lambda_feat": 10.0,
             "lr_policy": "plateau", "lr_decay_iters": 7, "val_freq": 3, "wandb": "proj",
             "display_freq": 9}


def _as_configs(model=None, data=None, train=None):
    return (ModelConfig(**{**NEW_MODEL, **(model or {})}),
            DataConfig(**{**NEW_DATA, **(data or {})}),
            TrainConfig(**{**NEW_TRAIN, **(train or {})}))


def test_every_new_option_round_trips_through_options_json_and_resume(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    model, data, train = _as_configs()
    save_options(out / "options.json", model=model, data=data, train=train)
    saved = json.loads((out / "options.json").read_text())
    for group, values in (("model", NEW_MODEL), ("data", NEW_DATA), ("train", NEW_TRAIN)):
        assert {k: saved[group][k] for k in values} == values
    # Resume with no flags: every option as saved; train options may change on resume.
    again = resolve_options(input_dir=tmp_path, output_dir=out, params_file=None, given={})
    assert again == (model, data, train)
    _, _, changed = resolve_options(input_dir=tmp_path, output_dir=out, params_file=None,
                                    given={"lr_policy": "cosine", "lambda_feat": 0.0})
    assert changed.lr_policy == "cosine" and changed.lambda_feat == 0.0
    # A model option contradicting the saved run is refused, naming both values.
    for key, value in (("generator", "resnet_9blocks"), ("num_D", 3), ("no_dropout", False)):
        with pytest.raises(UsageError, match=rf"--{key}: {key}={value} contradicts"):
            resolve_options(input_dir=tmp_path, output_dir=out, params_file=None,
                            given={key: value})


def test_params_yaml_accepts_every_new_option_grouped_flat_and_by_alias(tmp_path, monkeypatch):
    import yaml
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"model": NEW_MODEL, "data": NEW_DATA, "train": NEW_TRAIN}))
    assert load_params(p) == {"model": NEW_MODEL, "data": NEW_DATA, "train": NEW_TRAIN}
    p.write_text(yaml.safe_dump({**NEW_MODEL, **NEW_DATA, **NEW_TRAIN, "lambda_L1": 0}))
    (tmp_path / "in").mkdir()
    # resolve_options checks a params file's values as train will (naming params.yaml), and
    # --vgg_weights must then name a file: one is there, relative to the working folder.
    monkeypatch.chdir(tmp_path)
    (tmp_path / NEW_TRAIN["vgg_weights"]).write_bytes(b"")
    # "wandb: proj" is checked as train checks it: the optional extra must import. This test is
    # about parsing, so it stands in a module either way (the missing case has its own test).
    monkeypatch.setitem(sys.modules, "wandb", types.ModuleType("wandb"))
    model, data, train = resolve_options(input_dir=tmp_path / "in", output_dir=tmp_path / "o",
                                         params_file=p, given={})
    assert (model, data, train) == _as_configs(train={"l1_weight": 0.0})
    p.write_text("train: {lambda_L1: 3}\n")
    assert load_params(p)["train"] == {"l1_weight": 3}
    p.write_text("gan_mode: wgan\n")
    with pytest.raises(UsageError, match="gan_mode: 'wgan' is not one of vanilla, lsgan, wgangp"):
        resolve_options(input_dir=tmp_path / "in", output_dir=tmp_path / "o", params_file=p,
                        given={})


def test_lambda_l1_is_junyanz_spelling_of_l1_weight(tmp_path, capsys):
    write_pairs(tmp_path / "in", n=1, size=32)
    code, err = main_in_process(capsys, "train", "--input_dir", str(tmp_path / "in"),
                                "--output_dir", str(tmp_path / "out"), "--lambda_L1", "-1")
    assert code == UsageError.exit_code and "--l1_weight -1.0: must not be negative" in err


@pytest.mark.parametrize("flags,needle", [
    (["--generator", "resnet_9blocks", "--crop_size", "30"],
     "--crop_size 30: resnet_9blocks needs a multiple of 4, at least 8"),
    (["--num_D", "0"], "--num_D 0: must be greater than 0"),
    (["--num_D", "6"], "--num_D 6: the coarsest discriminator would see 8x8 pairs"),
    (["--lambda_feat", "-1"], "--lambda_feat -1.0: must not be negative"),
    (["--lambda_gp", "-1"], "--lambda_gp -1.0: must not be negative"),
    (["--lr_decay_iters", "0"], "--lr_decay_iters 0: must be greater than 0"),
    (["--lr_policy", "plateau"],
     "--lr_policy plateau watches a validation L1: give --val_fraction"),
    (["--val_fraction", "1"], "--val_fraction 1.0: must be in [0, 1)"),
    (["--val_fraction", "0.5", "--val_dir", "v"], "give one validation set, not both"),
    (["--val_dir", "nowhere"], "--val_dir nowhere: folder not found"),
    (["--patches_per_image", "0"], "--patches_per_image 0: must be greater than 0"),
    (["--perceptual_loss", "vgg19"], "--perceptual_loss vgg19 needs --vgg_weights FILE"),
    (["--perceptual_loss", "vgg19", "--vgg_weights", "none.h5"],
     "--vgg_weights none.h5: file not found"),
    (["--display_freq", "0"], "--display_freq 0: must be greater than 0"),
    (["--wandb", " "], "--wandb: give a project name"),
])
def test_unusable_new_values_are_one_line_usage_errors(tmp_path, capsys, monkeypatch, flags,
                                                       needle):
    write_pairs(tmp_path / "in", n=2, size=32)
    monkeypatch.chdir(tmp_path)
    code, err = main_in_process(capsys, "train", "--input_dir", str(tmp_path / "in"),
                                "--output_dir", str(tmp_path / "out"), "--max_steps", "1", *flags)
    assert code == UsageError.exit_code and needle in one_error_line(err)
    assert not (tmp_path / "out").exists()  # nothing written


def test_val_dir_inside_the_input_folder_is_refused(tmp_path, capsys):
    write_pairs(tmp_path / "in" / "val", n=1, size=32)
    code, err = main_in_process(capsys, "train", "--input_dir", str(tmp_path / "in"),
                                "--output_dir", str(tmp_path / "out"), "--val_dir",
                                str(tmp_path / "in" / "val"))
    assert code == UsageError.exit_code and "lies inside --input_dir" in one_error_line(err)


def test_wandb_not_installed_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    write_pairs(tmp_path / "in", n=1, size=32)
    code, err = main_in_process(capsys, "train", "--input_dir", str(tmp_path / "in"),
                                "--output_dir", str(tmp_path / "out"), "--wandb", "p")
    assert code == UsageError.exit_code
    assert "--wandb: the wandb package is not installed" in one_error_line(err)


@pytest.mark.parametrize("model,train,extra", [
    ({"generator": "resnet_6blocks"}, {}, set()),
    ({}, {"gan_mode": "wgangp"}, {"d_gp"}),
    ({"num_D": 2}, {"lambda_feat": 10.0}, {"g_feat"}),
    ({}, {"perceptual_loss": "vgg19"}, {"g_perceptual"}),
], ids=["resnet", "wgangp", "num_D", "perceptual"])
def test_mixed_bfloat16_trains_with_each_new_option(model, train, extra, tmp_path_factory):
    """Every new option in the bfloat16 build: finite float32 losses, float32 weights, and the
    generator's arithmetic really in bfloat16."""
    from pix2pix.model.trainer import Trainer
    if train.get("perceptual_loss"):
        import keras
        path = tmp_path_factory.mktemp("vgg") / "vgg19.weights.h5"
        keras.applications.VGG19(include_top=False, weights=None).save_weights(path)
        train = {**train, "vgg_weights": str(path)}
    cfg = ModelConfig(**{"generator": "resnet_6blocks", "ngf": 8, "ndf": 8, "crop_size": 64,
                         **model})
    t = Trainer(cfg, TrainConfig(precision="mixed_bfloat16", **train))
    x = tf.random.uniform([1, 64, 64, 3], -1, 1)
    for _ in range(2):
        losses, fake = t.train_step(x, -x, tf.constant(2e-4))
    assert fake.dtype == tf.float32
    assert all(v.dtype == tf.float32 and np.isfinite(float(v)) for v in losses.values())
    assert set(losses) - {"g_total", "g_gan", "g_l1", "d_loss", "g_grad_norm",
                          "d_grad_norm"} == extra
    assert all(v.dtype == tf.float32 for v in [*t.generator.weights, *t.D.trainable_variables])
    assert t.generator.get_layer("res1a_conv").compute_dtype == "bfloat16"


def _run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pix2pix", *args], capture_output=True,
                          text=True, timeout=600, cwd=REPO, env={**os.environ, **(env or {})})


@pytest.mark.slow  # a tiny training, its resume, test and export: ~40 s each
@pytest.mark.parametrize("flags", [
    ["--generator", "resnet_6blocks"],
    ["--gan_mode", "wgangp"],
    ["--num_D", "2", "--lambda_feat", "10"],
], ids=["resnet_6blocks", "wgangp", "num_D_2"])
def test_tiny_train_test_and_export_end_to_end(tmp_path, flags):
    pairs = write_pairs(tmp_path / "pairs", n=3, size=64)
    out = tmp_path / "run"
    args = ["train", "--input_dir", str(pairs), "--output_dir", str(out), "--ngf", "8",
            "--ndf", "8", "--crop_size", "64", "--load_size", "64", "--max_steps", "3",
            "--summary_freq", "0", "--seed", "0", *flags]
    if "--generator" not in flags:
        args += ["--generator", "resnet_6blocks"]
    r = _run_cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stderr.strip().splitlines()[-1].startswith("done: step 3")
    saved = json.loads((out / "options.json").read_text())
    for name, value in zip(flags[::2], flags[1::2]):
        group = next(g for g in saved if name[2:] in saved[g])
        assert str(saved[group][name[2:]]) in (value, value + ".0")
    r = _run_cli(*args, "--max_steps", "4")  # resume: the same options, a longer run
    assert r.returncode == 0 and "resuming at step 3" in r.stderr, r.stderr[-3000:]
    r = _run_cli("test", "--checkpoint", str(out), "--input_dir", str(pairs), "--output_dir",
                 str(tmp_path / "test"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads((tmp_path / "test" / "metrics.json").read_text())["count"] == 3
    r = _run_cli("export", "--checkpoint", str(out), "--output_dir", str(tmp_path / "exp"))
    assert r.returncode == 0 and (tmp_path / "exp" / "saved_model.pb").is_file(), r.stderr[-2000:]


@pytest.mark.slow  # a tiny patch training, its test and generate: ~30 s
def test_patch_model_is_tiled_by_test_and_generate(tmp_path):
    """Trained on 64x64 patches of 96x128 pairs: test scores whole pairs at full resolution
    and generate tiles by default (no --tile), writing outputs at the input's size."""
    from pix2pix.generate import generate, load_model, GenerateOptions
    from pix2pix.testmode import run_test
    from pix2pix.train import train
    pairs = tmp_path / "pairs"
    rng = np.random.default_rng(0)
    for i in range(2):
        a = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
        pairs.mkdir(exist_ok=True)
        Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(pairs / f"{i}.png")
    run = tmp_path / "run"
    train(input_dir=pairs, output_dir=run,
          model=ModelConfig(generator="resnet_6blocks", ngf=8, ndf=8, crop_size=64),
          data=DataConfig(preprocess="patches", patches_per_image=3),
          train=TrainConfig(max_steps=4, seed=0, summary_freq=0), progress=False)
    metrics = run_test(input_dir=pairs, output_dir=tmp_path / "test", checkpoint=run)
    assert metrics["count"] == 2
    out = np.asarray(Image.open(tmp_path / "test" / "images" / "0-outputs.png"))
    assert out.shape == (96, 128, 3)
    translator = load_model(checkpoint=run)
    assert translator.patches
    (tmp_path / "big").mkdir()
    Image.fromarray(rng.integers(0, 256, (150, 100, 3), dtype=np.uint8)).save(
        tmp_path / "big" / "x.png")
    result = generate(translator=translator, inputs=[tmp_path / "big"],
                      output_dir=tmp_path / "gen", options=GenerateOptions())
    assert result.tiled == 1 and result.written == 1
    assert Image.open(tmp_path / "gen" / "x.png").size == (100, 150)


@pytest.mark.slow  # wandb's offline run: ~30 s
def test_wandb_offline_logs_losses_lr_and_samples(tmp_path):
    wandb = pytest.importorskip("wandb", reason="wandb (the optional extra) is not installed")
    from wandb.proto import wandb_internal_pb2
    from wandb.sdk.internal import datastore
    pairs = write_pairs(tmp_path / "pairs", n=4, size=64)
    out = tmp_path / "run"
    r = _run_cli("train", "--input_dir", str(pairs), "--output_dir", str(out), "--ngf", "8",
                 "--ndf", "8", "--generator", "resnet_6blocks", "--crop_size", "32",
                 "--load_size", "32", "--max_steps", "4", "--summary_freq", "0",
                 "--display_freq", "2", "--val_fraction", "0.25", "--val_freq", "2",
                 "--wandb", "p2p-test", env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    assert r.returncode == 0, r.stderr[-3000:]
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and wandb.__version__
    store = datastore.DataStore()
    store.open_for_scan(str(next(runs[0].glob("run-*.wandb"))))
    history = []
    while (data := store.scan_data()) is not None:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.history.item})
    steps = {h["_step"]: h for h in history}
    assert {1, 2, 4} <= set(steps)  # step 1 and every --display_freq steps
    for s in (1, 2, 4):
        assert {"g_l1", "g_gan", "d_loss", "lr"} <= set(steps[s]), steps[s]
        assert steps[s]["lr"] > 0
    assert "val_l1" in steps[2] and "val_l1" in steps[4]
    assert len(list(runs[0].glob("files/media/images/samples_*.png"))) == 3
    assert (out / "wandb_run_id").read_text().strip() == runs[0].name.rsplit("-", 1)[-1]


@pytest.mark.slow  # two tiny trainings: ~40 s
def test_plateau_state_and_held_back_pairs_survive_a_resume(tmp_path):
    """A plateau run stopped and resumed goes on from the checkpoint's best value, count and
    rate, not from a fresh state."""
    from pix2pix.train import train
    pairs = write_pairs(tmp_path / "pairs", n=5, size=32)
    out = tmp_path / "run"
    kw = dict(input_dir=pairs, output_dir=out, progress=False,
              model=ModelConfig(generator="resnet_6blocks", ngf=4, ndf=4, crop_size=32),
              data=DataConfig(load_size=32, val_fraction=0.2))
    cfg = dict(seed=0, summary_freq=0, lr_policy="plateau")
    train(**kw, train=TrainConfig(max_steps=3, val_freq=1, **cfg))
    ckpt = tf.train.latest_checkpoint(str(out / "checkpoints"))
    state = lambda c: {n.split("/")[1]: tf.train.load_variable(c, n)  # noqa: E731
                       for n, _ in tf.train.list_variables(c) if n.startswith("plateau/")}
    first = state(ckpt)
    assert set(first) == {"best", "num_bad", "scale"} and np.isfinite(first["best"])
    # Resumed without a validation in its one step: the state it saves is the restored one
    # (a fresh state would have best = inf).
    result = train(**kw, train=TrainConfig(max_steps=4, val_freq=100, **cfg))
    assert result.resumed_from == 3 and result.step == 4
    assert state(tf.train.latest_checkpoint(str(out / "checkpoints"))) == first
