"""The model registry (:mod:`pix2pix.lineage`) read from a cluster through python-pachyderm:
``pix2pix cluster models`` and ``pix2pix serve --lineage`` inside a pod use this reader."""
from __future__ import annotations

from typing import Optional

import grpc
import python_pachyderm
from python_pachyderm.proto.v2.pfs import pfs_pb2

from pix2pix.cluster.connection import rpc_error
from pix2pix.cluster.refs import Ref
from pix2pix.lineage import CommitRecord


class ClusterReader:
    """:class:`pix2pix.lineage.Reader` over pachd; a repo, commit or file that is not there reads
    as empty / None (any other failure raises)."""

    def __init__(self, client: python_pachyderm.Client) -> None:
        self.client = client
        self._commits: dict[tuple[str, str], Optional[CommitRecord]] = {}

    def _missing(self, e: Exception) -> bool:
        err = rpc_error(e)
        if err is None:
            return False
        # pachd says some "not found"s with code UNKNOWN (its errors package loses the code)
        return err.code() == grpc.StatusCode.NOT_FOUND or (
            err.code() == grpc.StatusCode.UNKNOWN and "not found" in (err.details() or ""))

    def commits(self, repo: str) -> list[CommitRecord]:
        try:
            # every kind (pachd needs ``all`` for that; local serve reads the unset origin_kind)
            infos = list(self.client.list_commit(
                repo, all=True, origin_kind=pfs_pb2.OriginKind.ORIGIN_KIND_UNKNOWN))
        except (grpc.RpcError, ConnectionError) as e:
            if self._missing(e):
                return []
            raise
        out = [_record(repo, ci) for ci in infos]
        for r in out:
            self._commits[(repo, r.id)] = r
        return out

    def commit(self, repo: str, commit_id: str) -> Optional[CommitRecord]:
        key = (repo, commit_id)
        if key not in self._commits:
            try:
                infos = list(self.client.inspect_commit(Ref(repo, commit_id).commit()))
                self._commits[key] = _record(repo, infos[0]) if infos else None
            except (grpc.RpcError, ConnectionError) as e:
                if not self._missing(e):
                    raise
                self._commits[key] = None
        return self._commits[key]

    def heads(self, repo: str) -> dict[str, Optional[str]]:
        try:
            return {b.branch.name: (b.head.id or None) for b in self.client.list_branch(repo)}
        except (grpc.RpcError, ConnectionError) as e:
            if self._missing(e):
                return {}
            raise

    def read(self, repo: str, commit_id: str, path: str) -> Optional[bytes]:
        try:
            return self.client.get_file(Ref(repo, commit_id).commit(), path).read()
        except (grpc.RpcError, ConnectionError) as e:
            if self._missing(e):
                return None
            raise


def _record(repo: str, ci: pfs_pb2.CommitInfo) -> CommitRecord:
    def seconds(ts) -> Optional[float]:
        return ts.ToNanoseconds() / 1e9 if ts.seconds or ts.nanos else None
    prov = []
    for c in ci.direct_provenance:
        r = c.repo if c.HasField("repo") else c.branch.repo
        if r.type in ("", "user"):  # spec and meta repos are pachd's own bookkeeping
            prov.append((r.name, c.id))
    return CommitRecord(repo=repo, id=ci.commit.id, branch=ci.commit.branch.name,
                        started=seconds(ci.started), finished=seconds(ci.finished),
                        provenance=prov, error=ci.error,
                        size=ci.details.size_bytes if ci.HasField("details") else None)
