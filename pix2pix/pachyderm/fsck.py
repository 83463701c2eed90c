"""``fsck`` (pachd's Fsck) and garbage collection of the store.

:func:`check` says whether the store is whole: every branch head, parent and provenance commit
exists; every reference to a blob (a commit's file, an open commit's staged put, a datum's
output) finds its blob at the recorded size; every blob's content hashes to its name; and no
blob or scratch folder is garbage. Each problem is one line naming what is wrong; none means
the store is consistent. With ``fix``, what can be repaired without guessing is: a branch whose
head commit is gone is deleted (its commits, if any, stay reachable by ID), and garbage is
collected (:func:`collect_garbage`).

Garbage is what killed or failed writes leave: blobs nothing refers to, temporary blobs of dead
processes, job folders of jobs no live process runs. The collector holds ``gc.lock``
exclusively, so it never removes a blob whose reference is on its way (see blobs.py); it runs
by itself before a process's first write when a writer left garbage behind, and by hand with
``pix2pix garbage-collect`` or ``pix2pix fsck --fix``.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Iterator, Optional

from pix2pix.pachyderm import procs
from pix2pix.pachyderm.context import Context
from pix2pix.pachyderm.jobs import job_dir


@dataclass(frozen=True)
class Garbage:
    """What one collection removed."""

    blobs: int = 0
    bytes: int = 0
    scratch: int = 0  # job folders
    corrupt: int = 0  # unreferenced blobs whose content did not match their name (fsck only)


def collect_garbage(ctx: Context, *, wait_s: float = 0.0) -> Optional[Garbage]:
    """Remove unreferenced blobs, dead writers' temp blobs and markers, and job folders of
    jobs no live process runs. None if writers kept ``gc.lock`` for ``wait_s`` seconds (or this
    process has a reference on its way): nothing was removed."""
    blobs = ctx.blobs
    with blobs.exclusive(wait_s) as got:
        if not got:
            return None
        stale = blobs.stale_writers()  # before the sweep: a marker left later is not swept
        referenced = ctx.store.referenced_blobs()
        n = size = 0
        for digest, path in blobs.digests():
            if digest not in referenced:
                try:
                    size += path.stat().st_size
                    path.unlink()
                    n += 1
                except OSError:
                    pass
        blobs.clean_tmp(older_than_s=float("inf"))
        for marker in stale:
            marker.unlink(missing_ok=True)
    return Garbage(blobs=n, bytes=size, scratch=_collect_scratch(ctx))


def _collect_scratch(ctx: Context) -> int:
    if not ctx.jobs_dir.is_dir():
        return 0
    # Listed before the running jobs are read: a job records it runs before making its folder.
    folders = list(ctx.jobs_dir.iterdir())
    live = {job_dir(ctx, p, j).name for p, j, owner in ctx.store.live_job_owners()
            if procs.process_alive(owner.pid, owner.start)}
    removed = 0
    for f in folders:
        if f.name not in live:
            procs.stop_orphans(f)
            shutil.rmtree(f, ignore_errors=True)
            removed += 1
    return removed


def check(ctx: Context, *, fix: bool = False, garbage: bool = True) -> Iterator[str]:
    """The problems found (one line each), repairing what ``fix`` allows. ``garbage=False``
    (pachd's Fsck over gRPC) reports damage only: pachd collects its garbage itself and does
    not count it, and a serving process may be writing while it checks."""
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
    sizes: dict[str, Optional[int]] = {}
    for where, digest, size in store.blob_references():
        if not size:
            continue
        if digest not in sizes:
            path = blobs.path(digest)
            sizes[digest] = path.stat().st_size if path.exists() else None
        if sizes[digest] is None:
            yield f"{where}: its content (blob {digest[:12]}) is missing"
        elif sizes[digest] != size:
            yield f"{where}: its content (blob {digest[:12]}) has the wrong size"
    yield from _check_blobs(ctx, fix, garbage)


def _check_blobs(ctx: Context, fix: bool, garbage: bool = True) -> Iterator[str]:
    """Every blob's content against its name; garbage (collected with ``fix``)."""
    blobs = ctx.blobs
    with blobs.exclusive(wait_s=30.0 if garbage else 0.0) as got:
        if not got:
            if garbage:
                yield ("blobs: other processes kept writing for 30 s; contents and garbage "
                       "not checked (run fsck again when they are done)")
            return
        referenced = ctx.store.referenced_blobs()
        unreferenced = bad = 0
        size = 0
        for digest, path in blobs.digests():
            actual = blobs.hash_of(path)
            if digest not in referenced:
                unreferenced += 1
                size += path.stat().st_size
            elif actual != digest:
                bad += 1
                yield (f"blob {digest[:12]}: its content is damaged (it hashes to "
                       f"{actual[:12]}); the files that refer to it cannot be read back as "
                       "they were put")
        stale = len(blobs.stale_writers())
    if not garbage:
        return
    scratch = sum(1 for _ in ctx.jobs_dir.iterdir()) if ctx.jobs_dir.is_dir() else 0
    if scratch:
        live = {job_dir(ctx, p, j).name for p, j, o in ctx.store.live_job_owners()
                if procs.process_alive(o.pid, o.start)}
        scratch = sum(1 for f in ctx.jobs_dir.iterdir() if f.name not in live)
    if unreferenced or scratch or stale:
        what = (f"garbage: {unreferenced} unreferenced blob(s) ({size} bytes), {scratch} "
                f"scratch folder(s) of no running job, {stale} unfinished write(s)")
        if fix:
            done = collect_garbage(ctx, wait_s=30.0)
            what += " (fixed: collected)" if done is not None else \
                "; not collected: other processes kept writing"
        else:
            what += "; `pix2pix garbage-collect` removes it"
        yield what
