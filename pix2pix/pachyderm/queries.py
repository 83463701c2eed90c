"""Reading jobs, datums and logs back (pachd's InspectJob, ListDatum, GetLogs). Job and datum
IDs may be given as unambiguous prefixes."""
from __future__ import annotations

from typing import Optional

from pix2pix.errors import NotFoundError, StoreError
from pix2pix.pachyderm.context import Context
from pix2pix.pachyderm.info import DatumInfo, JobInfo, LogLine
from pix2pix.pachyderm.pipelines import inspect_pipeline
from pix2pix.pachyderm.refs import clean_path


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


def logs(ctx: Context, pipeline: str, job_id: Optional[str] = None,
         datum_id: Optional[str] = None) -> list[LogLine]:
    """Log lines of a pipeline's jobs (the latest job when ``job_id`` is None)."""
    inspect_pipeline(ctx, pipeline)
    if job_id is None:
        last = ctx.store.latest_job(pipeline)
        if last is None:
            return []
        job_id = last.id
    job = inspect_job(ctx, pipeline, job_id)
    datums = ([inspect_datum(ctx, pipeline, job.id, datum_id)] if datum_id
              else ctx.store.list_datums(pipeline, job.id))
    out = [LogLine(pipeline, job.id, d.id, line) for d in datums for line in d.log.splitlines()]
    if datum_id is None:
        out += ctx.store.job_log_lines(pipeline, job.id)
    return out


def datum_of(ctx: Context, pipeline: str, job_id: str, path: str) -> Optional[str]:
    """The datum of job ``pipeline@job_id`` that wrote output ``path`` (None if none)."""
    found = ctx.store.datums_writing(pipeline, job_id, clean_path(path))
    return found[0] if found else None
