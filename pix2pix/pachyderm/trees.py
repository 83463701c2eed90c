"""File trees of commits, as ``{path: (sha256, size)}`` dicts: applying staged operations, the
file-or-folder rule, and what a path names (a file, or a folder implied by the files under it)."""
from __future__ import annotations

from typing import Iterator

from pix2pix.errors import NotFoundError, PreconditionError
from pix2pix.pachyderm.blobs import BlobStore
from pix2pix.pachyderm.info import FileInfo
from pix2pix.pachyderm.store import StagedOp, Tree


def apply(tree: Tree, op: StagedOp, blobs: BlobStore) -> None:
    """Apply one staged put, append or delete to ``tree`` in place."""
    path = op.path
    if op.op == "delete":
        if path == "/":
            tree.clear()
            return
        for p in [p for p in tree if p == path or p.startswith(path + "/")]:
            del tree[p]
    elif op.op == "append" and path in tree:
        tree[path] = blobs.put(_Concat([blobs.stream(tree[path][0]), blobs.stream(op.hash)]))
    else:
        tree[path] = (op.hash, op.size)


def check(tree: Tree, where: str) -> None:
    """A path cannot be both a file and a folder.

    Raises:
        PreconditionError: naming both paths.
    """
    files = set(tree)
    for p in files:
        parent = p.rsplit("/", 1)[0]
        while parent:
            if parent in files:
                raise PreconditionError(f"{where}: {parent} is a file but {p} needs it to be a folder; "
                                    "delete one of them")
            parent = parent.rsplit("/", 1)[0]


def file_info(repo: str, cid: str, tree: Tree, path: str) -> FileInfo:
    """What ``path`` names in the tree: a file, or a folder (size: the sum of its files).

    Raises:
        NotFoundError: nothing at or under ``path`` (the root always exists).
    """
    if path in tree:
        h, s = tree[path]
        return FileInfo(path=path, type="file", size=s, hash=h, commit=cid, repo=repo)
    prefix = "/" if path == "/" else path + "/"
    sizes = [s for p, (_, s) in tree.items() if p.startswith(prefix)]
    if not sizes and path != "/":
        raise NotFoundError(f"{repo}@{cid}:{path}: no such file or folder")
    return FileInfo(path=path, type="dir", size=sum(sizes), hash="", commit=cid, repo=repo)


def children(tree: Tree, path: str) -> Iterator[str]:
    """The paths directly under folder ``path``, sorted."""
    prefix = path.rstrip("/") + "/"
    seen: set[str] = set()
    for p in tree:
        if p.startswith(prefix):
            seen.add(prefix + p[len(prefix):].partition("/")[0])
    return iter(sorted(seen))


def under(tree: Tree, path: str) -> list[str]:
    """Every file at or under ``path``, sorted."""
    prefix = path.rstrip("/") + "/"
    return sorted(p for p in tree if p == path or p.startswith(prefix))


class _Concat:
    """A read()-able stream over chunk iterators (for appends)."""

    def __init__(self, iters) -> None:
        self._chunks = (c for it in iters for c in it)

    def read(self, n: int = -1) -> bytes:
        return next(self._chunks, b"")
