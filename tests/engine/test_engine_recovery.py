"""A command killed (SIGKILL) in the middle of a job: the commit it made stays, the job is
marked killed, its user code is stopped, and the queued trigger runs on the next `pix2pix run`."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pix2pix.pachyderm.engine import Engine

from engine_testlib import REPO_ROOT, bash_spec, pfs


def _default_sigint() -> None:
    """Ctrl-C as a terminal delivers it. A runner may start the tests with SIGINT ignored (as a
    shell does for a background job); Python keeps an inherited SIG_IGN, so the command under
    test would never see the signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _put_during_a_job(state: Path, src: Path, *, stderr) -> tuple[subprocess.Popen, int]:
    """Start `pix2pix put file` of ``src`` into ``in`` and wait for the job's transform to start;
    returns the command's process and the transform's pid."""
    proc = subprocess.Popen([sys.executable, "-m", "pix2pix", "put", "file", "in@master:/a.txt",
                             "-f", str(src)], cwd=REPO_ROOT, env=dict(os.environ, PIX2PIX_STATE=str(state)),
                            stdout=subprocess.DEVNULL, stderr=stderr,
                            preexec_fn=_default_sigint)
    deadline = time.time() + 60
    pid_files = []
    while time.time() < deadline and not pid_files:
        pid_files = list((state / "jobs").glob("slow-*/*/child.pid")) if (state / "jobs").exists() else []
        time.sleep(0.05)
    assert pid_files, "the job never started"
    return proc, int(pid_files[0].read_text())


def test_sigkill_during_a_job_is_recovered(state: Path, tmp_path: Path):
    eng = Engine(state)
    eng.create_repo("in")
    gate = tmp_path / "gate"
    gate.write_text("hold")
    eng.create_pipeline(bash_spec("slow", pfs("in"), f'while [ -f {gate} ]; do sleep 0.1; done; '
                                                     'cp /pfs/in/* /pfs/out/'))
    src = tmp_path / "a.txt"
    src.write_text("payload")
    proc, child = _put_during_a_job(state, src, stderr=subprocess.DEVNULL)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    again = Engine(state)  # the next command
    commit = again.inspect_commit("in", "master")
    assert again.get_file("in", "master", "/a.txt") == b"payload"  # the commit itself landed
    job = again.inspect_job("slow", commit.id)
    assert job.state == "killed" and "pix2pix run" in job.reason
    for _ in range(50):  # the orphaned user code is stopped
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("orphaned transform still running")
    assert [p["commit_id"] for p in again.list_pending()] == [commit.id]
    gate.unlink()
    ran = again.run_pending()
    assert [(j.pipeline, j.id, j.state) for j in ran] == [("slow", commit.id, "success")]
    assert again.get_file("slow", "master", "/a.txt") == b"payload"
    assert again.list_pending() == []


def test_ctrl_c_during_a_job_stops_the_code_and_keeps_the_trigger(state: Path, tmp_path: Path):
    eng = Engine(state)
    eng.create_repo("in")
    eng.create_pipeline(bash_spec("slow", pfs("in"), "sleep 60"))
    src = tmp_path / "a.txt"
    src.write_text("x")
    proc, child = _put_during_a_job(state, src, stderr=subprocess.PIPE)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and b"Traceback" not in err
    try:
        os.kill(child, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive
    again = Engine(state)
    job = again.list_jobs("slow")[0]
    assert job.state == "killed"
    assert again.list_pending()  # `pix2pix run` will run it again
