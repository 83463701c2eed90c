"""pps_v2.API on the embedded engine: pipelines (create/update, inspect, list, delete), jobs and
job sets, datums and logs. Pipelines created here run on the engine's process executor."""
from __future__ import annotations

import grpc
from google.protobuf import empty_pb2
from python_pachyderm.proto.v2.pps import pps_pb2, pps_pb2_grpc

from pix2pix.errors import NotFoundError
from pix2pix.pachyderm import dag
from pix2pix.pachyderm.server_base import Abort, complete
from pix2pix.pachyderm.server_engine import (
    EngineAdapter, datum_info_pb, job_info_pb, log_pb, pipeline_info_pb, request_to_spec, wait_until,
)

def _pipeline_name(p: pps_pb2.Pipeline) -> str:
    if p.project.name not in ("", "default"):
        raise Abort(grpc.StatusCode.NOT_FOUND, f"project {p.project.name!r} not found "
                    "(`pix2pix local serve` has only the default project)")
    if not p.name:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "no pipeline name given")
    return p.name


@complete(pps_pb2.DESCRIPTOR.services_by_name["API"])
class PpsServicer(pps_pb2_grpc.APIServicer):
    """The pps subset python-pachyderm 7.6 uses for pipelines, jobs, datums and logs."""

    def __init__(self, adapter: EngineAdapter) -> None:
        self.a = adapter

    @property
    def eng(self):
        return self.a.engine

    def _exists(self, name: str) -> bool:
        try:
            self.eng.inspect_pipeline(name)
            return True
        except NotFoundError:
            return False

    # -- pipelines -----------------------------------------------------------------------------
    def CreatePipeline(self, request, context):
        name = _pipeline_name(request.pipeline)
        spec = request_to_spec(request)
        if request.dry_run:
            raise Abort(grpc.StatusCode.UNIMPLEMENTED, "CreatePipeline dry_run is not served by "
                        "`pix2pix local serve`; `pix2pix create pipeline --dry-run` validates a spec")
        exists = self._exists(name)
        if exists and not request.update:
            raise Abort(grpc.StatusCode.ALREADY_EXISTS,
                        f"pipeline {name} already exists; update it with update=True "
                        "(`pachctl update pipeline`)")
        # update=True for a pipeline that does not exist yet creates it.
        self.eng.create_pipeline(spec, update=exists, reprocess=request.reprocess,
                                 source=f"CreatePipeline {name}")
        self.a.kick()
        return empty_pb2.Empty()

    def InspectPipeline(self, request, context):
        return pipeline_info_pb(self.eng.inspect_pipeline(_pipeline_name(request.pipeline)))

    def ListPipeline(self, request, context):
        want = request.pipeline.name if request.HasField("pipeline") else ""
        for p in sorted(self.eng.list_pipelines(), key=lambda p: p.name):
            if not want or p.name == want:
                yield pipeline_info_pb(p, details=True)

    def DeletePipeline(self, request, context):
        if request.all:
            for p in self.eng.list_pipelines():
                self.eng.delete_pipeline(p.name, keep_repo=request.keep_repo, force=True)
            return empty_pb2.Empty()
        self.eng.delete_pipeline(_pipeline_name(request.pipeline), keep_repo=request.keep_repo,
                                 force=request.force)
        return empty_pb2.Empty()

    def DeleteAll(self, request, context):
        """Every pipeline, downstream ones first, with their output repos."""
        pipelines = {p.name: p.parsed.input_repos for p in self.eng.list_pipelines()}
        for name in reversed(dag.ordered(pipelines)):
            self.eng.delete_pipeline(name, force=True)
        return empty_pb2.Empty()

    # -- jobs ----------------------------------------------------------------------------------
    def _job_pb(self, j, details: bool) -> pps_pb2.JobInfo:
        spec = None
        if details:
            try:
                spec = self.eng.inspect_pipeline(j.pipeline).spec
            except NotFoundError:
                spec = None
        return job_info_pb(j, spec=spec)

    def InspectJob(self, request, context):
        name, job_id = _pipeline_name(request.job.pipeline), request.job.id
        if request.wait:
            self.a.wait_idle(context.is_active)
            wait_until(lambda: self._job_done(name, job_id), context.is_active)
        return self._job_pb(self.eng.inspect_job(name, job_id), request.details)

    def _job_done(self, name: str, job_id: str) -> bool:
        try:
            return self.eng.inspect_job(name, job_id).state.done
        except NotFoundError:
            return False

    def _job_set(self, job_id: str) -> list:
        return sorted((j for j in self.eng.list_jobs() if j.id == job_id),
                      key=lambda j: (j.started or 0, j.pipeline))

    def InspectJobSet(self, request, context):
        job_id = request.job_set.id
        if request.wait:
            wait_until(lambda: not self.a.open_repos_in_set(job_id), context.is_active)
            self.a.wait_idle(context.is_active)
        for j in self._job_set(job_id):
            yield self._job_pb(j, request.details)

    def ListJob(self, request, context):
        name = _pipeline_name(request.pipeline) if request.pipeline.name else None
        if name is not None:
            self.eng.inspect_pipeline(name)  # NOT_FOUND for an unknown pipeline, as pachd
        jobs = self.eng.list_jobs(name)  # newest first
        if request.input_commit:
            wanted = {c.id for c in request.input_commit if c.id}
            if wanted:
                jobs = [j for j in jobs if j.id in wanted or any(p.commit in wanted for p in j.inputs)]
        if request.reverse:
            jobs = jobs[::-1]
        if request.number:
            jobs = jobs[:request.number]
        for j in jobs:
            yield self._job_pb(j, request.details)

    def ListJobSet(self, request, context):
        seen: list[str] = []
        for j in self.eng.list_jobs():
            if j.id not in seen:
                seen.append(j.id)
        if request.reverse:
            seen = seen[::-1]
        if request.number:
            seen = seen[:request.number]
        for job_id in seen:
            yield pps_pb2.JobSetInfo(job_set=pps_pb2.JobSet(id=job_id),
                                     jobs=[self._job_pb(j, request.details) for j in self._job_set(job_id)])

    # -- datums and logs -----------------------------------------------------------------------
    def ListDatum(self, request, context):
        if not request.HasField("job") or not request.job.id:
            raise Abort(grpc.StatusCode.UNIMPLEMENTED, "ListDatum over a hypothetical input is not served "
                        "by `pix2pix local serve`; list the datums of a job (pipeline and job ID)")
        datums = self.eng.list_datums(_pipeline_name(request.job.pipeline), request.job.id)
        if request.reverse:
            datums = datums[::-1]
        if request.number:
            datums = datums[:request.number]
        for d in datums:
            yield datum_info_pb(d)

    def InspectDatum(self, request, context):
        job = request.datum.job
        return datum_info_pb(self.eng.inspect_datum(_pipeline_name(job.pipeline), job.id, request.datum.id))

    def GetLogs(self, request, context):
        if request.follow:
            raise Abort(grpc.StatusCode.UNIMPLEMENTED, "GetLogs follow is not served by `pix2pix local serve`")
        name = _pipeline_name(request.pipeline) if request.pipeline.name else \
            _pipeline_name(request.job.pipeline)
        job_id = request.job.id or None
        datum_id = request.datum.id or None
        lines = self.eng.logs(name, job_id=job_id, datum_id=datum_id)
        if request.tail:
            lines = lines[-request.tail:]
        for line in lines:
            yield log_pb(line)
