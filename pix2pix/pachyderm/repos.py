"""Repos (pachd's ``server_repo.go``). A repo has no branch until its first commit; a repo
outside the default project is named ``project/repo``."""
from __future__ import annotations

from typing import Optional

from pix2pix.errors import AlreadyExistsError, NotFoundError, PreconditionError, UsageError
from pix2pix.pachyderm.context import Context
from pix2pix.pachyderm.info import RepoInfo
from pix2pix.pachyderm.refs import NAME, QUALIFIED, split_name


def check_name(name: str, what: str) -> None:
    ok = QUALIFIED.match(name or "") if what in ("repo", "pipeline") else NAME.match(name or "")
    if not ok:
        extra = " (optionally project/name)" if what in ("repo", "pipeline") else ""
        raise UsageError(f"{what} name {name!r}: use 1-63 letters, digits, '_' or '-'{extra}")


def check_project(ctx: Context, qualified: str) -> str:
    """The project of a qualified name. Raises NotFoundError when it does not exist."""
    project = split_name(qualified)[0]
    if ctx.store.get_project(project) is None:
        raise NotFoundError(f'project "{project}" not found; create it with '
                            f"`pix2pix create project {project}`")
    return project


def create_repo(ctx: Context, name: str, description: str = "", update: bool = False) -> RepoInfo:
    """Create a user repo (no branch yet: its first commit makes one).

    Raises:
        UsageError: an invalid name. NotFoundError: its project does not exist.
        AlreadyExistsError: it exists and ``update`` is False.
    """
    check_name(name, "repo")
    with ctx.store.tx():
        check_project(ctx, name)
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


def list_repos(ctx: Context, project: Optional[str] = None) -> list[RepoInfo]:
    """All repos (or one project's), newest first (as pachctl lists them)."""
    return ctx.store.list_repos(project)


def delete_repo(ctx: Context, name: str, force: bool = False) -> bool:
    """Delete a repo with all its commits. A repo that does not exist is no error (as in pachd):
    returns whether there was one to delete.

    Raises:
        PreconditionError: it is a pipeline's output (delete the pipeline), or pipelines read it
            and ``force`` is False.
    """
    info = ctx.store.get_repo(name)
    if info is None:
        return False
    if info.type == "pipeline" and not force:
        raise PreconditionError(f"repo {name!r} is the output of pipeline {name!r}; "
                                f"use `pix2pix delete pipeline {name}`")
    readers = sorted({repo for repo, _ in ctx.store.downstream(name) if repo != name})
    if readers and not force:
        pipes = [r for r in readers if ctx.store.get_pipeline(r) is not None]
        others = [r for r in readers if r not in pipes]
        what = "; ".join(x for x in (f"pipeline(s) {', '.join(pipes)}" if pipes else "",
                                     f"the branches of {', '.join(others)}" if others else "") if x)
        raise PreconditionError(f"repo {name!r} is an input of {what}; delete them first or "
                                "use --force")
    ctx.store.delete_repo(name)
    return True
