"""The container executor: the command lines it builds (always), and a real run in the project's
CPU image when buildah (or docker/podman) and the image are present (marked `container`)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pix2pix.pachyderm import executors
from pix2pix.pachyderm.engine import Engine
from pix2pix.pachyderm.executors import ContainerExecutor, RunRequest

from engine_testlib import bash_spec, pfs, put

IMAGE = "pix2pix-pachyderm:0.1.0-cpu"


class _FakePopen:
    calls: list = []

    def __init__(self, argv, **kw):
        _FakePopen.calls.append(argv)
        self.stdin = None
        self.pid = 0


def _request(tmp_path: Path) -> RunRequest:
    return RunRequest(cmd=["bash"], stdin=["echo hi > /pfs/out/x"], env={"PACH_DATUM_ID": "d1"},
                      image="img:1", pfs_root=tmp_path, work_dir=tmp_path / "w",
                      log_path=tmp_path / "log")


def test_docker_command_line(tmp_path: Path, monkeypatch):
    _FakePopen.calls = []
    monkeypatch.setattr(executors.subprocess, "Popen", _FakePopen)
    ContainerExecutor(runtime="docker").start(_request(tmp_path))
    assert _FakePopen.calls[0] == ["docker", "run", "--rm", "-i", "--network", "host",
                                   "-v", f"{tmp_path.resolve()}:/pfs", "-e", "PACH_DATUM_ID=d1",
                                   "img:1", "bash"]


def test_buildah_command_line(tmp_path: Path, monkeypatch):
    _FakePopen.calls = []
    ran = []

    def fake_run(argv, **kw):
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout="working-container\n", stderr="")

    monkeypatch.setattr(executors.subprocess, "Popen", _FakePopen)
    monkeypatch.setattr(executors.subprocess, "run", fake_run)
    ex = ContainerExecutor(runtime="buildah")
    ex.start(_request(tmp_path))
    assert ran[0] == ["buildah", "from", "img:1"]
    assert ran[1] == ["buildah", "config", "--env", "PACH_DATUM_ID=d1", "working-container"]
    assert _FakePopen.calls[0] == ["buildah", "run", "--isolation", "chroot", "-v",
                                   f"{tmp_path.resolve()}:/pfs", "working-container", "--", "bash"]
    ex.close()
    assert ran[-1] == ["buildah", "rm", "working-container"]


def _image_present() -> bool:
    for tool in ("buildah", "podman", "docker"):
        if shutil.which(tool):
            r = subprocess.run([tool, "images", "-q", IMAGE], capture_output=True, text=True)
            if r.returncode == 0 and r.stdout.strip():
                return True
    return False


@pytest.mark.container
def test_bash_transform_runs_in_the_image(tmp_path: Path):
    if not _image_present():
        pytest.skip(f"no container tool with image {IMAGE} here")
    eng = Engine(tmp_path / "s", executor="container")
    eng.create_repo("in")
    put(eng, "in", {"/a": "abc"})
    spec = bash_spec("p", pfs("in"), "tr a-z A-Z < /pfs/in/a > /pfs/out/a; echo $PACH_DATUM_ID > /pfs/out/id")
    spec["transform"]["image"] = IMAGE
    eng.create_pipeline(spec)
    job = eng.list_jobs("p")[0]
    assert job.state == "success", job.reason
    assert eng.get_file("p", "master", "/a") == b"ABC"


@pytest.mark.container
def test_datum_batching_in_the_image_reads_each_datums_env(tmp_path: Path):
    """In a container /pfs/.env is where python_pachyderm's batch_datum loads each datum's env."""
    if not _image_present():
        pytest.skip(f"no container tool with image {IMAGE} here")
    eng = Engine(tmp_path / "s", executor="container")
    eng.create_repo("in")
    put(eng, "in", {"/a": "1", "/b": "2"})
    code = ("import os\nfrom python_pachyderm import batch_all_datums\n@batch_all_datums\n"
            "def f():\n    for n in os.listdir('/pfs/in'):\n"
            "        open('/pfs/out/' + n, 'w').write(os.environ['PACH_DATUM_ID'])\nf()\n")
    eng.create_pipeline({"pipeline": {"name": "p"}, "input": pfs("in"), "datumTries": 1,
                         "transform": {"image": IMAGE, "cmd": ["python3", "-c", code],
                                       "datumBatching": True}})
    job = eng.list_jobs("p")[0]
    assert job.state == "success", job.reason
    for d in eng.list_datums("p", job.id):
        assert eng.get_file("p", "master", d.inputs[0].files[0]).decode() == d.id


def test_no_container_tool_fails_the_job_with_a_clear_reason(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PIX2PIX_CONTAINER_RUNTIME", "no-such-tool")
    eng = Engine(tmp_path / "s", executor="container")
    eng.create_repo("in")
    put(eng, "in", {"/a": "x"})
    eng.create_pipeline(bash_spec("p", pfs("in"), "true"))
    job = eng.list_jobs("p")[0]
    assert job.state == "failure"
    assert job.reason.startswith("--executor container needs docker, podman or buildah")
