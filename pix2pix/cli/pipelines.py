"""pachctl's pipeline verbs on the embedded engine: create, update, list, inspect, delete, stop,
start, edit and draw pipeline.

    pix2pix create pipeline -f pipelines/checkpoint.json
    pix2pix stop pipeline generate_images          (its jobs wait until it starts again)
    pix2pix edit pipeline generate_images          (the spec in $EDITOR, then update)
    pix2pix draw pipeline
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click

from pix2pix.cli.common import (
    JobReport, ago, create_group, delete_group, draw_group, edit_group, emit, inspect_group,
    list_group, open_engine, output_option, project_option, qname, report_jobs, run_options,
    says_what_landed, split_qname, start_group, state_option, stop_group, strict_option, table,
    update_group,
)
from pix2pix.errors import SpecError, UsageError
from pix2pix.pachyderm.refs import DEFAULT_PROJECT


def _load_specs(files: tuple[str, ...], project: str | None) -> list[tuple[str, dict]]:
    """The specs in each file (or stdin), in the --project when they name none."""
    from pix2pix.pachyderm.specfile import load_spec_file, load_spec_text
    out = []
    for f in files:
        if f == "-":
            out += load_spec_text(sys.stdin.read(), source="<stdin>")
        else:
            out += load_spec_file(Path(f))
    if project:
        for _, spec in out:
            if isinstance(spec.get("pipeline"), dict):
                spec["pipeline"].setdefault("project", {"name": project})
    return out


def _versions(eng, specs: list[tuple[str, dict]]):
    """A ``read`` for :func:`says_what_landed`: each named pipeline's version (None: absent)."""
    names = [qname(None, _spec_name(spec)) for _, spec in specs]

    def read() -> dict:
        return {n: (p.version if (p := eng.store.get_pipeline(n)) else None) for n in names}
    return read


def _spec_name(spec: dict) -> str:
    p = spec.get("pipeline") if isinstance(spec, dict) else None
    name = str(p.get("name", "")) if isinstance(p, dict) else ""
    project = p.get("project", {}).get("name") if isinstance(p, dict) and \
        isinstance(p.get("project"), dict) else None
    return f"{project}/{name}" if project and project != DEFAULT_PROJECT else name


def _what_changed(before: dict, after: dict) -> str:
    changed = [f"{n} (version {v})" for n, v in after.items() if v != before.get(n)]
    return (f"pipeline(s) {', '.join(changed)} stored" if changed
            else "no pipeline was created or changed")


@create_group.command("pipeline")
@click.option("-f", "--file", "files", multiple=True, required=True,
              help="Spec file (JSON or YAML; several documents with ---, or a JSON array); "
                   "repeatable; - for stdin.")
@strict_option
@project_option
@run_options
@state_option
def create_pipeline_cmd(files: tuple[str, ...], strict: bool, project: str | None,
                        executor: str | None, no_run: bool | None, state_dir: Path | None) -> None:
    """Create pipelines; their first jobs run on the data already in their inputs."""
    jobs = JobReport()
    eng = open_engine(state_dir, executor=executor, no_run=no_run, jobs=jobs)
    specs = _load_specs(files, project)
    with says_what_landed(_versions(eng, specs), _what_changed):
        infos = eng.create_pipelines(specs)
    report_jobs(jobs, strict)
    for p in infos:
        click.echo(f"pipeline {p.name} (version {p.version}) created", err=True)


@update_group.command("pipeline")
@click.option("-f", "--file", "files", multiple=True, required=True, help="Spec file(s).")
@click.option("--reprocess", is_flag=True, help="Reprocess datums the previous version already "
                                                "processed.")
@strict_option
@project_option
@run_options
@state_option
def update_pipeline_cmd(files: tuple[str, ...], reprocess: bool, strict: bool,
                        project: str | None, executor: str | None, no_run: bool | None,
                        state_dir: Path | None) -> None:
    """Update pipelines (created if missing); unchanged datums are skipped unless --reprocess."""
    jobs = JobReport()
    eng = open_engine(state_dir, executor=executor, no_run=no_run, jobs=jobs)
    specs = _load_specs(files, project)
    with says_what_landed(_versions(eng, specs), _what_changed):
        infos = eng.create_pipelines(specs, update=True, reprocess=reprocess)
    report_jobs(jobs, strict)
    for p in infos:
        click.echo(f"pipeline {p.name} updated to version {p.version}", err=True)


def input_summary(inp: dict) -> str:
    if inp.get("pfs"):
        p = inp["pfs"]
        branch = p.get("branch") or "master"
        return f"{p['repo']}" + (f"@{branch}" if branch != "master" else "") + \
            f":{p.get('glob', '')}"
    if inp.get("cron"):
        return f"cron {inp['cron'].get('name', '')}: {inp['cron'].get('spec', '')}"
    for kind, sym in (("cross", " ⨯ "), ("union", " ∪ "), ("join", " ⋈ "), ("group", " ⊕ ")):
        if inp.get(kind):
            return "(" + sym.join(input_summary(c) for c in inp[kind]) + ")"
    return "-"


@list_group.command("pipeline")
@click.argument("name", required=False)
@click.option("--history", default="0", metavar="N|all",
              help="Also the N previous versions of each pipeline (all: every one).")
@click.option("-A", "--all-projects", is_flag=True, help="Pipelines of every project.")
@project_option
@output_option
@state_option
def list_pipeline_cmd(name: str | None, history: str, all_projects: bool, project: str | None, fmt: str,
                      state_dir: Path | None) -> None:
    """List pipelines: PROJECT NAME VERSION INPUT CREATED STATE / LAST JOB DESCRIPTION."""
    if history != "all" and not history.lstrip("-").isdigit():
        raise UsageError(f"--history {history!r}: expected a number or 'all'")
    keep = None if history in ("all", "-1") else 1 + int(history)
    eng = open_engine(state_dir)
    if name:
        current = [eng.inspect_pipeline(qname(project, name))]
    else:
        current = eng.list_pipelines(None if all_projects else project or DEFAULT_PROJECT)
    ps = []
    for p in current:
        ps += eng.pipeline_history(p.name)[:keep] if keep != 1 else [p]
    emit(fmt, ps, lambda: table(
        ["PROJECT", "NAME", "VERSION", "INPUT", "CREATED", "STATE / LAST JOB", "DESCRIPTION"],
        [[*split_qname(p.name), str(p.version), input_summary(p.spec.get("input") or {}),
          ago(p.created), _state_cell(p), p.description[:60]]
         for p in ps]))


def _state_cell(p) -> str:
    """STATE / LAST JOB, plus where a service serves (its URL and state)."""
    cell = f"{p.state} / {p.last_job_state or '-'}"
    if p.service_state:
        cell += f", service {p.service_state.split(' (')[0]} {p.service_url or ''}".rstrip()
    return cell


@inspect_group.command("pipeline")
@click.argument("name")
@project_option
@output_option
@state_option
def inspect_pipeline_cmd(name: str, project: str | None, fmt: str, state_dir: Path | None) -> None:
    """Show a pipeline and its spec."""
    p = open_engine(state_dir).inspect_pipeline(qname(project, name))

    def render() -> None:
        click.echo(f"Name: {p.name}\nVersion: {p.version}\nState: {p.state}\n"
                   f"Last job: {p.last_job_state or '-'}\nCreated: {ago(p.created)}\n"
                   f"Input: {input_summary(p.spec.get('input') or {})}")
        if p.service_state:
            served = ", ".join(f"{c.repo}@{c.commit}" for c in p.service_commits) or "-"
            click.echo(f"Service: {p.service_state}\nService URL: {p.service_url or '-'}\n"
                       f"Serving: {served}\nService job: {p.service_job or '-'}\n"
                       f"Service restarts: {p.service_restarts}"
                       + (f"\nService detail: {p.service_detail}" if p.service_detail else ""))
        click.echo("Spec:")
        click.echo(json.dumps(p.spec, indent=2))
    emit(fmt, p, render)


@delete_group.command("pipeline")
@click.argument("name", required=False)
@click.option("--all", "all_pipelines", is_flag=True, help="Delete every pipeline of the "
                                                            "project.")
@click.option("--keep-repo", is_flag=True, help="Keep the output repo (as a user repo).")
@click.option("-f", "--force", is_flag=True, help="Delete even if other pipelines read it.")
@project_option
@state_option
def delete_pipeline_cmd(name: str | None, all_pipelines: bool, keep_repo: bool, force: bool,
                        project: str | None, state_dir: Path | None) -> None:
    """Delete a pipeline, its jobs and its output repo."""
    if bool(name) == all_pipelines:
        raise UsageError("delete pipeline: name one pipeline, or use --all")
    from pix2pix.pachyderm import dag
    eng = open_engine(state_dir)
    if all_pipelines:
        graph = {p.name: p.parsed.input_repos
                 for p in eng.list_pipelines(project or DEFAULT_PROJECT)}
        names = list(reversed(dag.ordered(graph)))  # downstream first
    else:
        names = [qname(project, name)]
    for n in names:
        eng.delete_pipeline(n, keep_repo=keep_repo, force=force)
        click.echo(f"pipeline {n} deleted", err=True)


@stop_group.command("pipeline")
@click.argument("name")
@project_option
@state_option
def stop_pipeline_cmd(name: str, project: str | None, state_dir: Path | None) -> None:
    """Stop a pipeline: new input commits still make its jobs, which wait until it starts."""
    p = open_engine(state_dir).stop_pipeline(qname(project, name))
    click.echo(f"pipeline {p.name} is {p.state}", err=True)


@start_group.command("pipeline")
@click.argument("name")
@strict_option
@project_option
@run_options
@state_option
def start_pipeline_cmd(name: str, strict: bool, project: str | None, executor: str | None,
                       no_run: bool | None, state_dir: Path | None) -> None:
    """Start a stopped pipeline: the jobs that waited run."""
    jobs = JobReport()
    p = open_engine(state_dir, executor=executor, no_run=no_run, jobs=jobs).start_pipeline(
        qname(project, name))
    report_jobs(jobs, strict)
    click.echo(f"pipeline {p.name} is {p.state}", err=True)


@edit_group.command("pipeline")
@click.argument("name")
@click.option("--editor", default=None, help="The editor to run (default: $EDITOR, then vi).")
@click.option("--reprocess", is_flag=True, help="Reprocess datums already processed.")
@strict_option
@project_option
@run_options
@state_option
def edit_pipeline_cmd(name: str, editor: str | None, reprocess: bool, strict: bool,
                      project: str | None, executor: str | None, no_run: bool | None,
                      state_dir: Path | None) -> None:
    """Edit a pipeline's spec (JSON) in an editor; saving updates the pipeline. A spec that does
    not validate updates nothing, and your edit is kept in a file the error names."""
    from pix2pix.pachyderm.specfile import load_spec_text
    jobs = JobReport()
    eng = open_engine(state_dir, executor=executor, no_run=no_run, jobs=jobs)
    p = eng.inspect_pipeline(qname(project, name))
    before = json.dumps(p.spec, indent=2) + "\n"
    after = click.edit(before, editor=editor, extension=".json", require_save=True)
    if after is None or after.strip() == before.strip():
        click.echo(f"pipeline {p.name} unchanged; nothing updated", err=True)
        return
    try:
        specs = load_spec_text(after, source=f"edited spec of {p.name}")
        if len(specs) != 1 or specs[0][1].get("pipeline", {}).get("name") != split_qname(p.name)[1]:
            raise SpecError(f"edited spec of {p.name}: keep exactly one spec, and its "
                            "pipeline.name")
        info = eng.create_pipelines(specs, update=True, reprocess=reprocess)[0]
    except (SpecError, UsageError) as e:
        kept = _keep_edit(p.name, after)
        raise type(e)(f"{e} (nothing updated; your edit is kept in {kept})") from None
    report_jobs(jobs, strict)
    click.echo(f"pipeline {info.name} updated to version {info.version}", err=True)


def _keep_edit(name: str, text: str) -> Path:
    fd, path = tempfile.mkstemp(prefix=f"{name.replace('/', '.')}.", suffix=".json")
    with open(fd, "w") as f:
        f.write(text)
    return Path(path)


# -- draw pipeline ---------------------------------------------------------------------------------


def draw(readers: dict[str, list[str]], roots: list[str]) -> list[str]:
    """The DAG as an indented tree from each input repo down: a node read by several inputs
    is drawn in full once and later as ``name (see above)``."""
    lines: list[str] = []
    drawn: set[str] = set()

    def walk(node: str, prefix: str, last: bool, top: bool) -> None:
        label = node + (" (see above)" if node in drawn else "")
        lines.append(label if top else prefix + ("└─▶ " if last else "├─▶ ") + label)
        if node in drawn:
            return
        drawn.add(node)
        kids = readers.get(node, [])
        child_prefix = "" if top else prefix + ("    " if last else "│   ")
        for i, k in enumerate(kids):
            walk(k, child_prefix, i == len(kids) - 1, False)

    for r in roots:
        walk(r, "", True, True)
    return lines


@draw_group.command("pipeline")
@click.option("-A", "--all-projects", is_flag=True, help="Pipelines of every project.")
@project_option
@output_option
@state_option
def draw_pipeline_cmd(all_projects: bool, project: str | None, fmt: str,
                      state_dir: Path | None) -> None:
    """Draw the DAG: each input repo, and under it the pipelines that read it, recursively."""
    eng = open_engine(state_dir)
    ps = eng.list_pipelines(None if all_projects else project or DEFAULT_PROJECT)
    readers: dict[str, list[str]] = {}
    for p in sorted(ps, key=lambda p: p.name):
        for repo in p.parsed.input_repos:
            readers.setdefault(repo, []).append(p.name)
    names = {p.name for p in ps}
    roots = sorted(r for r in readers if r not in names)
    edges = [{"from": r, "to": k} for r, ks in sorted(readers.items()) for k in ks]
    emit(fmt, {"pipelines": sorted(names), "inputs": roots, "edges": edges},
         lambda: click.echo("\n".join(draw(readers, roots)) if roots else "no pipelines"))
