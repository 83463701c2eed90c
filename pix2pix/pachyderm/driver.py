"""The datum driver of one job (pachd's ``worker/pipeline/transform``): which datums are new,
and running each new one in a worker's workspace with the spec's tries, timeouts and errCmd,
recording every datum's outcome in the store as it ends.

    plan()                 datums of the job; unchanged ones (same id and hash as in the last
                           successful job) are recorded ``skipped`` with their old outputs
    run_each(todo)         one datum at a time, or on parallelismSpec workers (threads)
    BatchingRun(driver)    the same datums over the worker's NextDatum call (see batching.py)

It receives the store and the blob store; what the job then publishes is :mod:`jobs`'s business.
"""
from __future__ import annotations

import errno
import hashlib
import os
import queue
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from pix2pix.errors import JobError, StoreFullError
from pix2pix.pachyderm import datums as dm
from pix2pix.pachyderm.blobs import BlobStore
from pix2pix.pachyderm.executors import make_executor, stop, wait
from pix2pix.pachyderm.info import DatumState, JobState
from pix2pix.pachyderm.spec import PipelineSpec
from pix2pix.pachyderm.store import DatumRecord, Store
from pix2pix.pachyderm.workspace import Workspace

MAX_WORKERS = 8  # a small local pool: parallelismSpec.constant workers, at most one per CPU
# Less free space than this under the job folder when a datum's code fails: its failure is put
# down to the full disk (the code's own log says "No space left on device" somewhere in it).
FULL_DISK_BYTES = 1 << 20


def datum_env(spec: PipelineSpec, *, name: str, job_id: str, version: int, salt: str,
              d: dm.Datum) -> dict[str, str]:
    """Pachyderm's worker env for one datum of a job (paths as /pfs/...): ``transform.env``,
    the job's and pipeline's IDs, and per input ``<name>`` (its path) and ``<name>_COMMIT``,
    as pachd's driver.UserCodeEnv sets them."""
    env = dict(spec.transform.env)
    env.update({
        "PACH_JOB_ID": job_id, "PACH_DATUM_ID": d.id, "PACH_OUTPUT_COMMIT_ID": job_id,
        "PPS_PIPELINE_NAME": name, "PPS_PROJECT_NAME": spec.project,
        # Pachyderm ties it to the pipeline version: same version, same spec commit.
        "PPS_SPEC_COMMIT": spec_commit(name, version, salt),
        "PPS_NAMESPACE": "default",
        "PPS_POD_NAME": f"pipeline-{name}-v{version}-local", "PPS_WORKER_IP": "127.0.0.1",
        "PACH_ENGINE": "pix2pix-embedded",
    })
    for m in d.matches:
        env[m.name] = "/pfs/" + m.name + ("" if m.glob_path == "/" else m.glob_path)
        env[f"{m.name}_COMMIT"] = m.commit
    env.update(d.extra_env)
    return env


def said(log_text: str) -> str:
    """The code's own last ``Error:`` line (as pix2pix's commands print one), to go in the
    datum's reason: "exit code 3: Error: /pfs/in/a.png: empty file" says what went wrong."""
    for line in reversed(log_text.splitlines()[-50:]):
        if line.startswith("Error:"):
            return ": " + line[:300]
    return ""


def spec_commit(name: str, version: int, salt: str) -> str:
    """PPS_SPEC_COMMIT: one per pipeline version, as pachd's spec commits are."""
    return hashlib.sha256(f"{name}:{version}:{salt}".encode()).hexdigest()[:32]


class Driver:
    """The running state of one job: its datums, workspaces and executor."""

    def __init__(self, store: Store, blobs: BlobStore, *, executor: str, job_dir: Path,
                 pipeline: str, job_id: str, spec: PipelineSpec, version: int, salt: str,
                 commits: dict[tuple[str, str], dm.InputCommit]):
        self.store, self.blobs, self.executor_name = store, blobs, executor
        self.dir, self.name, self.id = job_dir, pipeline, job_id
        self.spec, self.version, self.salt, self.commits = spec, version, salt, commits
        self.transform = spec.transform
        self.tries = spec.datum_tries
        self.started = time.monotonic()
        self.workspaces: list[Workspace] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self.outputs: dict[str, list[tuple[str, str, int]]] = {}  # datum id -> outputs
        self.failed: list[tuple[str, str]] = []  # (datum id, reason)
        self.counts = {s: 0 for s in DatumState}
        self.seq = 0

    # -- the job ---------------------------------------------------------------------------------
    def plan(self) -> list[dm.Datum]:
        """Every datum of the job; unchanged ones are recorded skipped, the rest returned."""
        datums = dm.compute(self.spec.input, self.commits, salt=self.salt)
        self.blobs.pin()  # skipped datums re-reference old outputs: no collection meanwhile
        prev = {} if self.spec.every_job else self.store.previous_datums(self.name, self.id)
        todo = []
        for d in datums:
            old = prev.get(d.id)
            if old and old[0] == d.hash:
                outs = self.store.datum_outputs(self.name, old[1], d.id)
                self.record(d, DatumState.SKIPPED, outs)
            else:
                todo.append(d)
        self.store.update_job(self.name, self.id, total=len(datums))
        return todo

    def open_workspaces(self, n: int) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        for i in range(n):
            self.workspaces.append(Workspace(self.dir, i, make_executor(self.executor_name),
                                             self.blobs))

    @property
    def parallelism(self) -> int:
        return 1 if self.transform.datum_batching else \
            max(1, min(self.spec.parallelism, os.cpu_count() or 1, MAX_WORKERS))

    def run_each(self, todo: list[dm.Datum]) -> None:
        """Run the datums one by one, or on ``parallelism`` workers with their own /pfs."""
        self.open_workspaces(min(self.parallelism, len(todo)))
        if len(self.workspaces) == 1:
            for d in todo:
                self.run_one(d)
            return
        free: "queue.Queue[Workspace]" = queue.Queue()
        for ws in self.workspaces:
            free.put(ws)

        def work(d: dm.Datum) -> None:
            ws = free.get()
            self._local.ws = ws
            try:
                self.run_one(d)
            finally:
                self._local.ws = None
                free.put(ws)

        with ThreadPoolExecutor(max_workers=len(self.workspaces)) as pool:
            for f in [pool.submit(work, d) for d in todo]:
                f.result()

    def check_failures(self) -> None:
        """Raises JobError naming the first failed datum, if any failed."""
        if self.failed:
            d, reason = self.failed[0]
            more = f" (and {len(self.failed) - 1} more datum(s))" if len(self.failed) > 1 else ""
            raise JobError(f"datum {d[:12]} failed: {reason}{more}")

    @property
    def ws(self) -> Workspace:
        """The workspace of the current thread (the only one outside a worker pool)."""
        return getattr(self._local, "ws", None) or self.workspaces[0]

    # -- one datum -------------------------------------------------------------------------------
    def env(self, d: dm.Datum) -> dict[str, str]:
        """Pachyderm's worker env for one datum (paths as /pfs/...)."""
        return datum_env(self.spec, name=self.name, job_id=self.id, version=self.version,
                         salt=self.salt, d=d)

    def prepare(self, d: dm.Datum) -> dict[str, str]:
        """Place ``d`` in the current workspace; returns its env."""
        env = self.env(d)
        self.ws.prepare(d, env, self.spec.input.names)
        return env

    def check_stopped(self) -> None:
        """Raises JobError once the job was stopped (StopJob) from elsewhere."""
        job = self.store.get_job(self.name, self.id)
        if job is None or (job.state == JobState.KILLED and not self.store.job_queued(self.name, self.id)):
            raise JobError("the job was stopped")

    def run_one(self, d: dm.Datum) -> None:
        self.check_stopped()
        log_text, reason, started = "", "", time.time()
        accept = {0, *self.transform.accept_return_code}
        for attempt in range(1, self.tries + 1):
            try:
                env = self.prepare(d)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                self.fail_datum(d, "disk full in the job's scratch folder while placing its "
                                "inputs; free space under the state folder and commit again",
                                log_text, attempt, started)
                return
            log = self.ws.dir / f"log-{d.id[:12]}-{attempt}"
            timeout = self.datum_time_left()
            rc, timed_out = wait(self.ws.start(self.ws.request(self.transform, env, log)), timeout)
            log_text += (f"--- try {attempt} of {self.tries} ---\n" if attempt > 1 else "") + \
                self.ws.read_log(log)
            if rc in accept and not timed_out:
                self.succeed(d, log_text, attempt, started)
                return
            reason = (f"timed out after {timeout:g}s (datumTimeout/jobTimeout)" if timed_out
                      else f"exit code {rc}" + said(log_text))
            if self.ws.disk_free() < FULL_DISK_BYTES:
                reason += " (the disk under the state folder was full: /pfs/out and scratch " \
                          "share it)"
            self.job_time_left()  # a job past its jobTimeout stops retrying
        if self.transform.err_cmd and self.recover(d, reason, log_text, started):
            return
        self.fail_datum(d, reason, log_text, self.tries, started)

    def succeed(self, d: dm.Datum, log_text: str, tries: int, started: float) -> None:
        """Record a datum whose code succeeded, with the outputs it left in /pfs/out."""
        try:
            outs = self.ws.collect()
        except JobError as e:  # an unsafe output: another try would make it again
            self.fail_datum(d, str(e), log_text, tries, started)
            return
        except StoreFullError as e:
            self.fail_datum(d, f"disk full: its output in /pfs/out did not fit in the store "
                            f"({e})", log_text, tries, started)
            return
        self.record(d, DatumState.SUCCESS, outs, tries=tries, log=log_text, started=started)

    def recover(self, d: dm.Datum, reason: str, log_text: str, started: float) -> bool:
        """Pachyderm's errCmd: run it on a datum that failed every try; if it exits 0 the datum
        is ``recovered`` (no output, the job does not fail)."""
        env = self.prepare(d)
        log = self.ws.dir / f"log-{d.id[:12]}-err"
        rc, timed_out = wait(self.ws.start(self.ws.request(self.transform, env, log, err=True)),
                             self.datum_time_left())
        log_text += "--- errCmd ---\n" + self.ws.read_log(log)
        if rc != 0 or timed_out:
            return False
        self.record(d, DatumState.RECOVERED, [], tries=self.tries, log=log_text, started=started,
                    reason=f"{reason}; recovered by errCmd")
        return True

    def fail_datum(self, d: dm.Datum, reason: str, log_text: str, tries: int,
                   started: Optional[float]) -> None:
        # What the datum left may be what filled the disk: free it before recording the failure.
        self.ws.clear_out()
        reason = f"{reason} after {tries} tr{'y' if tries == 1 else 'ies'}; inputs: " + \
            ", ".join(f"{m.repo}@{m.commit}:{m.glob_path}" for m in d.matches)
        self.record(d, DatumState.FAILED, [], tries=tries, log=log_text, reason=reason,
                    started=started)
        with self._lock:
            self.failed.append((d.id, reason))

    def record(self, d: dm.Datum, state: DatumState, outputs: list[tuple[str, str, int]], *,
               tries: int = 0, log: str = "", reason: str = "",
               started: Optional[float] = None) -> None:
        """The datum and the job's count for its state, in one transaction."""
        with self._lock:
            self.seq += 1
            if state in (DatumState.SUCCESS, DatumState.SKIPPED):
                self.outputs[d.id] = outputs
            self.counts[state] += 1
            self.store.record_datum(self.name, self.id, DatumRecord(
                id=d.id, state=state, hash=d.hash, inputs=[m.as_input() for m in d.matches],
                outputs=outputs, tries=tries, log=log, reason=reason, started=started),
                seq=self.seq, count=self.counts[state])

    # -- time limits -----------------------------------------------------------------------------
    def datum_time_left(self) -> Optional[float]:
        limits = [t for t in (self.spec.datum_timeout, self.job_time_left()) if t is not None]
        return min(limits) if limits else None

    def job_time_left(self) -> Optional[float]:
        """Seconds left of jobTimeout (None without one). Raises JobError once it is past."""
        if self.spec.job_timeout is None:
            return None
        left = self.spec.job_timeout - (time.monotonic() - self.started)
        if left <= 0:
            raise JobError(f"jobTimeout {self.spec.raw['jobTimeout']} exceeded")
        return left

    def cleanup(self) -> None:
        """Stop the code, release the executors and remove the job folder (idempotent: a failed
        job is cleaned up before its failure is recorded, as the folder may fill the disk)."""
        for ws in self.workspaces:
            if ws.proc is not None and ws.proc.poll() is None:
                stop(ws.proc, grace_s=2.0)  # e.g. Ctrl-C: the code runs in its own session
            ws.executor.close()
        self.workspaces.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
