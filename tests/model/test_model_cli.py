"""The model commands as a user runs them: exit codes, one-line errors, resume after SIGTERM,
params files, evaluate."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from PIL import Image

import pix2pix.cli
from pix2pix.config import DataConfig, ModelConfig, TrainConfig
from pix2pix.errors import UsageError
from pix2pix.train import load_params, resolve_options
from tests.model.conftest import TINY_FLAGS, write_pairs

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pix2pix", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


def _step_of(checkpoint_prefix: str) -> int:
    return int(tf.train.load_variable(checkpoint_prefix, "step/.ATTRIBUTES/VARIABLE_VALUE"))


@pytest.mark.slow  # two training processes, ~20 s
def test_sigterm_saves_and_rerun_resumes_at_that_step(tmp_path):
    pairs = write_pairs(tmp_path / "pairs", n=3, size=128)
    out = tmp_path / "run"
    args = ["train", "--input_dir", str(pairs), "--output_dir", str(out), *TINY_FLAGS,
            "--save_freq", "2", "--seed", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "pix2pix", *args, "--max_steps", "100000"],
                            cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not (out / "checkpoints" / "checkpoint").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert "SIGTERM" in stderr and "Traceback" not in stderr
    latest = tf.train.latest_checkpoint(str(out / "checkpoints"))
    stopped = _step_of(latest)
    assert stopped >= 2 and latest.endswith(f"ckpt-{stopped}")

    r = run_cli(*args, "--max_steps", str(stopped + 2))
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resuming at step {stopped}" in r.stderr
    assert _step_of(tf.train.latest_checkpoint(str(out / "checkpoints"))) == stopped + 2
    saved = json.loads((out / "options.json").read_text())
    assert saved["model"]["ngf"] == 8 and saved["train"]["max_steps"] == stopped + 2


def test_model_option_contradicting_the_run_is_one_clear_error(trained_run):
    run, pairs = trained_run
    r = run_cli("train", "--input_dir", str(pairs), "--output_dir", str(run), "--ngf", "16")
    assert r.returncode == UsageError.exit_code
    line = one_error_line(r.stderr)
    assert "--ngf" in line and "ngf=16" in line and "ngf=8" in line and "--output_dir" in line


def main_in_process(capsys, *args: str) -> tuple[int, str]:
    """pix2pix.cli.main as the console script runs it, without a new interpreter."""
    with pytest.raises(SystemExit) as exit_:
        pix2pix.cli.main(list(args))
    return exit_.value.code, capsys.readouterr().err


def test_missing_input_folder_and_checkpoint(tmp_path, capsys):
    r = run_cli("train", "--input_dir", str(tmp_path / "none"), "--output_dir",
                str(tmp_path / "o"))
    assert r.returncode == 3 and "input folder not found" in one_error_line(r.stderr)
    code, err = main_in_process(capsys, "export", "--checkpoint", str(tmp_path / "none"),
                                "--output_dir", str(tmp_path / "e"))
    assert code == 4 and "checkpoint folder not found" in one_error_line(err)
    code, err = main_in_process(capsys, "test", "--checkpoint", str(tmp_path), "--input_dir",
                                str(tmp_path), "--output_dir", str(tmp_path / "t"))
    assert code == 4 and "options.json" in one_error_line(err)
    assert not (tmp_path / "e").exists() and not (tmp_path / "t").exists()


def test_every_mode_has_help():
    runner = CliRunner()
    for cmd in ("train", "test", "export", "evaluate"):
        r = runner.invoke(pix2pix.cli.cli, [cmd, "--help"])
        assert r.exit_code == 0 and "Usage:" in r.output


def test_params_file_groups_flat_keys_and_flag_precedence(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "params.yaml").write_text("model: {ngf: 16}\nl1_weight: 10\nno_flip: true\n")
    model, data, cfg = resolve_options(input_dir=tmp_path / "in", output_dir=tmp_path / "out",
                                       params_file=None, given={"l1_weight": 50.0})
    assert model.ngf == 16 and data.no_flip is True and cfg.l1_weight == 50.0
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"bogus": 1}))
    with pytest.raises(UsageError, match="unknown option 'bogus'"):
        load_params(p)
    p.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_params(p)


def test_resume_keeps_saved_options_and_accepts_train_overrides(tmp_path):
    from pix2pix.config import save_options
    out = tmp_path / "out"
    out.mkdir()
    save_options(out / "options.json", model=ModelConfig(ngf=8), data=DataConfig(no_flip=True),
                 train=TrainConfig(l1_weight=7.0))
    model, data, cfg = resolve_options(input_dir=tmp_path, output_dir=out, params_file=None,
                                       given={"max_steps": 9, "ngf": 8})
    assert model.ngf == 8 and data.no_flip and cfg.l1_weight == 7.0 and cfg.max_steps == 9
    save_options(out / "options.json", model=model, data=data, train=cfg)
    _, _, cfg = resolve_options(input_dir=tmp_path, output_dir=out, params_file=None,
                                given={"max_epochs": 4})
    assert cfg.max_steps is None and cfg.max_epochs == 4  # a new epoch limit drops the step one
    (tmp_path / "params.json").write_text(json.dumps({"model": {"norm": "instance"}}))
    with pytest.raises(UsageError, match=r"params.json: norm=instance contradicts norm=batch"):
        resolve_options(input_dir=tmp_path, output_dir=out, params_file=None, given={})


def test_resuming_a_run_saved_without_a_weight_average(tmp_path):
    """Its checkpoints hold no average: it resumes without one, and asking for one is refused."""
    from pix2pix.config import save_options
    out = tmp_path / "out"
    out.mkdir()
    save_options(out / "options.json", model=ModelConfig(ngf=8), data=DataConfig(),
                 train=TrainConfig())
    options = json.loads((out / "options.json").read_text())
    del options["train"]["ema_decay"]  # as written before the option existed
    (out / "options.json").write_text(json.dumps(options))
    _, _, cfg = resolve_options(input_dir=tmp_path, output_dir=out, params_file=None, given={})
    assert cfg.ema_decay == 0.0
    with pytest.raises(UsageError, match=r"--ema_decay: the run in .* without a weight average"):
        resolve_options(input_dir=tmp_path, output_dir=out, params_file=None,
                        given={"ema_decay": 0.99})


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_evaluate_matches_by_name_and_writes_json(tmp_path):
    rng = np.random.default_rng(0)
    target = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    off = np.clip(target.astype(int) + 10, 0, 255).astype(np.uint8)
    _png(tmp_path / "t" / "a.png", target)
    _png(tmp_path / "t" / "sub" / "b.png", target)
    _png(tmp_path / "o" / "a.png", target)
    _png(tmp_path / "o" / "sub" / "b.png", off)
    _png(tmp_path / "o" / "extra.png", off)
    r = CliRunner().invoke(pix2pix.cli.cli, ["evaluate", "--outputs", str(tmp_path / "o"),
                                             "--targets", str(tmp_path / "t"), "--json",
                                             str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    assert "mean" in r.output and "sub/b" in r.output
    m = json.loads((tmp_path / "m.json").read_text())
    rows = {row["name"]: row for row in m["images"]}
    assert rows["a"]["l1"] == 0 and rows["a"]["ssim"] == pytest.approx(1.0)
    assert rows["a"]["psnr"] is None  # identical: infinite PSNR, written as null
    assert rows["sub/b"]["l1"] == pytest.approx(np.mean(off / 255 - target / 255), 1e-6)
    expected_psnr = 10 * np.log10(1 / np.mean((off / 255 - target / 255) ** 2))
    assert rows["sub/b"]["psnr"] == pytest.approx(expected_psnr, 1e-3)
    assert m["mean"]["psnr"] == pytest.approx(expected_psnr, 1e-3)
    assert m["unmatched"] == ["extra"]


def test_evaluate_without_any_match_is_a_data_error(tmp_path, capsys):
    _png(tmp_path / "o" / "x.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "t").mkdir()
    code, err = main_in_process(capsys, "evaluate", "--outputs", str(tmp_path / "o"),
                                "--targets", str(tmp_path / "t"))
    assert code == 3 and "no image" in one_error_line(err)


@pytest.mark.parametrize("flags,needle", [
    (["--crop_size", "200"], "--crop_size 200: unet_256 needs a multiple of 256"),
    (["--save_freq", "0"], "--save_freq 0: must be greater than 0"),
    (["--batch_size", "-1"], "--batch_size -1: must be greater than 0"),
    (["--norm_epsilon", "0"], "--norm_epsilon 0.0: must be greater than 0"),
    (["--ema_decay", "1"], "--ema_decay 1.0: must be in [0, 1)"),
])
def test_unusable_values_are_usage_errors(tmp_path, capsys, flags, needle):
    write_pairs(tmp_path / "in", n=1, size=32)
    code, err = main_in_process(capsys, "train", "--input_dir", str(tmp_path / "in"),
                                "--output_dir", str(tmp_path / "out"), *flags)
    assert code == UsageError.exit_code and needle in one_error_line(err)
