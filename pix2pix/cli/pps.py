"""pachctl's PPS verbs on the embedded engine: pipelines, jobs, datums, logs, and the
provenance of a file.

    pix2pix create pipeline -f pipelines/checkpoint.json
    pix2pix list job -p checkpoint
    pix2pix logs -p checkpoint
    pix2pix provenance generate_images@master:/a.png
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from pix2pix.cli import cli
from pix2pix.cli.common import (
    JobReport, ago, wants_json, duration, dump, open_engine, output_option, run_options,
    state_option, table, create_group, delete_group, inspect_group, list_group, update_group,
)
from pix2pix.errors import UsageError
from pix2pix.pachyderm.refs import parse_ref

# -- pipelines -------------------------------------------------------------------------------------

def _load_specs(files: tuple[str, ...]) -> list[tuple[str, dict]]:
    from pix2pix.pachyderm.specfile import load_spec_file, load_spec_text
    out = []
    for f in files:
        if f == "-":
            out += load_spec_text(sys.stdin.read(), source="<stdin>")
        else:
            out += load_spec_file(Path(f))
    return out


@create_group.command("pipeline")
@click.option("-f", "--file", "files", multiple=True, required=True,
              help="Spec file (JSON or YAML; several documents with ---, or a JSON array); "
                   "repeatable; - for stdin.")
@run_options
@state_option
def create_pipeline_cmd(files: tuple[str, ...], executor: str | None, no_run: bool | None,
                        state_dir: Path | None) -> None:
    """Create pipelines and run them on the data already in their inputs."""
    jobs = JobReport()
    infos = open_engine(state_dir, executor=executor, no_run=no_run, jobs=jobs).create_pipelines(
        _load_specs(files))
    for p in infos:
        click.echo(f"pipeline {p.name} (version {p.version}) created", err=True)
    jobs.check()


@update_group.command("pipeline")
@click.option("-f", "--file", "files", multiple=True, required=True, help="Spec file(s).")
@click.option("--reprocess", is_flag=True, help="Reprocess datums the previous version already "
                                                "processed.")
@run_options
@state_option
def update_pipeline_cmd(files: tuple[str, ...], reprocess: bool, executor: str | None,
                        no_run: bool | None, state_dir: Path | None) -> None:
    """Update pipelines (created if missing); unchanged datums are skipped unless --reprocess."""
    jobs = JobReport()
    infos = open_engine(state_dir, executor=executor, no_run=no_run, jobs=jobs).create_pipelines(
        _load_specs(files), update=True, reprocess=reprocess)
    for p in infos:
        click.echo(f"pipeline {p.name} updated to version {p.version}", err=True)
    jobs.check()


def _input_summary(inp: dict) -> str:
    if inp.get("pfs"):
        p = inp["pfs"]
        return f"{p['repo']}:{p.get('glob', '')}"
    for kind, sym in (("cross", " ⨯ "), ("union", " ∪ "), ("join", " ⋈ "), ("group", " ⊕ ")):
        if inp.get(kind):
            return "(" + sym.join(_input_summary(c) for c in inp[kind]) + ")"
    return "?"


@list_group.command("pipeline")
@output_option
@state_option
def list_pipeline_cmd(output: str, as_json: bool, state_dir: Path | None) -> None:
    """List pipelines: NAME VERSION INPUT CREATED STATE / LAST JOB DESCRIPTION."""
    ps = open_engine(state_dir).list_pipelines()
    if wants_json(output, as_json):
        return dump(ps)
    table(["NAME", "VERSION", "INPUT", "CREATED", "STATE / LAST JOB", "DESCRIPTION"],
           [[p.name, str(p.version), _input_summary(p.spec.get("input") or {}), ago(p.created),
             f"{p.state} / {p.last_job_state or '-'}", p.description[:60]] for p in ps])


@inspect_group.command("pipeline")
@click.argument("name")
@output_option
@state_option
def inspect_pipeline_cmd(name: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """Show a pipeline and its spec."""
    p = open_engine(state_dir).inspect_pipeline(name)
    if wants_json(output, as_json):
        return dump(p)
    click.echo(f"Name: {p.name}\nVersion: {p.version}\nState: {p.state}\n"
               f"Last job: {p.last_job_state or '-'}\nCreated: {ago(p.created)}\n"
               f"Input: {_input_summary(p.spec.get('input') or {})}\nSpec:")
    click.echo(json.dumps(p.spec, indent=2))


@delete_group.command("pipeline")
@click.argument("name")
@click.option("--keep-repo", is_flag=True, help="Keep the output repo (as a user repo).")
@click.option("-f", "--force", is_flag=True, help="Delete even if other pipelines read it.")
@state_option
def delete_pipeline_cmd(name: str, keep_repo: bool, force: bool, state_dir: Path | None) -> None:
    """Delete a pipeline, its jobs and its output repo."""
    open_engine(state_dir).delete_pipeline(name, keep_repo=keep_repo, force=force)


# -- jobs, datums, logs ----------------------------------------------------------------------------

def _job_ref(text: str) -> tuple[str, str]:
    name, at, jid = text.partition("@")
    if not at or not name or not jid:
        raise UsageError(f"{text!r}: expected PIPELINE@JOB_ID")
    return name, jid


def _progress(j) -> str:
    s = f"{j.processed} + {j.skipped} / {j.total}"
    extra = [f"{j.failed} failed"] * bool(j.failed) + [f"{j.recovered} recovered"] * bool(j.recovered)
    return s + (f" ({', '.join(extra)})" if extra else "")


@list_group.command("job")
@click.option("-p", "--pipeline", default=None, help="Only this pipeline's jobs.")
@output_option
@state_option
def list_job_cmd(pipeline: str | None, output: str, as_json: bool, state_dir: Path | None) -> None:
    """List jobs, newest first: PIPELINE ID STARTED DURATION PROGRESS STATE."""
    jobs = open_engine(state_dir).list_jobs(pipeline)
    if wants_json(output, as_json):
        return dump(jobs)
    table(["PIPELINE", "ID", "STARTED", "DURATION", "PROGRESS", "STATE", "REASON"],
           [[j.pipeline, j.id, ago(j.started), duration(j.started, j.finished), _progress(j),
             j.state, j.reason[:80]] for j in jobs])


@inspect_group.command("job")
@click.argument("job", metavar="PIPELINE@ID")
@output_option
@state_option
def inspect_job_cmd(job: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """Show a job: state, datum counts, output commit, the failing datum and why."""
    name, jid = _job_ref(job)
    eng = open_engine(state_dir)
    j = eng.inspect_job(name, jid)
    if wants_json(output, as_json):
        return dump(j)
    click.echo(f"ID: {j.id}\nPipeline: {j.pipeline} (version {j.spec_version})\nState: {j.state}\n"
               f"Started: {ago(j.started)}\nDuration: {duration(j.started, j.finished)}\n"
               f"Datums: {j.processed} processed, {j.skipped} skipped, {j.failed} failed, "
               f"{j.total} total\nOutput commit: "
               f"{(j.pipeline + '@' + j.output_commit) if j.output_commit else '<none>'}\n"
               f"Inputs: " + ", ".join(f"{p.repo}@{p.commit}" for p in j.inputs))
    if j.reason:
        click.echo(f"Reason: {j.reason}")
    if j.failed_datum:
        d = eng.inspect_datum(name, j.id, j.failed_datum)
        click.echo(f"Failed datum: {d.id}\n  Inputs: {', '.join(d.input_paths)}\n"
                   f"  Tries: {d.tries}\n  Log (tail):")
        for line in d.log.splitlines()[-20:]:
            click.echo(f"    {line}")


@list_group.command("datum")
@click.argument("job", metavar="PIPELINE@ID")
@output_option
@state_option
def list_datum_cmd(job: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """List a job's datums: ID FILES STATUS TIME."""
    name, jid = _job_ref(job)
    ds = open_engine(state_dir).list_datums(name, jid)
    if wants_json(output, as_json):
        return dump([dataclasses.asdict(d) | {"input_paths": d.input_paths} for d in ds])
    table(["ID", "FILES", "STATUS", "TIME"],
           [[d.id, ", ".join(d.input_paths[:3]) + (" ..." if len(d.input_paths) > 3 else ""),
             d.state, duration(d.started, d.finished) if d.started else "-"] for d in ds])


@inspect_group.command("datum")
@click.argument("job", metavar="PIPELINE@ID")
@click.argument("datum_id", metavar="DATUM")
@output_option
@state_option
def inspect_datum_cmd(job: str, datum_id: str, output: str, as_json: bool,
                      state_dir: Path | None) -> None:
    """Show one datum: inputs, outputs, tries, log."""
    name, jid = _job_ref(job)
    d = open_engine(state_dir).inspect_datum(name, jid, datum_id)
    if wants_json(output, as_json):
        return dump(dataclasses.asdict(d) | {"input_paths": d.input_paths})
    click.echo(f"ID: {d.id}\nJob: {d.pipeline}@{d.job_id}\nState: {d.state}\nTries: {d.tries}\n"
               f"Inputs: {', '.join(d.input_paths)}\nOutputs: {', '.join(d.outputs) or '-'}")
    if d.reason:
        click.echo(f"Reason: {d.reason}")
    click.echo("Log:\n" + d.log)


@cli.command("logs")
@click.option("-p", "--pipeline", required=True, help="Pipeline name.")
@click.option("--job", "job_id", default=None, help="Job ID (default: the latest job).")
@click.option("--datum", "datum_id", default=None, help="Only this datum's lines.")
@output_option
@state_option
def logs_cmd(pipeline: str, job_id: str | None, datum_id: str | None, output: str, as_json: bool,
             state_dir: Path | None) -> None:
    """Print what a pipeline's code wrote (stdout and stderr), per datum."""
    lines = open_engine(state_dir).logs(pipeline, job_id=job_id, datum_id=datum_id)
    if wants_json(output, as_json):
        return dump(lines)
    for line in lines:
        click.echo(line.message)


@cli.command("run")
@click.option("--executor", type=click.Choice(["process", "container"]),
              envvar="PIX2PIX_EXECUTOR", default=None, help="process (default) or container.")
@state_option
def run_cmd(executor: str | None, state_dir: Path | None) -> None:
    """Run the jobs queued by --no-run / PIX2PIX_DEFER=1 (or left by a killed command)."""
    jobs = JobReport()
    ran = open_engine(state_dir, executor=executor, jobs=jobs).run_pending()
    if not ran:
        click.echo("nothing to run", err=True)
    jobs.check()


@cli.command("provenance")
@click.argument("source", metavar="REPO@REF:/path")
@output_option
@state_option
def provenance_cmd(source: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """Show the chain behind a file: datum, input files and commits, up to user commits."""
    from pix2pix.pachyderm.provenance import render
    ref = parse_ref(source)
    node = open_engine(state_dir).provenance(ref.repo, ref.ref, ref.path or "/")
    if wants_json(output, as_json):
        return dump(node)
    click.echo(render(node))
