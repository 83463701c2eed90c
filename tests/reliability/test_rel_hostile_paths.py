"""Hostile paths: `put file` destinations that try to leave the repo, a datum that tries to
publish host files or write outside /pfs/out, and `get file` targets that try to leave the
folder they were given. Nothing outside may be read into a commit or written on the host.

Already covered elsewhere (referenced in count_cases.py): tests/engine/test_engine_store.py::
test_unsafe_destination_paths_are_refused, tests/engine/test_engine_props.py (`..`, NUL and
backslash properties), tests/engine/test_engine_cli.py::test_get_tree_refuses_to_write_outside_
its_folder, tests/cluster/test_cluster_errors.py::test_get_refuses_paths_outside_the_folder.
The process executor runs code as this user and is no sandbox: a transform can write wherever
this user can. What the engine guarantees is that only files under /pfs/out are published and
that the job folder is removed; the container executor (and the images' non-root user, see
tests/docker/) is the isolation."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from pix2pix.errors import UsageError
from pix2pix.pachyderm.engine import Engine

from tests.engine.engine_testlib import bash_spec, pfs, put
from tests.reliability.conftest import one_error_line, pix

BAD_DESTINATIONS = ["/../x", "/a/../../x", "..", "/a/..", "../../etc/passwd", "/a\\b",
                    "C:\\Windows\\x", "\\\\server\\share", "/a\x00b", "/a/./../.."]


@pytest.mark.rel("hostile")
@pytest.mark.parametrize("dest", BAD_DESTINATIONS, ids=repr)
def test_put_file_refuses_destinations_that_could_escape(tmp_path: Path, dest: str):
    state = tmp_path / "state"
    eng = Engine(state)
    eng.create_repo("r")
    first = put(eng, "r", {"/kept": "k"})
    src = tmp_path / "f.txt"
    src.write_text("payload")
    from pix2pix.cli import cli
    r = CliRunner().invoke(cli, ["put", "file", f"r@master:{dest}", "-f", str(src)],
                           env={"PIX2PIX_STATE": str(state)})
    assert r.exit_code == UsageError.exit_code, (r.output, r.exception)
    assert r.stderr.startswith("Error: ") and len(r.stderr.strip().splitlines()) == 1
    assert [c.id for c in Engine(state).list_commits("r")] == [first.id]
    assert not (tmp_path / "x").exists()


@pytest.mark.rel("hostile", 1)
def test_absolute_host_path_as_destination_stays_inside_the_repo(tmp_path: Path):
    """`r@master:/<a host path>` names a path in the repo; the host path is never written."""
    state = tmp_path / "state"
    host = tmp_path / "host" / "target.txt"
    src = tmp_path / "f.txt"
    src.write_text("payload")
    assert pix("create", "repo", "r", state=state).returncode == 0
    r = pix("put", "file", f"r@master:{host}", "-f", str(src), state=state)
    assert r.returncode == 0, r.stderr_text
    assert not host.exists() and not host.parent.exists()
    assert Engine(state).get_file("r", "master", str(host)) == b"payload"


@pytest.mark.rel("hostile", 2)
def test_put_folder_with_an_unsafe_file_name_commits_nothing(tmp_path: Path):
    """A folder holding a file whose name has a backslash: the whole `put file -r` is refused,
    so no partial commit lands (the good files are not committed either)."""
    state = tmp_path / "state"
    folder = tmp_path / "folder"
    folder.mkdir()
    for name in ("a.txt", "b.txt", "evil\\..\\..\\x"):
        (folder / name).write_text(name)
    assert pix("create", "repo", "r", state=state).returncode == 0
    r = pix("put", "file", "r@master:/in", "-r", "-f", str(folder), state=state)
    assert r.returncode == UsageError.exit_code
    one_error_line(r.stderr_text, "backslash")
    eng = Engine(state)
    assert eng.list_commits("r") == [] and eng.list_open_commits() == []
    # NUL cannot be in a host file name; in a destination it is refused before anything is read.
    r = pix("put", "file", "r@master:/in", "-f", "-", state=state, input=b"x")
    assert r.returncode == 0 and Engine(state).get_file("r", "master", "/in") == b"x"


def _host_secret(tmp_path: Path) -> Path:
    secret = tmp_path / "host_secret.txt"
    secret.write_text("HOST SECRET\n")
    return secret


# transform -> what it tries
ESCAPES = {
    "symlink_to_host_file": 'ln -s {secret} /pfs/out/leak',
    "symlink_through_pfs_dotdot": 'ln -s "/$(echo pfs)/{up}{secret}" '
                                  '/pfs/out/leak',
    "relative_symlink_up": 'ln -s "$(realpath --relative-to=/pfs/out {secret})" /pfs/out/leak',
    "symlinked_folder": 'ln -s {secret_dir} /pfs/out/leakdir',
    "hard_escape_write": 'echo outside > /pfs/out/../../escaped.txt',
}


@pytest.mark.rel("hostile")
@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_a_datum_cannot_publish_host_files_or_write_outside(tmp_path: Path, case: str):
    secret = _host_secret(tmp_path)
    state = tmp_path / "state"
    eng = Engine(state)
    eng.create_repo("in")
    before = put(eng, "in", {"/a": "1"})
    script = ESCAPES[case].format(secret=secret, secret_dir=secret.parent, up="../" * 40) + \
        "; echo fine > /pfs/out/ok"
    eng.create_pipeline(bash_spec("p", pfs("in"), script, datumTries=1))
    job = eng.list_jobs("p")[0]
    published = {}
    if job.state == "success":
        published = {f.path: eng.get_file("p", "master", f.path)
                     for f in eng.walk_files("p", "master")}
    for content in published.values():
        assert b"HOST SECRET" not in content, f"{case}: host file published"
    if job.state != "success":
        assert "outside" in job.reason or "symlink" in job.reason, job.reason
        # the output commit ends with the reason and publishes nothing
        assert eng.inspect_commit("p", job.id).error == job.reason
        assert eng.walk_files("p", job.id) == []
    # Nothing written outside the job folder, and the job folder is gone.
    assert not (state / "jobs" / f"p-{job.id}").exists()
    assert not list(state.rglob("escaped.txt"))
    assert secret.read_text() == "HOST SECRET\n"
    assert eng.get_file("in", before.id, "/a") == b"1"


@pytest.mark.rel("hostile", 2)
def test_get_file_cannot_write_outside_its_target_folder(tmp_path: Path):
    """A symlink planted in the -o folder must not redirect `get file -r` outside it; nothing
    at all is written when any target would be outside (not a partial copy)."""
    state = tmp_path / "state"
    eng = Engine(state)
    eng.create_repo("r")
    put(eng, "r", {"/a/first.txt": "1", "/link/passwd": "evil", "/z.txt": "z"})
    out = tmp_path / "out"
    outside = tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "link").symlink_to(outside, target_is_directory=True)
    r = pix("get", "file", "r@master:/", "-r", "-o", str(out), state=state)
    assert r.returncode == UsageError.exit_code
    one_error_line(r.stderr_text, "/link/passwd", "outside")
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == ["link"]  # nothing half-copied

    # A single file onto a symlink: the link is replaced, its target is untouched.
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    (out / "single").symlink_to(victim)
    r = pix("get", "file", "r@master:/z.txt", "-o", str(out / "single"), state=state)
    assert r.returncode == 0, r.stderr_text
    assert victim.read_text() == "original" and (out / "single").read_text() == "z"
    assert not (out / "single").is_symlink()


@pytest.mark.rel("hostile")
@pytest.mark.parametrize("source", ["r@master:/../x", "r@master:/a/../../../etc/passwd",
                                    "r@master:\\etc\\passwd"], ids=repr)
def test_get_file_refuses_traversal_in_the_repo_path(tmp_path: Path, source: str):
    state = tmp_path / "state"
    Engine(state).create_repo("r")
    r = pix("get", "file", source, "-o", str(tmp_path / "o"), state=state)
    assert r.returncode == UsageError.exit_code
    one_error_line(r.stderr_text)
    assert not (tmp_path / "o").exists()


@pytest.mark.rel("hostile", 1)
def test_state_env_with_dotdot_is_just_a_folder(tmp_path: Path):
    """--state is the user's own choice of folder: a relative path with .. is resolved like any
    path and everything lands under it, never beside it."""
    (tmp_path / "a").mkdir()
    state = tmp_path / "a" / ".." / "b"
    assert pix("create", "repo", "r", "--state", str(state)).returncode == 0
    assert (tmp_path / "b" / "engine.db").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    assert os.listdir(tmp_path / "a") == []


_VANDAL = r"""
import json, sys
from pathlib import Path
from pix2pix.pachyderm.engine import Engine
eng = Engine(Path(sys.argv[1]))
eng.create_repo("in")
with eng.commit("in") as c:
    c.put_file("/a", b"original")
script = ("for f in /pfs/in/*; do chmod u+w $f; echo evil > $f || true; done; "
          "cp /pfs/in/* /pfs/out/")
eng.create_pipeline({"pipeline": {"name": "vandal"}, "input": {"pfs": {"repo": "in", "glob": "/*"}},
                     "transform": {"cmd": ["bash"], "stdin": [script]}})
first = eng.list_commits("in")[0].id
print(json.dumps({"store": eng.get_file("in", first, "/a").decode(),
                  "job": eng.list_jobs("vandal")[0].state}))
"""


@pytest.mark.rel("hostile", 1)
def test_transform_of_a_non_root_user_cannot_write_through_its_inputs(tmp_path: Path):
    """As the owner of the state folder (not root), a transform may chmod its input file and
    write to it: that must not reach the blob store behind every commit holding that content.
    (tests/engine/test_engine_pipelines.py::test_transform_writing_into_its_input_cannot_
    change_the_store covers a plain write; this adds chmod, as uid 65534 via setpriv.)"""
    import json
    import shutil
    import subprocess
    import sys
    import tempfile
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run as another user")
    base = Path(tempfile.mkdtemp(prefix="pix2pix-vandal-"))
    try:
        os.chmod(base, 0o777)
        script = base / "vandal.py"
        script.write_text(_VANDAL)
        os.chmod(script, 0o644)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            sys.executable, str(script), str(base / "state")],
                           capture_output=True, text=True, cwd=base, timeout=120,
                           env=dict(os.environ, HOME=str(base)))
        if r.returncode != 0 and "Permission denied" in r.stderr and "state" not in r.stderr:
            pytest.skip(f"uid 65534 cannot run this venv: {r.stderr.strip()[-200:]}")
        assert r.returncode == 0, r.stderr[-3000:]
        out = json.loads(r.stdout.strip().splitlines()[-1])
        assert out == {"store": "original", "job": "success"}
    finally:
        shutil.rmtree(base, ignore_errors=True)
