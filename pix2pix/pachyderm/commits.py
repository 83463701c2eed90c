"""Commits (pachd's ``server_commit.go`` and ``server_commit_set.go``): open commits and their
staged changes, finishing, refs (``branch``, ``<id>``, ``branch^2``) and commit sets.

A commit is open from :func:`start_commit` until :func:`finish_commit`; what is staged in it is
invisible until then, and is applied at finish time onto the branch head of *that* moment, so
two writers racing on a branch both land, one after the other.
"""
from __future__ import annotations

from typing import Optional

from pix2pix.errors import NotFoundError, PreconditionError
from pix2pix.pachyderm import procs, trees
from pix2pix.pachyderm.context import Context, new_id
from pix2pix.pachyderm.info import CommitInfo
from pix2pix.pachyderm.refs import COMMIT_ID, split_ancestry
from pix2pix.pachyderm.repos import check_name, inspect_repo
from pix2pix.pachyderm.store import Owner


def start_commit(ctx: Context, repo: str, branch: str = "master", parent: Optional[str] = None,
                 description: str = "") -> str:
    """Open a commit on ``branch`` and return its ID. Files put into it stay invisible until
    :func:`finish_commit`; its parent is the branch head at finish time (or ``parent``)."""
    info = inspect_repo(ctx, repo)
    if info.type == "pipeline":
        raise PreconditionError(f"repo {repo!r} is the output of a pipeline; only the pipeline "
                                "commits to it")
    check_name(branch, "branch")
    parent_id = resolve(ctx, repo, parent) if parent else None
    cid = new_id()
    ctx.store.insert_open_commit(repo=repo, commit_id=cid, branch=branch, parent=parent_id,
                                 description=description, owner=Owner(*procs.me()))
    return cid


def open_commit(ctx: Context, repo: str, commit_id: str) -> CommitInfo:
    """The open commit ``repo@commit_id``.

    Raises:
        PreconditionError: it is finished already. NotFoundError: no such open commit.
    """
    info = ctx.store.get_open_commit(repo, commit_id)
    if info is None:
        if ctx.store.commit_exists(repo, commit_id):
            raise PreconditionError(f"commit {repo}@{commit_id} is already finished; start a new one")
        raise NotFoundError(f"no open commit {repo}@{commit_id}; `start_commit` opens one")
    return info


def finish_commit(ctx: Context, repo: str, commit_id: str, *,
                  description: Optional[str] = None) -> CommitInfo:
    """Make an open commit visible: its staged ops are applied to the branch head *now*, in one
    transaction that also queues the pipelines reading the branch (so a crash right after the
    commit still runs them later). ``description`` replaces the one given at start (as pachd's
    FinishCommit allows). Running the queued jobs is the caller's choice."""
    store = ctx.store
    with store.tx():
        oc = open_commit(ctx, repo, commit_id)
        head = store.get_branch(repo, oc.branch)
        parent = oc.parent or (head.head if head else None)
        tree = store.tree(repo, parent)
        for op in store.staged_ops(repo, commit_id):
            trees.apply(tree, op, ctx.blobs)
        trees.check(tree, f"{repo}@{commit_id}")
        store.write_commit(repo=repo, commit_id=commit_id, branch=oc.branch, parent=parent,
                           origin="USER", started=oc.started,
                           description=oc.description if description is None else description,
                           tree=tree)
        store.forget_open_commit(repo, commit_id)
        if store.downstream(repo, oc.branch):
            store.enqueue_commit(repo, oc.branch, commit_id)
    return inspect_commit(ctx, repo, commit_id)


def drop_commit(ctx: Context, repo: str, commit_id: str) -> None:
    """Forget an open commit and everything staged in it."""
    ctx.store.forget_open_commit(repo, commit_id)


def list_open_commits(ctx: Context, repo: Optional[str] = None,
                      branch: Optional[str] = None) -> list[CommitInfo]:
    """Open (unfinished) commits, newest first: ``finished`` is None, ``size`` counts the
    bytes staged so far. Their files are invisible to reads until finished."""
    return ctx.store.list_open_commits(repo, branch)


def forget_dead_commits(ctx: Context) -> None:
    """Forget the open commits of processes that were killed: their staged files were never
    visible, so nothing is lost."""
    for repo, cid, owner in ctx.store.open_commit_owners():
        if not procs.process_alive(owner.pid, owner.start):
            ctx.store.forget_open_commit(repo, cid)


def resolve(ctx: Context, repo: str, ref: Optional[str]) -> str:
    """A commit id for ``ref``: a commit id, a branch (its head) or ``branch^N``/``~N``.

    Raises:
        NotFoundError: the repo, branch or commit does not exist. PreconditionError: the commit
            is still open, or the branch is empty.
    """
    inspect_repo(ctx, repo)
    ref = ref or "master"
    store = ctx.store
    if COMMIT_ID.match(ref):
        if store.commit_exists(repo, ref):
            return ref
        if store.get_open_commit(repo, ref):
            raise PreconditionError(f"commit {repo}@{ref} is still open; finish it first")
        raise NotFoundError(f"commit {repo}@{ref} not found; `pix2pix list commit {repo}` lists them")
    base, n = split_ancestry(ref)
    if COMMIT_ID.match(base):
        cid: Optional[str] = resolve(ctx, repo, base)
    else:
        branch = store.get_branch(repo, base)
        if branch is None:
            names = ", ".join(b.name for b in store.list_branches(repo)) or "none"
            raise NotFoundError(f"branch {repo}@{base} not found; branches: {names}")
        cid = branch.head
        if cid is None:
            raise PreconditionError(f"branch {repo}@{base} has no commits yet; "
                                    f"`pix2pix put file {repo}@{base}:/path -f FILE` makes one")
    for i in range(n):
        cid = store.commit_parent(repo, cid) if cid else None
        if cid is None:
            raise NotFoundError(f"{repo}@{ref}: the branch has only {i + 1} commit(s)")
    return cid


def inspect_commit(ctx: Context, repo: str, ref: Optional[str] = None) -> CommitInfo:
    """A finished commit, with its provenance (the input commits of an AUTO commit)."""
    cid = resolve(ctx, repo, ref)
    return ctx.store.get_commit(repo, cid)


def list_commits(ctx: Context, repo: str, branch: Optional[str] = None,
                 limit: Optional[int] = None) -> list[CommitInfo]:
    """Finished commits, newest first; with ``branch``, that branch's ancestry from its head."""
    inspect_repo(ctx, repo)
    if branch is None:
        return ctx.store.list_commits(repo, limit)
    b = ctx.store.get_branch(repo, branch)
    if b is not None and b.head is None:
        return []
    cid: Optional[str] = resolve(ctx, repo, branch)
    out: list[CommitInfo] = []
    while cid and (limit is None or len(out) < limit):
        info = ctx.store.get_commit(repo, cid)
        out.append(info)
        cid = info.parent
    return out


def commit_children(ctx: Context, repo: str, commit_id: str) -> list[str]:
    """IDs of the finished commits whose parent is ``commit_id``, oldest first."""
    return ctx.store.commit_children(repo, commit_id)


def inspect_commit_set(ctx: Context, commit_set_id: str) -> list[CommitInfo]:
    """The commits of one commit set (one global ID): the user commit and the AUTO commits
    the pipelines made from it, in the order they were made."""
    commits = ctx.store.commit_set(commit_set_id)
    if not commits:
        raise NotFoundError(f"commit set {commit_set_id} not found")
    return commits


def list_commit_sets(ctx: Context, limit: Optional[int] = None) -> list[str]:
    """Global IDs, newest first."""
    return ctx.store.list_commit_sets(limit)
