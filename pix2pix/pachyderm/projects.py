"""Projects (pachd's ``server_project.go``): namespaces of repos and pipelines. ``default``
always exists; a repo or pipeline in another project is named ``project/name``."""
from __future__ import annotations

from pix2pix.errors import AlreadyExistsError, NotFoundError, PreconditionError, UsageError
from pix2pix.pachyderm.context import Context
from pix2pix.pachyderm.info import ProjectInfo
from pix2pix.pachyderm.refs import DEFAULT_PROJECT, NAME


def create_project(ctx: Context, name: str, description: str = "",
                   update: bool = False) -> ProjectInfo:
    """Raises UsageError (a bad name), AlreadyExistsError (it exists and not ``update``)."""
    if not NAME.match(name or ""):
        raise UsageError(f"project name {name!r}: use 1-63 letters, digits, '_' or '-'")
    with ctx.store.tx():
        if ctx.store.get_project(name) is not None:
            if not update:
                raise AlreadyExistsError(f"project {name} already exists")
            ctx.store.set_project_description(name, description)
        else:
            ctx.store.insert_project(name, description)
    return inspect_project(ctx, name)


def inspect_project(ctx: Context, name: str) -> ProjectInfo:
    info = ctx.store.get_project(name or DEFAULT_PROJECT)
    if info is None:
        raise NotFoundError(f'project "{name}" not found; `pix2pix list project` shows them')
    return info


def list_projects(ctx: Context) -> list[ProjectInfo]:
    return ctx.store.list_projects()


def delete_project(ctx: Context, name: str, force: bool = False) -> None:
    """Delete a project; with ``force`` its repos go too (its pipelines must be gone: the
    facade deletes them first).

    Raises:
        NotFoundError: no such project. PreconditionError: it is ``default``, or it still
            holds pipelines, or repos and ``force`` is False.
    """
    inspect_project(ctx, name)
    if name == DEFAULT_PROJECT:
        raise PreconditionError("the default project cannot be deleted")
    pipelines = ctx.store.list_pipelines(project=name)
    if pipelines:
        raise PreconditionError(f"project {name} still has pipelines "
                                f"({', '.join(p.name for p in pipelines)}); delete them first")
    repos = ctx.store.list_repos(project=name)
    if repos and not force:
        raise PreconditionError(f"project {name} still has repos ({', '.join(r.name for r in repos)});"
                                " delete them first or use --force")
    with ctx.store.tx():
        for r in repos:
            ctx.store.delete_repo(r.name)
        ctx.store.delete_project(name)


