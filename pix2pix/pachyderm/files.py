"""Files (pachd's ``server_file.go``): staging puts, appends and deletes into an open commit, and
reading the tree of a finished one (inspect, list, walk, glob, get)."""
from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Iterator, Optional

from pix2pix.errors import NotAFileError, NotFoundError, UsageError
from pix2pix.pachyderm import globs, trees
from pix2pix.pachyderm.commits import open_commit, resolve
from pix2pix.pachyderm.context import Context
from pix2pix.pachyderm.globs import normalize
from pix2pix.pachyderm.info import FileInfo
from pix2pix.pachyderm.refs import clean_path
from pix2pix.pachyderm.store import StagedOp, Tree


# -- writes into an open commit --------------------------------------------------------------------
def put_file(ctx: Context, repo: str, commit_id: str, path: str, data: bytes | BinaryIO,
             append: bool = False) -> None:
    """Stage ``data`` at repo path ``path`` in an open commit (overwrite, or ``append``)."""
    dest = clean_path(path, what="destination path")
    if dest == "/":
        raise UsageError(f"{repo}@{commit_id}: cannot put a file at '/'; name a file path")
    open_commit(ctx, repo, commit_id)
    digest, size = ctx.blobs.put(data)
    ctx.store.stage(repo, commit_id, StagedOp("append" if append else "put", dest, digest, size))


def put_local(ctx: Context, repo: str, commit_id: str, src: Path, dest: str = "/", *,
              recursive: bool = True) -> list[str]:
    """Stage a host file, or a folder's files under ``dest`` keeping their relative paths.
    Returns the repo paths staged.

    Raises:
        NotFoundError: ``src`` does not exist. UsageError: a folder without ``recursive``.
    """
    src = Path(src)
    if src.is_dir():
        if not recursive:
            raise UsageError(f"{src} is a folder; use -r to put its files")
        staged = []
        for f in sorted(p for p in src.rglob("*") if p.is_file()):
            rel = f.relative_to(src).as_posix()
            target = clean_path(dest.rstrip("/") + "/" + rel, what="destination path")
            with open(f, "rb") as fh:
                put_file(ctx, repo, commit_id, target, fh)
            staged.append(target)
        return staged
    if not src.is_file():
        raise NotFoundError(f"{src}: no such file or folder")
    target = clean_path(dest, what="destination path")
    if dest.endswith("/") or target == "/":
        target = clean_path(target + "/" + src.name)
    with open(src, "rb") as fh:
        put_file(ctx, repo, commit_id, target, fh)
    return [target]


def delete_file(ctx: Context, repo: str, commit_id: str, path: str) -> None:
    """Stage the deletion of a file or a folder (everything under it) in an open commit."""
    target = clean_path(path, what="path")
    open_commit(ctx, repo, commit_id)
    ctx.store.stage(repo, commit_id, StagedOp("delete", target))


# -- reads of a finished commit --------------------------------------------------------------------
def _tree(ctx: Context, repo: str, ref: Optional[str]) -> tuple[str, Tree]:
    cid = resolve(ctx, repo, ref)
    return cid, ctx.store.tree(repo, cid)


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
