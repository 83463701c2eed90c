"""``pix2pix cluster status``: each pipeline's state and its recent jobs, as a table."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from python_pachyderm.proto.v2.pps import pps_pb2

from pix2pix.cluster.connection import Cluster


@dataclass
class JobRow:
    pipeline: str
    job: str
    state: str
    datums: str          # processed+skipped / total, failed when any
    started: str
    duration: str
    reason: str = ""


@dataclass
class PipelineRow:
    name: str
    state: str
    last_job: str
    version: int
    jobs: list[JobRow] = field(default_factory=list)


def _state(enum: type, value: int, prefix: str) -> str:
    return enum.Name(value).removeprefix(prefix).lower()


def _ts(ts) -> datetime | None:
    return ts.ToDatetime(tzinfo=timezone.utc) if ts is not None and ts.seconds else None


def job_row(j: pps_pb2.JobInfo) -> JobRow:
    started, finished = _ts(j.started) or _ts(j.created), _ts(j.finished)
    end = finished or datetime.now(timezone.utc)
    done = j.data_processed + j.data_skipped
    datums = f"{done}/{j.data_total}" + (f" ({j.data_failed} failed)" if j.data_failed else "")
    return JobRow(
        pipeline=j.job.pipeline.name, job=j.job.id,
        state=_state(pps_pb2.JobState, j.state, "JOB_"), datums=datums,
        started=started.strftime("%Y-%m-%d %H:%M:%S") if started else "-",
        duration=f"{(end - started).total_seconds():.0f}s" if started else "-",
        reason=j.reason)


def status(cluster: Cluster, *, jobs_per_pipeline: int = 3) -> list[PipelineRow]:
    """Every pipeline with its state, last job state and its ``jobs_per_pipeline`` newest jobs."""
    client = cluster.client
    rows = []
    with cluster.rpc("the pipeline list"):
        infos = sorted(client.list_pipeline(), key=lambda p: p.pipeline.name)
    for p in infos:
        name = p.pipeline.name
        jobs = []
        if jobs_per_pipeline:
            with cluster.rpc(f"jobs of pipeline {name!r}"):
                # pachd lists newest first; `number` keeps a long history off the wire.
                jobs = list(client.list_job(name, number=jobs_per_pipeline))
        jobs.sort(key=lambda j: (j.created.seconds, j.created.nanos), reverse=True)
        rows.append(PipelineRow(
            name=name, state=_state(pps_pb2.PipelineState, p.state, "PIPELINE_"),
            last_job=_state(pps_pb2.JobState, p.last_job_state, "JOB_") if p.last_job_state else "-",
            version=p.version, jobs=[job_row(j) for j in jobs[:jobs_per_pipeline]]))
    return rows


def render_table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns two spaces apart, like pachctl's tables."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip()
                     for r in [header, *rows])


def render(rows: list[PipelineRow]) -> str:
    if not rows:
        return "no pipelines; create them with `pix2pix cluster deploy`"
    out = [render_table(["PIPELINE", "VERSION", "STATE", "LAST JOB"],
                        [[r.name, str(r.version), r.state, r.last_job] for r in rows])]
    jobs = [j for r in rows for j in r.jobs]
    if jobs:
        out.append("")
        out.append(render_table(["PIPELINE", "JOB", "STATE", "DATUMS", "STARTED", "DURATION"],
                                [[j.pipeline, j.job, j.state + (f" ({_short(j.reason)})" if j.reason and j.state
                                                                in ("failure", "killed") else ""),
                                  j.datums, j.started, j.duration] for j in jobs]))
    return "\n".join(out)


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."
