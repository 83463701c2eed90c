"""Moving data in and out of pachd: ``put`` (files and folders in one commit), ``wait`` (a commit
set until every pipeline downstream has finished) and ``get`` (outputs into a folder, never outside it).
"""
from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import grpc
from python_pachyderm.proto.v2.pfs import pfs_pb2
from python_pachyderm.proto.v2.pps import pps_pb2

from pix2pix.cluster.connection import Cluster
from pix2pix.cluster.refs import Ref
from pix2pix.errors import ClusterError, DataError, JobError, UsageError
from pix2pix.fsutil import atomic_open

# pachd refuses gRPC messages over 20 MiB (and `local serve` keeps the gRPC default); 1 MiB chunks
# stay far below both whatever the file.
CHUNK_BYTES = 1 << 20
OPEN_HEAD_WAIT_S = 120.0  # how long put waits for another writer's open commit on its branch
# pachd's refusal of a second commit on a branch whose head is open (no gRPC code tells it).
_OPEN_HEAD = re.compile(r"parent commit \S+ has not been finished")


class _LazyChunks:
    """A file object for python-pachyderm's ModifyFile ops that opens the file on first read and
    closes it at EOF, so a folder of thousands of images never holds thousands of open files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = None
        self._done = False

    def read(self, size: int = -1) -> bytes:
        if self._done:
            return b""
        if self._f is None:
            self._f = open(self.path, "rb")
        chunk = self._f.read(CHUNK_BYTES if size < 0 else min(size, CHUNK_BYTES))
        if not chunk:
            self._f.close()
            self._done = True
        return chunk


@dataclass
class PutResult:
    repo: str
    branch: str
    commit_id: str
    files: list[str] = field(default_factory=list)


def plan_put(paths: list[Path], dest: str = "/") -> list[tuple[Path, str]]:
    """(local file, repo path) pairs: a file goes to ``dest/<its name>``, a folder's files to
    ``dest/<path relative to the folder>`` (like ``pachctl put file -r``).

    Raises:
        DataError: a path does not exist, or a folder holds no files.
        UsageError: two inputs would land on the same repo path.
    """
    dest_root = PurePosixPath("/") / dest.strip("/")
    if ".." in dest_root.parts:
        raise UsageError(f"--dest {dest!r}: '..' is not allowed in a repo path")
    plan: dict[str, Path] = {}
    for path in map(Path, paths):
        if path.is_file():
            pairs = [(path, dest_root / path.name)]
        elif path.is_dir():
            pairs = [(f, dest_root / PurePosixPath(*f.relative_to(path).parts))
                     for f in sorted(path.rglob("*")) if f.is_file()]
            if not pairs:
                raise DataError(f"{path}: folder has no files to put")
        else:
            raise DataError(f"{path}: no such file or folder")
        for local, remote in pairs:
            key = str(remote)
            if key in plan and plan[key] != local:
                raise UsageError(f"{local} and {plan[key]} would both be written to {key}; "
                                 "put them with different --dest")
            plan[key] = local
    return [(local, remote) for remote, local in sorted(plan.items())]


def put(cluster: Cluster, *, target: Ref, paths: list[Path], dest: str = "/") -> PutResult:
    """Put files and folders into ``target`` (repo@branch) in one commit.

    The whole upload is one ModifyFile stream, which pachd applies atomically; if it fails the
    commit is dropped, so no half-put commit starts a pipeline job.
    """
    if target.is_commit_id:
        raise UsageError(f"{target}: put needs a branch (REPO@BRANCH), not a commit ID")
    plan = plan_put(paths, dest)
    client = cluster.client
    what = f"repo {target.repo!r}"
    commit = _start_commit(cluster, target, what)
    try:
        with cluster.rpc(f"{what} (putting {len(plan)} files)"):
            with client.modify_file_client(commit) as mfc:
                for local, remote in plan:
                    mfc.put_file_from_fileobj(remote, _LazyChunks(local))
            client.finish_commit(commit)
    except BaseException:
        _drop_quietly(cluster, commit.id)
        raise
    return PutResult(repo=target.repo, branch=target.ref, commit_id=commit.id,
                     files=[remote for _, remote in plan])


def _start_commit(cluster: Cluster, target: Ref, what: str, *,
                  wait_s: float = OPEN_HEAD_WAIT_S) -> pfs_pb2.Commit:
    """Start a commit on the branch, waiting while another writer's commit is its open head
    (pachd refuses a second commit on a branch until the first is finished)."""
    deadline = time.monotonic() + wait_s
    delay = 0.05
    while True:
        try:
            with cluster.rpc(what):
                return cluster.client.start_commit(target.repo, target.ref)
        except ClusterError as e:
            if not _OPEN_HEAD.search(str(e)) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _drop_quietly(cluster: Cluster, commit_id: str) -> None:
    try:
        cluster.client.drop_commit(commit_id)
    except (grpc.RpcError, ConnectionError):
        pass  # the original failure is what the user needs to see


@dataclass
class WaitResult:
    commit_id: str
    commits: list[pfs_pb2.CommitInfo]
    jobs: list[pps_pb2.JobInfo]


def resolve(cluster: Cluster, ref: Ref) -> pfs_pb2.CommitInfo:
    """The commit ``ref`` names now (a branch head is pinned to its commit ID)."""
    with cluster.rpc(f"{ref.repo}@{ref.ref}"):
        return list(cluster.client.inspect_commit(ref.commit()))[0]


def _within(timeout_s: float | None, fn, on_timeout: str):
    """``fn()``, or a ClusterError after ``timeout_s`` seconds (python-pachyderm's calls take no
    deadline, so the call runs in a daemon thread that is left behind)."""
    if timeout_s is None:
        return fn()
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller below
            box["error"] = e

    t = threading.Thread(target=run, name="pix2pix-wait", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise ClusterError(on_timeout)
    if "error" in box:
        raise box["error"]
    return box["value"]


def wait(cluster: Cluster, *, ref: Ref, timeout_s: float | None = None) -> WaitResult:
    """Wait until the commit set (global ID) of ``ref`` has finished in every repo downstream.

    Raises:
        JobError: a job of that commit set failed or was killed.
        ClusterError: pachd is unreachable, or ``timeout_s`` passed first.
    """
    info = resolve(cluster, ref)
    commit_id = info.commit.id
    client = cluster.client

    def wait_all():
        with cluster.rpc(f"commit set {commit_id}"):
            return client.wait_commit(commit_id), list(client.inspect_job(commit_id))

    commits, jobs = _within(
        timeout_s, wait_all,
        f"commit set {commit_id} not finished after {timeout_s:g} s on pachd at {cluster.address}; "
        "its jobs go on: `pix2pix cluster status` shows them, `wait` again to keep waiting"
        if timeout_s is not None else "")
    bad = [j for j in jobs if j.state in (pps_pb2.JobState.JOB_FAILURE, pps_pb2.JobState.JOB_KILLED,
                                          pps_pb2.JobState.JOB_UNRUNNABLE)]
    if bad:
        j = bad[0]
        state = pps_pb2.JobState.Name(j.state).removeprefix("JOB_").lower()
        raise JobError(f"job {j.job.pipeline.name}@{commit_id} {state}: {j.reason or 'no reason given'}; "
                       f"see `pachctl logs --pipeline={j.job.pipeline.name} --job={commit_id}`")
    errors = [c for c in commits if c.error]
    if errors:
        c = errors[0]
        raise JobError(f"commit {c.commit.branch.repo.name}@{commit_id} finished with an error: {c.error}")
    return WaitResult(commit_id=commit_id, commits=commits, jobs=jobs)


def _safe_target(out_dir: Path, rel: str) -> Path:
    """``out_dir/rel``, refusing any repo path that would land outside ``out_dir``."""
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or any(p in ("..", ".", "") for p in parts) \
            or any("\\" in p or "\x00" in p for p in parts):
        raise DataError(f"repo path {rel!r} would be written outside {out_dir}; refusing it")
    target = out_dir.joinpath(*parts)
    root = out_dir.resolve()
    if os.path.commonpath([root, target.resolve()]) != str(root):
        raise DataError(f"repo path {rel!r} resolves outside {out_dir} (a symlink?); refusing it")
    return target


@dataclass
class GetResult:
    commit_id: str
    files: list[Path]


def get(cluster: Cluster, *, source: Ref, out_dir: Path) -> GetResult:
    """Copy the file or folder ``source`` names into ``out_dir``.

    A file lands as ``out_dir/<name>``; a folder's files keep their paths relative to it. The
    branch is pinned to one commit first, so every file comes from the same commit. Each file is
    written to a temporary name and renamed, so an interrupted get leaves no half-written file.
    """
    info = resolve(cluster, source)
    commit = pfs_pb2.Commit(id=info.commit.id, branch=pfs_pb2.Branch(repo=info.commit.branch.repo),
                            repo=info.commit.branch.repo)
    client = cluster.client
    where = f"{source.repo}@{info.commit.id}:{source.path}"
    with cluster.rpc(f"file {where}"):
        top = client.inspect_file(commit, source.path) if source.path != "/" else None
        if top is not None and top.file_type == pfs_pb2.FileType.FILE:
            files = [(top.file.path, PurePosixPath(top.file.path).name, top.size_bytes)]
        else:
            base = PurePosixPath(source.path)
            files = []
            for fi in client.walk_file(commit, source.path):
                if fi.file_type != pfs_pb2.FileType.FILE:
                    continue
                p = PurePosixPath("/" + fi.file.path.lstrip("/"))
                try:
                    rel = str(p.relative_to(base))
                except ValueError:
                    raise DataError(f"pachd listed {p} under {base}; refusing it") from None
                files.append((str(p), rel, fi.size_bytes))
    out_dir = Path(out_dir)
    targets = [(path, _safe_target(out_dir, rel), size) for path, rel, size in files]  # check all first
    written = []
    for path, target, size in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(target) as out:
            with cluster.rpc(f"file {source.repo}@{info.commit.id}:{path}"):
                try:
                    stream = client.get_file(commit, path)
                except StopIteration:  # an empty file may come as an empty stream
                    stream = None
                got = 0
                while stream is not None and (chunk := stream.read(CHUNK_BYTES)):
                    out.write(chunk)
                    got += len(chunk)
            # PFSFile.read swallows an error in mid-stream, so a short read is the only sign of one.
            if got != size:
                raise DataError(f"{source.repo}@{info.commit.id}:{path}: got {got} of {size} bytes; "
                                "the transfer broke off, run get again")
        written.append(target)
    return GetResult(commit_id=info.commit.id, files=written)

