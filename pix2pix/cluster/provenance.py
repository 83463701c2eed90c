"""Trace one output file back to everything it came from, through pachd's own records.

Two kinds of record, as Pachyderm 2.x keeps them:

- **commit provenance**: every commit lists the commits it was computed from
  (``CommitInfo.direct_provenance``); a new input commit and the output commits computed from it
  share one global ID (the commit set, which is also the job ID);
- **datums**: an output file is tagged with the datum that wrote it (``File.datum``), and the datum
  lists its input files (``DatumInfo.data``).

So for ``generate_images@ID:/x.png`` the chain reads (drawn by the engine's own renderer)::

    generate_images@ID:/x.png  (AUTO, pipeline generate_images, datum d1)
    ├── preprocess_images@ID:/x.png  (AUTO, pipeline preprocess_images, datum d2)
    │   └── input_images@ID:/x.jpg  (USER)                 <- the input image
    └── model@M:/  (AUTO, pipeline model, datum d3)         <- the model
        └── checkpoint@M:/  (AUTO, pipeline checkpoint, datum d4)
            └── training@M:/  (USER)                       <- the training data

A file whose datum pachd does not name is matched to a datum by file name; failing that, the
chain continues at commit level (the whole input commits) so it never stops short.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import grpc
from python_pachyderm.proto.v2.pfs import pfs_pb2
from python_pachyderm.proto.v2.pps import pps_pb2

from pix2pix.cluster.connection import Cluster, rpc_error, translate
from pix2pix.cluster.refs import Ref
from pix2pix.errors import UsageError
from pix2pix.pachyderm.info import ProvenanceNode
from pix2pix.pachyderm.provenance import render as render_provenance
from pix2pix.pachyderm.provenance import to_dict as provenance_to_dict


@dataclass
class Trace:
    """The provenance of one file: the chain (the engine's :class:`ProvenanceNode` tree, so the
    cluster and the embedded engine show provenance alike), the commit set, and each repo's commit."""

    root: ProvenanceNode
    commit_set: str
    commit_set_repos: list[str]
    commits: dict[str, str]          # repo -> commit ID, every repo upstream (and the file's own)
    sources: list[ProvenanceNode]    # files or commits in repos no pipeline writes (user data)

    def to_dict(self) -> dict[str, Any]:
        return {"file": {"repo": self.root.repo, "commit": self.root.commit, "path": self.root.paths[0]},
                "commit_set": self.commit_set, "commit_set_repos": self.commit_set_repos,
                "commits": self.commits,
                "sources": [{"repo": n.repo, "commit": n.commit, "path": n.paths[0]} for n in self.sources],
                "chain": provenance_to_dict(self.root)}

    def render(self) -> str:
        lines = [render_provenance(self.root), ""]
        lines.append(f"commit set {self.commit_set}: " + ", ".join(self.commit_set_repos))
        width = max(len(r) for r in self.commits)
        for repo, cid in self.commits.items():
            src = [n.paths[0] for n in self.sources if n.repo == repo and n.paths[0] != "/"]
            lines.append(f"  {repo:<{width}}  {cid}" + (f"  {', '.join(src)}" if src else ""))
        return "\n".join(lines)


class _Tracer:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.client = cluster.client
        self._pipelines: dict[str, bool] = {}
        self._commits: dict[tuple[str, str], pfs_pb2.CommitInfo] = {}
        self._datums: dict[tuple[str, str], list[pps_pb2.DatumInfo]] = {}

    def _call(self, what: str, fn, *, tolerate: tuple = ()):
        """``fn()``; a gRPC failure with a code in ``tolerate`` gives None, any other a ClusterError."""
        try:
            return fn()
        except (grpc.RpcError, ConnectionError) as e:
            err = rpc_error(e)
            if err is not None and err.code() in tolerate:
                return None
            raise translate(e, self.cluster.address, what) from None

    def is_pipeline(self, repo: str) -> bool:
        if repo not in self._pipelines:
            found = self._call(f"pipeline {repo!r}", lambda: list(self.client.inspect_pipeline(repo)),
                               tolerate=(grpc.StatusCode.NOT_FOUND,))
            self._pipelines[repo] = found is not None
        return self._pipelines[repo]

    def commit_info(self, repo: str, commit_id: str) -> pfs_pb2.CommitInfo:
        key = (repo, commit_id)
        if key not in self._commits:
            with self.cluster.rpc(f"commit {repo}@{commit_id}"):
                self._commits[key] = list(self.client.inspect_commit(Ref(repo, commit_id).commit()))[0]
        return self._commits[key]

    def datums(self, pipeline: str, job_id: str) -> list[pps_pb2.DatumInfo] | None:
        """The datums of a job, or None where pachd keeps none (or does not serve ListDatum)."""
        key = (pipeline, job_id)
        if key not in self._datums:
            self._datums[key] = self._call(
                f"datums of job {pipeline}@{job_id}", lambda: list(self.client.list_datum(pipeline, job_id)),
                tolerate=(grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED))
        return self._datums[key]

    def datum_tag(self, repo: str, commit_id: str, path: str) -> str:
        fi = self._call(f"file {repo}@{commit_id}:{path}",
                        lambda: self.client.inspect_file(Ref(repo, commit_id).commit(), path),
                        tolerate=(grpc.StatusCode.NOT_FOUND,))
        return fi.file.datum if fi is not None else ""

    def provenance(self, repo: str, commit_id: str) -> list[tuple[str, str]]:
        """(repo, commit ID) of each commit this one was computed from; spec/meta repos left out."""
        out = []
        for c in self.commit_info(repo, commit_id).direct_provenance:
            r = _repo(c)
            if r.type in ("", "user"):
                out.append((r.name, c.id))
        return out

    def trace(self, repo: str, commit_id: str, path: str, datum: str = "",
              input_name: str | None = None, seen: frozenset = frozenset()) -> ProvenanceNode:
        is_pipeline = self.is_pipeline(repo)
        node = ProvenanceNode(repo=repo, commit=commit_id, branch=self.branch_of(repo, commit_id),
                              origin="AUTO" if is_pipeline else "USER", paths=[path],
                              pipeline=repo if is_pipeline else None,
                              job_id=commit_id if is_pipeline else None, input_name=input_name)
        key = (repo, commit_id, path)
        if not is_pipeline or key in seen:
            return node
        seen = seen | {key}
        data = None
        if path != "/":
            data = self._datum_inputs(node, datum or self.datum_tag(repo, commit_id, path))
        if data is not None:
            for fi in data:
                # A file input is traced file by file; a folder input (glob "/") as its whole commit.
                p = "/" + fi.file.path.strip("/") if fi.file_type == pfs_pb2.FileType.FILE else "/"
                node.inputs.append(self.trace(_repo(fi.file.commit).name, fi.file.commit.id, p,
                                              seen=seen))
        else:
            if path == "/" and len(self.datums(repo, commit_id) or []) == 1:
                node.datum_id = self.datums(repo, commit_id)[0].datum.id  # e.g. a glob "/" job
            for r, cid in self.provenance(repo, commit_id):
                node.inputs.append(self.trace(r, cid, "/", seen=seen))
        return node

    def branch_of(self, repo: str, commit_id: str) -> str:
        return self.commit_info(repo, commit_id).commit.branch.name

    def _datum_inputs(self, node: ProvenanceNode, datum: str) -> list[pfs_pb2.FileInfo] | None:
        """The input files of the datum that wrote ``node``: by its datum tag, else by name."""
        datums = self.datums(node.repo, node.commit)
        if not datums:
            return None
        if datum:
            for d in datums:
                if d.datum.id == datum:
                    node.datum_id = datum
                    return list(d.data)
        stem = PurePosixPath(node.paths[0]).stem
        matches = [d for d in datums
                   if any(f.file_type == pfs_pb2.FileType.FILE and PurePosixPath(f.file.path).stem == stem
                          for f in d.data)]
        if len(matches) == 1:
            node.datum_id = matches[0].datum.id
            return list(matches[0].data)
        if len(datums) == 1:
            node.datum_id = datums[0].datum.id
            return list(datums[0].data)
        return None


def _repo(commit: pfs_pb2.Commit) -> pfs_pb2.Repo:
    # pachd 2.6+ fills Commit.repo; older messages carry the repo in Commit.branch only.
    return commit.repo if commit.HasField("repo") else commit.branch.repo


def trace(cluster: Cluster, *, ref: Ref) -> Trace:
    """The provenance of the file ``ref`` names (``REPO@COMMIT:/path``).

    Raises:
        UsageError: no file path was given.
        ClusterError: the repo, commit or file does not exist, or pachd cannot be reached.
    """
    if ref.path == "/":
        raise UsageError(f"{ref}: name one output file, e.g. {ref.repo}@{ref.ref}:/image.png")
    tracer = _Tracer(cluster)
    with cluster.rpc(f"commit {ref.repo}@{ref.ref}"):
        info = list(cluster.client.inspect_commit(ref.commit()))[0]
    commit_id = info.commit.id
    tracer._commits[(ref.repo, commit_id)] = info
    pinned = Ref(ref.repo, commit_id, ref.path)
    with cluster.rpc(f"file {pinned.repo}@{commit_id}:{ref.path}"):
        fi = cluster.client.inspect_file(pinned.commit(), ref.path)
    if fi.file_type != pfs_pb2.FileType.FILE:
        raise UsageError(f"{pinned}: is a folder; name one file in it (`pachctl list file {pinned}`)")
    root = tracer.trace(ref.repo, commit_id, ref.path, datum=fi.file.datum)
    with cluster.rpc(f"commit set {commit_id}"):
        members = list(cluster.client.inspect_commit(commit_id))
    set_repos = sorted({_repo(c.commit).name for c in members if _repo(c.commit).type in ("", "user")})
    commits: dict[str, str] = {}
    sources: list[ProvenanceNode] = []

    def walk(n: ProvenanceNode) -> None:
        commits.setdefault(n.repo, n.commit)
        if n.pipeline is None and n not in sources:
            sources.append(n)
        for child in n.inputs:
            walk(child)

    walk(root)
    return Trace(root=root, commit_set=commit_id, commit_set_repos=set_repos, commits=commits,
                 sources=sources)
