"""Files (pachd's ``server_file.go``): writes into open commits, pachctl's ``put file`` (into the
branch head if it is open, else in a commit of its own, atomically), copies, and reads of any
commit, open ones included (their files so far: read your writes).

    put_file(repo, commit_id, path, data)      stage into an open commit
    modify(repo, "master", [FileOp...])        all ops in one transaction: into the open head,
                                                or a new commit started, filled and finished
    copy_file / diff_file / glob_files / walk_files / get_file_stream
"""
from __future__ import annotations

import tarfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO, Iterator, Optional

from pix2pix.errors import DataError, NotAFileError, NotFoundError, UsageError
from pix2pix.pachyderm import globs, trees
from pix2pix.pachyderm.commits import finish_commit, open_commit, open_tree, resolve, start_commit
from pix2pix.pachyderm.context import Context
from pix2pix.pachyderm.globs import normalize
from pix2pix.pachyderm.info import CommitInfo, FileInfo
from pix2pix.pachyderm.refs import COMMIT_ID, clean_path
from pix2pix.pachyderm.store import StagedOp, Tree

URL_TIMEOUT_S = 60


# One change of a ``modify`` call, its content already in the blob store: the store's staged
# op itself (op put | append | delete, path, hash, size), so nothing converts between them.
FileOp = StagedOp


# -- writes ----------------------------------------------------------------------------------------
def _dest(where: str, path: str) -> str:
    dest = clean_path(path, what="destination path")
    if dest == "/":
        raise UsageError(f"{where}: cannot put a file at '/'; name a file path")
    return dest


def put_file(ctx: Context, repo: str, commit_id: str, path: str, data: bytes | BinaryIO,
             append: bool = False) -> None:
    """Stage ``data`` at repo path ``path`` in an open commit (overwrite, or ``append``)."""
    dest = _dest(f"{repo}@{commit_id}", path)
    oc = open_commit(ctx, repo, commit_id)
    digest, size = ctx.blobs.put(data)
    ctx.store.stage(repo, oc.id, StagedOp("append" if append else "put", dest, digest, size))


def file_op(ctx: Context, path: str, data: bytes | BinaryIO, *, append: bool = False,
            where: str = "put file") -> FileOp:
    """A put (or append) of ``data`` at ``path``, its content stored now."""
    dest = _dest(where, path)
    digest, size = ctx.blobs.put(data)
    return FileOp("append" if append else "put", dest, digest, size)


def local_ops(ctx: Context, src: Path, dest: str = "/", *, recursive: bool = True,
              append: bool = False) -> list[FileOp]:
    """Puts of a host file, or of a folder's files under ``dest`` with their relative paths.

    Raises:
        NotFoundError: ``src`` does not exist. UsageError: a folder without ``recursive``.
    """
    src = Path(src)
    if src.is_dir():
        if not recursive:
            raise UsageError(f"{src} is a folder; use -r to put its files")
        ops = []
        for f in sorted(p for p in src.rglob("*") if p.is_file()):
            target = clean_path(dest.rstrip("/") + "/" + f.relative_to(src).as_posix(),
                                what="destination path")
            with open(f, "rb") as fh:
                ops.append(file_op(ctx, target, fh, append=append))
        return ops
    if not src.is_file():
        raise NotFoundError(f"{src}: no such file or folder")
    target = clean_path(dest, what="destination path")
    if dest.endswith("/") or target == "/":
        target = clean_path(target + "/" + src.name)
    with open(src, "rb") as fh:
        return [file_op(ctx, target, fh, append=append)]


def url_ops(ctx: Context, url: str, dest: str, *, recursive: bool = False,
            append: bool = False) -> list[FileOp]:
    """Puts of what a URL holds: ``http(s)://`` (one file) or ``file://`` (a file, or a
    folder with ``recursive``), as pachd's put file --url.

    Raises:
        UsageError: another scheme. StoreError: the URL cannot be read (one line, with why).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        return local_ops(ctx, Path(urllib.parse.unquote(parts.path)), dest, recursive=recursive,
                         append=append)
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"{url}: only http://, https:// and file:// URLs can be put (object "
                         "stores such as s3:// need a real Pachyderm)")
    if dest in ("", "/") or dest.endswith("/"):
        dest = dest.rstrip("/") + "/" + (Path(parts.path).name or "index.html")
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as response:
            return [file_op(ctx, dest, response, append=append)]
    except (OSError, ValueError) as e:
        raise DataError(f"{url}: cannot be read ({getattr(e, 'reason', e)}); nothing was put") from None


def tar_ops(ctx: Context, data: BinaryIO, dest: str = "/", *, append: bool = False) -> list[FileOp]:
    """Puts of every regular file of a tar stream under ``dest`` (pachctl's ``--untar``)."""
    ops = []
    try:
        with tarfile.open(fileobj=data, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                target = clean_path(dest.rstrip("/") + "/" + member.name, what="path in the tar")
                ops.append(file_op(ctx, target, tar.extractfile(member), append=append))
    except tarfile.TarError as e:
        raise UsageError(f"--untar: not a readable tar stream ({e})") from None
    return ops


def modify(ctx: Context, repo: str, ref: str, ops: list[FileOp], *,
           description: str = "") -> tuple[CommitInfo, bool]:
    """pachctl's put/delete file: ``ops`` land together, in one transaction, in the open head
    of branch ``ref`` (or in the open commit ``ref`` names), or else in a new commit started,
    filled and finished at once. Returns the commit and whether this call finished it."""
    store = ctx.store
    with store.tx():
        if COMMIT_ID.match(ref):
            cid: Optional[str] = open_commit(ctx, repo, ref).id  # a finished one: refused
        else:
            cid = resolve(ctx, repo, ref) if _is_open(ctx, repo, ref) else None
        started_here = cid is None
        if started_here:
            cid = start_commit(ctx, repo, ref, description=description)
        store.stage_many(repo, cid, ops)
        info = finish_commit(ctx, repo, cid) if started_here else store.get_commit(repo, cid)
    return info, started_here


def _is_open(ctx: Context, repo: str, ref: str) -> bool:
    try:
        return ctx.store.get_commit(repo, resolve(ctx, repo, ref)).finished is None
    except NotFoundError:
        return False


def put_local(ctx: Context, repo: str, commit_id: str, src: Path, dest: str = "/", *,
              recursive: bool = True) -> list[str]:
    """Stage a host file, or a folder's files under ``dest``, into an open commit. Returns the
    repo paths staged."""
    oc = open_commit(ctx, repo, commit_id)
    ops = local_ops(ctx, src, dest, recursive=recursive)
    ctx.store.stage_many(repo, oc.id, ops)
    return [o.path for o in ops]


def delete_file(ctx: Context, repo: str, commit_id: str, path: str) -> None:
    """Stage the deletion of a file or a folder (everything under it) in an open commit."""
    target = clean_path(path, what="path")
    oc = open_commit(ctx, repo, commit_id)
    ctx.store.stage(repo, oc.id, StagedOp("delete", target))


def copy_ops(ctx: Context, src_repo: str, src_ref: Optional[str], src_path: str,
             dest: str) -> list[FileOp]:
    """Puts that copy a file, or a folder and everything under it, to ``dest`` (the content is
    shared: blobs are addressed by their hash)."""
    ctx.blobs.pin()  # references on their way: no collection until they are staged
    cid, tree = _tree(ctx, src_repo, src_ref)
    src_path = clean_path(src_path)
    paths = trees.under(tree, src_path)
    if not paths:
        raise NotFoundError(f"file {src_path} not found in repo {src_repo} at commit {cid}")
    dest = clean_path(dest, what="destination path")
    out = []
    for p in paths:
        target = dest if p == src_path else clean_path(dest + "/" + p[len(src_path):])
        h, s = tree[p]
        out.append(FileOp("put", target, h, s))
    return out


def copy_file(ctx: Context, src_repo: str, src_ref: Optional[str], src_path: str,
              repo: str, commit_id: str, dest: str) -> None:
    """Copy a file or folder into an open commit."""
    oc = open_commit(ctx, repo, commit_id)
    ctx.store.stage_many(repo, oc.id, copy_ops(ctx, src_repo, src_ref, src_path, dest))


# -- reads -----------------------------------------------------------------------------------------
def _tree(ctx: Context, repo: str, ref: Optional[str]) -> tuple[str, Tree]:
    cid = resolve(ctx, repo, ref)
    return cid, open_tree(ctx, repo, cid)


def inspect_file(ctx: Context, repo: str, ref: Optional[str], path: str) -> FileInfo:
    cid, tree = _tree(ctx, repo, ref)
    return trees.file_info(repo, cid, tree, clean_path(path))


def list_files(ctx: Context, repo: str, ref: Optional[str], path: str = "/") -> list[FileInfo]:
    """The children of a folder (or the file itself), sorted by path."""
    cid, tree = _tree(ctx, repo, ref)
    path = clean_path(path)
    if path in tree:
        return [trees.file_info(repo, cid, tree, path)]
    found = [trees.file_info(repo, cid, tree, p) for p in trees.children(tree, path)]
    if not found and path != "/":
        raise NotFoundError(f"{repo}@{ref or 'master'}:{path}: no such file or folder")
    return found


def walk_files(ctx: Context, repo: str, ref: Optional[str], path: str = "/") -> list[FileInfo]:
    """Every file (not folder) at or under ``path``, sorted."""
    cid, tree = _tree(ctx, repo, ref)
    path = clean_path(path)
    found = [trees.file_info(repo, cid, tree, p) for p in trees.under(tree, path)]
    if not found and path != "/":
        raise NotFoundError(f"{repo}@{ref or 'master'}:{path}: no such file or folder")
    return found


def glob_files(ctx: Context, repo: str, ref: Optional[str], pattern: str) -> list[FileInfo]:
    """Files and folders matching a Pachyderm glob (``/*``, ``/**/*.png``, ``/{a,b}``)."""
    cid, tree = _tree(ctx, repo, ref)
    paths = ["/"] if normalize(pattern) == "/" else globs.match(pattern, tree)
    return [trees.file_info(repo, cid, tree, p) for p in paths]


def diff_file(ctx: Context, repo: str, ref: Optional[str], path: str = "/",
              old_repo: Optional[str] = None, old_ref: Optional[str] = None,
              old_path: Optional[str] = None) -> list[tuple[Optional[FileInfo], Optional[FileInfo]]]:
    """(new, old) pairs of the files that differ between ``repo@ref:path`` and the old side
    (default: the same path in the commit's parent), matched by path as pachd does: added (old
    None), deleted (new None) or changed; sorted by path."""
    new_id, new_tree = _tree(ctx, repo, ref)
    old_repo = old_repo or repo
    if old_ref is None:
        parent = ctx.store.commit_parent(repo, new_id)
        old_id, old_tree = (parent, open_tree(ctx, repo, parent)) if parent else ("", {})
    else:
        old_id, old_tree = _tree(ctx, old_repo, old_ref)
    new_paths = trees.under(new_tree, clean_path(path))
    old_paths = trees.under(old_tree, clean_path(old_path or path))
    out = []
    for p in sorted(set(new_paths) | set(old_paths)):
        n = p if p in new_paths else None
        o = p if p in old_paths else None
        if n and o and new_tree[n][0] == old_tree[o][0]:
            continue
        out.append((trees.file_info(repo, new_id, new_tree, n) if n else None,
                    trees.file_info(old_repo, old_id, old_tree, o) if o else None))
    return out


def get_file(ctx: Context, repo: str, ref: Optional[str], path: str) -> bytes:
    """A file's content. Raises NotAFileError for a folder, NotFoundError for a missing path."""
    return b"".join(get_file_stream(ctx, repo, ref, path))


def get_file_stream(ctx: Context, repo: str, ref: Optional[str], path: str) -> Iterator[bytes]:
    """A file's content in chunks (for large files and the gRPC server)."""
    cid, tree = _tree(ctx, repo, ref)
    path = clean_path(path)
    if path not in tree:
        info = trees.file_info(repo, cid, tree, path)  # raises for a missing path
        raise NotAFileError(f"{repo}@{ref or 'master'}:{path} is a {info.type}, not a file; "
                            "use -r to get a folder")
    return ctx.blobs.stream(tree[path][0])


def blob_path(ctx: Context, digest: str) -> Path:
    """Where a blob lives (read-only): for zero-copy readers such as the gRPC server."""
    return ctx.blobs.path(digest)
