"""Space: what failed or killed writes leave is collected, by itself at the next write and by
hand (`pix2pix garbage-collect`, `pix2pix fsck --fix`), and never a blob a writer is about to
refer to. `fsck` checks every blob's hash and every reference."""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pix2pix.errors import DataError, StoreError
from pix2pix.pachyderm.engine import Engine

from tests.conftest import REPO
from tests.engine.engine_testlib import put
from tests.reliability.conftest import one_error_line, pix, sha256


def _blob_bytes(state: Path) -> int:
    return sum(p.stat().st_size for p in (state / "blobs").rglob("*") if p.is_file())


def _fsck(state: Path, *args: str) -> subprocess.CompletedProcess:
    return pix("fsck", *args, state=state)


@pytest.mark.rel("fault")
def test_a_put_that_fails_on_a_full_disk_gives_its_space_back(tmp_path: Path, small_tmpfs: Path):
    """20 MiB: a folder of 3 x 7 MB fails on the third file; its first two blobs (14 MB) would
    keep every later put from fitting. The next put collects them first and lands."""
    state = small_tmpfs / "state"
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.bin").write_bytes(os.urandom(7 << 20))
    later = tmp_path / "later.bin"
    later.write_bytes(os.urandom(8 << 20))
    assert pix("create", "repo", "d", state=state).returncode == 0
    r = pix("put", "file", "d@master:/big", "-r", "-f", str(folder), state=state)
    assert r.returncode == StoreError.exit_code
    one_error_line(r.stderr_text, "disk full", "nothing was committed")
    assert _blob_bytes(state) >= 7 << 20  # what the failed put left, until the next write
    r = pix("put", "file", "d@master:/later.bin", "-f", str(later), state=state)
    assert r.returncode == 0, r.stderr_text
    eng = Engine(state)
    assert sha256(eng.get_file("d", "master", "/later.bin")) == sha256(later.read_bytes())
    assert _blob_bytes(state) < 9 << 20
    r = _fsck(state)
    assert r.returncode == 0 and "no problems found" in r.stderr_text, r.stdout_text


def _popen(*args: str, state: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pix2pix", *args], cwd=REPO,
                            env=dict(os.environ, PIX2PIX_STATE=str(state)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for_blobs(state: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if sum(1 for p in (state / "blobs").glob("??/*")) >= n:
            return
        time.sleep(0.01)


@pytest.mark.rel("fault")
def test_killed_put_leaves_garbage_that_fsck_reports_and_gc_removes(tmp_path: Path):
    state = tmp_path / "state"
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(400):
        (folder / f"{i:04d}").write_bytes(os.urandom(2048))
    eng = Engine(state)
    eng.create_repo("d")
    put(eng, "d", {"/kept": "k"})
    proc = _popen("put", "file", "d@master:/r", "-r", "-f", str(folder), state=state)
    _wait_for_blobs(state, 50, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = _fsck(state)
    assert r.returncode == DataError.exit_code
    assert "unreferenced blob(s)" in r.stdout_text and "garbage-collect" in r.stdout_text
    r = pix("garbage-collect", state=state)
    assert r.returncode == 0, r.stderr_text
    assert "removed" in r.stderr_text and "unreferenced blob(s)" in r.stderr_text
    assert int(r.stderr_text.split("removed ")[1].split()[0]) >= 49
    r = _fsck(state)
    assert r.returncode == 0, r.stdout_text
    assert Engine(state).get_file("d", "master", "/kept") == b"k"
    assert sum(1 for _ in (state / "blobs").glob("??/*")) == 1


@pytest.mark.rel("fault", 2)
def test_fsck_checks_every_blob_hash_and_every_reference(tmp_path: Path):
    """A blob whose content changed on disk, and a reference whose blob is gone (an open
    commit's staged put): each is one line, exit 3; --fix does not guess them away."""
    state = tmp_path / "state"
    eng = Engine(state)
    eng.create_repo("d")
    put(eng, "d", {"/a": "alpha", "/b": "bravo"})
    cid = eng.start_commit("d")
    eng.put_file("d", cid, "/staged", b"on its way")
    a = eng.blobs.path(sha256(b"alpha"))
    os.chmod(a, 0o644)
    a.write_bytes(b"ALPHA")
    eng.blobs.path(sha256(b"on its way")).unlink()
    for args in ((), ("--fix",)):
        r = _fsck(state, *args)
        assert r.returncode == DataError.exit_code
        lines = r.stdout_text.splitlines()
        assert any(f"blob {sha256(b'alpha')[:12]}" in ln and "damaged" in ln for ln in lines)
        assert any(f"d@{cid}:/staged (staged)" in ln and "missing" in ln for ln in lines), lines


@pytest.mark.rel("fault")
def test_gc_keeps_what_open_commits_and_datums_refer_to(tmp_path: Path):
    state = tmp_path / "state"
    eng = Engine(state)
    eng.create_repo("d")
    cid = eng.start_commit("d")
    eng.put_file("d", cid, "/staged", b"staged only")
    done = Engine(state).garbage_collect()
    assert done is not None and done.blobs == 0
    eng.finish_commit("d", cid)
    assert eng.get_file("d", "master", "/staged") == b"staged only"
    r = _fsck(state)
    assert r.returncode == 0, r.stdout_text


WRITERS = 3
# A collector as fast as it can go: one sweep after another, in one process.
GC_LOOP = """
import sys
from pix2pix.pachyderm.engine import Engine
eng = Engine(sys.argv[1])
while True:
    eng.garbage_collect(wait_s=5)
"""


@pytest.mark.slow  # several CLI processes killed at random, ~30 s
@pytest.mark.rel("fault", 4)
def test_concurrent_puts_and_gc_under_random_sigkills(tmp_path: Path):
    """Three writers put the SAME contents (so a writer often finds its blob already there,
    left by a killed one: the case a careless collector gets wrong) while `garbage-collect`
    sweeps in a loop; writers and collectors are SIGKILLed at random. Every commit that landed
    reads back whole, and after a last collection fsck finds nothing wrong and no garbage."""
    rng = random.Random(2024)
    state = tmp_path / "state"
    folder = tmp_path / "same"
    folder.mkdir()
    contents = [os.urandom(3000) for _ in range(300)]
    for i, data in enumerate(contents):
        (folder / f"{i:03d}").write_bytes(data)
    want = {f"{i:03d}": sha256(d) for i, d in enumerate(contents)}
    eng = Engine(state)
    eng.create_repo("d")
    landed = 0
    for round_ in range(4):
        writers = [_popen("put", "file", f"d@master:/w{round_}_{k}", "-r", "-f", str(folder),
                          state=state) for k in range(WRITERS)]
        gcs = []
        deadline = time.time() + 8
        victims = rng.sample(range(WRITERS), 2)
        kill_at = {v: time.time() + rng.uniform(0.3, 2.5) for v in victims}
        while time.time() < deadline and any(w.poll() is None for w in writers):
            if not gcs or gcs[-1].poll() is not None:
                gcs.append(subprocess.Popen([sys.executable, "-c", GC_LOOP, str(state)],
                                            cwd=REPO))
            if rng.random() < 0.05:  # a collector killed mid-sweep
                gcs[-1].send_signal(signal.SIGKILL)
            for v, at in list(kill_at.items()):
                if time.time() >= at:
                    writers[v].send_signal(signal.SIGKILL)
                    del kill_at[v]
            time.sleep(0.02)
        for p in writers:
            if p.poll() is None:
                p.wait(timeout=120)
        for p in gcs:
            p.kill()
            p.wait()
        eng = Engine(state)
        for f in eng.walk_files("d", "master"):
            assert sha256(eng.get_file("d", "master", f.path)) == f.hash, f.path
        tops = {f.path.split("/")[1] for f in eng.walk_files("d", "master")}
        for top in tops:  # a commit landed whole, with the right contents
            got = {f.path.split("/")[2]: f.hash for f in eng.walk_files("d", "master", f"/{top}")}
            assert got == want, top
        landed = len(tops)
    assert landed >= 4  # some writers did land
    r = pix("garbage-collect", state=state)
    assert r.returncode == 0, r.stderr_text
    r = _fsck(state)
    assert r.returncode == 0 and "no problems found" in r.stderr_text, r.stdout_text
    assert not list((state / "blobs" / "tmp").glob("*"))
    shutil.rmtree(folder)
