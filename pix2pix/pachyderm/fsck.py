"""``fsck`` (pachd's Fsck): check that the store is whole: every branch head, parent and
provenance commit exists, and every file of every commit has its blob, of the recorded size.
Each problem is one line naming what is wrong; none means the store is consistent.

With ``fix``, what can be repaired without guessing is: a branch whose head commit is gone is
deleted (its commits, if any, stay reachable by ID), and killed writers' temporary blobs go.
"""
from __future__ import annotations

from typing import Iterator

from pix2pix.pachyderm.context import Context


def check(ctx: Context, *, fix: bool = False) -> Iterator[str]:
    """The problems found (one line each), repairing what ``fix`` allows."""
    store, blobs = ctx.store, ctx.blobs
    for repo in store.list_repos():
        for b in store.list_branches(repo.name):
            if b.head is not None and not store.commit_exists(repo.name, b.head):
                what = f"branch {repo.name}@{b.name}: its head commit {b.head} does not exist"
                if fix:
                    store.delete_branch(repo.name, b.name)
                    what += " (fixed: branch deleted)"
                yield what
        for c in store.list_commits(repo.name):
            where = f"commit {repo.name}@{c.id}"
            if c.parent and not store.commit_exists(repo.name, c.parent):
                yield f"{where}: its parent {c.parent} does not exist"
            for p in c.provenance:
                if not store.commit_exists(p.repo, p.commit):
                    yield f"{where}: its provenance {p.repo}@{p.commit} does not exist"
            entries = ([(o.path, o.hash, o.size) for o in store.staged_ops(repo.name, c.id) if o.hash]
                       if c.finished is None else
                       [(path, h, s) for path, (h, s) in store.tree(repo.name, c.id).items()])
            for path, digest, size in entries:
                if size and not blobs.exists(digest):
                    yield f"{where}:{path}: its content (blob {digest[:12]}) is missing"
                elif size and blobs.path(digest).stat().st_size != size:
                    yield f"{where}:{path}: its content (blob {digest[:12]}) has the wrong size"
    if fix:
        blobs.clean_tmp()
