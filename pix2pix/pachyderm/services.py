"""Long-running pipelines on the embedded engine: spouts (code that runs on and commits to its
own output repo) and services (code that serves its inputs; see issue "serve_model"). Each runs
under a supervisor: a detached ``pix2pix local supervise PIPELINE`` process that outlives the
command that created the pipeline, as a pod outlives ``pachctl create pipeline``::

    create/start pipeline ──> ensure_running() ──spawns──> supervisor ──runs──> the code
    stop/delete pipeline  ──> stop()           ──SIGTERM─> supervisor ──stops─> the code
                              the code exits   ──────────> restarted after 1, 2, 4 ... 60 s

The code gets pachd's worker env (PPS_PIPELINE_NAME, PPS_PROJECT_NAME, PPS_SPEC_COMMIT), the
engine's state folder (PIX2PIX_STATE) and a ``pachctl`` on its PATH that is this engine's CLI,
so ``pachctl put file out@master:/x -f x`` in a spout commits here. What it prints is kept as
the pipeline's logs (``pix2pix logs -p NAME``).
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from pix2pix.pachyderm import procs
from pix2pix.pachyderm.context import Context
from pix2pix.pachyderm.executors import RunRequest, make_executor, stop
from pix2pix.pachyderm.info import PipelineInfo
from pix2pix.pachyderm.refs import split_name

SERVICE_JOB = "service"  # the job ID a long-running pipeline's log lines are kept under
POLL_S = 0.5
MAX_BACKOFF_S = 60.0
STEADY_S = 60.0  # a run this long resets the back-off


def is_long_running(p: PipelineInfo) -> bool:
    return p.parsed.long_running


def service_dir(ctx: Context, pipeline: str) -> Path:
    return ctx.state_dir / "services" / pipeline.replace("/", ".")


def shim_dir(ctx: Context) -> Path:
    """A folder with a ``pachctl`` that runs this engine's CLI on this state folder."""
    d = ctx.state_dir / "bin"
    script = d / "pachctl"
    text = f'#!/bin/sh\nexec "{sys.executable}" -m pix2pix "$@"\n'
    if not script.is_file() or script.read_text() != text:
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".pachctl.{os.getpid()}"
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, script)
    return d


def supervisor_alive(ctx: Context, pipeline: str) -> bool:
    rec = ctx.store.get_service(pipeline)
    return rec is not None and procs.process_alive(rec.pid, rec.pid_start)


def ensure_running(ctx: Context, pipeline: str) -> None:
    """Start the pipeline's supervisor unless one runs already."""
    if supervisor_alive(ctx, pipeline):
        return
    folder = service_dir(ctx, pipeline)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "supervisor.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pix2pix", "local", "supervise", pipeline,
             "--state", str(ctx.state_dir), "--executor", ctx.executor],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=folder)
    ctx.store.set_service(pipeline, pid=proc.pid, pid_start=procs.pid_start(proc.pid),
                          state="starting", started=time.time())


def stop_supervisor(ctx: Context, pipeline: str, *, timeout_s: float = 10.0) -> None:
    """Stop a pipeline's supervisor (it stops the code first) and wait for it."""
    rec = ctx.store.get_service(pipeline)
    if rec is None or not procs.process_alive(rec.pid, rec.pid_start):
        return
    try:
        os.kill(rec.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while procs.process_alive(rec.pid, rec.pid_start) and time.monotonic() < deadline:
        time.sleep(0.05)
    if procs.process_alive(rec.pid, rec.pid_start):
        os.killpg(rec.pid, signal.SIGKILL)


class _Stop(Exception):
    pass


def supervise(ctx: Context, pipeline: str) -> None:
    """The supervisor's loop (run by ``pix2pix local supervise``): keep the pipeline's code
    running while the pipeline exists and is not stopped; restart it with back-off."""
    def on_term(signum, frame):
        raise _Stop
    signal.signal(signal.SIGTERM, on_term)
    store = ctx.store
    folder = service_dir(ctx, pipeline)
    log_path = folder / "code.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    proc, started, backoff, restarts = None, 0.0, 1.0, 0
    executor = make_executor(ctx.executor)
    try:
        while (ctx.state_dir / "engine.db").exists():
            p = store.get_pipeline(pipeline)
            if p is None or p.state != "running":
                break
            if proc is not None and proc.poll() is not None:
                offset = _pump(ctx, pipeline, log_path, offset)
                ran = time.monotonic() - started
                backoff = 1.0 if ran > STEADY_S else min(backoff * 2, MAX_BACKOFF_S)
                restarts += 1
                _log(ctx, pipeline, f"the code exited with code {proc.returncode}; "
                                    f"restarting in {backoff:g} s")
                store.set_service(pipeline, state="restarting", restarts=restarts,
                                  detail=f"exit code {proc.returncode}")
                proc = None
                _sleep_watching(ctx, pipeline, backoff)
                continue
            if proc is None:
                proc = executor.start(_request(ctx, p, folder, log_path))
                started = time.monotonic()
                store.set_service(pipeline, state="running", detail="")
                _log(ctx, pipeline, f"started the code (pid {proc.pid})")
            offset = _pump(ctx, pipeline, log_path, offset)
            time.sleep(POLL_S)
    except _Stop:
        pass
    finally:
        if proc is not None:
            stop(proc, grace_s=5.0)
        _pump(ctx, pipeline, log_path, offset, final=True)
        executor.close()
        if store.get_pipeline(pipeline) is not None:
            store.set_service(pipeline, state="stopped", pid=None, pid_start=None)


def _request(ctx: Context, p: PipelineInfo, folder: Path, log_path: Path) -> RunRequest:
    spec = p.parsed
    project, name = split_name(p.name)
    t = spec.transform
    env = dict(t.env)
    env.update({"PPS_PIPELINE_NAME": name, "PPS_PROJECT_NAME": project,
                "PPS_SPEC_COMMIT": hashlib.sha256(f"{p.name}:{p.version}:{p.salt}".encode()
                                                  ).hexdigest()[:32],
                "PPS_NAMESPACE": "default", "PACH_ENGINE": "pix2pix-embedded",
                "PIX2PIX_STATE": str(ctx.state_dir),
                "PATH": os.pathsep.join([str(shim_dir(ctx)), os.path.dirname(sys.executable),
                                         os.environ.get("PATH", "")])})
    root = folder / "pfs"
    (root / "out").mkdir(parents=True, exist_ok=True)
    return RunRequest(cmd=list(t.cmd), stdin=list(t.stdin) if t.stdin else None, env=env,
                      image=t.image, pfs_root=root, work_dir=folder / "work", log_path=log_path,
                      working_dir=t.working_dir)


def _pump(ctx: Context, pipeline: str, log_path: Path, offset: int, *, final: bool = False) -> int:
    """Append the code's new complete output lines (all of it when ``final``) to the
    pipeline's logs; returns the offset read up to."""
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return offset
    end = data.rfind(b"\n") + 1
    taken = data if final or (not end and len(data) >= 1 << 16) else data[:end]
    for line in taken.decode(errors="replace").splitlines():
        ctx.store.add_job_log(pipeline, SERVICE_JOB, None, line)
    return offset + len(taken)


def _log(ctx: Context, pipeline: str, message: str) -> None:
    ctx.store.add_job_log(pipeline, SERVICE_JOB, None, f"supervisor: {message}")


def _sleep_watching(ctx: Context, pipeline: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        p = ctx.store.get_pipeline(pipeline)
        if p is None or p.state != "running":
            return
        time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))


def service_state(ctx: Context, pipeline: str) -> Optional[str]:
    """What ``list pipeline`` shows of a long-running pipeline: running, restarting, stopped."""
    rec = ctx.store.get_service(pipeline)
    if rec is None:
        return None
    if rec.state != "stopped" and not procs.process_alive(rec.pid, rec.pid_start):
        return "stopped (supervisor gone; `pix2pix start pipeline` restarts it)"
    return rec.state
