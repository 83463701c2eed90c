"""Branches (pachd's ``server_branch.go``): movable names for commits."""
from __future__ import annotations

from typing import Optional

from pix2pix.pachyderm.commits import resolve
from pix2pix.pachyderm.context import Context
from pix2pix.pachyderm.info import BranchInfo
from pix2pix.pachyderm.repos import check_name, inspect_repo


def list_branches(ctx: Context, repo: str) -> list[BranchInfo]:
    inspect_repo(ctx, repo)
    return ctx.store.list_branches(repo)


def create_branch(ctx: Context, repo: str, branch: str, head: Optional[str] = None) -> BranchInfo:
    """Create (or move) a branch; ``head`` is a ref in the same repo or None (empty)."""
    inspect_repo(ctx, repo)
    check_name(branch, "branch")
    commit = resolve(ctx, repo, head) if head else None
    ctx.store.set_branch_head(repo, branch, commit)
    return BranchInfo(repo=repo, name=branch, head=commit)
