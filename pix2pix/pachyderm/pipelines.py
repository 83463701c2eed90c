"""The pipeline registry (pachd's ``pps/server`` create/inspect/list/delete/stop/start): specs
are validated, stored as versions, and registered in PFS as the provenance of their output
branch (the branches they read), so a commit on an input branch opens an output commit and its
job."""
from __future__ import annotations

import datetime
import json
from typing import Optional

from pix2pix.errors import (AlreadyExistsError, MissingInputError, NotFoundError,
                            PreconditionError, SpecError)
from pix2pix.pachyderm import dag, procs
from pix2pix.pachyderm.commits import make_commit, propagate
from pix2pix.pachyderm.context import Context, new_id
from pix2pix.pachyderm.info import PipelineInfo, ServiceState
from pix2pix.pachyderm.repos import check_project
from pix2pix.pachyderm.spec import PipelineSpec, parse_spec


def create_pipelines(ctx: Context, specs: list[tuple[str, dict]], *, update: bool = False,
                     reprocess: bool = False) -> list[PipelineInfo]:
    """Validate every spec, then store them all in one transaction. Each pipeline's output
    branch gets its input branches as provenance (missing input branches are created on an
    empty commit, as pachd does) and a new commit set: an open output commit and its job,
    visible at once. The specs may name each other's output repos in any order.

    Raises:
        SpecError: an invalid spec, a name given twice, a cycle (MissingInputError: an input
            repo that does not exist). AlreadyExistsError: the pipeline exists and ``update`` is
            False, or a user repo has its name. NotFoundError: its project does not exist.
    """
    checked = [(src, _with_cron_defaults(parse_spec(spec, source=src))) for src, spec in specs]
    names = [s.qname for _, s in checked]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SpecError(f"pipeline(s) {', '.join(sorted(dup))} defined more than once")
    existing = {p.name: p for p in ctx.store.list_pipelines()}
    repos = {r.name: r for r in ctx.store.list_repos()}
    for src, spec in checked:
        where = f"{src}: pipeline {json.dumps(spec.name)}"
        check_project(ctx, spec.qname)
        if spec.qname in existing and not update:
            raise AlreadyExistsError(f"{where}: pipeline already exists; use `pix2pix update "
                                     f"pipeline -f {src.split('#')[0]}` to change it")
        if spec.qname in repos and repos[spec.qname].type == "user":
            raise AlreadyExistsError(f"{where}: a user repo named {spec.qname!r} exists and the "
                                     "pipeline's output repo would take its name; rename one of them")
        check_runnable(spec, where)
        if spec.service is not None:
            _check_ports_free(spec, where, [s for _, s in checked] + [
                p.parsed for n, p in existing.items() if n not in names])
        for p in spec.pfs_inputs:
            if p.from_cron:
                if p.qrepo in existing or p.qrepo in names:
                    raise AlreadyExistsError(f"{where}: {p.field}: its tick repo {p.qrepo!r} is "
                                             "a pipeline's output repo; give the cron input "
                                             "another name or repo")
                continue  # created below, as pachd creates it
            if p.qrepo not in repos and p.qrepo not in names:
                raise MissingInputError(f"{where}: {p.field}.repo: repo {p.qrepo!r} does not "
                                        f"exist; create it with `pix2pix create repo {p.qrepo}` "
                                        "or create its pipeline")
    graph = {n: p.parsed.input_repos for n, p in existing.items()}
    graph.update({s.qname: s.input_repos for _, s in checked})
    loop = dag.cycle(graph)
    if loop:
        srcs = ", ".join(src for src, s in checked if s.qname in loop) or "pipelines"
        raise SpecError(f"{srcs}: pipelines form a cycle: {' -> '.join(loop)}; a pipeline cannot "
                        "read its own output, directly or through others")
    store = ctx.store
    order = dag.ordered({s.qname: s.input_repos for _, s in checked})
    by_name = {s.qname: s for _, s in checked}
    with store.tx():
        for name in order:
            spec = by_name[name]
            store.save_pipeline(name, spec.to_json(), reprocess=reprocess)
            if store.get_repo(name) is None:
                store.insert_repo(name, spec.description, "pipeline")
            old = existing.get(name)
            if old is not None and old.parsed.output_branch != spec.output_branch:
                store.set_branch_provenance(name, old.parsed.output_branch, [])
            for c in cron_inputs(spec):
                if store.get_repo(c.repo) is None:
                    store.insert_repo(c.repo, f"Cron tick repo for pipeline {spec.name}.", "user")
            if spec.spout is not None:
                continue  # its code, under a supervisor, commits to its output repo itself
            set_id = new_id()
            for repo, branch in spec.input_branches:
                if store.get_branch(repo, branch) is None:
                    make_commit(ctx, repo, branch, set_id)  # pachd's fillNewBranches
            store.set_branch_provenance(name, spec.output_branch, spec.input_branches)
            propagate(ctx, [(name, spec.output_branch)], set_id, include_start=True)
    return [inspect_pipeline(ctx, s.qname) for _, s in checked]


def cron_inputs(spec: PipelineSpec) -> list:
    return [n.cron for n in spec.input.walk() if n.cron is not None]


def _with_cron_defaults(spec: PipelineSpec) -> PipelineSpec:
    """pachd's defaults of a cron input, written into the spec when it is created: its repo
    (``<pipeline>_<name>``) and its start (now), which the first tick follows."""
    if not cron_inputs(spec):
        return spec
    from pix2pix.pachyderm.cron import tick_name
    now = tick_name(datetime.datetime.now().astimezone())
    raw = json.loads(spec.to_json())

    def fill(node: dict) -> None:
        if node.get("cron"):
            c = node["cron"]
            c.setdefault("repo", f"{spec.name}_{c['name']}")
            c.setdefault("start", now)
        for kind in ("cross", "union", "join", "group"):
            for child in node.get(kind) or []:
                fill(child)
    fill(raw["input"])
    return PipelineSpec.from_raw(raw)


def check_runnable(spec: PipelineSpec, where: str) -> None:
    """What a valid spec may ask that the embedded engine cannot do: one line, at create time."""
    if spec.service is not None:
        check_service(spec, where)


def _check_ports_free(spec: PipelineSpec, where: str, others: list[PipelineSpec]) -> None:
    """Two services cannot share a port on one machine."""
    mine = {spec.service["internalPort"], spec.service["externalPort"]}
    for other in others:
        if other is spec or other.service is None or other.qname == spec.qname:
            continue
        taken = mine & {other.service.get("internalPort"), other.service.get("externalPort")}
        if taken:
            raise SpecError(f"{where}: service: port {min(taken)} is also used by pipeline "
                            f"{other.qname!r}; give each service its own ports")


def check_service(spec: PipelineSpec, where: str) -> None:
    """A service runs as one supervised process reachable on 127.0.0.1:externalPort, which
    forwards to the code on internalPort (a Kubernetes NodePort Service's job on a cluster).

    Raises:
        SpecError: a port missing, out of range or both the same; a parallelism other than 1
            (pachd refuses it: "services can only be run with a constant parallelism of 1").
    """
    svc = spec.service or {}
    ports = {}
    for key in ("internalPort", "externalPort"):
        value = svc.get(key)
        if not isinstance(value, int) or not 0 < value < 65536:
            raise SpecError(f"{where}: service.{key}: {'missing' if value is None else repr(value)}; "
                            "the embedded engine runs the code on 127.0.0.1:internalPort and "
                            "serves it on 127.0.0.1:externalPort, so both must be ports (1-65535)")
        ports[key] = value
    if ports["internalPort"] == ports["externalPort"]:
        raise SpecError(f"{where}: service.externalPort: {ports['externalPort']} is also the "
                        "internalPort; on one machine both cannot listen on 127.0.0.1, so give "
                        "them different ports (e.g. internalPort 8501, externalPort 30501)")
    if spec.parallelism != 1:
        raise SpecError(f"{where}: parallelismSpec.constant: services can only be run with a "
                        "constant parallelism of 1")


def inspect_pipeline(ctx: Context, name: str) -> PipelineInfo:
    info = ctx.store.get_pipeline(name)
    if info is None:
        raise NotFoundError(f"pipeline {name!r} not found; `pix2pix list pipeline` shows them")
    return _supervision(ctx, info)


def list_pipelines(ctx: Context, project: Optional[str] = None) -> list[PipelineInfo]:
    """Newest first (all projects', or one's)."""
    return [_supervision(ctx, p) for p in ctx.store.list_pipelines(project)]


def _supervision(ctx: Context, info: PipelineInfo) -> PipelineInfo:
    """A service's or spout's state as its supervisor left it, unless the supervisor is gone
    (killed, or the machine restarted): then it says so."""
    live = (ServiceState.STARTING, ServiceState.WAITING, ServiceState.RUNNING,
            ServiceState.SWAPPING, ServiceState.RESTARTING)
    if info.service_state not in {s.value for s in live}:
        return info
    rec = ctx.store.get_service(info.name)  # services.py owns it; this only reads its pid
    if rec is None or not procs.process_alive(rec.pid, rec.pid_start):
        info.service_state = ("stopped (its supervisor is gone; `pix2pix start pipeline "
                              f"{info.name}` starts it again)")
    return info


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
    spec = inspect_pipeline(ctx, name).parsed
    with ctx.store.tx():
        ctx.store.delete_pipeline(name, keep_repo=keep_repo)
        if not keep_repo:  # its cron inputs' tick repos go with it, as in pachd
            for c in cron_inputs(spec):
                ctx.store.delete_repo(c.repo)


def set_pipeline_running(ctx: Context, name: str, running: bool) -> PipelineInfo:
    """Stop a pipeline (its jobs wait, created, until it starts again) or start it."""
    inspect_pipeline(ctx, name)
    ctx.store.set_pipeline_state(name, "running" if running else "paused")
    return inspect_pipeline(ctx, name)


def pipeline_history(ctx: Context, name: str) -> list[PipelineInfo]:
    """Every version of a pipeline, newest first (pachd's inspect pipeline --history)."""
    inspect_pipeline(ctx, name)
    return ctx.store.pipeline_history(name)
