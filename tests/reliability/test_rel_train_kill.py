"""SIGKILL at random moments of `pix2pix train` (a tiny model saving every step, so many kills
land inside a checkpoint write): the newest checkpoint the state file lists always restores,
and the next run resumes from it, at its step. No fault hook in the product code: the kills are
real, at random delays over several rounds.

SIGTERM (a clean stop that saves) is tests/model/test_model_cli.py::test_sigterm_saves_and_
rerun_resumes_at_that_step; a hand-damaged newest checkpoint is tests/model/test_model_trainer.
py::test_half_written_checkpoint_is_never_picked."""
from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.model.conftest import TINY_FLAGS, write_pairs

ROUNDS = 3


def _restorable_step(run: Path) -> int | None:
    """Restore the newest checkpoint the way `train` does, into a fresh tiny trainer."""
    from pix2pix.config import ModelConfig, TrainConfig
    from pix2pix.model.trainer import CHECKPOINT_SUBDIR, Trainer, restore_latest
    t = Trainer(ModelConfig(generator="unet_128", ngf=8, ndf=8, crop_size=128), TrainConfig())
    path = restore_latest(t.checkpoint, run / CHECKPOINT_SUBDIR)  # raises if none is readable
    if path is None:
        return None
    step = int(t.step.numpy())
    assert path.endswith(f"ckpt-{step}"), (path, step)
    return step


@pytest.mark.slow  # four tiny training processes, ~40-60 s on 2 shared cores
@pytest.mark.rel("fault", ROUNDS)
def test_sigkill_during_training_and_checkpoint_writes_resumes_cleanly(tmp_path: Path):
    rng = random.Random(7)
    pairs = write_pairs(tmp_path / "pairs", n=2, size=128)
    run = tmp_path / "run"
    args = [sys.executable, "-m", "pix2pix", "train", "--input_dir", str(pairs), "--output_dir",
            str(run), *TINY_FLAGS, "--save_freq", "1", "--keep_checkpoints", "2", "--seed", "3"]
    state = run / "checkpoints" / "checkpoint"
    last = None
    for round_ in range(ROUNDS):
        log = tmp_path / f"train{round_}.log"
        with open(log, "w") as err:
            proc = subprocess.Popen([*args, "--max_steps", "100000"], cwd=REPO,
                                    stdout=subprocess.DEVNULL, stderr=err)
            deadline = time.time() + 240
            # Wait until this run has saved at least once (the state file changes), then kill
            # at a random moment: most steps are short next to a save, so kills hit saves too.
            mtime = state.stat().st_mtime_ns if state.exists() else None
            while time.time() < deadline and proc.poll() is None:
                if state.exists() and state.stat().st_mtime_ns != mtime:
                    break
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 1.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        text = log.read_text()
        assert proc.returncode == -signal.SIGKILL, text[-2000:]
        if last is not None:
            assert f"resuming at step {last} " in text, text[-2000:]
        step = _restorable_step(run)
        assert step is not None and step >= (last or 0) + 1
        last = step
    r = subprocess.run([*args, "--max_steps", str(last + 2)], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resuming at step {last} " in r.stderr
    assert _restorable_step(run) == last + 2
    # options.json is written by temp file + rename: always whole, whatever the kill hit.
    saved = json.loads((run / "options.json").read_text())
    assert saved["model"]["ngf"] == 8 and saved["train"]["max_steps"] == last + 2


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A `pix2pix train` output folder of a tiny unet_128 after one step (read-only use)."""
    from pix2pix.config import DataConfig, ModelConfig, TrainConfig
    from pix2pix.data.dataset import make_dataset
    from pix2pix.train import train
    tmp_path = tmp_path_factory.mktemp("tiny_run")
    pairs = write_pairs(tmp_path / "pairs", n=1, size=128)
    train(input_dir=pairs, output_dir=tmp_path / "run",
          model=ModelConfig(generator="unet_128", ngf=8, ndf=8, crop_size=128),
          data=DataConfig(load_size=128), train=TrainConfig(max_steps=1, summary_freq=0),
          progress=False, dataset_fn=make_dataset)
    return tmp_path / "run"


@pytest.mark.slow  # three export processes, ~30 s
@pytest.mark.rel("fault")
@pytest.mark.parametrize("target", ["existing_empty", "new"])
def test_sigkill_during_export_then_export_again_works(tmp_path: Path, tiny_run: Path, target):
    """An export killed while it writes (into an existing empty folder, e.g. /pfs/out, or a new
    one): the target never holds half a SavedModel, and running the same command again
    succeeds without cleaning anything by hand."""
    out = tmp_path / "export"
    if target == "existing_empty":
        out.mkdir()
    args = [sys.executable, "-m", "pix2pix", "export", "--checkpoint", str(tiny_run),
            "--output_dir", str(out)]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        temps = list(out.glob(".export.tmp/*")) + list(tmp_path.glob(".export.tmp-*/*"))
        if temps:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the export ended before the kill"
    assert not (out / "saved_model.pb").exists()
    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "saved_model.pb").is_file() and (out / "options.json").is_file()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


@pytest.mark.rel("fault", 1)
def test_disk_full_during_a_checkpoint_save_is_one_line(tmp_path: Path, tiny_tmpfs: Path,
                                                        capsys):
    """A checkpoint that does not fit: one ModelError line (not a TensorFlow traceback), the
    failed save's temp folder removed, options.json whole."""
    from pix2pix.errors import ModelError
    from tests.reliability.conftest import main_in_process, one_error_line
    pairs = write_pairs(tmp_path / "pairs", n=1, size=128)
    run = tiny_tmpfs / "run"
    code, err = main_in_process(capsys, "train", "--input_dir", str(pairs), "--output_dir",
                                str(run), *TINY_FLAGS, "--max_steps", "2")
    assert code == ModelError.exit_code, err[-3000:]
    one_error_line(err, str(run / "checkpoints"), "No space left on device",
                   "run the same command to resume")
    assert list((run / "checkpoints").iterdir()) == []
    assert json.loads((run / "options.json").read_text())["model"]["ngf"] == 8


@pytest.mark.rel("fault", 2)
@pytest.mark.parametrize("damage", ["empty", "garbage"])
def test_lost_checkpoint_state_file_still_resumes_at_the_step(tmp_path: Path, tiny_run: Path,
                                                              capsys, damage):
    """The small `checkpoints/checkpoint` state file emptied (a power cut after its rename) or
    garbled: TensorFlow ignores it, but the run must still resume from the checkpoints on disk
    rather than silently start again at step 0."""
    import shutil
    from tests.reliability.conftest import main_in_process
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "checkpoints" / "checkpoint").write_text("" if damage == "empty" else "garbage {{")
    assert _restorable_step(run) == 1
    pairs = tiny_run.parent / "pairs"
    code, err = main_in_process(capsys, "train", "--input_dir", str(pairs), "--output_dir",
                                str(run), "--max_steps", "2")
    assert code == 0, err[-3000:]
    assert "resuming at step 1 " in err
    assert _restorable_step(run) == 2
