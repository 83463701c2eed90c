"""Faults on the embedded engine, driven through `pix2pix` commands: SIGKILL at random moments of
`put file -r` and of a job, failing datums (exit code, exception, datumTimeout), two writers on
one branch with a reader, a full disk (a real 1 MiB tmpfs) and a read-only state folder (a
non-root user). After each: no partial commit is visible, every earlier commit reads back with
the same content hashes, and the next command works without manual repair.

Single-kill versions live in tests/engine (test_engine_store.py::test_sigkill_during_put_leaves_
no_partial_commit, test_engine_cli.py::test_sigkill_during_put_file_of_a_folder,
test_engine_recovery.py); this file kills at random points over several rounds and checks
content hashes, and adds the cases they do not have."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pix2pix.errors import JobError, StoreError
from pix2pix.pachyderm.engine import Engine

from tests.conftest import REPO
from tests.engine.engine_testlib import bash_spec, pfs, put
from tests.reliability.conftest import one_error_line, pix, sha256, snapshot

KILL_ROUNDS = 4


def _popen(*args: str, state: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pix2pix", *args], cwd=REPO,
                            env=dict(os.environ, PIX2PIX_STATE=str(state)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _check_consistent(eng: Engine, repo: str, before: dict[str, dict[str, str]]) -> None:
    """Every commit seen before is still there with the same content; every commit now visible
    is whole (all its blobs read back and hash as recorded)."""
    now = snapshot(eng, repo)
    for cid, files in before.items():
        assert now.get(cid) == files, f"commit {cid} changed"
    for cid in now:
        for f in eng.walk_files(repo, cid):
            assert sha256(eng.get_file(repo, cid, f.path)) == f.hash
    # What stays open is only the output commit of a job still queued (it runs again); no
    # user commit is left half-made.
    queued = {(p["pipeline"], p["commit_id"]) for p in eng.list_pending()}
    assert all(c.origin == "AUTO" and (c.repo, c.id) in queued for c in eng.list_open_commits())
    assert eng.store.count_staged() == 0


@pytest.mark.slow  # several CLI processes, ~20-30 s
@pytest.mark.rel("fault", KILL_ROUNDS)
def test_sigkill_at_random_points_of_put_file_r(tmp_path: Path):
    rng = random.Random(1234)
    state = tmp_path / "state"
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(1500):
        (folder / f"{i:05d}.txt").write_bytes(os.urandom(64) + str(i).encode())
    eng = Engine(state)
    eng.create_repo("d")
    put(eng, "d", {"/seed": "seed"})
    for round_ in range(KILL_ROUNDS):
        before = snapshot(eng, "d")
        proc = _popen("put", "file", f"d@master:/r{round_}", "-r", "-f", str(folder), state=state)
        if round_ % 2 == 0:  # kill once some files are staged, at a random count
            want = rng.randint(1, 1200)
            db = sqlite3.connect(state / "engine.db", timeout=30)
            deadline = time.time() + 60
            while time.time() < deadline and proc.poll() is None:
                if db.execute("SELECT COUNT(*) FROM staged").fetchone()[0] >= want:
                    break
                time.sleep(0.005)
            db.close()
        else:  # kill after a random delay: start-up, staging or the finishing transaction
            time.sleep(rng.uniform(0.3, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        eng = Engine(state)  # the next command: recovery runs here
        _check_consistent(eng, "d", before)
        # A commit either landed whole or not at all.
        head = {f.path for f in eng.walk_files("d", "master")}
        got = {p for p in head if p.startswith(f"/r{round_}/")}
        assert len(got) in (0, 1500)
    r = pix("put", "file", "d@master:/after", "-f", str(folder / "00001.txt"), state=state)
    assert r.returncode == 0, r.stderr_text
    assert pix("get", "file", "d@master:/after", state=state).stdout == \
        (folder / "00001.txt").read_bytes()


@pytest.mark.slow  # several CLI processes and jobs, ~20-30 s
@pytest.mark.rel("fault", KILL_ROUNDS)
def test_sigkill_at_random_points_of_a_job(tmp_path: Path):
    """`put file` runs the pipeline's job in the same command; it is killed at a random moment
    of the job. The output repo never shows a partial commit; `pix2pix run` finishes it."""
    rng = random.Random(99)
    state = tmp_path / "state"
    eng = Engine(state)
    eng.create_repo("in")
    eng.create_pipeline(bash_spec("up", pfs("in"), 'for f in /pfs/in/*; do sleep 0.05; '
                                  'tr a-z A-Z < $f > /pfs/out/$(basename $f); done'))
    src = tmp_path / "src"
    killed = 0
    for round_ in range(KILL_ROUNDS):
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir()
        for i in range(12):
            (src / f"r{round_}_{i:02d}").write_text(f"round {round_} file {i}")
        before_in, before_out = snapshot(eng, "in"), snapshot(eng, "up")
        proc = _popen("put", "file", "in@master:/", "-r", "-f", str(src), state=state)
        if round_ % 2 == 0:  # inside the job: once its code runs, at a random moment
            deadline = time.time() + 60
            while time.time() < deadline and not list(state.glob("jobs/up-*/*/child.pid")):
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.5))
        else:  # anywhere: start-up, the commit, the job or publishing its output
            time.sleep(rng.uniform(0.5, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        eng = Engine(state)
        _check_consistent(eng, "in", before_in)
        _check_consistent(eng, "up", before_out)
        for cid, files in snapshot(eng, "up").items():  # every output commit is complete
            inputs = eng.inspect_commit("up", cid).provenance[0]
            assert set(files) == {f.path for f in eng.walk_files("in", inputs.commit)}
        killed += any(j.state == "killed" for j in eng.list_jobs("up"))
        eng.run_pending()
    assert killed >= KILL_ROUNDS // 2  # the kills did land inside jobs
    eng = Engine(state)
    eng.run_pending()
    want = {f.path: eng.get_file("in", "master", f.path).upper()
            for f in eng.walk_files("in", "master")}
    assert {f.path: eng.get_file("up", "master", f.path)
            for f in eng.walk_files("up", "master")} == want
    assert not list(state.glob("jobs/*"))  # no scratch folder left behind


# how a datum fails -> (transform script, words in the datum's reason)
DATUM_FAILURES = {
    "exit_code": ('grep -q BAD /pfs/in/* && { echo "refusing bad input" >&2; exit 3; }; '
                  'cp /pfs/in/* /pfs/out/', "exit code 3"),
    "exception": ('python -c "import glob,sys,shutil; f=glob.glob(\'/pfs/in/*\')[0]; '
                  'd=open(f).read(); assert \'BAD\' not in d, \'refusing bad input\'; '
                  'shutil.copy(f, \'/pfs/out/\')"', "exit code 1"),
    "timeout": ('grep -q BAD /pfs/in/* && { echo "refusing bad input"; sleep 60; }; '
                'cp /pfs/in/* /pfs/out/', "timed out"),
}


@pytest.mark.rel("fault")
@pytest.mark.parametrize("kind", sorted(DATUM_FAILURES))
def test_failing_datum_is_retried_shown_and_fixed(tmp_path: Path, kind: str):
    """Retried datumTries times; the job fails naming the datum, its input path and its log
    (`inspect job`, `logs`); no output commit; fixing the input commits and skips the rest."""
    state = tmp_path / "state"
    script, why = DATUM_FAILURES[kind]
    spec = bash_spec("p", pfs("in"), script, datumTries=2,
                     **({"datumTimeout": "1s"} if kind == "timeout" else {}))
    spec_file = tmp_path / "p.json"
    spec_file.write_text(json.dumps(spec))
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("fine")
    bad.write_text("BAD data")
    assert pix("create", "repo", "in", state=state).returncode == 0
    assert pix("create", "pipeline", "-f", str(spec_file), state=state).returncode == 0
    r = pix("put", "file", "in@master", "-f", str(good), "-f", str(bad), "--strict", state=state)
    assert r.returncode == JobError.exit_code
    one_error_line(r.stderr_text, "job p@", "failed", "/bad.txt", why, "2 tries")
    eng = Engine(state)
    job = eng.list_jobs("p")[0]
    out = eng.inspect_commit("p", job.output_commit)  # finished with the reason, nothing in it
    assert job.state == "failure" and out.error == job.reason and eng.walk_files("p", out.id) == []
    shown = pix("inspect", "job", f"p@{job.id}", state=state).stdout_text
    assert f"Failed datum: {job.failed_datum}" in shown and "/bad.txt" in shown
    assert "Tries: 2" in shown and "refusing bad input" in shown
    logs = pix("logs", "-p", "p", "--job", job.id, state=state).stdout_text
    assert logs.count("refusing bad input") == 2  # once per try

    bad.write_text("now fixed")
    r = pix("put", "file", "in@master", "-f", str(bad), state=state)
    assert r.returncode == 0, r.stderr_text
    eng = Engine(state)
    fixed = eng.list_jobs("p")[0]
    assert (fixed.state, fixed.processed, fixed.skipped) == ("success", 1, 1)
    assert {f.path: eng.get_file("p", "master", f.path)
            for f in eng.walk_files("p", "master")} == {"/good.txt": b"fine",
                                                        "/bad.txt": b"now fixed"}


@pytest.mark.rel("fault", 1)
def test_two_put_file_commands_at_once_and_a_reader(tmp_path: Path):
    """Two `pix2pix put file -r` of 25 files each on one branch, run together, while a reader
    lists the branch: both commits land one after the other and every read sees 0, 25 or 50
    files of whole commits, never a mix."""
    state = tmp_path / "state"
    eng = Engine(state)
    eng.create_repo("d")
    folders = []
    for who in ("alice", "bob"):
        f = tmp_path / who
        f.mkdir()
        for i in range(25):
            (f / f"{i:02d}").write_text(f"{who} {i}")
        folders.append(f)
    procs = [_popen("put", "file", f"d@master:/{f.name}", "-r", "-f", str(f), state=state)
             for f in folders]
    seen = set()
    while any(p.poll() is None for p in procs):
        try:
            paths = [f.path for f in eng.walk_files("d", "master")]
        except StoreError:
            paths = []  # no commit yet
        names = {p.split("/")[1] for p in paths}
        assert len(paths) == 25 * len(names), paths  # whole commits only
        seen.add(len(paths))
        time.sleep(0.002)
    assert [p.returncode for p in procs] == [0, 0]
    history = eng.list_commits("d", "master")
    assert len(history) == 2 and history[0].parent == history[1].id
    assert history[1].parent is None
    files = {f.path: eng.get_file("d", "master", f.path) for f in eng.walk_files("d", "master")}
    assert files == {f"/{w}/{i:02d}": f"{w} {i}".encode() for w in ("alice", "bob")
                     for i in range(25)}
    first = {f.path.split("/")[1] for f in eng.walk_files("d", history[1].id)}
    assert len(first) == 1  # the older commit holds exactly one writer's files
    assert seen <= {0, 25, 50}


@pytest.mark.rel("fault", 3)
def test_disk_full_state_folder(tmp_path: Path, tiny_tmpfs: Path):
    """A real full disk under the state folder: `put file` of a big file fails with one line
    saying so, earlier commits read back unchanged, and after freeing space it works again.
    (tests/engine/test_engine_store.py simulates ENOSPC at fsync.)"""
    state = tiny_tmpfs / "state"
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"s" * 1000)
    big.write_bytes(os.urandom(3 << 20))
    assert pix("create", "repo", "d", state=state).returncode == 0
    assert pix("put", "file", "d@master:/small", "-f", str(small), state=state).returncode == 0
    before = snapshot(Engine(state), "d")
    for attempt in range(2):  # twice: a failed attempt must not leave the disk fuller
        r = pix("put", "file", f"d@master:/big{attempt}", "-f", str(big), state=state)
        assert r.returncode == StoreError.exit_code, r.stderr_text
        one_error_line(r.stderr_text, "disk full")
    eng = Engine(state)
    _check_consistent(eng, "d", before)
    assert not list((state / "blobs" / "tmp").glob("*"))
    r = pix("put", "file", "d@master:/small2", "-f", str(small), state=state)
    assert r.returncode == 0, r.stderr_text
    assert Engine(state).get_file("d", "master", "/small2") == small.read_bytes()


@pytest.mark.rel("fault", 1)
def test_disk_full_output_folder_of_process(tmp_path: Path, tiny_tmpfs: Path):
    """`pix2pix process` writing onto a full disk: one line naming the file, and every file
    that is there is whole (each is written to a temp name and renamed)."""
    import numpy as np
    from PIL import Image
    from tests.reliability.conftest import no_half_written
    inp = tmp_path / "in"
    inp.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(inp / f"{i}.png")
    out = tiny_tmpfs / "out"
    r = pix("process", "resize", "--input_dir", str(inp), "--output_dir", str(out), "--size",
            "200")
    assert r.returncode != 0
    line = one_error_line(r.stderr_text, str(out))
    assert "No space left" in line or "disk full" in line
    assert 0 < len(no_half_written(out)) < 12


def _nobody_can_run_the_venv() -> bool:
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        sys.executable, "-c", "import pix2pix"], capture_output=True, cwd="/")
    return r.returncode == 0


@pytest.mark.rel("fault", 3)
def test_read_only_state_and_output_folders_as_a_non_root_user(tmp_path: Path):
    """A state folder the user may not write, and an output folder likewise: one clear line,
    nothing changed. Root ignores permissions, so this runs as uid 65534 via setpriv."""
    if os.geteuid() != 0 or not shutil.which("setpriv") or not _nobody_can_run_the_venv():
        pytest.skip("needs root, setpriv and a venv readable by uid 65534")
    base = Path(tempfile.mkdtemp(prefix="pix2pix-ro-"))
    try:
        os.chmod(base, 0o755)
        state = base / "state"
        src = base / "a.txt"
        src.write_text("x")
        os.chmod(src, 0o644)
        eng = Engine(state)
        eng.create_repo("d")
        put(eng, "d", {"/kept": "k"})
        eng.store.close()
        before = snapshot(Engine(state), "d")
        r = pix("put", "file", "d@master:/a", "-f", str(src), state=state, user=65534)
        assert r.returncode == StoreError.exit_code, r.stderr_text
        one_error_line(r.stderr_text, "not writable", "--state")
        _check_consistent(Engine(state), "d", before)

        inp = base / "in"
        inp.mkdir()
        from PIL import Image
        Image.new("RGB", (64, 32), (9, 9, 9)).save(inp / "x.png")
        os.chmod(inp / "x.png", 0o644)
        ro_out = base / "ro_out"
        ro_out.mkdir()
        r = pix("process", "resize", "--input_dir", str(inp), "--output_dir", str(ro_out / "o"),
                user=65534)
        assert r.returncode != 0
        one_error_line(r.stderr_text, str(ro_out / "o"), "ermission denied")
        r = pix("train", "--input_dir", str(inp), "--output_dir", str(ro_out / "run"),
                "--max_steps", "1", user=65534)
        assert r.returncode != 0
        one_error_line(r.stderr_text, str(ro_out / "run"), "ermission denied")
        assert list(ro_out.iterdir()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)
