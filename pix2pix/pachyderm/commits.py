"""Commits and commit sets (pachd's ``server_commit.go``, ``server_commit_set.go`` and the
propagation of ``server_branch.go``).

A commit starts open and is what its branch points at from then on: reads of the branch see its
files so far, and a second commit cannot start on the branch until it is finished. Starting a
commit *propagates* it, as pachd does: every branch computed from the branch (its subvenance,
through branch provenance) gets an open AUTO commit with the same ID, whose provenance is the
head of each branch it is computed from. The commits that share an ID form a commit set; a
pipeline's AUTO commit is its job's output commit, which the job finishes (with an error when
it fails, and then every job reading it is unrunnable).

    images@X (USER, open) ──start──> edges@X (AUTO, open; job edges@X created)
                                  └─> montage@X (AUTO, open; reads edges@X and images@X)
"""
from __future__ import annotations

import os
from typing import Callable, Iterable, Optional

from pix2pix.errors import ConflictError, NotFoundError, PreconditionError
from pix2pix.pachyderm import dag, procs, trees
from pix2pix.pachyderm.context import Context, new_id
from pix2pix.pachyderm.info import CommitInfo
from pix2pix.pachyderm.refs import COMMIT_ID, qualify, split_ancestry
from pix2pix.pachyderm.repos import check_name, inspect_repo
from pix2pix.pachyderm.store import Owner, Tree

Branch = tuple[str, str]  # (repo, branch)


# -- starting and finishing ------------------------------------------------------------------------
def start_commit(ctx: Context, repo: str, branch: str = "master", parent: Optional[str] = None,
                 description: str = "", *, output: bool = False,
                 commit_id: Optional[str] = None, owned: bool = True) -> str:
    """Open a commit on ``branch`` (its new head) and propagate it downstream; returns its ID
    (``commit_id``, e.g. a transaction's, or a new one). Its parent is the branch head (or
    ``parent``), which must be finished. An ``owned`` commit belongs to this process: if the
    process dies before finishing it, the next command drops it (a killed ``put file``);
    one that is not owned stays open until someone finishes it, as pachd's do
    (``start commit``, StartCommit over the API).

    Raises:
        PreconditionError: the branch is an output branch (``output`` lets a pipeline's own
            code, a spout, start one). ConflictError: the branch head is still open.
    """
    info = inspect_repo(ctx, repo)
    check_name(branch, "branch")
    store = ctx.store
    output = output or _spout_of(ctx, repo)
    with store.tx():
        if not output and (info.type == "pipeline" or store.upstream(repo, branch)):
            raise PreconditionError(f"cannot start a commit on an output branch: {repo}@{branch}; "
                                    "only the pipeline (or the branch's provenance) commits to it")
        head = store.get_branch(repo, branch)
        parent_id = resolve(ctx, repo, parent) if parent else (head.head if head else None)
        if parent_id is not None:
            p = store.get_commit(repo, parent_id)
            if p is not None and p.finished is None:
                raise ConflictError(f"parent commit {repo}@{parent_id} has not been finished; "
                                    f"finish it first (`pix2pix finish commit {repo}@{parent_id}`)")
        cid = commit_id or new_id()
        if store.commit_exists(repo, cid):
            raise ConflictError(f"repo {repo} already has commit {cid} (one commit set holds one "
                                "commit per repo)")
        store.insert_commit(repo=repo, commit_id=cid, branch=branch, parent=parent_id,
                            origin="USER", description=description,
                            owner=Owner(*procs.me()) if owned else None)
        store.set_branch_head(repo, branch, cid)
        propagate(ctx, [(repo, branch)], cid)
    return cid


def _spout_of(ctx: Context, repo: str) -> bool:
    """Whether this process is the code of the spout whose output ``repo`` is (pachd lets a
    spout's code commit to its own output repo; it knows it by PPS_PIPELINE_NAME)."""
    name = os.environ.get("PPS_PIPELINE_NAME")
    if not name or qualify(os.environ.get("PPS_PROJECT_NAME"), name) != repo:
        return False
    p = ctx.store.get_pipeline(repo)
    return p is not None and p.parsed.spout is not None


def make_commit(ctx: Context, repo: str, branch: str, commit_set: str, *, origin: str = "AUTO",
                tree: Optional[Tree] = None, description: str = "") -> str:
    """A finished commit made in one step (an empty one, or a given tree) as the new head of
    ``branch``, propagated downstream in commit set ``commit_set``."""
    store = ctx.store
    with store.tx():
        head = store.get_branch(repo, branch)
        store.insert_commit(repo=repo, commit_id=commit_set, branch=branch,
                            parent=head.head if head else None, origin=origin,
                            description=description)
        store.finish_commit(repo, commit_set, tree=tree or {})
        store.set_branch_head(repo, branch, commit_set)
        propagate(ctx, [(repo, branch)], commit_set)
    return commit_set


def finish_commit(ctx: Context, repo: str, ref: str, *, description: Optional[str] = None,
                  error: str = "") -> CommitInfo:
    """Finish an open commit: what was staged in it is applied to its parent's tree, in one
    transaction. ``error`` finishes it with that error (pachd keeps such a commit: its jobs
    downstream are unrunnable); ``description`` replaces the one given at start.

    Raises:
        NotFoundError: no such commit. PreconditionError: it is finished already.
    """
    store = ctx.store
    with store.tx():
        oc = open_commit(ctx, repo, ref)
        tree = open_tree(ctx, repo, oc.id)
        trees.check(tree, f"{repo}@{oc.id}")
        store.finish_commit(repo, oc.id, tree=tree, error=error, description=description)
    return store.get_commit(repo, oc.id)


def open_commit(ctx: Context, repo: str, ref: str) -> CommitInfo:
    """The open commit ``ref`` names (an ID, or a branch whose head is open).

    Raises:
        PreconditionError: it is finished already. NotFoundError: no such commit.
    """
    cid = resolve(ctx, repo, ref)
    info = ctx.store.get_commit(repo, cid)
    if info.finished is not None:
        raise PreconditionError(f"commit {repo}@{cid} has already finished; start a new one")
    return info


def open_tree(ctx: Context, repo: str, commit_id: Optional[str]) -> Tree:
    """The files of a commit: a finished one's tree, or an open one's parent tree with what
    is staged in it applied (read your writes)."""
    if commit_id is None:
        return {}
    info = ctx.store.get_commit(repo, commit_id)
    if info is None or info.finished is not None:
        return ctx.store.tree(repo, commit_id)
    tree = open_tree(ctx, repo, info.parent)
    for op in ctx.store.staged_ops(repo, commit_id):
        trees.apply(tree, op, ctx.blobs)
    return tree


# -- propagation -----------------------------------------------------------------------------------
def propagate(ctx: Context, branches: Iterable[Branch], commit_set: str, *,
              include_start: bool = False) -> list[CommitInfo]:
    """Open an AUTO commit ``commit_set`` on every branch downstream of ``branches`` (whose
    heads are already in the commit set; with ``include_start``, on ``branches`` too, computed
    from their provenance's heads), as pachd's propagateBranches does, and tell the context's
    job hook about them. Upstream branches get their commits first."""
    store = ctx.store
    start: set[Branch] = set() if include_start else set(branches)
    seen: dict[Branch, set[Branch]] = {b: set(store.upstream(*b)) for b in branches} \
        if include_start else {}
    todo = list(branches)
    while todo:
        for d in store.downstream(*todo.pop()):
            if d not in seen and d not in start:
                seen[d] = set(store.upstream(*d))
                todo.append(d)
    key = "{}@{}".format
    order = dag.ordered({key(*d): {key(*u) for u in ups if u in seen} for d, ups in seen.items()})
    by_key = {key(*d): d for d in seen}
    made: list[CommitInfo] = []
    for d in (by_key[k] for k in order):
        repo, branch = d
        head = store.get_branch(repo, branch)
        if head is not None and head.head == commit_set:
            continue  # already in this commit set
        if store.commit_exists(repo, commit_set):
            raise ConflictError(f"repo {repo} has two branches downstream of this commit "
                                f"({branch} and another); one commit set holds one commit per repo")
        prov = []
        for u in sorted(seen[d]):
            ub = store.get_branch(*u)
            # A branch of this commit set reads its commit in it; any other reads its head (a
            # branch moved to an older commit with `create branch --head` has none in the new
            # commit set, pachd's alias commit, so its head is the commit read).
            if u in seen or (u in start and store.commit_exists(u[0], commit_set)):
                commit = commit_set
            else:
                commit = ub.head if ub else None
            if commit is not None:
                prov.append((u[0], u[1], commit))
        store.insert_commit(repo=repo, commit_id=commit_set, branch=branch,
                            parent=head.head if head else None, origin="AUTO", provenance=prov)
        store.set_branch_head(repo, branch, commit_set)
        made.append(store.get_commit(repo, commit_set))
    if made and ctx.on_commits is not None:
        ctx.on_commits(made)
    return made


# -- dropping and squashing commit sets -------------------------------------------------------------
def drop_commit_set(ctx: Context, commit_set_id: str) -> list[CommitInfo]:
    """Remove every commit of a commit set, as pachd's DropCommitSet: each must be its branch's
    head (no commit has it as parent), and no other commit set may be computed from it. The
    branches move back to the commits' parents; the set's jobs go with it."""
    return _remove_set(ctx, commit_set_id, squash=False)


def squash_commit_set(ctx: Context, commit_set_id: str) -> list[CommitInfo]:
    """Remove every commit of a commit set but keep its data in the children, as pachd's
    SquashCommitSet: each commit must have a child (or it would lose its data: drop it
    instead); children take its parent as theirs. The set's jobs go with it."""
    return _remove_set(ctx, commit_set_id, squash=True)


def _remove_set(ctx: Context, commit_set_id: str, *, squash: bool) -> list[CommitInfo]:
    store = ctx.store
    with store.tx():
        commits = store.commit_set(commit_set_id)
        if not commits:
            raise NotFoundError(f"no commits found for commitset {commit_set_id}")
        members = {(c.repo, c.id) for c in commits}
        outside = sorted({cid for c in commits for r, cid in store.subvenant_commits(c.repo, c.id)
                          if (r, cid) not in members})
        if outside:
            raise PreconditionError(f"commit set {commit_set_id!r} cannot be dropped because it has "
                                    f"subvenant commit sets: {', '.join(outside)}")
        for c in commits:
            children = store.commit_children(c.repo, c.id)
            if squash and not children:
                raise PreconditionError(
                    "cannot squash a commit that has no children as that would cause data loss, "
                    f"use the drop operation instead: {c.repo}@{c.id}")
            if not squash and children:
                raise PreconditionError(f"cannot drop a commit that has children: {c.repo}@{c.id}")
        for c in commits:
            store.reparent(c.repo, c.id, c.parent)
            for b in store.list_branches(c.repo):
                if b.head == c.id:
                    if c.parent is None:
                        store.delete_branch(c.repo, b.name)
                    else:
                        store.set_branch_head(c.repo, b.name, c.parent)
            store.delete_commit(c.repo, c.id)
        if ctx.on_commits_removed is not None:
            ctx.on_commits_removed(commits)
    return commits


def drop_commit(ctx: Context, repo: str, commit_id: str) -> None:
    """Forget an open commit and everything staged in it, with its commit set."""
    drop_commit_set(ctx, resolve(ctx, repo, commit_id))


def forget_dead_commits(ctx: Context) -> None:
    """Drop the commit sets of open commits whose process was killed: their staged files were
    never finished, so nothing is lost, and the branch gets its previous head back."""
    for repo, cid, owner in ctx.store.open_commit_owners():
        if not procs.process_alive(owner.pid, owner.start) and ctx.store.commit_set(cid):
            drop_commit_set(ctx, cid)


# -- refs and reads --------------------------------------------------------------------------------
def resolve(ctx: Context, repo: str, ref: Optional[str]) -> str:
    """A commit id for ``ref``: a commit id, a branch (its head) or ``branch^N``/``~N``.

    Raises:
        NotFoundError: the repo, branch or commit does not exist.
    """
    inspect_repo(ctx, repo)
    ref = ref or "master"
    store = ctx.store
    if COMMIT_ID.match(ref):
        if store.commit_exists(repo, ref):
            return ref
        raise NotFoundError(f"commit {repo}@{ref} not found; `pix2pix list commit {repo}` lists them")
    base, n = split_ancestry(ref)
    if COMMIT_ID.match(base):
        cid: Optional[str] = resolve(ctx, repo, base)
    else:
        branch = store.get_branch(repo, base)
        if branch is None or branch.head is None:
            names = ", ".join(b.name for b in store.list_branches(repo) if b.head) or "none"
            raise NotFoundError(f"branch {base!r} not found in repo {repo}; branches: {names} "
                                f"(a repo has no branch until its first commit: `pix2pix put file "
                                f"{repo}@{base}:/path -f FILE` makes one)")
        cid = branch.head
    for i in range(n):
        cid = store.commit_parent(repo, cid) if cid else None
        if cid is None:
            raise NotFoundError(f"{repo}@{ref}: the branch has only {i + 1} commit(s)")
    return cid


def inspect_commit(ctx: Context, repo: str, ref: Optional[str] = None) -> CommitInfo:
    """A commit (open: ``finished`` None), with its provenance."""
    return ctx.store.get_commit(repo, resolve(ctx, repo, ref))


def list_commits(ctx: Context, repo: Optional[str] = None, branch: Optional[str] = None,
                 limit: Optional[int] = None, *, project: Optional[str] = None,
                 origin: Optional[str] = None) -> list[CommitInfo]:
    """Commits, newest first: a repo's (or every repo's of ``project``); with ``branch``, that
    branch's ancestry from its head; with ``origin``, only USER or AUTO ones."""
    keep: Callable[[CommitInfo], bool] = lambda c: origin is None or c.origin == origin  # noqa: E731
    if repo is None:
        return [c for c in ctx.store.list_commits(project=project) if keep(c)][:limit or None]
    inspect_repo(ctx, repo)
    if branch is None:
        return [c for c in ctx.store.list_commits(repo) if keep(c)][:limit or None]
    b = ctx.store.get_branch(repo, branch)
    if b is not None and b.head is None:
        return []
    cid: Optional[str] = resolve(ctx, repo, branch)
    out: list[CommitInfo] = []
    while cid and (limit is None or len(out) < limit):
        info = ctx.store.get_commit(repo, cid)
        if keep(info):
            out.append(info)
        cid = info.parent
    return out


def list_open_commits(ctx: Context, repo: Optional[str] = None,
                      branch: Optional[str] = None) -> list[CommitInfo]:
    """Open (unfinished) commits, newest first: ``finished`` is None, ``size`` counts the
    bytes staged so far."""
    return ctx.store.list_open_commits(repo, branch)


def commit_children(ctx: Context, repo: str, commit_id: str) -> list[str]:
    """IDs of the commits whose parent is ``commit_id``, oldest first."""
    return ctx.store.commit_children(repo, commit_id)


def inspect_commit_set(ctx: Context, commit_set_id: str) -> list[CommitInfo]:
    """The commits of one commit set (one global ID): the user commit and the AUTO commits
    propagated from it, in the order they were made."""
    commits = ctx.store.commit_set(commit_set_id)
    if not commits:
        raise NotFoundError(f"no commits found for commitset {commit_set_id}")
    return commits


def list_commit_sets(ctx: Context, limit: Optional[int] = None) -> list[str]:
    """Global IDs, newest first."""
    return ctx.store.list_commit_sets(limit)
