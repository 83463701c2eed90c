"""What happens after a commit lands (pachd's PPS master and job lifecycle)::

    finish_commit(images) ──queues──> pending ──run_pending──> propagate(commit set X)
        for each pipeline in DAG order whose input branch changed in X:
            job X = datums(inputs at X, or the branch heads) ─┬─ unchanged hash: skip, carry output
                                                              └─ else run (datumTries), collect /pfs/out
            success: output commit <pipeline>@X (AUTO) ─> its readers run next, same X
            failure: no output commit; downstream does not run

A datum is skipped when the last successful job (or a later failed one) had a datum with the
same id and hash (input names, paths, contents and the pipeline's salt), unless
``reprocessSpec: every_job``. ``update pipeline --reprocess`` changes the salt.
"""
from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path
from typing import Optional

from pix2pix.errors import JobError, Pix2PixError
from pix2pix.pachyderm import dag, procs
from pix2pix.pachyderm.batching import BatchingRun
from pix2pix.pachyderm.context import Context, new_id
from pix2pix.pachyderm.datums import InputCommit
from pix2pix.pachyderm.driver import Driver
from pix2pix.pachyderm.info import DatumState, JobInfo, JobState, PipelineInfo, Provenance
from pix2pix.pachyderm.spec import PipelineSpec
from pix2pix.pachyderm.store import Owner

KILLED_REASON = "the process running this job was killed; `pix2pix run` runs it again"


def job_dir(ctx: Context, pipeline: str, job_id: str) -> Path:
    return ctx.jobs_dir / f"{pipeline}-{job_id}"


def run_pending(ctx: Context) -> list[JobInfo]:
    """Run every queued trigger (commits made with deferral, pipelines just created, jobs a
    killed process left), transitively down the DAG. Returns the jobs that ran."""
    ran: list[JobInfo] = []
    with ctx.lock.hold() as outermost:
        if not outermost:
            return ran  # called from inside a run (a callback): the outer loop drains the queue
        while True:
            pending = ctx.store.list_pending()
            if not pending:
                return ran
            first = pending[0]
            if first.kind == "pipeline":
                # Pipelines created together run in one commit set.
                batch = list(itertools.takewhile(lambda t: t.kind == "pipeline", pending))
                ran += propagate(ctx, new_id(), changed=set(), force={t.pipeline for t in batch})
            else:
                batch = [first]
                ran += propagate(ctx, first.commit_id, changed={(first.repo, first.branch)},
                                 force=set())
            ctx.store.dequeue(batch)


def propagate(ctx: Context, commit_set: str, *, changed: set[tuple[str, str]],
              force: set[str]) -> list[JobInfo]:
    """Run, in DAG order, every pipeline whose input branch changed in this commit set
    (and the ``force``d ones); each success changes its output branch in turn."""
    pipelines = {p.name: p for p in ctx.store.list_pipelines()}
    order = dag.ordered({n: p.parsed.input_repos for n, p in pipelines.items()})
    changed = set(changed)
    ran: list[JobInfo] = []
    for name in order:
        p = pipelines[name]
        if p.state != "running":
            continue
        if name not in force and not (set(p.parsed.input_branches) & changed):
            continue
        done = ctx.store.get_job(name, commit_set)
        job = done if done and done.state == JobState.SUCCESS else run_job(ctx, p, commit_set)
        if job is None:
            continue
        ran.append(job)
        if ctx.on_job:
            ctx.on_job(job)
        if job.state == JobState.SUCCESS:
            changed.add((name, p.parsed.output_branch))
    return ran


def input_commits(ctx: Context, spec: PipelineSpec,
                  commit_set: str) -> dict[tuple[str, str], InputCommit]:
    """What each input branch reads in this job: its commit of the commit set, the commit
    ``pfs.commit`` pins, or else the branch head (None while the branch is empty)."""
    out: dict[tuple[str, str], InputCommit] = {}
    for pfs in spec.pfs_inputs:
        key = (pfs.repo, pfs.branch)
        if key in out:
            continue
        wanted = pfs.commit or commit_set
        if ctx.store.commit_on_branch(pfs.repo, wanted, pfs.branch):
            commit: Optional[str] = wanted
        elif pfs.commit:
            raise JobError(f"input {pfs.name}: commit {pfs.repo}@{pfs.commit} (pfs.commit) not "
                           f"found on branch {pfs.branch}")
        else:
            branch = ctx.store.get_branch(*key)
            commit = branch.head if branch else None
        out[key] = InputCommit(repo=pfs.repo, branch=pfs.branch, commit=commit,
                               tree=ctx.store.tree(pfs.repo, commit))
    return out


def run_job(ctx: Context, p: PipelineInfo, commit_set: str) -> Optional[JobInfo]:
    """Run pipeline ``p`` for commit set ``commit_set``; None when its inputs have no
    commits at all yet (nothing to run on)."""
    spec = p.parsed
    commits = input_commits(ctx, spec, commit_set)
    if all(ic.commit is None for ic in commits.values()):
        return None
    inputs = [Provenance(repo=r, branch=b, commit=ic.commit)
              for (r, b), ic in commits.items() if ic.commit is not None]
    ctx.store.start_job(pipeline=p.name, job_id=commit_set, version=p.version, salt=p.salt,
                        inputs=inputs, owner=Owner(*procs.me()))
    driver = Driver(ctx.store, ctx.blobs, executor=ctx.executor,
                    job_dir=job_dir(ctx, p.name, commit_set), pipeline=p.name, job_id=commit_set,
                    spec=spec, version=p.version, salt=p.salt, commits=commits)
    try:
        todo = driver.plan()
        if todo and spec.transform.datum_batching:
            BatchingRun(driver, todo).run()
        elif todo:
            driver.run_each(todo)
        driver.check_failures()
        _publish(ctx, driver, inputs)
    except Pix2PixError as e:  # a datum failed, no container tool, disk full...
        _fail(ctx, driver, str(e))
    except BaseException as e:
        if isinstance(e, Exception):
            _fail(ctx, driver, f"engine error: {e}")
        else:  # Ctrl-C: record it, then let it stop the command
            _fail(ctx, driver, "interrupted", state=JobState.KILLED)
            raise
    finally:
        driver.cleanup()
    return ctx.store.get_job(p.name, commit_set)


def _counts(driver: Driver) -> dict[str, int]:
    return {"processed": driver.counts[DatumState.SUCCESS],
            "skipped": driver.counts[DatumState.SKIPPED],
            "failed": driver.counts[DatumState.FAILED]}


def _publish(ctx: Context, driver: Driver, inputs: list[Provenance]) -> None:
    """Merge every datum's output into the output commit (same ID as the job)."""
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
    name, branch, store = driver.name, driver.spec.output_branch, ctx.store
    with store.tx():
        head = store.get_branch(name, branch)
        store.write_commit(repo=name, commit_id=driver.id, branch=branch,
                           parent=head.head if head else None, origin="AUTO", started=time.time(),
                           description=f"job {driver.id} of pipeline {name}", tree=tree,
                           provenance=[(p.repo, p.branch, p.commit) for p in inputs])
        store.update_job(name, driver.id, state=JobState.SUCCESS, finished=time.time(),
                         output_commit=driver.id, **_counts(driver))


def _fail(ctx: Context, driver: Driver, reason: str, state: JobState = JobState.FAILURE) -> None:
    failed_datum = driver.failed[0][0] if driver.failed else None
    with ctx.store.tx():
        ctx.store.update_job(driver.name, driver.id, state=state, finished=time.time(),
                             reason=reason, failed_datum=failed_datum, **_counts(driver))
        ctx.store.add_job_log(driver.name, driver.id, failed_datum, f"job failed: {reason}")


def forget_dead_jobs(ctx: Context) -> None:
    """Mark the jobs of killed processes as killed (their trigger stays queued, so `pix2pix
    run` runs them again), stop the code they left running and remove their scratch folders."""
    dead = [(p, j) for p, j, owner in ctx.store.live_job_owners()
            if not procs.process_alive(owner.pid, owner.start)]
    if not dead:
        return
    with ctx.store.tx():
        for pipeline, job_id in dead:
            ctx.store.update_job(pipeline, job_id, state=JobState.KILLED, finished=time.time(),
                                 reason=KILLED_REASON)
    for pipeline, job_id in dead:
        folder = job_dir(ctx, pipeline, job_id)
        procs.stop_orphans(folder)
        shutil.rmtree(folder, ignore_errors=True)
