"""A full disk inside a job: the job's output (/pfs/out), its scratch folder and the metadata
database. The job that met it fails with the real reason (logged, shown by `inspect job`), is
never recorded as "killed", the input commit stays, and the command says so: its last line is
the commit that landed. The disk is a real 20 MiB tmpfs for /pfs/out and scratch (they live in
the state folder); the metadata database's fault is injected (SQLite's own "database or disk is
full"), as a tmpfs cannot be made to fill at the moment SQLite writes.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from pix2pix.errors import StoreError
from pix2pix.pachyderm.engine import Engine
from pix2pix.pachyderm.store import Store
from pix2pix.pachyderm.store.db import db_error

from tests.engine.engine_testlib import bash_spec, pfs
from tests.reliability.conftest import main_in_process, one_error_line, pix

# where the disk fills -> the transform (its inputs are one small file)
FILLERS = {
    # the code's output fills the disk, the code exits 0: storing the output fails
    "pfs_out_stored": "cat /dev/zero > /pfs/out/blob || true",
    # the code itself meets the full disk writing /pfs/out and fails
    "pfs_out_written": "head -c 40000000 /dev/zero > /pfs/out/blob",
    # the code fills its scratch (working) folder, then writes a small output
    "scratch": "cat /dev/zero > fill || true; echo small > /pfs/out/x",
}


def _spec_file(tmp_path: Path, script: str) -> Path:
    f = tmp_path / "big.json"
    f.write_text(json.dumps(bash_spec("big", pfs("in"), script)))
    return f


@pytest.mark.rel("fault")
@pytest.mark.parametrize("where", sorted(FILLERS))
def test_disk_full_in_a_job_fails_that_job_and_says_the_commit_landed(
        tmp_path: Path, small_tmpfs: Path, where: str):
    state = small_tmpfs / "state"
    src = tmp_path / "a.txt"
    src.write_text("hello")
    assert pix("create", "repo", "in", state=state).returncode == 0
    assert pix("create", "pipeline", "-f", str(_spec_file(tmp_path, FILLERS[where])),
               state=state).returncode == 0
    r = pix("put", "file", "in@master:/a", "-f", str(src), state=state)
    # As pachctl: the commit landed, so exit 0, with the job's failure on stderr.
    assert r.returncode == 0, r.stderr_text
    assert "Traceback" not in r.stderr_text
    assert "the commit landed" in r.stderr_text and "nothing was committed" not in r.stderr_text
    last = r.stderr_text.strip().splitlines()[-1]
    eng = Engine(state)
    head = eng.inspect_commit("in", "master")
    assert last == f"in@{head.id}" and eng.get_file("in", "master", "/a") == b"hello"
    job = eng.list_jobs("big")[0]
    assert job.id == head.id and job.state == "failure", (job.state, job.reason)
    assert "disk" in job.reason and "full" in job.reason, job.reason
    shown = pix("inspect", "job", f"big@{job.id}", state=state)
    assert shown.returncode == 0 and "full" in shown.stdout_text
    logs = pix("logs", "-p", "big", "--job", job.id, state=state).stdout_text
    assert "full" in logs
    # Nothing left to run, no "killed" job added, the scratch is gone, the space is back.
    again = pix("run", state=state)
    assert again.returncode == 0 and "nothing to run" in again.stderr_text, again.stderr_text
    eng = Engine(state)
    assert [j.state for j in eng.list_jobs("big")] == ["failure", "success"]
    assert not list((state / "jobs").iterdir())
    assert shutil.disk_usage(small_tmpfs).free > 15 << 20


@pytest.mark.rel("fault")
def test_create_pipeline_on_a_full_disk_says_it_was_created(tmp_path: Path, small_tmpfs: Path):
    """The data is there first; the pipeline's first job fills the disk."""
    state = small_tmpfs / "state"
    src = tmp_path / "a.txt"
    src.write_text("hello")
    assert pix("create", "repo", "in", state=state).returncode == 0
    assert pix("put", "file", "in@master:/a", "-f", str(src), state=state).returncode == 0
    r = pix("create", "pipeline", "-f", str(_spec_file(tmp_path, FILLERS["pfs_out_stored"])),
            state=state)
    assert r.returncode == 0, r.stderr_text
    assert r.stderr_text.strip().splitlines()[-1] == "pipeline big (version 1) created"
    eng = Engine(state)
    assert eng.inspect_pipeline("big").version == 1
    assert [j.state for j in eng.list_jobs("big")] == ["failure"]


def _full(*_a, **_k):
    raise db_error(sqlite3.OperationalError("database or disk is full"), Path("engine.db"))


@pytest.mark.rel("fault", 2)
def test_metadata_database_full_during_a_job(tmp_path: Path, monkeypatch, capsys):
    """SQLite full while a datum is recorded: the job fails with that reason. If even its
    failure cannot be written, the command says the input commit landed and the job stays
    queued; once there is space `pix2pix run` runs it (never a "killed" job)."""
    monkeypatch.setenv("PIX2PIX_STATE", str(tmp_path / "state"))
    src = tmp_path / "a.txt"
    src.write_text("hello")
    assert main_in_process(capsys, "create", "repo", "in")[0] == 0
    spec = _spec_file(tmp_path, "cp /pfs/in/* /pfs/out/")
    assert main_in_process(capsys, "create", "pipeline", "-f", str(spec))[0] == 0

    monkeypatch.setattr(Store, "record_datum", _full)
    code, err = main_in_process(capsys, "put", "file", "in@master:/a", "-f", str(src))
    assert code == 0, err
    eng = Engine(tmp_path / "state")
    job = eng.list_jobs("big")[0]
    assert job.state == "failure" and "engine.db: disk full" in job.reason, job.reason
    assert "nothing was committed" not in job.reason and "the commit landed" in err

    real_finish = Store.finish_commit
    monkeypatch.setattr(Store, "finish_commit", lambda self, repo, *a, **k: _full() if
                        repo == "big" else real_finish(self, repo, *a, **k))
    code, err = main_in_process(capsys, "put", "file", "in@master:/b", "-f", str(src))
    assert code == StoreError.exit_code
    head = Engine(tmp_path / "state").inspect_commit("in", "master")
    line = one_error_line(err, "disk full", "could not be recorded", f"commit in@{head.id} landed")
    assert "nothing was committed" not in line
    monkeypatch.undo()
    monkeypatch.setenv("PIX2PIX_STATE", str(tmp_path / "state"))
    code, err = main_in_process(capsys, "run")
    assert code == 0, err
    eng = Engine(tmp_path / "state")
    assert eng.inspect_job("big", head.id).state == "success"
    assert "killed" not in [j.state for j in eng.list_jobs("big")]
    assert eng.get_file("big", "master", "/b") == b"hello"


@pytest.mark.rel("fault")
def test_put_file_on_a_full_disk_says_nothing_was_committed(tmp_path: Path, tiny_tmpfs: Path):
    """Before the commit: the message says so, checked, and carries no empty "()"."""
    state = tiny_tmpfs / "state"
    big = tmp_path / "big"
    big.write_bytes(b"x" * (3 << 20))
    assert pix("create", "repo", "d", state=state).returncode == 0
    r = pix("put", "file", "d@master:/big", "-f", str(big), state=state)
    assert r.returncode == StoreError.exit_code
    line = one_error_line(r.stderr_text, "disk full", "nothing was committed")
    assert "()" not in line
    assert Engine(state).list_commits("d") == []
