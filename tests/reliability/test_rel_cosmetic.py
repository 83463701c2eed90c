"""Small things a user meets: a file name holding a newline in `list file`, a bad value in
params.yaml, `put file -r` of an empty folder, read-only commands on a state folder that does
not exist, and the temporary folder of a killed export (`fsutil.atomic_dir`)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pix2pix.errors import DataError, NotFoundError, UsageError
from pix2pix.pachyderm.engine import Engine

from tests.conftest import REPO
from tests.engine.engine_testlib import put
from tests.reliability.conftest import one_error_line, pix


@pytest.mark.rel("hostile")
def test_list_file_shows_a_newline_in_a_name_escaped(tmp_path: Path):
    state = tmp_path / "state"
    eng = Engine(state)
    eng.create_repo("d")
    put(eng, "d", {"/two\nlines": "x", "/tab\there": "y", "/plain": "z"})
    r = pix("list", "file", "d@master", state=state)
    assert r.returncode == 0, r.stderr_text
    lines = r.stdout_text.splitlines()
    assert len(lines) == 4  # the header and one line per file: the table holds
    assert any(ln.startswith("/two\\nlines ") for ln in lines)
    assert any(ln.startswith("/tab\\there ") for ln in lines)


PARAMS = {"not_an_int": ("train:\n  max_steps: lots\n", "not a valid int"),
          "negative": ("max_steps: -5\n", "must not be negative")}


@pytest.mark.rel("bad_input")
@pytest.mark.parametrize("case", sorted(PARAMS))
def test_a_bad_value_in_params_yaml_names_params_yaml(tmp_path: Path, case: str):
    inp = tmp_path / "in"
    inp.mkdir()
    text, why = PARAMS[case]
    (inp / "params.yaml").write_text(text)
    from PIL import Image
    Image.new("RGB", (512, 256), (9, 9, 9)).save(inp / "a.png")
    r = pix("train", "--input_dir", str(inp), "--output_dir", str(tmp_path / "run"))
    assert r.returncode == UsageError.exit_code
    one_error_line(r.stderr_text, str(inp / "params.yaml"), "max_steps", why)
    assert not (tmp_path / "run").exists()
    # The same value given as a flag is still named as the flag.
    r = pix("train", "--input_dir", str(inp), "--output_dir", str(tmp_path / "run"),
            "--max_steps", "-2")
    one_error_line(r.stderr_text, "--max_steps -2")


@pytest.mark.rel("bad_input")
def test_put_file_r_of_an_empty_folder_commits_nothing(tmp_path: Path):
    state = tmp_path / "state"
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    assert pix("create", "repo", "d", state=state).returncode == 0
    r = pix("put", "file", "d@master:/x", "-r", "-f", str(empty), state=state)
    assert r.returncode == DataError.exit_code
    one_error_line(r.stderr_text, str(empty), "no files", "nothing was committed")
    assert Engine(state).list_commits("d") == []


@pytest.mark.rel("bad_input", 3)
def test_read_only_commands_do_not_make_a_state_folder(tmp_path: Path):
    """They read an empty store, as pachctl on an empty cluster, and leave no folder."""
    nowhere = tmp_path / "typo"
    r = pix("list", "repo", state=nowhere)
    assert r.returncode == 0 and len(r.stdout_text.splitlines()) == 1  # the header only
    r = pix("inspect", "repo", "images", state=nowhere)
    assert r.returncode == NotFoundError.exit_code
    one_error_line(r.stderr_text, "images", "not found")
    assert pix("fsck", state=nowhere).returncode == 0
    assert not nowhere.exists()
    assert pix("create", "repo", "images", state=nowhere).returncode == 0
    assert pix("list", "repo", state=nowhere).returncode == 0  # once made, reads work


_BUILDER = """
import sys, time
from pathlib import Path
from pix2pix.fsutil import atomic_dir
with atomic_dir(Path(sys.argv[1])) as tmp:
    (tmp / "saved_model.pb").write_bytes(b"half")
    print("ready", flush=True)
    time.sleep(60)
"""


def _builder(target: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", _BUILDER, str(target)], cwd=REPO,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


@pytest.mark.rel("fault")
def test_a_killed_export_leaves_no_temporary_folder_behind(tmp_path: Path):
    """A writer killed while it builds the folder (as `pix2pix export` builds a SavedModel)
    leaves `.model.tmp-*`; the next write of that target removes it, but never the folder of
    a writer that is still alive."""
    from pix2pix.fsutil import atomic_dir
    target = tmp_path / "model"
    killed = _builder(target)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    stale = list(tmp_path.glob(".model.tmp-*"))
    assert len(stale) == 1  # what SIGKILL leaves
    alive = _builder(target)  # the next writer: the killed one's folder goes
    try:
        left = list(tmp_path.glob(".model.tmp-*"))
        assert len(left) == 1 and left != stale
        with atomic_dir(target) as tmp:
            (tmp / "saved_model.pb").write_bytes(b"whole")
        assert (target / "saved_model.pb").read_bytes() == b"whole"
        left = list(tmp_path.glob(".model.tmp-*"))
        assert len(left) == 1 and (left[0] / "saved_model.pb").exists()  # the live one's
    finally:
        alive.kill()
        alive.wait()
    time.sleep(0.1)
    with atomic_dir(target) as tmp:
        (tmp / "saved_model.pb").write_bytes(b"again")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert os.listdir(target) == ["saved_model.pb"]
