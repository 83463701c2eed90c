"""Repos (pachd's ``server_repo.go``)."""
from __future__ import annotations

from pix2pix.errors import AlreadyExistsError, NotFoundError, PreconditionError, UsageError
from pix2pix.pachyderm.context import Context
from pix2pix.pachyderm.info import RepoInfo
from pix2pix.pachyderm.refs import NAME


def check_name(name: str, what: str) -> None:
    if not NAME.match(name or ""):
        raise UsageError(f"{what} name {name!r}: use 1-63 letters, digits, '_' or '-'")


def create_repo(ctx: Context, name: str, description: str = "", update: bool = False) -> RepoInfo:
    """Create a user repo (with an empty ``master`` branch).

    Raises:
        UsageError: an invalid name. AlreadyExistsError: it exists and ``update`` is False.
    """
    check_name(name, "repo")
    with ctx.store.tx():
        existing = ctx.store.get_repo(name)
        if existing and not update:
            raise AlreadyExistsError(f"repo {name!r} already exists; use `update repo` or pick "
                                     "another name")
        if existing:
            ctx.store.set_repo_description(name, description)
        else:
            ctx.store.insert_repo(name, description, "user")
    return inspect_repo(ctx, name)


def inspect_repo(ctx: Context, name: str) -> RepoInfo:
    info = ctx.store.get_repo(name)
    if info is None:
        raise NotFoundError(f"repo {name!r} not found; `pix2pix list repo` shows the repos")
    return info


def list_repos(ctx: Context) -> list[RepoInfo]:
    """All repos, newest first (as pachctl lists them)."""
    return ctx.store.list_repos()


def delete_repo(ctx: Context, name: str, force: bool = False) -> None:
    """Delete a repo with all its commits.

    Raises:
        NotFoundError: it does not exist. PreconditionError: it is a pipeline's output (delete
            the pipeline), or pipelines read it and ``force`` is False.
    """
    info = inspect_repo(ctx, name)
    if info.type == "pipeline" and not force:
        raise PreconditionError(f"repo {name!r} is the output of pipeline {name!r}; "
                                f"use `pix2pix delete pipeline {name}`")
    readers = sorted({repo for repo, _ in ctx.store.downstream(name)})
    if readers and not force:
        raise PreconditionError(f"repo {name!r} is an input of pipeline(s) {', '.join(readers)}; "
                                "delete them first or use --force")
    ctx.store.delete_repo(name)
