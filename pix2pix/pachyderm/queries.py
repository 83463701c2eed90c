"""Reading jobs, datums and logs back (pachd's InspectJob, ListDatum, GetLogs). Job and datum
IDs may be given as unambiguous prefixes."""
from __future__ import annotations

from typing import Optional

from pix2pix.errors import NotFoundError, StoreError
from pix2pix.pachyderm.context import Context
from pix2pix.pachyderm.datums import InputCommit, compute
from pix2pix.pachyderm.info import SERVICE_JOB, DatumInfo, DatumState, JobInfo, LogLine
from pix2pix.pachyderm.pipelines import inspect_pipeline
from pix2pix.pachyderm.refs import clean_path
from pix2pix.pachyderm.spec import parse_spec


def list_jobs(ctx: Context, pipeline: Optional[str] = None) -> list[JobInfo]:
    """Jobs, newest first; all pipelines' or one's."""
    if pipeline:
        inspect_pipeline(ctx, pipeline)
    return ctx.store.list_jobs(pipeline)


def inspect_job(ctx: Context, pipeline: str, job_id: str) -> JobInfo:
    jobs = ctx.store.find_jobs(pipeline, job_id)
    if not jobs:
        raise NotFoundError(f"job {pipeline}@{job_id} not found; `pix2pix list job -p {pipeline}` "
                            "lists them")
    if len(jobs) > 1 and jobs[0].id != job_id:
        raise StoreError(f"job id prefix {job_id!r} is ambiguous in pipeline {pipeline!r}")
    return jobs[0]


def list_datums(ctx: Context, pipeline: str, job_id: str) -> list[DatumInfo]:
    return ctx.store.list_datums(pipeline, inspect_job(ctx, pipeline, job_id).id)


def inspect_datum(ctx: Context, pipeline: str, job_id: str, datum_id: str) -> DatumInfo:
    job = inspect_job(ctx, pipeline, job_id)
    found = ctx.store.list_datums(pipeline, job.id, prefix=datum_id)
    if not found:
        raise NotFoundError(f"datum {datum_id!r} not found in job {pipeline}@{job.id}")
    if len(found) > 1:
        raise StoreError(f"datum {datum_id!r} is ambiguous in job {pipeline}@{job.id}")
    return found[0]


def log_lines(ctx: Context, pipeline: str, job_id: Optional[str] = None,
              datum_id: Optional[str] = None, *, all_jobs: bool = False,
              engine_only: bool = False) -> list[tuple[LogLine, bool]]:
    """(line, written by the engine) of a pipeline's jobs: one job, every job (``all_jobs``,
    oldest first) or the latest; per job, what the code wrote per datum, then what the engine
    wrote about the job (only that with ``engine_only``)."""
    p = inspect_pipeline(ctx, pipeline)
    if job_id is None and p.parsed.long_running:
        # A long-running pipeline has no jobs: its supervisor keeps what its code prints.
        return [(line, line.message.startswith("supervisor: "))
                for line in ctx.store.job_log_lines(pipeline, SERVICE_JOB)
                if not engine_only or line.message.startswith("supervisor: ")]
    if job_id is not None:
        jobs = [inspect_job(ctx, pipeline, job_id)]
    elif all_jobs:
        jobs = ctx.store.list_jobs(pipeline)[::-1]
    else:
        last = ctx.store.latest_job(pipeline)
        jobs = [last] if last else []
    out: list[tuple[LogLine, bool]] = []
    for job in jobs:
        if not engine_only:
            datums = ([inspect_datum(ctx, pipeline, job.id, datum_id)] if datum_id
                      else ctx.store.list_datums(pipeline, job.id))
            out += [(LogLine(pipeline, job.id, d.id, line), False)
                    for d in datums for line in d.log.splitlines()]
        if datum_id is None:
            out += [(line, True) for line in ctx.store.job_log_lines(pipeline, job.id)]
    return out


def logs(ctx: Context, pipeline: str, job_id: Optional[str] = None,
         datum_id: Optional[str] = None) -> list[LogLine]:
    """Log lines of a pipeline's job (the latest job when ``job_id`` is None)."""
    return [line for line, _ in log_lines(ctx, pipeline, job_id, datum_id)]


def dry_run_datums(ctx: Context, inp: dict) -> list[DatumInfo]:
    """The datums an input would have now, over its branches' heads (pachd's ListDatum with an
    input instead of a job)."""
    spec = parse_spec({"pipeline": {"name": "dry-run"}, "transform": {"cmd": ["true"]},
                       "input": inp}, source="ListDatum input")
    commits = {}
    for p in spec.pfs_inputs:
        branch = ctx.store.get_branch(p.qrepo, p.branch)
        head = branch.head if branch else None
        commits[(p.qrepo, p.branch)] = InputCommit(p.qrepo, p.branch, head,
                                                   ctx.store.tree(p.qrepo, head))
    return [DatumInfo(id=d.id, job_id="", pipeline="", state=DatumState.STARTING,
                      inputs=[m.as_input() for m in d.matches])
            for d in compute(spec.input, commits, salt="")]


def datum_of(ctx: Context, pipeline: str, job_id: str, path: str) -> Optional[str]:
    """The datum of job ``pipeline@job_id`` that wrote output ``path`` (None if none)."""
    found = ctx.store.datums_writing(pipeline, job_id, clean_path(path))
    return found[0] if found else None
