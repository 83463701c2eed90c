"""pachd's messages from the engine's dataclasses (``pix2pix.pachyderm.info``), and back: a
CreatePipelineRequest as the spec dict ``pachctl create pipeline -f`` reads. Repo and pipeline
names are the engine's qualified ones (``proj/images``), split into pachd's name and project."""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator, Optional

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor
from python_pachyderm.proto.v2.pfs import pfs_pb2
from python_pachyderm.proto.v2.pps import pps_pb2

from pix2pix.pachyderm import info as I
from pix2pix.pachyderm.refs import DEFAULT_PROJECT, qualify, split_name


# -- names -----------------------------------------------------------------------------------------
def repo_name(repo: pfs_pb2.Repo) -> str:
    """The engine's name of a pachd Repo (its project defaults to ``default``)."""
    return qualify(repo.project.name or DEFAULT_PROJECT, repo.name)


def pipeline_name(p: pps_pb2.Pipeline) -> str:
    return qualify(p.project.name or DEFAULT_PROJECT, p.name)


def project_pb(name: str) -> pfs_pb2.Project:
    return pfs_pb2.Project(name=name)


def repo_pb(name: str) -> pfs_pb2.Repo:
    project, plain = split_name(name)
    return pfs_pb2.Repo(name=plain, type="user", project=project_pb(project))


def commit_pb(repo: str, commit_id: Optional[str], branch: str = "") -> pfs_pb2.Commit:
    r = repo_pb(repo)
    return pfs_pb2.Commit(id=commit_id or "", repo=r, branch=pfs_pb2.Branch(repo=r, name=branch))


def branch_pb(repo: str, name: str) -> pfs_pb2.Branch:
    return pfs_pb2.Branch(repo=repo_pb(repo), name=name)


def pipeline_pb(name: str) -> pps_pb2.Pipeline:
    project, plain = split_name(name)
    return pps_pb2.Pipeline(name=plain, project=project_pb(project))


def ts(t: float | None) -> timestamp_pb2.Timestamp | None:
    if t is None:
        return None
    out = timestamp_pb2.Timestamp()
    out.FromNanoseconds(int(t * 1e9))
    return out


# -- PFS -------------------------------------------------------------------------------------------
def project_info_pb(p: I.ProjectInfo) -> pfs_pb2.ProjectInfo:
    return pfs_pb2.ProjectInfo(project=project_pb(p.name), description=p.description,
                               created_at=ts(p.created))


def repo_info_pb(r: I.RepoInfo) -> pfs_pb2.RepoInfo:
    rp = repo_pb(r.name)
    return pfs_pb2.RepoInfo(repo=rp, created=ts(r.created), size_bytes_upper_bound=r.size,
                            description=r.description,
                            branches=[pfs_pb2.Branch(repo=rp, name=b) for b in r.branches],
                            details=pfs_pb2.RepoInfo.Details(size_bytes=r.size))


def branch_info_pb(b: I.BranchInfo) -> pfs_pb2.BranchInfo:
    prov = [branch_pb(*p.split("@", 1)) for p in b.provenance]
    out = pfs_pb2.BranchInfo(branch=branch_pb(b.repo, b.name),
                             head=commit_pb(b.repo, b.head, b.name) if b.head else None,
                             provenance=prov, direct_provenance=prov)
    if b.trigger:
        t = b.trigger
        out.trigger.CopyFrom(pfs_pb2.Trigger(branch=t.get("branch", ""), all=bool(t.get("all")),
                                             size=str(t.get("size") or ""),
                                             commits=int(t.get("commits") or 0)))
    return out


def commit_info_pb(c: I.CommitInfo, children: list[str] = ()) -> pfs_pb2.CommitInfo:
    """A commit as pachd shows it; an open one has ``started`` and no ``finished``."""
    kind = pfs_pb2.OriginKind.AUTO if c.origin == "AUTO" else pfs_pb2.OriginKind.USER
    return pfs_pb2.CommitInfo(
        commit=commit_pb(c.repo, c.id, c.branch),
        origin=pfs_pb2.CommitOrigin(kind=kind),
        description=c.description,
        parent_commit=commit_pb(c.repo, c.parent, c.branch) if c.parent else None,
        child_commits=[commit_pb(c.repo, k, c.branch) for k in children],
        started=ts(c.started), finishing=ts(c.finished), finished=ts(c.finished),
        direct_provenance=[commit_pb(p.repo, p.commit, p.branch) for p in c.provenance],
        error=c.error, size_bytes_upper_bound=c.size,
        details=pfs_pb2.CommitInfo.Details(size_bytes=c.size))


def file_info_pb(f: I.FileInfo, *, branch: str = "", datum: str = "") -> pfs_pb2.FileInfo:
    # pachd writes folders with a trailing slash ("/dir/"), the root as "/".
    path = f.path if f.type == "file" or f.path == "/" else f.path.rstrip("/") + "/"
    return pfs_pb2.FileInfo(
        file=pfs_pb2.File(commit=commit_pb(f.repo, f.commit, branch), path=path, datum=datum),
        file_type=pfs_pb2.FileType.FILE if f.type == "file" else pfs_pb2.FileType.DIR,
        size_bytes=f.size, hash=bytes.fromhex(f.hash) if f.hash else b"")


# -- PPS -------------------------------------------------------------------------------------------
def job_state_pb(state: str | None) -> int:
    """pps.JobState of an engine job state (JOB_STATE_UNKNOWN for none)."""
    return pps_pb2.JobState.Value(I.JobState(state).pachd) if state else \
        pps_pb2.JobState.JOB_STATE_UNKNOWN


def datum_state_pb(state: str) -> int:
    return pps_pb2.DatumState.Value(I.DatumState(state).pachd)


def spec_request(spec: dict) -> pps_pb2.CreatePipelineRequest:
    """A stored spec (camelCase JSON) as pachd's CreatePipelineRequest; unknown fields ignored."""
    return json_format.ParseDict(spec, pps_pb2.CreatePipelineRequest(), ignore_unknown_fields=True)


_DETAILS = ("transform", "parallelism_spec", "egress", "resource_requests", "resource_limits",
            "sidecar_resource_limits", "input", "service", "spout", "datum_set_spec",
            "datum_timeout", "job_timeout", "scheduling_spec", "metadata",
            "sidecar_resource_requests")


def pipeline_info_pb(p: I.PipelineInfo, *, details: bool = True) -> pps_pb2.PipelineInfo:
    stopped = p.state == "paused"
    state = pps_pb2.PipelineState.PIPELINE_PAUSED if stopped else \
        pps_pb2.PipelineState.PIPELINE_RUNNING
    kind = pps_pb2.PipelineInfo.PipelineType
    ptype = kind.PIPELINE_TYPE_SPOUT if p.parsed.spout is not None else \
        kind.PIPELINE_TYPE_SERVICE if p.parsed.service is not None else kind.PIPELINE_TYPE_TRANSFORM
    out = pps_pb2.PipelineInfo(pipeline=pipeline_pb(p.name), version=p.version, state=state,
                               stopped=stopped, last_job_state=job_state_pb(p.last_job_state),
                               parallelism=1, type=ptype)
    if details:
        req = spec_request(p.spec)
        d = out.details
        for name in _DETAILS:
            if req.HasField(name):
                getattr(d, name).CopyFrom(getattr(req, name))
        d.description = req.description or p.description
        d.salt, d.datum_tries, d.pod_patch, d.pod_spec = p.salt, req.datum_tries, req.pod_patch, req.pod_spec
        d.s3_out, d.reprocess_spec, d.autoscaling = req.s3_out, req.reprocess_spec, req.autoscaling
        d.output_branch = req.output_branch or "master"
        d.created_at.CopyFrom(ts(p.created))
        d.workers_requested = d.workers_available = 1
        out.details_json = ""
    return out


def job_info_pb(j: I.JobInfo, *, spec: dict | None = None) -> pps_pb2.JobInfo:
    branch = (spec or {}).get("outputBranch") or "master"
    out = pps_pb2.JobInfo(
        job=pps_pb2.Job(pipeline=pipeline_pb(j.pipeline), id=j.id),
        pipeline_version=j.spec_version,
        output_commit=commit_pb(j.pipeline, j.output_commit or j.id, branch),
        data_processed=j.processed, data_skipped=j.skipped, data_failed=j.failed,
        data_recovered=j.recovered, data_total=j.total,
        state=job_state_pb(j.state), reason=j.reason,
        created=ts(j.created or j.started), started=ts(j.started), finished=ts(j.finished))
    if spec:
        req = spec_request(spec)
        for name in ("transform", "parallelism_spec", "input", "resource_requests", "resource_limits"):
            if req.HasField(name):
                getattr(out.details, name).CopyFrom(getattr(req, name))
        out.details.datum_tries = req.datum_tries
        out.details.salt = j.salt
    return out


def datum_info_pb(d: I.DatumInfo) -> pps_pb2.DatumInfo:
    """A datum and its input files, as pachd lists them: one FileInfo per input, at the path its
    glob matched (a FILE for ``/*`` over files, a DIR for ``/``)."""
    data = []
    for inp in d.inputs:
        is_file = inp.files == [inp.glob_path]
        data.append(pfs_pb2.FileInfo(
            file=pfs_pb2.File(commit=commit_pb(inp.repo, inp.commit, inp.branch), path=inp.glob_path),
            file_type=pfs_pb2.FileType.FILE if is_file else pfs_pb2.FileType.DIR))
    return pps_pb2.DatumInfo(
        datum=pps_pb2.Datum(id=d.id, job=pps_pb2.Job(pipeline=pipeline_pb(d.pipeline), id=d.job_id)),
        state=datum_state_pb(d.state), data=data)


def log_pb(line: I.LogLine, *, master: bool = False) -> pps_pb2.LogMessage:
    project, name = split_name(line.pipeline)
    return pps_pb2.LogMessage(project_name=project, pipeline_name=name, job_id=line.job_id,
                              datum_id=line.datum_id or "", message=line.message, user=not master,
                              master=master)


# -- CreatePipelineRequest -> spec dict -----------------------------------------------------------
_REQUEST_ONLY = ("update", "reprocess", "dryRun", "dry_run", "detailsJson", "details_json")
_INT64 = (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
          FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64)


def request_to_spec(req: pps_pb2.CreatePipelineRequest) -> dict[str, Any]:
    """The pipeline spec (camelCase JSON, as ``pachctl create pipeline -f`` reads it) that a
    CreatePipelineRequest carries: request-only fields, empty objects and the default project
    dropped, 64-bit integers as numbers (protobuf's JSON writes them as strings)."""
    d = json_format.MessageToDict(req)
    for k in _REQUEST_ONLY:
        d.pop(k, None)
    d = _prune(_ints(d, req.DESCRIPTOR))
    for kind in ("spout", "service"):  # present, even empty, makes the pipeline what it is
        if req.HasField(kind):
            d.setdefault(kind, {})
    return d


def _ints(value: Any, desc) -> Any:
    if not isinstance(value, dict) or desc is None:
        return value
    by_json = {f.json_name: f for f in desc.fields}
    out = {}
    for k, v in value.items():
        f = by_json.get(k)
        if f is None:
            out[k] = v
        elif f.type in _INT64:
            out[k] = [int(x) for x in v] if isinstance(v, list) else int(v)
        elif f.message_type is not None and not f.message_type.GetOptions().map_entry:
            out[k] = [_ints(x, f.message_type) for x in v] if isinstance(v, list) else _ints(v, f.message_type)
        else:
            out[k] = v
    return out


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = _prune(v)
            if k == "project" and (v in ({}, None, DEFAULT_PROJECT) or v == {"name": DEFAULT_PROJECT}):
                continue
            if v in ({}, None):
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


# -- streams ---------------------------------------------------------------------------------------
def chunks(data: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Re-cut a byte stream into messages of at most ``size`` bytes."""
    buf = bytearray()
    for piece in data:
        buf.extend(piece)
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)


def wait_until(cond: Callable[[], bool], is_active: Callable[[], bool], poll_s: float = 0.1) -> None:
    while not cond() and is_active():
        time.sleep(poll_s)
