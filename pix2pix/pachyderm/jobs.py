"""Jobs (pachd's PPS master and job lifecycle). A job is created with its output commit, when a
commit propagates to a pipeline's output branch (jobs.create_jobs is PFS's hook); it runs once
its input commits (the output commit's provenance) are finished::

    created ──inputs finished──> running ──> success: output commit finished with the outputs
       │                                 └─> failure: output commit finished with the reason
       └──an input commit has an error──> unrunnable: output commit finished with the reason

A datum is skipped when the last successful job (or a later failed one) had a datum with the
same id and hash (input names, paths, contents and the pipeline's salt), unless
``reprocessSpec: every_job``. ``update pipeline --reprocess`` changes the salt. Jobs of one
pipeline run in the order they were created; a killed run (Ctrl-C, SIGKILL) stays queued and
runs again.
"""
from __future__ import annotations

import errno
import shutil
import time
from pathlib import Path
from typing import Optional

from pix2pix.errors import JobError, NotFoundError, Pix2PixError, StoreError, StoreFullError
from pix2pix.pachyderm import procs
from pix2pix.pachyderm.blobs import store_error
from pix2pix.pachyderm.batching import BatchingRun
from pix2pix.pachyderm.commits import open_tree, propagate
from pix2pix.pachyderm.context import Context, new_id
from pix2pix.pachyderm.datums import InputCommit
from pix2pix.pachyderm.driver import Driver
from pix2pix.pachyderm.info import CommitInfo, DatumState, JobInfo, JobState
from pix2pix.pachyderm.queries import inspect_job
from pix2pix.pachyderm.spec import PipelineSpec
from pix2pix.pachyderm.store import Owner

KILLED_REASON = "the process running this job was killed; `pix2pix run` runs it again"


def job_dir(ctx: Context, pipeline: str, job_id: str) -> Path:
    return ctx.jobs_dir / f"{pipeline.replace('/', '.')}-{job_id}"


# -- PFS's hooks -----------------------------------------------------------------------------------
def create_jobs(ctx: Context, commits: list[CommitInfo]) -> None:
    """A job for each new output commit of a pipeline (on its output branch), queued to run."""
    for c in commits:
        p = ctx.store.get_pipeline(c.repo)
        # A spout has no jobs; a service has one per input commit, as in pachd (its
        # supervisor takes them: services.py).
        if p is not None and c.branch == p.parsed.output_branch and p.parsed.spout is None:
            ctx.store.create_job(pipeline=p.name, job_id=c.id, version=p.version, salt=p.salt,
                                 inputs=c.provenance)


def remove_jobs(ctx: Context, commits: list[CommitInfo]) -> None:
    """The jobs of output commits that a drop or squash removed."""
    for c in commits:
        if ctx.store.get_job(c.repo, c.id) is not None:
            ctx.store.delete_job(c.repo, c.id)


# -- running ---------------------------------------------------------------------------------------
def run_pending(ctx: Context) -> list[JobInfo]:
    """Run every queued job whose inputs are finished, in the order they were created, until
    none is left that can run (jobs of a stopped pipeline, or waiting for an open commit, stay
    queued). Returns the jobs that ended."""
    ran: list[JobInfo] = []
    with ctx.lock.hold() as outermost:
        if not outermost:
            return ran  # called from inside a run (a callback): the outer loop drains the queue
        adopt_legacy_triggers(ctx)
        while True:
            job = _next_runnable(ctx)
            if job is None:
                return ran
            ended = _run(ctx, job)
            ran.append(ended)
            if ctx.on_job:
                ctx.on_job(ended)


def _next_runnable(ctx: Context) -> Optional[JobInfo]:
    """The first queued job that can run or be marked unrunnable now (None if there is none).
    A pipeline's jobs go in order: one waiting keeps the later ones waiting."""
    store = ctx.store
    blocked: set[str] = set()
    for t in store.list_pending():
        if t.kind != "job":
            continue
        job = store.get_job(t.pipeline, t.commit_id)
        p = store.get_pipeline(t.pipeline)
        if job is None or p is None:
            store.dequeue([t])
            continue
        if p.state != "running" or t.pipeline in blocked or p.parsed.service is not None:
            blocked.add(t.pipeline)  # a service's jobs are its supervisor's to take
            continue
        inputs = [store.get_commit(i.repo, i.commit) for i in job.inputs]
        if any(c is not None and c.finished is None for c in inputs):
            blocked.add(t.pipeline)
            continue
        return job
    return None


def _run(ctx: Context, job: JobInfo) -> JobInfo:
    store = ctx.store
    failed = sorted({i.repo for i in job.inputs
                     if (c := store.get_commit(i.repo, i.commit)) is None or c.error})
    if failed:
        reason = f"unrunnable because the following upstream pipelines failed: {', '.join(failed)}"
        _end(ctx, job.pipeline, job.id, JobState.UNRUNNABLE, reason)
    else:
        run_job(ctx, job)
    return store.get_job(job.pipeline, job.id)


def input_commits(ctx: Context, spec: PipelineSpec,
                  job: JobInfo) -> dict[tuple[str, str], InputCommit]:
    """What each input branch reads in this job: the commit ``pfs.commit`` pins, else the
    commit the output commit was computed from, else the branch head (None while empty)."""
    prov = {(p.repo, p.branch): p.commit for p in job.inputs}
    out: dict[tuple[str, str], InputCommit] = {}
    for pfs in spec.pfs_inputs:
        key = (pfs.qrepo, pfs.branch)
        if key in out:
            continue
        if pfs.commit:
            if not ctx.store.commit_exists(pfs.qrepo, pfs.commit):
                raise JobError(f"input {pfs.name}: commit {pfs.qrepo}@{pfs.commit} (pfs.commit) "
                               f"not found on branch {pfs.branch}")
            commit: Optional[str] = pfs.commit
        elif key in prov:
            commit = prov[key]
        else:
            branch = ctx.store.get_branch(*key)
            commit = branch.head if branch else None
        out[key] = InputCommit(repo=pfs.qrepo, branch=pfs.branch, commit=commit,
                               tree=ctx.store.tree(pfs.qrepo, commit))
    return out


def run_job(ctx: Context, job: JobInfo) -> None:
    """Run one job and finish its output commit (Ctrl-C leaves it open and the job queued)."""
    store = ctx.store
    p = store.pipeline_version(job.pipeline, job.spec_version) or store.get_pipeline(job.pipeline)
    spec = p.parsed
    store.start_job(job.pipeline, job.id, owner=Owner(*procs.me()))
    driver = Driver(store, ctx.blobs, executor=ctx.executor,
                    job_dir=job_dir(ctx, job.pipeline, job.id), pipeline=job.pipeline,
                    job_id=job.id, spec=spec, version=job.spec_version, salt=job.salt,
                    commits={})
    try:
        driver.commits = input_commits(ctx, spec, job)
        todo = driver.plan()
        store.add_job_log(job.pipeline, job.id, None,
                          f"job {job.id} started: {sum(driver.counts.values()) + len(todo)} "
                          f"datum(s), {len(todo)} to process")
        if todo and spec.transform.datum_batching:
            BatchingRun(driver, todo).run()
        elif todo:
            driver.run_each(todo)
        driver.check_failures()
        _publish(ctx, driver)
    except BaseException as e:
        # The job folder may be what filled the disk: free it before recording the outcome, so
        # a full disk fails this job with its reason instead of leaving it "running".
        driver.cleanup()
        if not isinstance(e, Exception):  # Ctrl-C: record it, keep it queued, then stop
            _record_killed(ctx, driver.name, driver.id, "interrupted", driver=driver)
            raise
        reason = failure_reason(e)
        try:
            _end(ctx, driver.name, driver.id, JobState.FAILURE, reason, driver=driver)
        except StoreError as recording:
            raise type(recording)(f"job {driver.name}@{driver.id} failed ({reason}) and that "
                                  f"could not be recorded: {recording}; it stays queued for "
                                  "`pix2pix run`") from None
    finally:
        driver.cleanup()


def failure_reason(e: Exception) -> str:
    """Why a job failed, in words: a full disk says where (metadata, blobs or scratch)."""
    if isinstance(e, StoreFullError):
        return f"disk full while running the job: {e}"
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return f"disk full while running the job: {store_error(e, 'job scratch folder')}"
    if isinstance(e, Pix2PixError):  # a datum failed, no container tool...
        return str(e)
    return f"engine error: {e}"


def _counts(driver: Optional[Driver]) -> dict[str, int]:
    if driver is None:
        return {}
    return {"processed": driver.counts[DatumState.SUCCESS],
            "skipped": driver.counts[DatumState.SKIPPED],
            "failed": driver.counts[DatumState.FAILED]}


def _publish(ctx: Context, driver: Driver) -> None:
    """Merge every datum's output into the output commit (same ID as the job) and finish it."""
    owner: dict[str, str] = {}
    tree: dict[str, tuple[str, int]] = {}
    for did, outs in driver.outputs.items():
        for path, digest, size in outs:
            if path in owner:
                raise JobError(f"datums {owner[path][:12]} and {did[:12]} both wrote {path}; "
                               "each output path must come from one datum (write to a "
                               "per-datum name such as the input file's name)")
            owner[path] = did
            tree[path] = (digest, size)
    with ctx.store.tx():
        if stopped(ctx, driver.name, driver.id):
            return  # stopped while it ran: its output commit is finished already
        ctx.store.finish_commit(driver.name, driver.id, tree=tree)
        ctx.store.update_job(driver.name, driver.id, state=JobState.SUCCESS, finished=time.time(),
                             output_commit=driver.id, **_counts(driver))
        counts = _counts(driver)
        ctx.store.add_job_log(driver.name, driver.id, None,
                              f"job {driver.id} success: {counts['processed']} processed, "
                              f"{counts['skipped']} skipped, {len(tree)} output file(s)")
        ctx.store.dequeue_job(driver.name, driver.id)


def end_job(ctx: Context, pipeline: str, job_id: str, state: JobState, reason: str) -> None:
    """End a job that did not succeed (see :func:`_end`), from outside a run (a service's
    supervisor)."""
    _end(ctx, pipeline, job_id, state, reason)


def _end(ctx: Context, pipeline: str, job_id: str, state: JobState, reason: str, *,
         driver: Optional[Driver] = None) -> None:
    """End a job that did not succeed: its output commit is finished with the reason as its
    error and keeps its parent's files (nothing is published), so what reads it is unrunnable."""
    failed_datum = driver.failed[0][0] if driver and driver.failed else None
    store = ctx.store
    with store.tx():
        if state != JobState.KILLED and stopped(ctx, pipeline, job_id):
            return  # stopped while it ran: ended already
        out = store.get_commit(pipeline, job_id)
        if out is not None and out.finished is None:
            store.finish_commit(pipeline, job_id, tree=open_tree(ctx, pipeline, out.parent),
                                error=reason)
        store.update_job(pipeline, job_id, state=state, finished=time.time(), reason=reason,
                         failed_datum=failed_datum, **_counts(driver))
        store.add_job_log(pipeline, job_id, failed_datum, f"job {state}: {reason}")
        store.dequeue_job(pipeline, job_id)


def _record_killed(ctx: Context, pipeline: str, job_id: str, reason: str, *,
                   driver: Optional[Driver] = None) -> None:
    """A run that was cut short: killed, but still queued (its output commit stays open)."""
    with ctx.store.tx():
        ctx.store.update_job(pipeline, job_id, state=JobState.KILLED, finished=time.time(),
                             reason=reason, **_counts(driver))
        ctx.store.add_job_log(pipeline, job_id, None, f"job killed: {reason}")


def forget_dead_jobs(ctx: Context) -> None:
    """Mark the running jobs of killed processes as killed (they stay queued, so `pix2pix run`
    runs them again), stop the code they left running and remove their scratch folders."""
    dead = [(p, j) for p, j, owner in ctx.store.live_job_owners()
            if not procs.process_alive(owner.pid, owner.start)]
    for pipeline, job_id in dead:
        _record_killed(ctx, pipeline, job_id, KILLED_REASON)
        folder = job_dir(ctx, pipeline, job_id)
        procs.stop_orphans(folder)
        shutil.rmtree(folder, ignore_errors=True)


def adopt_legacy_triggers(ctx: Context) -> None:
    """Turn the triggers a schema 2 folder queued (a commit to run its readers on, or pipelines
    just created) into what they stand for now: output commits and their jobs."""
    store = ctx.store
    legacy = [t for t in store.list_pending() if t.kind != "job"]
    if not legacy:
        return
    with store.tx():
        for t in legacy:
            if t.kind == "commit" and store.commit_exists(t.repo, t.commit_id):
                propagate(ctx, [(t.repo, t.branch)], t.commit_id)
            elif t.kind == "pipeline" and (p := store.get_pipeline(t.pipeline)) is not None:
                propagate(ctx, [(p.name, p.parsed.output_branch)], new_id(), include_start=True)
        store.dequeue(legacy)


# -- control ---------------------------------------------------------------------------------------
def stop_job(ctx: Context, pipeline: str, job_id: str, reason: str = "") -> JobInfo:
    """Kill a job for good (pachd's StopJob): its output commit is finished with the reason,
    so the jobs reading it are unrunnable. A job that already ended is left as it is."""
    job = _job(ctx, pipeline, job_id)
    if not job.state.done or ctx.store.job_queued(pipeline, job.id):
        _end(ctx, pipeline, job.id, JobState.KILLED, reason or "job stopped by the user")
    return ctx.store.get_job(pipeline, job.id)


def stopped(ctx: Context, pipeline: str, job_id: str) -> bool:
    """Whether a job was stopped for good (killed and no longer queued)."""
    job = ctx.store.get_job(pipeline, job_id)
    return job is None or (job.state == JobState.KILLED and not ctx.store.job_queued(pipeline, job_id))


def delete_job(ctx: Context, pipeline: str, job_id: str) -> None:
    """Forget a job (stopping it first if it has not ended); its output commit stays."""
    job = _job(ctx, pipeline, job_id)
    if not job.state.done:
        stop_job(ctx, pipeline, job.id)
    ctx.store.delete_job(pipeline, job.id)


def restart_datum(ctx: Context, pipeline: str, job_id: str, filters: list[str]) -> None:
    """pachd's RestartDatum: only a running job's datums can be restarted; the embedded engine
    runs a job to its end in one go, so there is never one to restart from outside.

    Raises:
        NotFoundError: in pachd's words, as python-pachyderm matches them.
    """
    job = _job(ctx, pipeline, job_id)
    raise NotFoundError(f"datum matching filter [{' '.join(filters)}] could not be found for job "
                        f"ID {job.id} (its state is {job.state}; only a running job's datums "
                        "restart)")


def _job(ctx: Context, pipeline: str, job_id: str) -> JobInfo:
    return inspect_job(ctx, pipeline, job_id)
