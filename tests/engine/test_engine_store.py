"""Versioned storage: repos, commits, files, refs, dedup, atomic and concurrent commits,
crash safety (SIGKILL in the middle of a put file) and unwritable state folders."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pix2pix.errors import ConflictError, PreconditionError, StoreError, UsageError
from pix2pix.pachyderm.engine import Engine
from pix2pix.pachyderm.store import SCHEMA_VERSION

from engine_testlib import REPO_ROOT, bash_spec, pfs, put


def test_repo_lifecycle(eng: Engine):
    eng.create_repo("images", description="raw photos")
    assert [r.name for r in eng.list_repos()] == ["images"]
    info = eng.inspect_repo("images")
    # As in pachd, a repo has no branch until its first commit.
    assert (info.description, info.size, info.branches, info.type) == ("raw photos", 0, [], "user")
    with pytest.raises(StoreError, match="already exists"):
        eng.create_repo("images")
    eng.create_repo("images", description="new", update=True)
    assert eng.inspect_repo("images").description == "new"
    eng.delete_repo("images")
    assert eng.list_repos() == []
    with pytest.raises(StoreError, match="not found"):
        eng.inspect_repo("images")


@pytest.mark.parametrize("bad", ["", "a b", "x/y/z", "/y", "a@b", "é"])
def test_invalid_repo_names_are_refused(eng: Engine, bad: str):
    with pytest.raises(UsageError):
        eng.create_repo(bad)


def test_commit_tree_parent_and_ancestry(eng: Engine):
    eng.create_repo("data")
    c1 = put(eng, "data", {"/a.txt": "one", "/dir/b.txt": "two"})
    c2 = put(eng, "data", {"/a.txt": "ONE"})
    assert len(c1.id) == 32 and c1.origin == "USER" and c1.parent is None
    assert c2.parent == c1.id
    assert eng.get_file("data", "master", "/a.txt") == b"ONE"
    assert eng.get_file("data", "master^1", "/a.txt") == b"one"
    assert eng.get_file("data", "master~1", "/a.txt") == b"one"
    assert eng.get_file("data", c1.id, "/a.txt") == b"one"
    assert eng.get_file("data", "master", "/dir/b.txt") == b"two"  # carried over
    assert [c.id for c in eng.list_commits("data", "master")] == [c2.id, c1.id]
    assert [c.id for c in eng.list_commits("data", limit=1)] == [c2.id]
    with pytest.raises(StoreError, match="only 2 commit"):
        eng.inspect_commit("data", "master^2")
    assert eng.inspect_commit("data", "master").size == len("ONE") + len("two")


def test_list_inspect_walk_glob_files(eng: Engine):
    eng.create_repo("d")
    put(eng, "d", {"/a.png": "1", "/b/c.png": "22", "/b/d/e.txt": "333"})
    assert [(f.path, f.type) for f in eng.list_files("d", "master")] == [("/a.png", "file"), ("/b", "dir")]
    assert [f.path for f in eng.list_files("d", "master", "/b")] == ["/b/c.png", "/b/d"]
    b = eng.inspect_file("d", "master", "/b")
    assert (b.type, b.size, b.hash) == ("dir", 5, "")
    assert [f.path for f in eng.walk_files("d", "master")] == ["/a.png", "/b/c.png", "/b/d/e.txt"]
    # Pachyderm's ** is any text, so /**/x needs a folder (ohmyglob; not doublestar's zero folders)
    assert [f.path for f in eng.glob_files("d", "master", "/**/*.png")] == ["/b/c.png"]
    assert [f.path for f in eng.glob_files("d", "master", "/*.(png|txt)")] == ["/a.png"]
    assert [(f.path, f.type) for f in eng.glob_files("d", "master", "/")] == [("/", "dir")]
    with pytest.raises(StoreError, match="no such file"):
        eng.inspect_file("d", "master", "/nope")
    with pytest.raises(StoreError, match="is a dir"):
        eng.get_file("d", "master", "/b")


def test_delete_and_append(eng: Engine):
    eng.create_repo("d")
    put(eng, "d", {"/keep": "k", "/dir/x": "x", "/dir/y": "y", "/log": "a"})
    with eng.commit("d") as c:
        c.delete_file("/dir")
        c.put_file("/log", b"b", append=True)
    assert [f.path for f in eng.walk_files("d", "master")] == ["/keep", "/log"]
    assert eng.get_file("d", "master", "/log") == b"ab"


def test_open_commit_is_the_head_reads_its_writes_and_is_dropped_on_error(eng: Engine):
    """pachd's model: an open commit is its branch's head; reads of it see what was staged
    (read your writes); a commit that fails half-way is dropped and the branch goes back."""
    eng.create_repo("d")
    first = put(eng, "d", {"/a": "old"})
    cid = eng.start_commit("d")
    eng.put_file("d", cid, "/a", b"new")
    assert eng.inspect_branch("d", "master").head == cid
    assert eng.get_file("d", "master", "/a") == b"new"  # read your writes
    assert eng.get_file("d", first.id, "/a") == b"old"
    info = eng.inspect_commit("d", cid)
    assert (info.finished, info.parent, info.size) == (None, first.id, 3)
    eng.finish_commit("d", cid)
    assert eng.inspect_commit("d", cid).finished is not None
    with pytest.raises(RuntimeError):
        with eng.commit("d") as c:
            c.put_file("/a", b"half")
            raise RuntimeError("boom")
    assert eng.get_file("d", "master", "/a") == b"new"
    assert eng.inspect_branch("d", "master").head == cid
    assert len(eng.list_commits("d")) == 2


def test_second_commit_on_an_open_head_is_refused_and_a_finish_may_carry_an_error(eng: Engine):
    eng.create_repo("d")
    cid = eng.start_commit("d")
    with pytest.raises(ConflictError, match=f"parent commit d@{cid} has not been finished"):
        eng.start_commit("d")
    info = eng.finish_commit("d", "master", error="bad data")  # a branch names its open head
    assert (info.id, info.error) == (cid, "bad data") and info.finished is not None
    with pytest.raises(PreconditionError, match="has already finished"):
        eng.finish_commit("d", cid)


def test_unchanged_content_is_stored_once(eng: Engine, state: Path):
    eng.create_repo("d")
    blob = os.urandom(4096)
    put(eng, "d", {"/a": blob})
    put(eng, "d", {"/b": blob, "/c": blob})
    blobs = [p for p in (state / "blobs").rglob("*") if p.is_file() and p.parent.name != "tmp"]
    assert len(blobs) == 1 and blobs[0].read_bytes() == blob


def test_file_and_folder_conflict_is_refused(eng: Engine):
    eng.create_repo("d")
    put(eng, "d", {"/a": "file"})
    with pytest.raises(StoreError, match="is a file"):
        put(eng, "d", {"/a/b": "x"})
    assert eng.get_file("d", "master", "/a") == b"file"


@pytest.mark.parametrize("bad", ["/a/../b", "/a\\b", "/a\x00b"])
def test_unsafe_destination_paths_are_refused(eng: Engine, bad: str):
    eng.create_repo("d")
    cid = eng.start_commit("d")
    with pytest.raises(UsageError):
        eng.put_file("d", cid, bad, b"x")


def test_commit_on_pipeline_output_repo_is_refused(eng: Engine):

    eng.create_repo("in")
    eng.create_pipeline(bash_spec("p", pfs("in"), "true"))
    with pytest.raises(StoreError, match="cannot start a commit on an output branch: p@master"):
        eng.start_commit("p")


_SLOW_PUT = r"""
import sys, time
from pathlib import Path
from pix2pix.pachyderm.engine import Engine
eng = Engine(Path(sys.argv[1]))
with eng.commit("d") as c:
    for i in range(1000):
        c.put_file(f"/big/{i:04d}", b"x" * 1000 + str(i).encode())
        if i == 20:
            print("started", flush=True)
        time.sleep(0.01)
"""


def test_sigkill_during_put_leaves_no_partial_commit(eng: Engine, state: Path, tmp_path: Path):
    """A process killed in the middle of a big put: nothing of it is visible, earlier commits
    are intact, and the next command works without any repair."""
    eng.create_repo("d")
    first = put(eng, "d", {"/a": "kept"})
    script = tmp_path / "slow_put.py"
    script.write_text(_SLOW_PUT)
    proc = subprocess.Popen([sys.executable, str(script), str(state)], stdout=subprocess.PIPE,
                            cwd=REPO_ROOT)
    assert proc.stdout.readline().strip() == b"started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = Engine(state)  # the next command
    assert [c.id for c in again.list_commits("d")] == [first.id]
    assert [f.path for f in again.walk_files("d", "master")] == ["/a"]
    assert again.list_open_commits() == []  # stale commit cleaned up
    assert again.store.count_staged() == 0
    put(again, "d", {"/b": "next"})
    assert [f.path for f in again.walk_files("d", "master")] == ["/a", "/b"]


_PUT_MANY = r"""
import sys
from pathlib import Path
from pix2pix.pachyderm import files
from pix2pix.pachyderm.engine import Engine
eng = Engine(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):  # pachctl's put file: one commit per call, atomically
    eng.modify("d", "master", [files.file_op(eng, f"/{sys.argv[2]}/{i}", str(i).encode())])
"""


def test_concurrent_writers_on_one_branch_both_land(eng: Engine, state: Path, tmp_path: Path):
    eng.create_repo("d")
    script = tmp_path / "put_many.py"
    script.write_text(_PUT_MANY)
    procs = [subprocess.Popen([sys.executable, str(script), str(state), who, "8"], cwd=REPO_ROOT)
             for who in ("alice", "bob")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    files = {f.path for f in eng.walk_files("d", "master")}
    assert files == {f"/{w}/{i}" for w in ("alice", "bob") for i in range(8)}
    history = eng.list_commits("d", "master")
    assert len(history) == 16  # a linear chain: every commit's parent is the one before
    assert history[-1].parent is None


def test_read_only_state_folder_gives_store_error(tmp_path: Path):
    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    state = tmp_path / "ro"
    Engine(state).create_repo("d")
    os.chmod(state, 0o555)
    try:
        with pytest.raises(StoreError, match="not writable"):
            eng = Engine(state)
            put(eng, "d", {"/a": "x"})
    finally:
        os.chmod(state, 0o755)


def test_disk_full_is_a_store_error_and_commits_nothing(eng: Engine, monkeypatch):
    import errno
    eng.create_repo("d")
    put(eng, "d", {"/a": "x"})

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StoreError, match="disk full"):
        put(eng, "d", {"/b": "y"})
    monkeypatch.undo()
    assert [f.path for f in eng.walk_files("d", "master")] == ["/a"]
    assert not list((eng.state_dir / "blobs" / "tmp").iterdir())


def test_reader_sees_whole_puts_only(eng: Engine, state: Path, tmp_path: Path):
    """While another process puts 10 files per `put file` (pachctl's semantics: one commit,
    written in one transaction), every read of the branch sees a multiple of 10 files."""
    eng.create_repo("d")
    script = tmp_path / "writer.py"
    script.write_text(r"""
import sys
from pathlib import Path
from pix2pix.pachyderm import files
from pix2pix.pachyderm.engine import Engine
eng = Engine(Path(sys.argv[1]))
for i in range(6):
    eng.modify("d", "master", [files.file_op(eng, f"/{i}/{j}", b"x") for j in range(10)])
""")
    proc = subprocess.Popen([sys.executable, str(script), str(state)], cwd=REPO_ROOT)
    seen = set()
    while proc.poll() is None:
        try:
            seen.add(len(eng.walk_files("d", "master")))
        except StoreError:
            pass  # no commit yet
        time.sleep(0.005)
    assert proc.returncode == 0
    seen.add(len(eng.walk_files("d", "master")))
    assert seen and all(n % 10 == 0 for n in seen)
    assert 60 in seen


def test_read_only_filesystem_is_a_store_error(eng: Engine, monkeypatch):
    """EROFS (a read-only mount) as root cannot be made with chmod: simulate it at the OS call."""
    import errno
    import tempfile
    eng.create_repo("d")

    def ro(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(eng.state_dir))

    monkeypatch.setattr(tempfile, "mkstemp", ro)
    with pytest.raises(StoreError, match="not writable.*--state DIR"):
        put(eng, "d", {"/a": "x"})
    monkeypatch.undo()
    assert eng.list_commits("d") == []


def test_open_commits_children_and_finish_description(eng: Engine):
    eng.create_repo("d")
    first = put(eng, "d", {"/a": "1"})
    cid = eng.start_commit("d", description="draft")
    eng.put_file("d", cid, "/b", b"12345")
    [open_] = eng.list_open_commits("d", "master")
    assert (open_.id, open_.finished, open_.size, open_.description) == (cid, None, 5, "draft")
    info = eng.finish_commit("d", cid, description="final")
    assert info.description == "final" and eng.list_open_commits() == []
    assert eng.commit_children("d", first.id) == [cid]


def test_older_state_folder_is_upgraded_in_place(state: Path):
    """A schema 1 state folder (made before jobs.recovered and branch provenance existed) opens,
    gains the column, and its pipelines are registered as their output branch's provenance, so
    a new input commit still runs them."""
    import sqlite3
    eng = Engine(state)
    eng.create_repo("d")
    eng.create_pipeline(bash_spec("p", pfs("d"), "cp -r /pfs/d/. /pfs/out/"))
    eng.store.close()
    db = sqlite3.connect(state / "engine.db")
    db.execute("ALTER TABLE jobs DROP COLUMN recovered")
    db.execute("DROP TABLE branch_provenance")
    db.execute("UPDATE meta SET value='1' WHERE key='schema'")
    db.commit()
    db.close()
    again = Engine(state)
    assert "recovered" in again.store.columns("jobs")
    assert again.store.schema_version() == SCHEMA_VERSION
    assert again.store.downstream("d", "master") == [("p", "master")]
    assert [r.name for r in again.list_repos()] == ["p", "d"]
    put(again, "d", {"/x": "1"})
    assert again.get_file("p", "master", "/x") == b"1"
