"""The embedded engine as the gRPC servicers see it: one :class:`EngineAdapter` per server, and the
conversions from the engine's dataclasses (``pix2pix.pachyderm.info``) to pachd's messages.

Pipelines run in a background thread, as on pachd: FinishCommit returns at once, and the waits
(InspectCommit with wait=FINISHED, InspectCommitSet/InspectJobSet/InspectJob with wait) block
until the runner has drained every queued trigger.

Each gRPC worker thread gets its own :class:`~pix2pix.pachyderm.engine.Engine` on the shared state
folder (SQLite serialises writers), so no engine object is shared between threads.
"""
from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor
from python_pachyderm.proto.v2.pfs import pfs_pb2
from python_pachyderm.proto.v2.pps import pps_pb2

from pix2pix.fsutil import atomic_write
from pix2pix.pachyderm import info as I

PROJECT = "default"


# -- the engine, per thread, and the background runner ------------------------------------------
class EngineAdapter:
    """Thread-local engines over one state folder, plus the pipeline runner loop.

    Args:
        state_dir: the engine's state folder.
        executor: the engine's executor for transforms (None: its default, ``process``).
        engine: an Engine to use in the creating thread (tests); others get their own.
        background: run the runner loop in a daemon thread (in-process servers). ``local serve``
            runs it in its main thread instead (:meth:`run_loop`), so SIGINT/SIGTERM interrupt
            a running job the way Ctrl-C does in ``pix2pix`` commands: recorded as killed.
    """

    def __init__(self, state_dir: Path, *, executor: str | None = None, engine=None,
                 background: bool = True) -> None:
        from pix2pix.pachyderm.engine import Engine

        self.state_dir = Path(state_dir)
        self._make = lambda: Engine(self.state_dir, executor=executor, defer=True)
        self._local = threading.local()
        if engine is not None:
            self._local.engine = engine
        self.engine  # create the state folder now, so a bad --state fails before we listen
        self.cluster_id = self._cluster_id()
        self._cond = threading.Condition()
        self._dirty = True  # run whatever a previous session left queued
        self._busy = False
        self.running_job = False  # True only around run_pending(), for the signal handler
        self.stopped = False
        self.last_error: str = ""
        self._thread = None
        if background:
            self._thread = threading.Thread(target=self.run_loop, name="pachd-local-runner", daemon=True)
            self._thread.start()

    @property
    def engine(self):
        eng = getattr(self._local, "engine", None)
        if eng is None:
            eng = self._local.engine = self._make()
        return eng

    def _cluster_id(self) -> str:
        path = self.state_dir / "cluster_id"
        try:
            return path.read_text().strip()
        except OSError:
            cid = uuid.uuid4().hex
            try:
                atomic_write(path, cid + "\n")
            except OSError:
                pass  # a read-only state folder: a new ID per run
            return cid

    # The runner: pachd runs jobs asynchronously, so FinishCommit and CreatePipeline only kick it.
    def kick(self) -> None:
        with self._cond:
            self._dirty = True
            self._cond.notify_all()

    def run_loop(self) -> None:
        """Run queued triggers whenever kicked, until :meth:`stop` (or a KeyboardInterrupt from a
        signal handler while a job runs: the engine records that job as killed)."""
        while not self.stopped:
            with self._cond:
                if not self._dirty:
                    # A timed wait: a signal handler sets ``stopped`` without the lock.
                    self._cond.wait(timeout=0.5)
                if not self._dirty or self.stopped:
                    continue
                self._dirty, self._busy = False, True
            try:
                self.running_job = True
                self.engine.run_pending()
                self.running_job = False
                self.last_error = ""
            except KeyboardInterrupt:
                self.running_job = False
                self.stopped = True
            except Exception as e:  # noqa: BLE001 - a failed job is recorded by the engine; keep serving
                self.running_job = False
                self.last_error = f"{type(e).__name__}: {e}"
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def wait_idle(self, is_active: Callable[[], bool] = lambda: True) -> None:
        """Block until every trigger queued so far has run (or the caller went away)."""
        self.kick()
        with self._cond:
            while (self._dirty or self._busy) and not self.stopped and is_active():
                self._cond.wait(timeout=0.5)

    def stop(self) -> None:
        """Stop the runner loop (after the job it runs, if any) and wake every waiter."""
        self.stopped = True
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # Lookups the servicers need beyond the Engine facade, answered by the store.
    def is_open(self, repo: str, commit_id: str) -> bool:
        return self.engine.store.get_open_commit(repo, commit_id) is not None

    def open_commit(self, repo: str, commit_id: str) -> I.CommitInfo | None:
        return self.engine.store.get_open_commit(repo, commit_id)

    def open_on_branch(self, repo: str, branch: str) -> str | None:
        """The newest open commit on ``repo@branch``, if any."""
        found = self.engine.store.list_open_commits(repo, branch)
        return found[0].id if found else None

    def open_repos_in_set(self, commit_id: str) -> list[str]:
        """Repos where the commit set ``commit_id`` still has an open (user) commit."""
        return self.engine.store.open_commit_repos(commit_id)

    def commit_set_exists(self, commit_id: str) -> bool:
        return bool(self.engine.store.commit_set(commit_id))

    def children(self, repo: str, commit_id: str) -> list[str]:
        """Commits whose parent is ``commit_id`` (pachd's CommitInfo.child_commits)."""
        return self.engine.commit_children(repo, commit_id)

    def set_open_description(self, repo: str, commit_id: str, description: str) -> None:
        """FinishCommit may (re)write the description, as pachd allows."""
        self.engine.store.set_open_description(repo, commit_id, description)

    def datum_of(self, repo: str, commit_id: str, path: str) -> str:
        """The datum that wrote ``path`` in a pipeline's output commit ("" if none is recorded)."""
        return self.engine.datum_of(repo, commit_id, path) or ""


# -- conversions --------------------------------------------------------------------------------
def ts(t: float | None) -> timestamp_pb2.Timestamp | None:
    if t is None:
        return None
    out = timestamp_pb2.Timestamp()
    out.FromNanoseconds(int(t * 1e9))
    return out


def repo_pb(name: str) -> pfs_pb2.Repo:
    return pfs_pb2.Repo(name=name, type="user", project=pfs_pb2.Project(name=PROJECT))


def commit_pb(repo: str, commit_id: str, branch: str = "") -> pfs_pb2.Commit:
    r = repo_pb(repo)
    return pfs_pb2.Commit(id=commit_id, repo=r, branch=pfs_pb2.Branch(repo=r, name=branch))


def repo_info_pb(r: I.RepoInfo) -> pfs_pb2.RepoInfo:
    rp = repo_pb(r.name)
    return pfs_pb2.RepoInfo(repo=rp, created=ts(r.created), size_bytes_upper_bound=r.size,
                            description=r.description,
                            branches=[pfs_pb2.Branch(repo=rp, name=b) for b in r.branches],
                            details=pfs_pb2.RepoInfo.Details(size_bytes=r.size))


def commit_info_pb(c: I.CommitInfo, children: list[str] = ()) -> pfs_pb2.CommitInfo:
    kind = pfs_pb2.OriginKind.AUTO if c.origin == "AUTO" else pfs_pb2.OriginKind.USER
    return pfs_pb2.CommitInfo(
        commit=commit_pb(c.repo, c.id, c.branch),
        origin=pfs_pb2.CommitOrigin(kind=kind),
        description=c.description,
        parent_commit=commit_pb(c.repo, c.parent, c.branch) if c.parent else None,
        child_commits=[commit_pb(c.repo, k, c.branch) for k in children],
        started=ts(c.started), finishing=ts(c.finished), finished=ts(c.finished),
        direct_provenance=[commit_pb(p.repo, p.commit, p.branch) for p in c.provenance],
        size_bytes_upper_bound=c.size,
        details=pfs_pb2.CommitInfo.Details(size_bytes=c.size))


def open_commit_info_pb(c: I.CommitInfo) -> pfs_pb2.CommitInfo:
    """An open commit as pachd shows one: started, not finished."""
    return pfs_pb2.CommitInfo(
        commit=commit_pb(c.repo, c.id, c.branch),
        origin=pfs_pb2.CommitOrigin(kind=pfs_pb2.OriginKind.USER),
        description=c.description,
        parent_commit=commit_pb(c.repo, c.parent, c.branch) if c.parent else None,
        started=ts(c.started))


def file_info_pb(f: I.FileInfo, *, branch: str = "", datum: str = "") -> pfs_pb2.FileInfo:
    # pachd writes folders with a trailing slash ("/dir/"), the root as "/".
    path = f.path if f.type == "file" or f.path == "/" else f.path.rstrip("/") + "/"
    return pfs_pb2.FileInfo(
        file=pfs_pb2.File(commit=commit_pb(f.repo, f.commit, branch), path=path, datum=datum),
        file_type=pfs_pb2.FileType.FILE if f.type == "file" else pfs_pb2.FileType.DIR,
        size_bytes=f.size, hash=bytes.fromhex(f.hash) if f.hash else b"")


def job_state_pb(state: str | None) -> int:
    """pps.JobState of an engine job state (JOB_STATE_UNKNOWN for none)."""
    return pps_pb2.JobState.Value(I.JobState(state).pachd) if state else \
        pps_pb2.JobState.JOB_STATE_UNKNOWN


def datum_state_pb(state: str) -> int:
    return pps_pb2.DatumState.Value(I.DatumState(state).pachd)


def pipeline_pb(name: str) -> pps_pb2.Pipeline:
    return pps_pb2.Pipeline(name=name, project=pfs_pb2.Project(name=PROJECT))


def spec_request(spec: dict) -> pps_pb2.CreatePipelineRequest:
    """A stored spec (camelCase JSON) as pachd's CreatePipelineRequest; unknown fields ignored."""
    return json_format.ParseDict(spec, pps_pb2.CreatePipelineRequest(), ignore_unknown_fields=True)


def pipeline_info_pb(p: I.PipelineInfo, *, details: bool = True) -> pps_pb2.PipelineInfo:
    state = pps_pb2.PipelineState.PIPELINE_PAUSED if p.state == "paused" else \
        pps_pb2.PipelineState.PIPELINE_RUNNING
    out = pps_pb2.PipelineInfo(pipeline=pipeline_pb(p.name), version=p.version, state=state,
                               stopped=p.state == "paused",
                               last_job_state=job_state_pb(p.last_job_state),
                               parallelism=1, type=pps_pb2.PipelineInfo.PipelineType.PIPELINE_TYPE_TRANSFORM)
    if details:
        req = spec_request(p.spec)
        d = out.details
        for name in ("transform", "parallelism_spec", "egress", "resource_requests", "resource_limits",
                     "sidecar_resource_limits", "input", "service", "spout", "datum_set_spec",
                     "datum_timeout", "job_timeout", "scheduling_spec", "metadata",
                     "sidecar_resource_requests"):
            if req.HasField(name):
                getattr(d, name).CopyFrom(getattr(req, name))
        d.description = req.description or p.description
        d.salt, d.datum_tries, d.pod_patch, d.pod_spec = req.salt, req.datum_tries, req.pod_patch, req.pod_spec
        d.s3_out, d.reprocess_spec, d.autoscaling = req.s3_out, req.reprocess_spec, req.autoscaling
        d.output_branch = req.output_branch or "master"
        d.created_at.CopyFrom(ts(p.created))
        d.workers_requested = d.workers_available = 1
        out.details_json = ""
    return out


def job_info_pb(j: I.JobInfo, *, spec: dict | None = None) -> pps_pb2.JobInfo:
    out = pps_pb2.JobInfo(
        job=pps_pb2.Job(pipeline=pipeline_pb(j.pipeline), id=j.id),
        pipeline_version=j.spec_version,
        output_commit=commit_pb(j.pipeline, j.output_commit or j.id, "master"),
        data_processed=j.processed, data_skipped=j.skipped, data_failed=j.failed, data_total=j.total,
        state=job_state_pb(j.state), reason=j.reason,
        created=ts(j.started), started=ts(j.started), finished=ts(j.finished))
    if spec:
        req = spec_request(spec)
        for name in ("transform", "parallelism_spec", "input", "resource_requests", "resource_limits"):
            if req.HasField(name):
                getattr(out.details, name).CopyFrom(getattr(req, name))
        out.details.datum_tries = req.datum_tries
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


def log_pb(line: I.LogLine) -> pps_pb2.LogMessage:
    return pps_pb2.LogMessage(project_name=PROJECT, pipeline_name=line.pipeline, job_id=line.job_id,
                              datum_id=line.datum_id or "", message=line.message, user=True)


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
    d = _ints(d, req.DESCRIPTOR)
    return _prune(d)


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
            if k == "project" and (v in ({}, None) or v == {"name": PROJECT}):
                continue
            if v in ({}, None):
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


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
