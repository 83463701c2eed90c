"""pfs_v2.API on the embedded engine: repos, commits and commit sets, files (ModifyFile, GetFile,
GetFileTAR, InspectFile, ListFile, WalkFile, GlobFile) and branches."""
from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import PurePosixPath

import grpc
from google.protobuf import empty_pb2, wrappers_pb2
from python_pachyderm.proto.v2.pfs import pfs_pb2, pfs_pb2_grpc

from pix2pix.errors import NotAFileError, NotFoundError
from pix2pix.pachyderm.refs import COMMIT_ID, clean_path
from pix2pix.pachyderm.server_base import Abort, complete
from pix2pix.pachyderm.server_engine import (
    EngineAdapter, chunks, commit_info_pb, commit_pb, file_info_pb, open_commit_info_pb, repo_info_pb,
    repo_pb, wait_until,
)

MESSAGE_BYTES = 1 << 20  # GetFile chunks: far below any client's receive limit (python-pachyderm: 20 MiB)
SPOOL_BYTES = 8 << 20    # ModifyFile content above this goes to a temp file, not memory


def _repo_name(repo: pfs_pb2.Repo) -> str:
    if repo.project.name not in ("", "default"):
        raise Abort(grpc.StatusCode.NOT_FOUND, f"project {repo.project.name!r} not found "
                    "(`pix2pix local serve` has only the default project)")
    if repo.type not in ("", "user"):
        raise Abort(grpc.StatusCode.NOT_FOUND, f"repo {repo.name}.{repo.type} not found "
                    "(only user repos are served)")
    if not repo.name:
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "no repo name given")
    return repo.name


def _commit_repo(c: pfs_pb2.Commit) -> str:
    return _repo_name(c.repo if c.HasField("repo") and c.repo.name else c.branch.repo)


def _file_not_found(repo: str, commit_id: str, path: str) -> Abort:
    """A missing path in pachd's words, which python-pachyderm's path_exists() matches."""
    return Abort(grpc.StatusCode.NOT_FOUND, f"file {path} not found in repo {repo} at commit {commit_id}")


@complete(pfs_pb2.DESCRIPTOR.services_by_name["API"])
class PfsServicer(pfs_pb2_grpc.APIServicer):
    """The pfs subset python-pachyderm 7.6 uses for repos, commits and files."""

    def __init__(self, adapter: EngineAdapter) -> None:
        self.a = adapter

    @property
    def eng(self):
        return self.a.engine

    # -- refs ----------------------------------------------------------------------------------
    def _ref(self, c: pfs_pb2.Commit) -> tuple[str, str]:
        """(repo, ref) for the engine: the commit ID, else ``branch`` (ancestry included)."""
        # python-pachyderm sends ("repo", "master^1") as id "master^1": the engine resolves both.
        return _commit_repo(c), c.id or c.branch.name or "master"

    def _resolve(self, c: pfs_pb2.Commit, *, allow_open: bool = False) -> tuple[str, str, bool]:
        """(repo, commit ID, is_open). A branch with an open commit names that open commit where
        ``allow_open`` (as pachd's FinishCommit and ModifyFile do)."""
        repo, ref = self._ref(c)
        if COMMIT_ID.match(ref) and self.a.is_open(repo, ref):
            return repo, ref, True
        if allow_open and not COMMIT_ID.match(ref):
            self.eng.inspect_repo(repo)
            open_id = self.a.open_on_branch(repo, ref)
            if open_id:
                return repo, open_id, True
        return repo, self.eng.resolve(repo, ref), False

    def _inspect(self, repo: str, commit_id: str, path: str):
        """The engine's FileInfo, or pachd's NOT_FOUND for a missing path."""
        try:
            return self.eng.inspect_file(repo, commit_id, path)
        except NotFoundError:
            raise _file_not_found(repo, commit_id, path) from None

    # -- repos ---------------------------------------------------------------------------------
    def CreateRepo(self, request, context):
        self.eng.create_repo(_repo_name(request.repo), description=request.description,
                             update=request.update)
        return empty_pb2.Empty()

    def InspectRepo(self, request, context):
        return repo_info_pb(self.eng.inspect_repo(_repo_name(request.repo)))

    def ListRepo(self, request, context):
        if request.type not in ("", "user"):
            return
        for r in self.eng.list_repos():
            yield repo_info_pb(r)

    def DeleteRepo(self, request, context):
        name = _repo_name(request.repo)
        info = self.eng.inspect_repo(name)
        if info.type == "pipeline" and request.force:
            self.eng.delete_pipeline(name, force=True)
        else:
            self.eng.delete_repo(name, force=request.force)
        return empty_pb2.Empty()

    def DeleteAll(self, request, context):
        """Every repo (python-pachyderm's delete_all() deletes the pipelines first)."""
        for r in self.eng.list_repos():
            if r.type == "pipeline":
                self.eng.delete_pipeline(r.name, force=True)
            else:
                self.eng.delete_repo(r.name, force=True)
        return empty_pb2.Empty()

    # -- commits -------------------------------------------------------------------------------
    def StartCommit(self, request, context):
        repo = _repo_name(request.branch.repo)
        branch = request.branch.name or "master"
        parent = None
        if request.HasField("parent") and (request.parent.id or request.parent.branch.name):
            parent = self._ref(request.parent)[1]
        cid = self.eng.start_commit(repo, branch, parent=parent, description=request.description)
        return commit_pb(repo, cid, branch)

    def FinishCommit(self, request, context):
        repo, cid, is_open = self._resolve(request.commit, allow_open=True)
        if not is_open:
            raise Abort(grpc.StatusCode.FAILED_PRECONDITION, f"commit {cid} in repo {repo} is already finished")
        if request.error:
            # pachd keeps an errored commit; the engine has no such state, so nothing of it is kept.
            self.eng.drop_commit(repo, cid)
            return empty_pb2.Empty()
        if request.description:
            self.a.set_open_description(repo, cid, request.description)
        self.eng.finish_commit(repo, cid)
        self.a.kick()
        return empty_pb2.Empty()

    def _commit_info(self, repo: str, cid: str) -> pfs_pb2.CommitInfo:
        return commit_info_pb(self.eng.inspect_commit(repo, cid), self.a.children(repo, cid))

    def InspectCommit(self, request, context):
        if request.wait in (pfs_pb2.CommitState.COMMIT_STATE_UNKNOWN, pfs_pb2.CommitState.STARTED):
            repo, cid, is_open = self._resolve(request.commit)
            if is_open:
                return open_commit_info_pb(self.a.open_commit(repo, cid))
            return self._commit_info(repo, cid)
        # Waiting: an open commit must be finished by its writer, then the pipelines must run;
        # only then is a branch resolved, since on pachd its new output commit would already exist.
        repo, ref = self._ref(request.commit)
        if COMMIT_ID.match(ref) and self.a.is_open(repo, ref):
            wait_until(lambda: not self.a.is_open(repo, ref), context.is_active)
        self.a.wait_idle(context.is_active)
        repo, cid, _ = self._resolve(request.commit)
        return self._commit_info(repo, cid)

    def ListCommit(self, request, context):
        repo = _repo_name(request.repo)
        commits = self.eng.list_commits(repo)  # newest first
        if request.HasField("to") and (request.to.id or request.to.branch.name):
            to_id = self._resolve(request.to)[1]
            ids = {c.id: c for c in commits}
            chain, cur = [], to_id
            while cur and cur in ids:
                chain.append(ids[cur])
                cur = ids[cur].parent
            commits = chain
        frm = getattr(request, "from")
        if frm.id or frm.branch.name:
            from_id = self._resolve(frm)[1]
            cut = next((i for i, c in enumerate(commits) if c.id == from_id), None)
            if cut is not None:
                commits = commits[:cut + 1]
        if request.origin_kind in (pfs_pb2.OriginKind.USER, pfs_pb2.OriginKind.AUTO):
            want = "USER" if request.origin_kind == pfs_pb2.OriginKind.USER else "AUTO"
            commits = [c for c in commits if c.origin == want]
        if request.reverse:
            commits = commits[::-1]
        if request.number:
            commits = commits[:request.number]
        for c in commits:
            yield self._commit_info(repo, c.id)

    def InspectCommitSet(self, request, context):
        cid = request.commit_set.id
        if request.wait:
            wait_until(lambda: not self.a.open_repos_in_set(cid), context.is_active)
            self.a.wait_idle(context.is_active)
        for c in self.eng.inspect_commit_set(cid):
            yield self._commit_info(c.repo, c.id)

    def ListCommitSet(self, request, context):
        for cid in self.eng.list_commit_sets():
            yield pfs_pb2.CommitSetInfo(
                commit_set=pfs_pb2.CommitSet(id=cid),
                commits=[self._commit_info(c.repo, c.id) for c in self.eng.inspect_commit_set(cid)])

    def DropCommitSet(self, request, context):
        cid = request.commit_set.id
        repos = self.a.open_repos_in_set(cid)
        if repos:
            for repo in repos:
                self.eng.drop_commit(repo, cid)
            return empty_pb2.Empty()
        if self.a.commit_set_exists(cid):
            raise Abort(grpc.StatusCode.FAILED_PRECONDITION,
                        f"commit set {cid} is finished; `pix2pix local serve` drops only open commits")
        raise Abort(grpc.StatusCode.NOT_FOUND, f"commit set {cid} not found")

    # -- branches ------------------------------------------------------------------------------
    def _branch_info(self, repo: str, name: str, head: str | None) -> pfs_pb2.BranchInfo:
        return pfs_pb2.BranchInfo(branch=pfs_pb2.Branch(repo=repo_pb(repo), name=name),
                                  head=commit_pb(repo, head, name) if head else None)

    def InspectBranch(self, request, context):
        repo, name = _repo_name(request.branch.repo), request.branch.name or "master"
        for b in self.eng.list_branches(repo):
            if b.name == name:
                return self._branch_info(repo, b.name, b.head)
        raise Abort(grpc.StatusCode.NOT_FOUND, f"branch {name} not found in repo {repo}")

    def ListBranch(self, request, context):
        repo = _repo_name(request.repo)
        branches = self.eng.list_branches(repo)
        for b in (branches[::-1] if request.reverse else branches):
            yield self._branch_info(repo, b.name, b.head)

    # -- files ---------------------------------------------------------------------------------
    def ModifyFile(self, request_iterator, context):
        """Collect the whole stream first (content spooled to temp files), then apply it: a stream
        that breaks off changes nothing, as on pachd."""
        target = None
        ops: list[tuple] = []
        try:
            for req in request_iterator:
                kind = req.WhichOneof("body")
                if kind == "set_commit":
                    target = req.set_commit
                elif kind == "add_file":
                    af = req.add_file
                    if af.WhichOneof("source") == "url":
                        raise Abort(grpc.StatusCode.UNIMPLEMENTED,
                                    "ModifyFile add_file from a URL (put_file_url) is not served by "
                                    "`pix2pix local serve`; put the bytes instead")
                    path = clean_path(af.path, what="file path")
                    if not ops or ops[-1][0] != "add" or ops[-1][1] != path:
                        ops.append(("add", path, tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)))
                    ops[-1][2].write(af.raw.value)
                elif kind == "delete_file":
                    ops.append(("delete", clean_path(req.delete_file.path, what="file path"), None))
                elif kind == "copy_file":
                    raise Abort(grpc.StatusCode.UNIMPLEMENTED, "ModifyFile copy_file is not served by "
                                "`pix2pix local serve`; get and put the file instead")
            if target is None:
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "ModifyFile: the first message must set_commit")
            self._apply(target, ops)
        finally:
            for op in ops:
                if op[2] is not None:
                    op[2].close()
        return empty_pb2.Empty()

    def _apply(self, target: pfs_pb2.Commit, ops: list[tuple]) -> None:
        repo, ref = self._ref(target)
        opened_here = False
        if COMMIT_ID.match(ref):
            if not self.a.is_open(repo, ref):
                self.eng.resolve(repo, ref)  # not found -> NOT_FOUND
                raise Abort(grpc.StatusCode.FAILED_PRECONDITION,
                            f"commit {ref} in repo {repo} is finished; start a new commit to modify files")
            cid = ref
        else:
            self.eng.inspect_repo(repo)
            cid = self.a.open_on_branch(repo, ref)
            if cid is None:  # pachd opens and finishes a commit around a lone ModifyFile
                cid, opened_here = self.eng.start_commit(repo, ref), True
        try:
            # python-pachyderm overwrites as "delete path, then add path"; the engine's put
            # (overwrite) after a delete of the same path gives the same tree.
            for kind, path, spool in ops:
                if kind == "delete":
                    self.eng.delete_file(repo, cid, path)
                else:
                    spool.seek(0)
                    self.eng.put_file(repo, cid, path, spool, append=True)
        except BaseException:
            if opened_here:
                self.eng.drop_commit(repo, cid)
            raise
        if opened_here:
            self.eng.finish_commit(repo, cid)
            self.a.kick()

    def _file(self, f: pfs_pb2.File):
        repo, cid, is_open = self._resolve(f.commit)
        if is_open:
            raise Abort(grpc.StatusCode.FAILED_PRECONDITION,
                        f"commit {cid} in repo {repo} is open; its files are visible once it is finished")
        return repo, cid, clean_path(f.path or "/", what="file path")

    def _info(self, fi, branch: str = "") -> pfs_pb2.FileInfo:
        datum = self.a.datum_of(fi.repo, fi.commit, fi.path) if fi.type == "file" else ""
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
        files = self.eng.walk_files(repo, cid, path)
        prefix = path.rstrip("/") + "/"
        dirs = set()
        for f in files:
            parent = str(PurePosixPath(f.path).parent)
            while parent != path and parent.startswith(prefix) and parent not in dirs:
                dirs.add(parent)
                parent = str(PurePosixPath(parent).parent)
        entries = sorted([(f.path, f) for f in files] +
                         [(d, None) for d in dirs], key=lambda e: e[0])
        n = 0
        for p, f in [(path, top)] + entries:
            fi = f if f is not None else self.eng.inspect_file(repo, cid, p)
            yield self._info(fi, branch)
            n += 1
            if request.number and n >= request.number:
                return

    def GlobFile(self, request, context):
        repo, cid, is_open = self._resolve(request.commit)
        for fi in self.eng.glob_files(repo, cid, request.pattern):
            yield self._info(fi, request.commit.branch.name)

    def GetFile(self, request, context):
        repo, cid, path = self._file(request.file)
        if request.URL:
            raise Abort(grpc.StatusCode.UNIMPLEMENTED, "GetFile to a URL is not served by `pix2pix local serve`")
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
        files = [top] if top.type == "file" else self.eng.walk_files(repo, cid, path)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as buf:
            with tarfile.open(fileobj=buf, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for fi in files:
                    ti = tarfile.TarInfo(fi.path.lstrip("/"))
                    ti.size, ti.mode = fi.size, 0o644
                    tar.addfile(ti, _StreamReader(self.eng.get_file_stream(repo, cid, fi.path)))
            buf.seek(0)
            while chunk := buf.read(MESSAGE_BYTES):
                yield wrappers_pb2.BytesValue(value=chunk)


class _StreamReader(io.RawIOBase):
    """A read()-able view of a chunk iterator, for tarfile.addfile."""

    def __init__(self, it) -> None:
        self._it, self._buf = iter(it), b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            piece = next(self._it, None)
            if piece is None:
                break
            self._buf += piece
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out
