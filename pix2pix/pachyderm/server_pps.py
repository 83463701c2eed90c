"""pps_v2.API on the embedded engine: pipelines (create/update, v2 JSON specs, inspect with
history, list, delete, stop/start), jobs and job sets (inspect with wait, list, stop, delete),
datums (of a job, or of an input as a dry run), logs (with follow) and the cron trigger.
Pipelines created here run on the engine's executor; Kubernetes-only calls (secrets) refuse in
one line."""
from __future__ import annotations

import json
import time

import grpc
from google.protobuf import empty_pb2
from python_pachyderm.proto.v2.pps import pps_pb2, pps_pb2_grpc

from pix2pix.errors import NotFoundError, SpecError, UsageError
from pix2pix.pachyderm import dag, queries
from pix2pix.pachyderm import server_ops as ops
from pix2pix.pachyderm.server_base import Abort, complete
from pix2pix.pachyderm.server_convert import (datum_info_pb, job_info_pb, log_pb, pipeline_info_pb,
                                              pipeline_name, request_to_spec)
from pix2pix.pachyderm.server_engine import EngineAdapter
from pix2pix.pachyderm.server_txn import transactional
from pix2pix.pachyderm.spec import parse_spec

LOG_POLL_S = 0.2
NO_SECRETS = ("secrets live in Kubernetes, which the embedded engine does not have; pass values "
              "to a pipeline with transform.env (or run it on a real Pachyderm)")


def _name(p: pps_pb2.Pipeline) -> str:
    if not p.name:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "no pipeline name given")
    return pipeline_name(p)


def _jq(expr: str):
    """A compiled jq filter (pachctl's --filter / python-pachyderm's jqFilter)."""
    try:
        import jq
    except ImportError:  # an optional extra: say how to get it
        raise UsageError("a jq filter needs the `jq` package (pip install jq)") from None
    try:
        return jq.compile(expr)
    except ValueError as e:
        raise UsageError(f"jq filter {expr!r}: {str(e).splitlines()[0]}") from None


def _passes(program, message) -> bool:
    """Whether a message passes a jq filter: it yields something truthy for the message's
    JSON, as pachd applies it."""
    if program is None:
        return True
    from google.protobuf import json_format
    out = program.input(json_format.MessageToDict(message, preserving_proto_field_name=True)).all()
    return any(v not in (None, False) for v in out)


@complete(pps_pb2.DESCRIPTOR.services_by_name["API"])
class PpsServicer(pps_pb2_grpc.APIServicer):
    """pachd's PPS API."""

    def __init__(self, adapter: EngineAdapter) -> None:
        self.a = adapter

    @property
    def eng(self):
        return self.a.engine

    # -- pipelines -----------------------------------------------------------------------------
    @transactional("create_pipeline")
    def CreatePipeline(self, request, context):
        ops.create_pipeline(self.eng, request)
        self.a.kick()
        return empty_pb2.Empty()

    def create_pipeline_v2(self, request, context):
        """CreatePipelineV2 (pachd 2.7+, unknown to python-pachyderm 7.6's protos, so served
        by :func:`v2_handler`): a pipeline spec as JSON, with update and reprocess."""
        try:
            spec = json.loads(request.create_pipeline_request_json)
        except json.JSONDecodeError as e:
            raise SpecError(f"CreatePipelineV2: the spec is not JSON ({e})") from None
        if not isinstance(spec, dict):
            raise SpecError("CreatePipelineV2: the spec must be a JSON object")
        source = f"CreatePipelineV2 {(spec.get('pipeline') or {}).get('name', '?')}"
        if request.dry_run:
            info_spec = parse_spec(spec, source=source).raw
        else:
            info_spec = self.eng.create_pipeline(spec, update=request.update,
                                                 reprocess=request.reprocess, source=source,
                                                 run=False).spec
            self.a.kick()
        return V2_RESPONSE(effective_create_pipeline_request_json=json.dumps(info_spec))

    def InspectPipeline(self, request, context):
        return pipeline_info_pb(self.eng.inspect_pipeline(_name(request.pipeline)),
                                details=True)

    def ListPipeline(self, request, context):
        """Every pipeline (or one), each with its older versions when ``history`` asks (-1:
        all), filtered by project and by a jq filter."""
        want = pipeline_name(request.pipeline) if request.pipeline.name else None
        if want:
            self.eng.inspect_pipeline(want)  # NOT_FOUND for an unknown pipeline, as pachd
        projects = {p.name for p in request.projects}
        program = _jq(request.jqFilter) if request.jqFilter else None
        for p in sorted(self.eng.list_pipelines(), key=lambda p: p.name):
            if (want and p.name != want) or (projects and p.project not in projects):
                continue
            versions = self.eng.pipeline_history(p.name)
            keep = len(versions) if request.history < 0 else 1 + request.history
            for v in versions[:keep]:
                msg = pipeline_info_pb(v, details=True)
                if _passes(program, msg):
                    yield msg

    def DeletePipeline(self, request, context):
        if request.all:
            names = {p.name: p.parsed.input_repos for p in self.eng.list_pipelines()}
            for name in reversed(dag.ordered(names)):
                self.eng.delete_pipeline(name, keep_repo=request.keep_repo, force=True)
            return empty_pb2.Empty()
        self.eng.delete_pipeline(_name(request.pipeline), keep_repo=request.keep_repo,
                                 force=request.force)
        return empty_pb2.Empty()

    def DeleteAll(self, request, context):
        """Every pipeline, downstream ones first, with their output repos."""
        names = {p.name: p.parsed.input_repos for p in self.eng.list_pipelines()}
        for name in reversed(dag.ordered(names)):
            self.eng.delete_pipeline(name, force=True)
        return empty_pb2.Empty()

    def StopPipeline(self, request, context):
        self.eng.stop_pipeline(_name(request.pipeline))
        return empty_pb2.Empty()

    def StartPipeline(self, request, context):
        self.eng.start_pipeline(_name(request.pipeline), run=False)
        self.a.kick()
        return empty_pb2.Empty()

    def RunCron(self, request, context):
        name = _name(request.pipeline)
        p = self.eng.inspect_pipeline(name)
        if not p.parsed.input.has("cron"):
            raise Abort(grpc.StatusCode.FAILED_PRECONDITION,
                        f"pipeline {name} doesn't have a cron input")
        self.eng.run_cron(name, run=False)
        self.a.kick()
        return empty_pb2.Empty()

    # -- jobs ----------------------------------------------------------------------------------
    def _job_pb(self, j, details: bool) -> pps_pb2.JobInfo:
        spec = None
        try:
            spec = self.eng.inspect_pipeline(j.pipeline).spec
        except NotFoundError:
            pass
        return job_info_pb(j, spec=spec if details else ({"outputBranch": spec.get("outputBranch")}
                                                         if spec else None))

    def InspectJob(self, request, context):
        name, job_id = _name(request.job.pipeline), request.job.id
        if request.wait:
            self.a.wait_for(lambda: self._job_done(name, job_id), context.is_active)
        return self._job_pb(self.eng.inspect_job(name, job_id), request.details)

    def _job_done(self, name: str, job_id: str) -> bool:
        try:
            return self.eng.inspect_job(name, job_id).state.done
        except NotFoundError:
            return False

    def _job_set(self, job_id: str) -> list:
        return sorted((j for j in self.eng.list_jobs() if j.id == job_id),
                      key=lambda j: (j.created or 0, j.pipeline))

    def InspectJobSet(self, request, context):
        job_id = request.job_set.id
        if request.wait:
            self.a.wait_for(lambda: all(j.state.done for j in self._job_set(job_id)) and
                            all(c.finished is not None for c in self._set_commits(job_id)),
                            context.is_active)
        for j in self._job_set(job_id):
            yield self._job_pb(j, request.details)

    def _set_commits(self, set_id: str) -> list:
        try:
            return self.eng.inspect_commit_set(set_id)
        except NotFoundError:
            return []

    def ListJob(self, request, context):
        name = _name(request.pipeline) if request.pipeline.name else None
        jobs = self.eng.list_jobs(name)  # newest first; NOT_FOUND for an unknown pipeline
        projects = {p.name for p in request.projects}
        if projects:
            jobs = [j for j in jobs if self.eng.inspect_pipeline(j.pipeline).project in projects]
        wanted = {c.id for c in request.input_commit if c.id}
        if wanted:
            jobs = [j for j in jobs if j.id in wanted or any(p.commit in wanted for p in j.inputs)]
        program = _jq(request.jqFilter) if request.jqFilter else None
        if request.reverse:
            jobs = jobs[::-1]
        n = 0
        for j in jobs:
            msg = self._job_pb(j, request.details)
            if not _passes(program, msg):
                continue
            yield msg
            n += 1
            if request.number and n >= request.number:
                return

    def ListJobSet(self, request, context):
        projects = {p.name for p in request.projects}
        seen: list[str] = []
        for j in self.eng.list_jobs():
            if projects and self.eng.inspect_pipeline(j.pipeline).project not in projects:
                continue
            if j.id not in seen:
                seen.append(j.id)
        if request.reverse:
            seen = seen[::-1]
        if request.number:
            seen = seen[:request.number]
        for job_id in seen:
            yield pps_pb2.JobSetInfo(job_set=pps_pb2.JobSet(id=job_id),
                                     jobs=[self._job_pb(j, request.details) for j in self._job_set(job_id)])

    @transactional("stop_job")
    def StopJob(self, request, context):
        ops.stop_job(self.eng, request)
        return empty_pb2.Empty()

    def DeleteJob(self, request, context):
        self.eng.delete_job(_name(request.job.pipeline), request.job.id)
        return empty_pb2.Empty()

    # -- datums and logs -----------------------------------------------------------------------
    def ListDatum(self, request, context):
        if request.HasField("input"):
            datums = queries.dry_run_datums(self.eng, request_to_spec(
                pps_pb2.CreatePipelineRequest(input=request.input))["input"])
        else:
            if not request.job.id:
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "ListDatum needs a job or an input")
            datums = self.eng.list_datums(_name(request.job.pipeline), request.job.id)
        if request.reverse:
            datums = datums[::-1]
        if request.number:
            datums = datums[:request.number]
        for d in datums:
            yield datum_info_pb(d)

    def InspectDatum(self, request, context):
        job = request.datum.job
        return datum_info_pb(self.eng.inspect_datum(_name(job.pipeline), job.id, request.datum.id))

    def RestartDatum(self, request, context):
        self.eng.restart_datum(_name(request.job.pipeline), request.job.id,
                               list(request.data_filters))
        return empty_pb2.Empty()

    def GetLogs(self, request, context):
        """A pipeline's (or one job's) log lines, the engine's own lines (``master``) or the
        code's; with ``follow``, new lines as they come until the client goes away."""
        name = _name(request.pipeline) if request.pipeline.name else _name(request.job.pipeline)
        job_id = request.job.id or None
        datum_id = request.datum.id or None
        seen = 0
        while True:
            lines = queries.log_lines(self.eng, name, job_id=job_id, datum_id=datum_id,
                                      all_jobs=job_id is None and request.follow,
                                      engine_only=request.master)
            if request.tail and not seen:
                seen = max(0, len(lines) - request.tail)
            for line, is_engine in lines[seen:]:
                yield log_pb(line, master=is_engine)
            seen = len(lines)
            if not request.follow or not context.is_active() or self.a.stopped:
                return
            time.sleep(LOG_POLL_S)

    # -- Kubernetes-only -----------------------------------------------------------------------
    def CreateSecret(self, request, context):
        raise Abort(grpc.StatusCode.UNIMPLEMENTED, NO_SECRETS)

    def DeleteSecret(self, request, context):
        raise Abort(grpc.StatusCode.UNIMPLEMENTED, NO_SECRETS)

    def InspectSecret(self, request, context):
        raise Abort(grpc.StatusCode.UNIMPLEMENTED, NO_SECRETS)

    def ListSecret(self, request, context):
        raise Abort(grpc.StatusCode.UNIMPLEMENTED, NO_SECRETS)


# -- CreatePipelineV2 ------------------------------------------------------------------------------
def _v2_messages():
    """pachd's CreatePipelineV2Request/Response (pps.proto, fields 1-4 and 1), built at run
    time since python-pachyderm 7.6 ships protos from before them."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    f = descriptor_pb2.FileDescriptorProto(name="pix2pix/pps_v2_extra.proto", package="pps_v2",
                                           syntax="proto3")
    req = f.message_type.add(name="CreatePipelineV2Request")
    T = descriptor_pb2.FieldDescriptorProto
    for number, (name, kind) in enumerate([("create_pipeline_request_json", T.TYPE_STRING),
                                           ("dry_run", T.TYPE_BOOL), ("update", T.TYPE_BOOL),
                                           ("reprocess", T.TYPE_BOOL)], 1):
        req.field.add(name=name, number=number, type=kind, label=T.LABEL_OPTIONAL)
    resp = f.message_type.add(name="CreatePipelineV2Response")
    resp.field.add(name="effective_create_pipeline_request_json", number=1, type=T.TYPE_STRING,
                   label=T.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    factory = message_factory.MessageFactory(pool)
    return (factory.GetPrototype(pool.FindMessageTypeByName("pps_v2.CreatePipelineV2Request")),
            factory.GetPrototype(pool.FindMessageTypeByName("pps_v2.CreatePipelineV2Response")))


V2_REQUEST, V2_RESPONSE = _v2_messages()


def v2_handler(servicer: PpsServicer) -> grpc.GenericRpcHandler:
    """The gRPC handler of /pps_v2.API/CreatePipelineV2, next to the generated ones."""
    from pix2pix.pachyderm.server_base import handler
    method = grpc.unary_unary_rpc_method_handler(
        lambda request, context: handler(PpsServicer.create_pipeline_v2)(servicer, request, context),
        request_deserializer=V2_REQUEST.FromString,
        response_serializer=V2_RESPONSE.SerializeToString)
    return grpc.method_handlers_generic_handler("pps_v2.API", {"CreatePipelineV2": method})
