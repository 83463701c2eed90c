"""The requests a pachd transaction may hold (``transaction.TransactionRequest``), each as the one
engine call both its direct RPC and a transaction make, so the two cannot drift apart.

    run_request(engine, TransactionRequest(create_repo=...), commit_set=None) -> TransactionResponse
"""
from __future__ import annotations

from typing import Optional

import grpc
from python_pachyderm.proto.v2.pfs import pfs_pb2
from python_pachyderm.proto.v2.pps import pps_pb2
from python_pachyderm.proto.v2.transaction import transaction_pb2

from pix2pix.errors import NotFoundError, UsageError
from pix2pix.pachyderm.server_base import Abort
from pix2pix.pachyderm.server_convert import (commit_pb, pipeline_name, repo_name,
                                              request_to_spec)
from pix2pix.pachyderm.spec import parse_spec


def commit_ref(c: pfs_pb2.Commit) -> tuple[str, str]:
    """(repo, ref) for the engine: the commit ID, else the branch (ancestry included)."""
    # python-pachyderm sends ("repo", "master^1") as id "master^1": the engine resolves both.
    repo = c.repo if c.HasField("repo") and c.repo.name else c.branch.repo
    if not repo.name:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "no repo name given")
    return repo_name(repo), c.id or c.branch.name or "master"


def create_repo(eng, req: pfs_pb2.CreateRepoRequest) -> None:
    if req.repo.type not in ("", "user"):
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                    f"repo type {req.repo.type!r}: only user repos can be created")
    eng.create_repo(repo_name(req.repo), description=req.description, update=req.update)


def delete_repo(eng, req: pfs_pb2.DeleteRepoRequest) -> None:
    eng.delete_repo(repo_name(req.repo), force=req.force)


def start_commit(eng, req: pfs_pb2.StartCommitRequest,
                 commit_set: Optional[str] = None) -> pfs_pb2.Commit:
    repo = repo_name(req.branch.repo)
    branch = req.branch.name or "master"
    parent = None
    if req.HasField("parent") and (req.parent.id or req.parent.branch.name):
        parent = commit_ref(req.parent)[1]
    # Not owned by the server process: an open commit outlives a restart, as in pachd.
    cid = eng.start_commit(repo, branch, parent=parent, description=req.description,
                           commit_id=commit_set, owned=False)
    return commit_pb(repo, cid, branch)


def finish_commit(eng, req: pfs_pb2.FinishCommitRequest) -> None:
    repo, ref = commit_ref(req.commit)
    eng.finish_commit(repo, ref, description=req.description or None, error=req.error, run=False)


def squash_commit_set(eng, req: pfs_pb2.SquashCommitSetRequest) -> None:
    eng.squash_commit_set(req.commit_set.id)


def create_branch(eng, req: pfs_pb2.CreateBranchRequest) -> None:
    repo = repo_name(req.branch.repo)
    head = None
    if req.HasField("head") and (req.head.id or req.head.branch.name):
        head_repo, head = commit_ref(req.head)
        if head_repo != repo:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"branch {repo}@{req.branch.name}: its head must be a commit of {repo}")
    prov = [f"{repo_name(b.repo)}@{b.name or 'master'}" for b in req.provenance]
    trigger = None
    if req.HasField("trigger") and req.trigger.branch:
        t = req.trigger
        trigger = {"branch": t.branch, "all": t.all, "size": t.size, "commits": t.commits,
                   "cronSpec": t.cron_spec, "rateLimitSpec": t.rate_limit_spec}
    eng.create_branch(repo, req.branch.name or "master", head, provenance=prov, trigger=trigger,
                      new_commit=req.new_commit_set, run=False)


def delete_branch(eng, req: pfs_pb2.DeleteBranchRequest) -> None:
    eng.delete_branch(repo_name(req.branch.repo), req.branch.name or "master", force=req.force)


def create_pipeline(eng, req: pps_pb2.CreatePipelineRequest) -> None:
    name = pipeline_name(req.pipeline)
    if not req.pipeline.name:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "no pipeline name given")
    if req.dry_run:
        parse_spec(request_to_spec(req), source=f"CreatePipeline {name}")
        return
    exists = _pipeline_exists(eng, name)
    if exists and not req.update:
        raise Abort(grpc.StatusCode.ALREADY_EXISTS,
                    f"pipeline {name} already exists; update it with update=True "
                    "(`pachctl update pipeline`)")
    # update=True for a pipeline that does not exist yet creates it.
    eng.create_pipeline(request_to_spec(req), update=exists, reprocess=req.reprocess,
                        source=f"CreatePipeline {name}", run=False)


def _pipeline_exists(eng, name: str) -> bool:
    try:
        eng.inspect_pipeline(name)
        return True
    except NotFoundError:
        return False


def stop_job(eng, req: pps_pb2.StopJobRequest) -> None:
    eng.stop_job(pipeline_name(req.job.pipeline), req.job.id, reason=req.reason)


def update_job_state(eng, req: pps_pb2.UpdateJobStateRequest) -> None:
    raise UsageError("UpdateJobState is pachd's worker-to-master call; the embedded engine's "
                     "jobs update themselves")


_RUN = {
    "create_repo": create_repo, "delete_repo": delete_repo, "finish_commit": finish_commit,
    "squash_commit_set": squash_commit_set, "create_branch": create_branch,
    "delete_branch": delete_branch, "create_pipeline": create_pipeline, "stop_job": stop_job,
    "update_job_state": update_job_state,
}


def run_request(eng, request: transaction_pb2.TransactionRequest,
                commit_set: Optional[str] = None) -> transaction_pb2.TransactionResponse:
    """Run one transaction request on ``eng``; commits it starts get the ID ``commit_set``
    (the transaction's, as pachd does)."""
    kind = next((f.name for f, _ in request.ListFields()), None)
    if kind is None:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "empty transaction request")
    if kind == "start_commit":
        return transaction_pb2.TransactionResponse(
            commit=start_commit(eng, request.start_commit, commit_set))
    _RUN[kind](eng, getattr(request, kind))
    return transaction_pb2.TransactionResponse()

