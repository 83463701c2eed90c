"""`pix2pix local serve` as users meet it: a plain python-pachyderm script runs against it, and the
command itself listens on 127.0.0.1 and stops cleanly on SIGTERM/SIGINT."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import python_pachyderm

HERE = Path(__file__).resolve().parent



def _serve(port: int, tmp_path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pix2pix", "local", "serve", "--port", str(port),
                             "--state", str(tmp_path / "state")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)


def _when_up(proc: subprocess.Popen, call) -> None:
    """Retry ``call`` while the server process imports and binds (60 s at most)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            call()
            return
        except (grpc.RpcError, ConnectionError):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.2)

def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def test_user_script_runs_against_local_serve(local_server):
    port, _ = local_server
    proc = subprocess.run([sys.executable, str(HERE / "user_script.py"), str(port)],
                          capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr
    out = dict(line.split(": ", 1) for line in proc.stdout.strip().splitlines())
    assert out["files"] == "['/a.txt', '/b.txt', '/c.txt']"
    assert out["c.txt"] == "AGAIN" and out["a.txt"] == "HELLO"
    assert out["jobs"] == "['JOB_SUCCESS', 'JOB_SUCCESS']"
    assert out["job set"] == "['upper']"
    assert out["provenance"] == "['words']"
    # The second job ran only the new file's datum; the other two were skipped.
    assert out["datums"] == "['SKIPPED', 'SKIPPED', 'SUCCESS']"
    assert out["datum inputs"] == "['/a.txt', '/b.txt', '/c.txt']"
    assert out["logs ok"] == "True"
    assert out["pipeline"] == "upper"
    assert out["repos"] == "[]"
    assert out["after delete_all"] == "[] []"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_local_serve_command_serves_and_stops_on_signal(tmp_path, sig):
    port = _free_port()
    proc = _serve(port, tmp_path)
    try:
        client = python_pachyderm.Client(host="127.0.0.1", port=port)
        _when_up(proc, lambda: client.create_repo("images"))
        assert [r.repo.name for r in client.list_repo()] == ["images"]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"grpc://127.0.0.1:{port}" in err and "stopping" in err
    assert (tmp_path / "state").is_dir()


def test_local_serve_reports_a_busy_port(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "pix2pix", "local", "serve", "--port", str(port),
                               "--state", str(tmp_path / "state")],
                              capture_output=True, text=True, timeout=60, env=_env(), cwd=tmp_path)
    assert proc.returncode == 8
    assert proc.stderr.strip() == (f"Error: cannot listen on 127.0.0.1:{port} (Address already in use); "
                                   "stop what holds it or pass another --port")


def test_sigterm_during_a_job_stops_its_transform_and_records_it_killed(tmp_path):
    from pix2pix.pachyderm.engine import Engine

    port, marker = _free_port(), tmp_path / "transform.pid"
    proc = _serve(port, tmp_path)
    try:
        client = python_pachyderm.Client(host="127.0.0.1", port=port)
        _when_up(proc, lambda: client.create_repo("training"))
        code = f"import os, pathlib, time; pathlib.Path({str(marker)!r}).write_text(str(os.getpid())); time.sleep(120)"
        client.create_pipeline("sleepy", transform=python_pachyderm.service.pps_proto.Transform(
                                   cmd=["python3", "-c", code]),
                               input=python_pachyderm.service.pps_proto.Input(
                                   pfs=python_pachyderm.service.pps_proto.PFSInput(repo="training", glob="/")))
        with client.commit("training", "master") as c:
            client.put_file_bytes(c, "/a", b"a")
        deadline = time.monotonic() + 60
        while not marker.exists() or not marker.read_text():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        transform_pid = int(marker.read_text())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert not Path(f"/proc/{transform_pid}").exists() or \
        Path(f"/proc/{transform_pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    job = Engine(tmp_path / "state").list_jobs("sleepy")[0]
    assert job.id == c.id and job.state == "killed"
