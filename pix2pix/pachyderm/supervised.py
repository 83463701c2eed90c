"""The supervisor's side of a long-running pipeline (see :mod:`services` for the whole story):
the code of a spout or a service, kept running, restarted with back-off, and for a service the
forwarder on externalPort and the swap onto each new input commit.

    SpoutRunner     start the code; restart it when it exits
    ServiceRunner   take the newest job, place its single datum in /pfs, start / signal / restart
               the code on it, forward 127.0.0.1:externalPort to it
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from pix2pix.errors import Pix2PixError
from pix2pix.pachyderm import datums as dm
from pix2pix.pachyderm import procs
from pix2pix.pachyderm.context import Context
from pix2pix.pachyderm import jobs
from pix2pix.pachyderm.driver import datum_env, spec_commit
from pix2pix.pachyderm.executors import RunRequest, make_executor, stop
from pix2pix.pachyderm.forward import Forwarder, http_ready, port_accepts
from pix2pix.pachyderm.info import (SERVICE_JOB, DatumState, JobInfo, JobState, PipelineInfo,
                                    ServiceState)
from pix2pix.pachyderm.refs import split_name
from pix2pix.pachyderm.store import DatumRecord, Owner
from pix2pix.pachyderm.workspace import Workspace

RELOAD_ANNOTATION = "pix2pix/reload-signal"
USER_CONTAINER = "/containers/0"  # pachd's worker pod: the user code's container comes first
POLL_S = 0.5
MAX_BACKOFF_S = 60.0
STEADY_S = 60.0  # a run this long resets the back-off
HOLD_S = 120.0  # how long a client connection may wait for the code
READY_S = 600.0  # how long a started service may take to accept on its internalPort
SETTLE_S = 0.3  # after holding new connections, before the old code is told to stop
DRAIN_S = 35.0  # what the code gets to finish its requests after SIGTERM (pix2pix serve: 30)
STOP_TIMEOUT_S = DRAIN_S + 15.0  # what stop_supervisor waits before it kills

def service_dir(ctx: Context, pipeline: str) -> Path:
    return ctx.state_dir / "services" / pipeline.replace("/", ".")


def ports(p: PipelineInfo) -> tuple[int, int]:
    """A service's (internalPort, externalPort), as checked at create time."""
    svc = p.parsed.service or {}
    return int(svc["internalPort"]), int(svc["externalPort"])


def service_url(p: PipelineInfo) -> str:
    return f"http://127.0.0.1:{ports(p)[1]}/"


def _annotation(p: PipelineInfo, key: str) -> Optional[str]:
    value = ((p.spec.get("metadata") or {}).get("annotations") or {}).get(key)
    return str(value) if value else None


def ready_path(p: PipelineInfo) -> Optional[str]:
    """The HTTP path whose 200 says the code serves (None: accepting a connection says it):
    the ``httpGet`` readiness probe a ``podPatch`` adds to the user container, the one
    declaration a cluster (Kubernetes) and the embedded engine both read."""
    try:
        ops = json.loads(p.spec.get("podPatch") or "[]")
    except ValueError:
        return None
    for op in ops if isinstance(ops, list) else []:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace"):
            continue
        value = op.get("value")
        if op.get("path") == f"{USER_CONTAINER}/readinessProbe" and isinstance(value, dict):
            path = (value.get("httpGet") or {}).get("path")
            if path:
                return "/" + str(path).lstrip("/")
    return None


def reload_signal(p: PipelineInfo) -> Optional[signal.Signals]:
    """The signal the spec says its code reloads on (None: restart it instead)."""
    name = _annotation(p, RELOAD_ANNOTATION)
    if not name:
        return None
    name = str(name).upper()
    return signal.Signals[name if name.startswith("SIG") else "SIG" + name]


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


class Supervised:
    """What spouts and services share: the code's process, its log, its restarts."""

    def __init__(self, ctx: Context, p: PipelineInfo) -> None:
        self.ctx, self.store, self.name = ctx, ctx.store, p.name
        self.folder = service_dir(ctx, p.name)
        self.log_path = self.folder / "code.log"
        self.offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.executor = make_executor(ctx.executor)
        self.proc: Optional[subprocess.Popen] = None
        self.started = 0.0
        self.backoff, self.restarts = 1.0, 0
        self.ws: Optional[Workspace] = None

    def pipeline(self) -> Optional[PipelineInfo]:
        """The pipeline while it exists and runs (None: the supervisor's work is over)."""
        if not (self.ctx.state_dir / "engine.db").exists():
            return None
        p = self.store.get_pipeline(self.name)
        return p if p is not None and p.state == "running" else None

    def start_code(self, req: RunRequest) -> None:
        self.proc = self.executor.start(req) if self.ws is None else self.ws.start(req)
        self.started = time.monotonic()
        (self.folder / "code.pid").write_text(f"{self.proc.pid} {procs.pid_start(self.proc.pid)}")
        self.log(f"started the code (pid {self.proc.pid})")

    def stop_code(self, grace_s: float = DRAIN_S) -> None:
        if self.proc is not None:
            stop(self.proc, grace_s=grace_s)
            self.proc = None
            (self.folder / "code.pid").unlink(missing_ok=True)
        self.pump()

    def exited(self) -> Optional[int]:
        """The code's exit code once it has exited by itself (None while it runs or before it
        started)."""
        return None if self.proc is None else self.proc.poll()

    def after_exit(self, code: int) -> None:
        """Record an exit and wait out the back-off (it ends early if the pipeline stops)."""
        self.pump()
        ran = time.monotonic() - self.started
        self.backoff = 1.0 if ran > STEADY_S else min(self.backoff * 2, MAX_BACKOFF_S)
        self.restarts += 1
        self.proc = None
        self.log(f"the code exited with code {code}; restarting in {self.backoff:g} s")
        self.store.set_service(self.name, state=ServiceState.RESTARTING.value,
                               restarts=self.restarts, detail=f"exit code {code}")
        deadline = time.monotonic() + self.backoff
        while time.monotonic() < deadline and self.pipeline() is not None:
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    def base_env(self, p: PipelineInfo) -> dict[str, str]:
        """The engine's additions to the code's env: its state folder and a pachctl."""
        return {"PIX2PIX_STATE": str(self.ctx.state_dir),
                "PATH": os.pathsep.join([str(shim_dir(self.ctx)), os.path.dirname(sys.executable),
                                         os.environ.get("PATH", "")])}

    def pump(self, *, final: bool = False) -> None:
        """Append the code's new complete output lines (all of it when ``final``) to the
        pipeline's logs."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        taken = data if final or (not end and len(data) >= 1 << 16) else data[:end]
        text = taken.decode(errors="replace")
        if self.ws is not None:
            text = self.ws.as_pfs(text)
        for line in text.splitlines():
            self.store.add_job_log(self.name, SERVICE_JOB, None, line)
        self.offset += len(taken)

    def log(self, message: str) -> None:
        self.store.add_job_log(self.name, SERVICE_JOB, None, f"supervisor: {message}")

    def close(self) -> None:
        self.stop_code()
        self.pump(final=True)
        self.executor.close()


class SpoutRunner(Supervised):
    """A spout: its code runs on, and commits to its output repo itself."""

    def run(self) -> None:
        while (p := self.pipeline()) is not None:
            code = self.exited()
            if code is not None:
                self.after_exit(code)
                continue
            if self.proc is None:
                self.start_code(self.request(p))
                self.store.set_service(self.name, state=ServiceState.RUNNING.value, detail="")
            self.pump()
            time.sleep(POLL_S)

    def request(self, p: PipelineInfo) -> RunRequest:
        spec = p.parsed
        project, name = split_name(p.name)
        t = spec.transform
        env = dict(t.env)
        env.update({"PPS_PIPELINE_NAME": name, "PPS_PROJECT_NAME": project,
                    "PPS_SPEC_COMMIT": spec_commit(p.name, p.version, p.salt),
                    "PPS_NAMESPACE": "default", "PACH_ENGINE": "pix2pix-embedded",
                    **self.base_env(p)})
        root = self.folder / "pfs"
        (root / "out").mkdir(parents=True, exist_ok=True)
        return RunRequest(cmd=list(t.cmd), stdin=list(t.stdin) if t.stdin else None, env=env,
                          image=t.image, pfs_root=root, work_dir=self.folder / "work",
                          log_path=self.log_path, working_dir=t.working_dir)


class ServiceRunner(Supervised):
    """A service: the newest job's single datum in /pfs, the code on internalPort, the
    forwarder on externalPort."""

    def __init__(self, ctx: Context, p: PipelineInfo) -> None:
        super().__init__(ctx, p)
        self.internal, self.external = ports(p)
        self.signal = reload_signal(p)
        self.ready_path = ready_path(p)
        self.forwarder = Forwarder(self.external, self.internal, hold_s=HOLD_S,
                                   on_event=self.log)
        self.serving: Optional[tuple[JobInfo, dm.Datum, dict[str, str]]] = None
        self.ready = False  # the code has accepted a connection since it started

    def run(self) -> None:
        p = self.pipeline()
        if p is None:
            return
        try:
            self.forwarder.start()
        except OSError as e:
            reason = (f"cannot listen on 127.0.0.1:{self.external} (service.externalPort): "
                      f"{e.strerror or e}; free the port or change externalPort")
            self.log(reason)
            self.store.set_service(self.name, state=ServiceState.FAILED.value, detail=reason)
            return
        shutil.rmtree(self.folder / "ws", ignore_errors=True)
        self.ws = Workspace(self.folder / "ws", 0, self.executor, self.ctx.blobs)
        self.log(f"listening on {service_url(p)}, forwarding to 127.0.0.1:{self.internal}")
        self.store.set_service(self.name, state=ServiceState.WAITING.value, url=service_url(p),
                               detail="nothing to serve yet")
        if self.next_job(p) is None:
            self.resume(p)
        while (p := self.pipeline()) is not None:
            job = self.next_job(p)
            if job is not None:
                self.take(p, job)
                continue
            code = self.exited()
            if code is not None:
                self.ready = False
                self.after_exit(code)
                if self.serving is not None and self.pipeline() is not None:
                    self.start_serving(p)
                continue
            if self.proc is not None and not self.ready:
                self.wait_ready()
            self.pump()
            time.sleep(POLL_S)

    def close(self) -> None:
        self.forwarder.close()
        super().close()

    # -- jobs --------------------------------------------------------------------------------
    def next_job(self, p: PipelineInfo) -> Optional[JobInfo]:
        """The newest queued job whose input commits are finished; older queued ones are
        superseded (pachd's service loop cancels a job once a newer one is ready)."""
        store = self.store
        queued = [store.get_job(self.name, t.commit_id) for t in store.list_pending()
                  if t.kind == "job" and t.pipeline == self.name]
        queued = [j for j in queued if j is not None]
        ready = [j for j in queued if all(
            (c := store.get_commit(i.repo, i.commit)) is None or c.finished is not None
            for i in j.inputs)]
        if not ready:
            return None
        newest = ready[-1]
        for old in queued[:queued.index(newest)]:
            self.finish_job(old.id, reason=f"replaced by job {newest.id} before it served")
        return newest

    def resume(self, p: PipelineInfo) -> None:
        """Started again (start pipeline, or a supervisor that was stopped or killed) with no job
        queued: serve what the last job that served did, as a restarted pachd service serves
        its input's newest datum. The job keeps its state; nothing new is recorded."""
        last = next((j for j in self.store.list_jobs(self.name)
                     if j.state == JobState.SUCCESS and j.total == 1), None)
        if last is None:
            return
        spec = (self.store.pipeline_version(self.name, last.spec_version) or p).parsed
        try:
            datums = dm.compute(spec.input, jobs.input_commits(self.ctx, spec, last),
                                salt=last.salt)
        except Pix2PixError as e:
            self.log(f"cannot serve job {last.id} again: {e}")
            return
        if len(datums) != 1:
            return
        d = datums[0]
        self.serving = (last, d, self.served_env(p, spec, last, d))
        self.start_serving(p)
        self.announce(last, d, again=True)

    def served_env(self, p: PipelineInfo, spec, job: JobInfo, d) -> dict[str, str]:
        """The environment the service's code runs with for ``job``'s datum ``d``."""
        env = datum_env(spec, name=self.name, job_id=job.id, version=job.spec_version,
                        salt=job.salt, d=d)
        env.update(self.base_env(p))
        return env

    def take(self, p: PipelineInfo, job: JobInfo) -> None:
        """Serve ``job``'s datum: check its inputs, place it, swap the code onto it."""
        store = self.store
        spec = (store.pipeline_version(self.name, job.spec_version) or p).parsed
        store.start_job(self.name, job.id, owner=Owner(*procs.me()))
        failed = sorted({i.repo for i in job.inputs
                         if (c := store.get_commit(i.repo, i.commit)) is None or c.error})
        if failed:
            jobs.end_job(self.ctx, self.name, job.id, JobState.UNRUNNABLE,
                         "unrunnable because the following upstream pipelines failed: "
                         + ", ".join(failed))
            self.log(f"job {job.id} is unrunnable; still serving what it served")
            return
        try:
            commits = jobs.input_commits(self.ctx, spec, job)
            datums = dm.compute(spec.input, commits, salt=job.salt)
        except Pix2PixError as e:
            jobs.end_job(self.ctx, self.name, job.id, JobState.FAILURE, str(e))
            return
        if len(datums) > 1:
            reason = (f"services must have a single datum; the input has {len(datums)} (give "
                      "each pfs input the glob \"/\")")
            jobs.end_job(self.ctx, self.name, job.id, JobState.FAILURE, reason)
            self.log(f"job {job.id} failed: {reason}; still serving what it served")
            return
        if not datums:
            self.log(f"job {job.id}: the input is empty; nothing to serve")
            self.stop_code()
            self.serving = None
            self.store.set_service(self.name, state=ServiceState.WAITING.value, serving="",
                                   detail="nothing to serve: the input is empty")
            self.finish_job(job.id, reason="", total=0)
            return
        d = datums[0]
        previous, self.serving = self.serving, (job, d, self.served_env(p, spec, job, d))
        self.store.set_service(self.name, state=ServiceState.SWAPPING.value,
                               detail=f"bringing in job {job.id}")
        self.swap(p, had=previous is not None)
        self.finish_job(job.id, reason="", total=1, datum=d)
        self.announce(job, d)

    def announce(self, job: JobInfo, d: dm.Datum, *, again: bool = False) -> None:
        """Record and log what the code now serves."""
        self.store.set_service(self.name, state=ServiceState.RUNNING.value, detail="",
                               serving=json.dumps({"job": job.id, "inputs": [
                                   {"repo": m.repo, "branch": m.branch, "commit": m.commit}
                                   for m in d.matches]}))
        self.log(f"serving job {job.id}{' again' if again else ''}: "
                 + ", ".join(f"{m.repo}@{m.commit}" for m in d.matches))

    def finish_job(self, job_id: str, *, reason: str, total: int = 0,
                   datum: Optional[dm.Datum] = None) -> None:
        """A job that served (or never needed to): success, its output commit finished empty."""
        store = self.store
        with store.tx():
            out = store.get_commit(self.name, job_id)
            if out is not None and out.finished is None:
                store.finish_commit(self.name, job_id, tree={})
            if datum is not None:
                store.record_datum(self.name, job_id, DatumRecord(
                    id=datum.id, state=DatumState.SUCCESS, hash=datum.hash,
                    inputs=[m.as_input() for m in datum.matches], outputs=[],
                    started=time.time()), seq=1, count=1)
            store.update_job(self.name, job_id, state=JobState.SUCCESS, finished=time.time(),
                             reason=reason, total=total, output_commit=job_id)
            store.add_job_log(self.name, job_id, None,
                              f"job {job_id} success: " + (reason or f"serving {total} datum"))
            store.dequeue_job(self.name, job_id)

    # -- the code --------------------------------------------------------------------------------
    def swap(self, p: PipelineInfo, *, had: bool) -> None:
        """Bring the code onto ``self.serving``: start it, signal it, or restart it."""
        if self.proc is None or self.exited() is not None:
            self.stop_code(grace_s=0)
            self.start_serving(p)
            return
        if self.signal is not None and self.ready and had:
            _, d, env = self.serving
            self.ws.prepare(d, env, p.parsed.input.names)
            os.kill(self.proc.pid, self.signal)
            self.log(f"sent {self.signal.name} to the code (pid {self.proc.pid}) to reload")
            return
        self.forwarder.hold()
        try:
            time.sleep(SETTLE_S)  # connections already forwarded reach the code first
            self.log("restarting the code on the new input; new connections wait")
            self.stop_code()
            self.start_serving(p)
        finally:
            self.forwarder.release()

    def start_serving(self, p: PipelineInfo) -> None:
        """Place the served datum and start the code, waiting until it accepts."""
        _, d, env = self.serving
        self.ws.prepare(d, env, p.parsed.input.names)
        self.start_code(self.ws.request(p.parsed.transform, env, self.log_path))
        self.ready = False
        self.wait_ready()

    def wait_ready(self, timeout_s: float = READY_S) -> None:
        """Until the code accepts on internalPort, exits, or the pipeline stops."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.exited() is None:
            if http_ready(self.internal, self.ready_path) if self.ready_path else \
                    port_accepts(self.internal):
                self.ready = True
                self.store.set_service(self.name, state=ServiceState.RUNNING.value, detail="")
                self.log(f"the code accepts on 127.0.0.1:{self.internal}"
                         + (f" and {self.ready_path} answers 200" if self.ready_path else ""))
                return
            self.pump()
            if self.pipeline() is None:
                return
            time.sleep(0.1)
