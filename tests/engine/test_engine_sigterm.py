"""SIGTERM to a command that is running a job (a `timeout`, a kill, a pod stopping) stops the
job's transform instead of leaving it running, records the job killed, and exits 130."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _pix2pix(*args: str, env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pix2pix", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _alive(marker: str) -> bool:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0


def test_sigterm_during_a_job_stops_the_transform(tmp_path: Path):
    env = {**os.environ, "PIX2PIX_STATE": str(tmp_path / "state")}
    marker = f"sleep 87.{os.getpid()}"  # unique, so another test's sleep cannot match
    spec = {"pipeline": {"name": "slow"}, "input": {"pfs": {"repo": "a", "glob": "/*"}},
            "transform": {"cmd": ["bash", "-c", f"{marker}; cp -r /pfs/a/. /pfs/out/"]}}
    (tmp_path / "p.json").write_text(json.dumps(spec))
    (tmp_path / "f.txt").write_text("x")
    for args in (["create", "repo", "a"], ["create", "pipeline", "-f", str(tmp_path / "p.json")]):
        assert _pix2pix(*args, env=env).wait(60) == 0

    put = _pix2pix("put", "file", "a@master:/f.txt", "-f", str(tmp_path / "f.txt"), env=env)
    deadline = time.monotonic() + 60
    while not _alive(marker):
        assert time.monotonic() < deadline and put.poll() is None, "the transform never started"
        time.sleep(0.2)
    put.send_signal(signal.SIGTERM)
    assert put.wait(60) == 130
    assert "Traceback" not in put.stderr.read()
    time.sleep(0.5)
    assert not _alive(marker), "the transform outlived the command"

    jobs = json.loads(_pix2pix("list", "job", "-x", "--json", env=env).communicate(timeout=60)[0])
    # The pipeline's first job (no data yet) succeeded; the put's job was killed.
    assert [j["state"] for j in jobs if j["pipeline"] == "slow"] == ["killed", "success"]
    # The file itself landed: the commit finished before the job ran.
    got = _pix2pix("get", "file", "a@master:/f.txt", env=env).communicate(timeout=60)[0]
    assert got == "x"
