"""Branches (pachd's ``server_branch.go``): movable names for commits, with provenance (the
branches they are computed from) and triggers (move to another branch's head once a condition
holds: pachd's deferred processing).

    create_branch(repo, b)                    a new branch on a new empty commit
    create_branch(repo, b, head="master")     b points at master's head; what reads b runs
    create_branch(repo, b, provenance=[...])  b is computed from those branches: a commit on any
                                              of them opens one on b (a new one opens now)
    create_branch(repo, b, trigger={"branch": "master", "commits": 3})
                                              b moves to master's head every 3 commits
"""
from __future__ import annotations

from typing import Iterable, Optional

from pix2pix.errors import NotFoundError, PreconditionError, SpecError, UsageError
from pix2pix.pachyderm import dag
from pix2pix.pachyderm.commits import make_commit, propagate, resolve
from pix2pix.pachyderm.context import Context, new_id
from pix2pix.pachyderm.info import BranchInfo
from pix2pix.pachyderm.repos import check_name, inspect_repo

TRIGGER_KEYS = {"branch", "all", "size", "commits", "cronSpec", "rateLimitSpec"}
_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4,
          "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "tib": 1024 ** 4}


def list_branches(ctx: Context, repo: str) -> list[BranchInfo]:
    """A repo's branches, newest first (as pachd lists them)."""
    inspect_repo(ctx, repo)
    return ctx.store.list_branches(repo)


def inspect_branch(ctx: Context, repo: str, branch: str) -> BranchInfo:
    inspect_repo(ctx, repo)
    info = ctx.store.get_branch(repo, branch)
    if info is None:
        raise NotFoundError(f'branch "{branch}" not found in repo {repo}')
    return info


def create_branch(ctx: Context, repo: str, branch: str, head: Optional[str] = None, *,
                  provenance: Iterable[str] = (), trigger: Optional[dict] = None,
                  new_commit: bool = False) -> BranchInfo:
    """Create (or change) a branch. ``head`` is a ref in the same repo; ``provenance`` lists
    ``repo@branch`` names it is computed from (missing ones are created on an empty commit, as
    pachd does); ``trigger`` is pachd's branch trigger. A branch that gets a new head, or a
    new provenance, starts a commit set that runs what depends on it.

    Raises:
        NotFoundError: the repo or head does not exist. UsageError: a bad name or trigger.
        PreconditionError: the provenance would make a cycle.
    """
    inspect_repo(ctx, repo)
    check_name(branch, "branch")
    prov = [_parse_branch(p) for p in provenance]
    if trigger:
        trigger = _check_trigger(repo, branch, trigger)
    store = ctx.store
    with store.tx():
        existing = store.get_branch(repo, branch)
        commit = resolve(ctx, repo, head) if head else None
        set_id = new_id()
        if prov:
            _check_no_cycle(ctx, repo, branch, prov)
            for p in prov:
                inspect_repo(ctx, p[0])
                if store.get_branch(*p) is None:
                    make_commit(ctx, p[0], p[1], set_id)  # pachd's fillNewBranches
            store.set_branch_provenance(repo, branch, prov)
        if commit is not None:
            store.set_branch_head(repo, branch, commit)
            propagate(ctx, [(repo, branch)], set_id)
        elif prov:
            propagate(ctx, [(repo, branch)], set_id, include_start=True)
        elif existing is None or new_commit:
            make_commit(ctx, repo, branch, set_id)
        if trigger is not None:
            store.set_branch_trigger(repo, branch, trigger)
    return store.get_branch(repo, branch)


def delete_branch(ctx: Context, repo: str, branch: str, force: bool = False) -> None:
    """Delete a branch (its commits stay, reachable by ID).

    Raises:
        NotFoundError: it does not exist. PreconditionError: other branches are computed from
            it (unless ``force``).
    """
    inspect_branch(ctx, repo, branch)
    users = [f"{r}@{b}" for r, b in ctx.store.downstream(repo, branch)]
    if users and not force:
        raise PreconditionError(f"branch {repo}@{branch} is in the provenance of {', '.join(users)}; "
                                "delete them first or use --force")
    ctx.store.delete_branch(repo, branch)


# -- helpers ---------------------------------------------------------------------------------------
def _parse_branch(text: str) -> tuple[str, str]:
    repo, at, branch = text.partition("@")
    if not at or not repo or not branch:
        raise UsageError(f"provenance {text!r}: expected repo@branch")
    return repo, branch


def _check_no_cycle(ctx: Context, repo: str, branch: str, prov: list[tuple[str, str]]) -> None:
    key = "{}@{}".format
    graph: dict[str, set[str]] = {key(repo, branch): {key(*p) for p in prov}}
    todo = list(prov)
    while todo:
        b = todo.pop()
        if key(*b) in graph:
            continue
        ups = ctx.store.upstream(*b)
        graph[key(*b)] = {key(*u) for u in ups}
        todo += ups
    loop = dag.cycle(graph)
    if loop:
        raise PreconditionError(f"branch provenance would form a cycle: {' -> '.join(loop)}")


def _check_trigger(repo: str, branch: str, trigger: dict) -> dict:
    bad = set(trigger) - TRIGGER_KEYS
    if bad or not trigger.get("branch"):
        raise UsageError(f"trigger of {repo}@{branch}: expected {{branch, all, size, commits}}, "
                         f"got {sorted(trigger)}")
    if trigger.get("branch") == branch:
        raise UsageError(f"trigger of {repo}@{branch}: a branch cannot trigger itself")
    for key in ("cronSpec", "rateLimitSpec"):
        if trigger.get(key):
            raise SpecError(f"trigger of {repo}@{branch}: {key} triggers need pachd's clock; "
                            "the embedded engine supports size and commits triggers")
    if trigger.get("size"):
        parse_size(str(trigger["size"]))
    return {k: v for k, v in trigger.items() if v not in (None, "", 0, False)}


def parse_size(text: str) -> int:
    """``"1MB"`` -> 1000000, ``"2KiB"`` -> 2048 (the units pachd's triggers take)."""
    t = text.strip().lower().replace(" ", "")
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = t[len(num):]
    if not num or unit not in _UNITS:
        raise UsageError(f"size {text!r}: expected a number with a unit like 500MB or 1GiB")
    return int(float(num) * _UNITS[unit])
