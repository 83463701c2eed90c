"""The pipeline registry (pachd's ``pps/server`` create/inspect/list/delete): specs are
validated, stored as versions, and registered in PFS as the provenance of their output branch
(the branches they read), so a commit on an input branch queues them."""
from __future__ import annotations

import json

from pix2pix.errors import (AlreadyExistsError, MissingInputError, NotFoundError,
                            PreconditionError, SpecError)
from pix2pix.pachyderm import dag
from pix2pix.pachyderm.context import Context
from pix2pix.pachyderm.info import PipelineInfo
from pix2pix.pachyderm.spec import DEFAULT_PROJECT, PipelineSpec, parse_spec


def create_pipelines(ctx: Context, specs: list[tuple[str, dict]], *, update: bool = False,
                     reprocess: bool = False) -> list[PipelineInfo]:
    """Validate every spec, then store them all in one transaction and queue their first jobs.
    The specs may name each other's output repos in any order.

    Raises:
        SpecError: an invalid spec, a name given twice, a cycle (MissingInputError: an input
            repo that does not exist). AlreadyExistsError: the pipeline exists and ``update`` is
            False, or a user repo has its name.
    """
    checked = [(src, parse_spec(spec, source=src)) for src, spec in specs]
    names = [s.name for _, s in checked]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SpecError(f"pipeline(s) {', '.join(sorted(dup))} defined more than once")
    existing = {p.name: p for p in ctx.store.list_pipelines()}
    repos = {r.name: r for r in ctx.store.list_repos()}
    for src, spec in checked:
        where = f"{src}: pipeline {json.dumps(spec.name)}"
        if spec.name in existing and not update:
            raise AlreadyExistsError(f"{where}: pipeline already exists; use `pix2pix update "
                                     f"pipeline -f {src.split('#')[0]}` to change it")
        if spec.name in repos and repos[spec.name].type == "user":
            raise AlreadyExistsError(f"{where}: a user repo named {spec.name!r} exists and the "
                                     "pipeline's output repo would take its name; rename one of them")
        check_runnable(spec, where)
        for p in spec.pfs_inputs:
            if p.repo not in repos and p.repo not in names:
                raise MissingInputError(f"{where}: {p.field}.repo: repo {p.repo!r} does not "
                                        f"exist; create it with `pix2pix create repo {p.repo}` "
                                        "or create its pipeline")
    graph = {n: p.parsed.input_repos for n, p in existing.items()}
    graph.update({s.name: s.input_repos for _, s in checked})
    loop = dag.cycle(graph)
    if loop:
        srcs = ", ".join(src for src, s in checked if s.name in loop) or "pipelines"
        raise SpecError(f"{srcs}: pipelines form a cycle: {' -> '.join(loop)}; a pipeline cannot "
                        "read its own output, directly or through others")
    store = ctx.store
    with store.tx():
        for _, spec in checked:
            store.save_pipeline(spec.name, spec.to_json(), reprocess=reprocess)
            if store.get_repo(spec.name) is None:
                store.insert_repo(spec.name, spec.description, "pipeline")
            store.ensure_branch(spec.name, spec.output_branch)
            old = existing.get(spec.name)
            if old is not None and old.parsed.output_branch != spec.output_branch:
                store.set_branch_provenance(spec.name, old.parsed.output_branch, [])
            store.set_branch_provenance(spec.name, spec.output_branch, spec.input_branches)
            store.enqueue_pipeline(spec.name)
    return [inspect_pipeline(ctx, s.name) for _, s in checked]


def check_runnable(spec: PipelineSpec, where: str) -> None:
    """What a valid spec may ask that the embedded engine cannot do: one line, at create time."""
    for p in spec.pfs_inputs:
        if p.project != DEFAULT_PROJECT:
            raise SpecError(f"{where}: {p.field}.project: project {p.project!r}: the embedded "
                            "engine has only the default project")
    if spec.input.has("cron"):
        raise SpecError(f"{where}: input.cron: cron inputs need a real Pachyderm")
    for key, value in (("spout", spec.spout), ("service", spec.service)):
        if value:
            raise SpecError(f"{where}: {key}: not supported by the embedded engine")


def inspect_pipeline(ctx: Context, name: str) -> PipelineInfo:
    info = ctx.store.get_pipeline(name)
    if info is None:
        raise NotFoundError(f"pipeline {name!r} not found; `pix2pix list pipeline` shows them")
    return info


def list_pipelines(ctx: Context) -> list[PipelineInfo]:
    """Newest first."""
    return ctx.store.list_pipelines()


def delete_pipeline(ctx: Context, name: str, keep_repo: bool = False, force: bool = False) -> None:
    """Delete a pipeline, its jobs and (unless ``keep_repo``) its output repo.

    Raises:
        NotFoundError: it does not exist. PreconditionError: other pipelines read its output
            (unless ``force``).
    """
    inspect_pipeline(ctx, name)
    readers = sorted({repo for repo, _ in ctx.store.downstream(name) if repo != name})
    if readers and not force:
        raise PreconditionError(f"pipeline {name!r} feeds pipeline(s) {', '.join(readers)}; delete "
                                "them first or use --force")
    ctx.store.delete_pipeline(name, keep_repo=keep_repo)
