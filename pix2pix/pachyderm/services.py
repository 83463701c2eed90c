"""Long-running pipelines on the embedded engine: spouts (code that runs on and commits to its
own output repo) and services (code that serves its input, e.g. a model over HTTP). Each runs
under a supervisor: a detached ``pix2pix local supervise PIPELINE`` process that outlives the
command that created the pipeline, as a pod outlives ``pachctl create pipeline``::

    create/start pipeline ──> ensure_running() ──spawns──> supervisor ──runs──> the code
    stop/delete pipeline  ──> stop_supervisor() ─SIGTERM─> supervisor ──stops─> the code
                              the code exits   ──────────> restarted after 1, 2, 4 ... 60 s

The code gets pachd's worker env (PPS_PIPELINE_NAME, PPS_PROJECT_NAME, PPS_SPEC_COMMIT), the
engine's state folder (PIX2PIX_STATE) and a ``pachctl`` on its PATH that is this engine's CLI,
so ``pachctl put file out@master:/x -f x`` in a spout commits here. What it prints is kept as
the pipeline's logs (``pix2pix logs -p NAME``).

A service, as in pachd (``worker/pipeline/service``), has a job per input commit, and serves the
single datum of the newest one whose inputs are finished; an older job still waiting is
superseded. It is reached as a Kubernetes NodePort Service reaches the pod: the supervisor
listens on ``127.0.0.1:externalPort`` and forwards to the code on ``internalPort``
(:mod:`forward`). A new input commit is brought in one of two ways:

    restart (pachd's way)  hold new connections, SIGTERM the code (it finishes what it has in
                           flight), place the new datum in /pfs, start the code, forward the
                           held connections once it accepts
    reload signal          the spec's ``metadata.annotations["pix2pix/reload-signal"]`` names
                           a signal (``SIGHUP``): place the new datum in /pfs in place (and the
                           new /pfs/.env), then send it; the code swaps its model itself while
                           it keeps serving (``pix2pix serve`` does)

Unlike pachd, which keeps a service's job running (its output commit open) until the next one
replaces it, a service job here succeeds once its datum is served, so waiting for a commit set
that reaches a service returns.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from pix2pix.pachyderm import procs
from pix2pix.pachyderm.context import Context
from pix2pix.pachyderm.info import PipelineInfo, ServiceState
from pix2pix.pachyderm.supervised import STOP_TIMEOUT_S, service_dir
from pix2pix.pachyderm.supervised import ServiceRunner, SpoutRunner


def is_long_running(p: PipelineInfo) -> bool:
    return p.parsed.long_running


def supervisor_alive(ctx: Context, pipeline: str) -> bool:
    rec = ctx.store.get_service(pipeline)
    return rec is not None and procs.process_alive(rec.pid, rec.pid_start)


def ensure_running(ctx: Context, pipeline: str, *, wait_s: float = 30.0) -> None:
    """Start the pipeline's supervisor unless one runs already; for a service, return once it
    listens on its externalPort (or says why it cannot), at most ``wait_s`` later."""
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
                          state=ServiceState.STARTING.value, started=time.time(), url="",
                          detail="")
    p = ctx.store.get_pipeline(pipeline)
    if p is None or p.parsed.service is None:
        return
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and proc.poll() is None:
        rec = ctx.store.get_service(pipeline)
        if rec is not None and (rec.url or rec.state == ServiceState.FAILED.value):
            return
        time.sleep(0.05)


def stop_supervisor(ctx: Context, pipeline: str, *, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop a pipeline's supervisor (it stops the code first) and wait for it; if it does not
    end in time, kill it and the code it ran."""
    rec = ctx.store.get_service(pipeline)
    if rec is None or not procs.process_alive(rec.pid, rec.pid_start):
        _kill_orphan(ctx, pipeline)
        return
    try:
        os.kill(rec.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while procs.process_alive(rec.pid, rec.pid_start) and time.monotonic() < deadline:
        time.sleep(0.05)
    if procs.process_alive(rec.pid, rec.pid_start):
        try:
            os.killpg(rec.pid, signal.SIGKILL)
        except OSError:
            pass
        _kill_orphan(ctx, pipeline)


def _kill_orphan(ctx: Context, pipeline: str) -> None:
    """The code a killed supervisor left running (its own session: not in the supervisor's
    process group), found through the pid file the supervisor wrote."""
    pid_file = service_dir(ctx, pipeline) / "code.pid"
    try:
        pid, start = pid_file.read_text().split()
    except (OSError, ValueError):
        return
    if procs.process_alive(int(pid), start):
        try:
            os.killpg(int(pid), signal.SIGKILL)
        except OSError:
            pass
    pid_file.unlink(missing_ok=True)


class _Stop(Exception):
    pass


def supervise(ctx: Context, pipeline: str) -> None:
    """The supervisor's loop (run by ``pix2pix local supervise``): keep the pipeline's code
    running while the pipeline exists and is not stopped; restart it with back-off."""
    def on_term(signum, frame):
        raise _Stop
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    p = ctx.store.get_pipeline(pipeline)
    if p is None:
        return
    runner = ServiceRunner(ctx, p) if p.parsed.service is not None else SpoutRunner(ctx, p)
    try:
        runner.run()
    except _Stop:
        pass
    finally:
        runner.close()
        rec = ctx.store.get_service(pipeline)
        if ctx.store.get_pipeline(pipeline) is not None and rec is not None:
            failed = rec.state == ServiceState.FAILED.value  # keep saying why it cannot run
            ctx.store.set_service(pipeline, pid=None, pid_start=None,
                                  state=rec.state if failed else ServiceState.STOPPED.value)
