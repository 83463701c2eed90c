"""pfs_v2.API on the embedded engine: projects, repos, commits and commit sets, branches, files
(ModifyFile with puts, URLs, copies and deletes; GetFile, GetFileTAR, InspectFile, ListFile,
WalkFile, GlobFile, DiffFile) and Fsck, with pachd's semantics (see commits.py) and its error
messages where clients parse them."""
from __future__ import annotations

import io
import tarfile
import tempfile
import time
from pathlib import PurePosixPath

import grpc
from google.protobuf import empty_pb2, wrappers_pb2
from python_pachyderm.proto.v2.pfs import pfs_pb2, pfs_pb2_grpc

from pix2pix.errors import NotAFileError, NotFoundError
from pix2pix.pachyderm import dag, fsck
from pix2pix.pachyderm import files as F
from pix2pix.pachyderm.refs import clean_path, split_name
from pix2pix.pachyderm.server_base import Abort, complete
from pix2pix.pachyderm.server_convert import (
    branch_info_pb, chunks, commit_info_pb, file_info_pb, project_info_pb, repo_info_pb, repo_name,
)
from pix2pix.pachyderm.server_engine import EngineAdapter
from pix2pix.pachyderm import server_ops as ops
from pix2pix.pachyderm.server_txn import transactional

MESSAGE_BYTES = 1 << 20  # GetFile chunks: far below any client's receive limit (python-pachyderm: 20 MiB)
SPOOL_BYTES = 8 << 20    # ModifyFile content above this goes to a temp file, not memory
SUBSCRIBE_POLL_S = 0.1
_WAITS = (pfs_pb2.CommitState.READY, pfs_pb2.CommitState.FINISHING, pfs_pb2.CommitState.FINISHED)


def _file_not_found(repo: str, commit_id: str, path: str) -> Abort:
    """A missing path in pachd's words, which python-pachyderm's path_exists() matches."""
    return Abort(grpc.StatusCode.NOT_FOUND, f"file {path} not found in repo {repo} at commit {commit_id}")


@complete(pfs_pb2.DESCRIPTOR.services_by_name["API"])
class PfsServicer(pfs_pb2_grpc.APIServicer):
    """pachd's PFS API."""

    def __init__(self, adapter: EngineAdapter) -> None:
        self.a = adapter

    @property
    def eng(self):
        return self.a.engine

    def _inspect(self, repo: str, commit_id: str, path: str):
        """The engine's FileInfo, or pachd's NOT_FOUND for a missing path."""
        try:
            return self.eng.inspect_file(repo, commit_id, path)
        except NotFoundError:
            raise _file_not_found(repo, commit_id, path) from None

    def _commit(self, c: pfs_pb2.Commit) -> tuple[str, str]:
        """(repo, commit ID). A repo that does not exist is named as pachd names it when it
        resolves the branch first (python-pachyderm's path_exists() matches that)."""
        repo, ref = ops.commit_ref(c)
        if self.eng.store.get_repo(repo) is None:
            project, name = split_name(repo)
            raise Abort(grpc.StatusCode.NOT_FOUND,
                        f'branch "{c.branch.name or ref}" not found in repo {project}/{name}')
        return repo, self.eng.resolve(repo, ref)

    def _commit_info(self, repo: str, cid: str) -> pfs_pb2.CommitInfo:
        return commit_info_pb(self.eng.inspect_commit(repo, cid), self.eng.commit_children(repo, cid))

    # -- projects ------------------------------------------------------------------------------
    def CreateProject(self, request, context):
        self.eng.create_project(request.project.name, description=request.description,
                                update=request.update)
        return empty_pb2.Empty()

    def InspectProject(self, request, context):
        return project_info_pb(self.eng.inspect_project(request.project.name))

    def ListProject(self, request, context):
        for p in self.eng.list_projects():
            yield project_info_pb(p)

    def DeleteProject(self, request, context):
        self.eng.delete_project(request.project.name, force=request.force)
        return empty_pb2.Empty()

    # -- repos ---------------------------------------------------------------------------------
    @transactional("create_repo")
    def CreateRepo(self, request, context):
        ops.create_repo(self.eng, request)
        return empty_pb2.Empty()

    def InspectRepo(self, request, context):
        return repo_info_pb(self.eng.inspect_repo(repo_name(request.repo)))

    def ListRepo(self, request, context):
        if request.type not in ("", "user"):
            return  # pachd's spec and meta repos: the engine keeps specs and datums elsewhere
        projects = {p.name for p in request.projects}
        for r in self.eng.list_repos():
            if not projects or r.project in projects:
                yield repo_info_pb(r)

    @transactional("delete_repo")
    def DeleteRepo(self, request, context):
        ops.delete_repo(self.eng, request)
        return empty_pb2.Empty()

    def DeleteAll(self, request, context):
        """Every pipeline (downstream first) and every repo, as pachd's DeleteAll."""
        pipelines = {p.name: p.parsed.input_repos for p in self.eng.list_pipelines()}
        for name in reversed(dag.ordered(pipelines)):
            self.eng.delete_pipeline(name, force=True)
        for r in self.eng.list_repos():
            self.eng.delete_repo(r.name, force=True)
        return empty_pb2.Empty()

    # -- commits -------------------------------------------------------------------------------
    @transactional("start_commit")
    def StartCommit(self, request, context):
        commit = ops.start_commit(self.eng, request)
        self.a.kick()
        return commit

    @transactional("finish_commit")
    def FinishCommit(self, request, context):
        ops.finish_commit(self.eng, request)
        self.a.kick()
        return empty_pb2.Empty()

    def InspectCommit(self, request, context):
        repo, cid = self._commit(request.commit)
        if request.wait in _WAITS:
            self.a.wait_for(lambda: self.eng.inspect_commit(repo, cid).finished is not None,
                            context.is_active)
        return self._commit_info(repo, cid)

    def ListCommit(self, request, context):
        repo = repo_name(request.repo)
        commits = self.eng.list_commits(repo)  # newest first
        if request.HasField("to") and (request.to.id or request.to.branch.name):
            to_id = self._commit(request.to)[1]
            ids = {c.id: c for c in commits}
            chain, cur = [], to_id
            while cur and cur in ids:
                chain.append(ids[cur])
                cur = ids[cur].parent
            commits = chain
        frm = getattr(request, "from")
        if frm.id or frm.branch.name:
            from_id = self._commit(frm)[1]
            cut = next((i for i, c in enumerate(commits) if c.id == from_id), None)
            if cut is not None:
                commits = commits[:cut]  # exclusive, as pachd
        if request.origin_kind in (pfs_pb2.OriginKind.USER, pfs_pb2.OriginKind.AUTO):
            want = "USER" if request.origin_kind == pfs_pb2.OriginKind.USER else "AUTO"
            commits = [c for c in commits if c.origin == want]
        if request.HasField("started_time"):
            t = request.started_time.ToNanoseconds() / 1e9
            commits = [c for c in commits if (c.started or 0) <= t]
        if request.reverse:
            commits = commits[::-1]
        if request.number:
            commits = commits[:request.number]
        for c in commits:
            yield self._commit_info(repo, c.id)

    def SubscribeCommit(self, request, context):
        """Every commit on a branch, then each new one as it appears (finished ones with
        state FINISHED), until the client goes away."""
        repo, branch = repo_name(request.repo), request.branch or "master"
        want = {pfs_pb2.OriginKind.USER: "USER", pfs_pb2.OriginKind.AUTO: "AUTO"}.get(request.origin_kind)
        finished = request.state in _WAITS
        sent: set[str] = set()
        frm = getattr(request, "from")
        if frm.id:
            sent |= {c.id for c in self.eng.list_commits(repo, branch)}
        while context.is_active() and not self.a.stopped:
            try:
                chain = self.eng.list_commits(repo, branch)[::-1]
            except NotFoundError:
                self.eng.inspect_repo(repo)  # the repo must exist; its branch may come later
                chain = []
            for c in chain:
                if c.id in sent or (want and c.origin != want) or (finished and c.finished is None):
                    continue
                sent.add(c.id)
                yield self._commit_info(repo, c.id)
            time.sleep(SUBSCRIBE_POLL_S)

    @transactional("squash_commit_set")
    def SquashCommitSet(self, request, context):
        ops.squash_commit_set(self.eng, request)
        return empty_pb2.Empty()

    def DropCommitSet(self, request, context):
        self.eng.drop_commit_set(request.commit_set.id)
        return empty_pb2.Empty()

    def InspectCommitSet(self, request, context):
        cid = request.commit_set.id
        if request.wait:
            self.a.wait_for(lambda: all(c.finished is not None for c in self.eng.inspect_commit_set(cid)),
                            context.is_active)
        for c in self.eng.inspect_commit_set(cid):
            yield self._commit_info(c.repo, c.id)

    def ListCommitSet(self, request, context):
        project = request.project.name or None
        for cid in self.eng.list_commit_sets():
            commits = self.eng.inspect_commit_set(cid)
            if project and not any(self.eng.inspect_repo(c.repo).project == project for c in commits):
                continue
            yield pfs_pb2.CommitSetInfo(commit_set=pfs_pb2.CommitSet(id=cid),
                                        commits=[self._commit_info(c.repo, c.id) for c in commits])

    # -- branches ------------------------------------------------------------------------------
    @transactional("create_branch")
    def CreateBranch(self, request, context):
        ops.create_branch(self.eng, request)
        self.a.kick()
        return empty_pb2.Empty()

    def InspectBranch(self, request, context):
        return branch_info_pb(self.eng.inspect_branch(repo_name(request.branch.repo),
                                                      request.branch.name or "master"))

    def ListBranch(self, request, context):
        branches = self.eng.list_branches(repo_name(request.repo))
        for b in (branches[::-1] if request.reverse else branches):
            yield branch_info_pb(b)

    @transactional("delete_branch")
    def DeleteBranch(self, request, context):
        ops.delete_branch(self.eng, request)
        return empty_pb2.Empty()

    # -- files ---------------------------------------------------------------------------------
    def ModifyFile(self, request_iterator, context):
        """Collect the whole stream first (content into the blob store), then apply it in one
        transaction: a stream that breaks off changes nothing, as on pachd. A branch whose head
        is open gets the changes; otherwise a commit is opened and finished around them."""
        target = None
        file_ops: list[F.FileOp] = []
        current = None  # (path, spool) of the add_file being streamed
        eng = self.eng

        def flush() -> None:
            nonlocal current
            if current is not None:
                path, spool = current
                spool.seek(0)
                file_ops.append(F.file_op(eng, path, spool, append=True, where="ModifyFile"))
                spool.close()
                current = None

        try:
            for req in request_iterator:
                kind = req.WhichOneof("body")
                if kind == "set_commit":
                    flush()
                    if target is not None and file_ops:
                        self._apply(target, file_ops)
                        file_ops = []
                    target = req.set_commit
                elif kind == "add_file":
                    af = req.add_file
                    path = clean_path(af.path, what="file path")
                    if af.WhichOneof("source") == "url":
                        flush()
                        file_ops += F.url_ops(eng, af.url.URL, path, recursive=True, append=True)
                        continue
                    if current is None or current[0] != path:
                        flush()
                        current = (path, tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES))
                    current[1].write(af.raw.value)
                elif kind == "delete_file":
                    flush()
                    file_ops.append(F.FileOp("delete", clean_path(req.delete_file.path,
                                                                  what="file path")))
                elif kind == "copy_file":
                    flush()
                    cf = req.copy_file
                    src_repo, src_ref = ops.commit_ref(cf.src.commit)
                    file_ops += F.copy_ops(eng, src_repo, src_ref, cf.src.path or "/", cf.dst)
            flush()
        finally:
            if current is not None:
                current[1].close()
        if target is None:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "ModifyFile: the first message must set_commit")
        self._apply(target, file_ops)
        return empty_pb2.Empty()

    def _apply(self, target: pfs_pb2.Commit, file_ops: list[F.FileOp]) -> None:
        repo, ref = ops.commit_ref(target)
        self.eng.modify(repo, ref, file_ops, run=False)
        self.a.kick()

    def _file(self, f: pfs_pb2.File) -> tuple[str, str, str]:
        repo, cid = self._commit(f.commit)
        return repo, cid, clean_path(f.path or "/", what="file path")

    def _info(self, fi, branch: str = "") -> pfs_pb2.FileInfo:
        datum = (self.eng.datum_of(fi.repo, fi.commit, fi.path) or "") if fi.type == "file" else ""
        return file_info_pb(fi, branch=branch, datum=datum)

    def InspectFile(self, request, context):
        repo, cid, path = self._file(request.file)
        return self._info(self._inspect(repo, cid, path), request.file.commit.branch.name)

    def ListFile(self, request, context):
        repo, cid, path = self._file(request.file)
        try:
            infos = self.eng.list_files(repo, cid, path)
        except NotFoundError:
            raise _file_not_found(repo, cid, path) from None
        if request.reverse:
            infos = infos[::-1]
        if request.number:
            infos = infos[:request.number]
        for fi in infos:
            yield self._info(fi, request.file.commit.branch.name)

    def WalkFile(self, request, context):
        """The folder itself, then every folder and file under it (pachd's order: depth first)."""
        repo, cid, path = self._file(request.file)
        top = self._inspect(repo, cid, path)
        branch = request.file.commit.branch.name
        if top.type == "file":
            yield self._info(top, branch)
            return
        found = self.eng.walk_files(repo, cid, path)
        prefix = path.rstrip("/") + "/"
        dirs = set()
        for f in found:
            parent = str(PurePosixPath(f.path).parent)
            while parent != path and parent.startswith(prefix) and parent not in dirs:
                dirs.add(parent)
                parent = str(PurePosixPath(parent).parent)
        entries = sorted([(f.path, f) for f in found] + [(d, None) for d in dirs], key=lambda e: e[0])
        n = 0
        for p, f in [(path, top)] + entries:
            fi = f if f is not None else self.eng.inspect_file(repo, cid, p)
            yield self._info(fi, branch)
            n += 1
            if request.number and n >= request.number:
                return

    def GlobFile(self, request, context):
        repo, cid = self._commit(request.commit)
        for fi in self.eng.glob_files(repo, cid, request.pattern):
            yield self._info(fi, request.commit.branch.name)

    def DiffFile(self, request, context):
        new_repo, new_cid, new_path = self._file(request.new_file)
        old_repo = old_ref = old_path = None
        if request.HasField("old_file") and (request.old_file.commit.id or
                                             request.old_file.commit.branch.name):
            old_repo, old_ref, old_path = self._file(request.old_file)
        for new, old in self.eng.diff_file(new_repo, new_cid, new_path, old_repo, old_ref, old_path):
            yield pfs_pb2.DiffFileResponse(new_file=self._info(new) if new else None,
                                           old_file=self._info(old) if old else None)

    def GetFile(self, request, context):
        repo, cid, path = self._file(request.file)
        if request.URL:
            raise Abort(grpc.StatusCode.UNIMPLEMENTED, "GetFile to a URL (egress) needs a real "
                        "pachd; the embedded engine writes to no object store")
        try:
            stream = self.eng.get_file_stream(repo, cid, path)
        except NotAFileError:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT,
                        f"{repo}@{cid}:{path} is a directory; use GetFileTAR (get_file_tar) for it") from None
        except NotFoundError:
            raise _file_not_found(repo, cid, path) from None
        skip = request.offset
        sent = False
        for chunk in chunks(stream, MESSAGE_BYTES):
            if skip:
                cut = min(skip, len(chunk))
                chunk, skip = chunk[cut:], skip - cut
                if not chunk:
                    continue
            sent = True
            yield wrappers_pb2.BytesValue(value=chunk)
        if not sent:  # python-pachyderm's PFSFile reads a first message unconditionally
            yield wrappers_pb2.BytesValue(value=b"")

    def GetFileTAR(self, request, context):
        """A tar of the file, or of the folder and everything under it (paths relative to the root)."""
        repo, cid, path = self._file(request.file)
        top = self._inspect(repo, cid, path)
        found = [top] if top.type == "file" else self.eng.walk_files(repo, cid, path)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as buf:
            with tarfile.open(fileobj=buf, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for fi in found:
                    ti = tarfile.TarInfo(fi.path.lstrip("/"))
                    ti.size, ti.mode = fi.size, 0o644
                    with (open(self.eng.blob_path(fi.hash), "rb") if fi.size else io.BytesIO()) as f:
                        tar.addfile(ti, f)
            buf.seek(0)
            while chunk := buf.read(MESSAGE_BYTES):
                yield wrappers_pb2.BytesValue(value=chunk)

    def Fsck(self, request, context):
        for problem in fsck.check(self.eng, fix=request.fix, garbage=False):
            yield pfs_pb2.FsckResponse(error=problem)

