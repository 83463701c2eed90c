"""pachctl's job, datum and log verbs on the embedded engine, with `run` (what --no-run queued)
and `provenance` (the chain behind a file).

    pix2pix list job                              (job sets; -p PIPELINE for one's jobs)
    pix2pix inspect job checkpoint@5f1e...
    pix2pix list datum -f pipelines/generate_images.json      (a dry run: the datums it would have)
    pix2pix logs -p checkpoint -f
    pix2pix provenance generate_images@master:/a.png
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click

from pix2pix.cli import cli
from pix2pix.cli.common import (
    JobReport, ago, delete_group, duration, emit, inspect_group, list_group, open_engine,
    output_option, project_option, qname, ref_arg, report_jobs, restart_group, run_options,
    state_option, stop_group, strict_option, table, wait_group, dump,
)
from pix2pix.errors import UsageError

FOLLOW_POLL_S = 0.5


def job_ref(project: str | None, text: str) -> tuple[str, str]:
    """``PIPELINE@JOB_ID`` (the pipeline qualified by --project)."""
    name, at, jid = text.partition("@")
    if not at or not name or not jid:
        raise UsageError(f"{text!r}: expected PIPELINE@JOB_ID")
    return qname(project, name), jid


def progress(j) -> str:
    s = f"{j.processed} + {j.skipped} / {j.total}"
    extra = [f"{j.failed} failed"] * bool(j.failed) + [f"{j.recovered} recovered"] * bool(j.recovered)
    return s + (f" ({', '.join(extra)})" if extra else "")


JOB_HEADERS = ["PIPELINE", "ID", "STARTED", "DURATION", "PROGRESS", "STATE", "REASON"]


def job_rows(jobs) -> list[list[str]]:
    return [[j.pipeline, j.id, ago(j.started), duration(j.started, j.finished), progress(j),
             j.state, j.reason[:80]] for j in jobs]


@list_group.command("job")
@click.option("-p", "--pipeline", default=None, help="Only this pipeline's jobs.")
@click.option("-x", "--expand", is_flag=True, help="One line per job instead of per job set.")
@click.option("-n", "--number", "limit", type=int, default=None, help="At most this many.")
@project_option
@output_option
@state_option
def list_job_cmd(pipeline: str | None, expand: bool, limit: int | None, project: str | None,
                 fmt: str, state_dir: Path | None) -> None:
    """List jobs, newest first: job sets (one per commit set: ID SUBJOBS PROGRESS CREATED), or
    with -p or -x one line per job (PIPELINE ID STARTED DURATION PROGRESS STATE REASON)."""
    eng = open_engine(state_dir)
    jobs = eng.list_jobs(qname(project, pipeline) if pipeline else None)
    if pipeline or expand:
        jobs = jobs[:limit or None]
        return emit(fmt, jobs, lambda: table(JOB_HEADERS, job_rows(jobs)))
    sets: dict[str, list] = {}
    for j in jobs:
        sets.setdefault(j.id, []).append(j)
    items = list(sets.items())[:limit or None]
    data = [{"id": jid, "jobs": js} for jid, js in items]
    rows = []
    for jid, js in items:
        ok = sum(j.state == "success" for j in js)
        bad = sum(j.state.done and j.state != "success" for j in js)
        created = [j.created or j.started for j in js if (j.created or j.started)]
        rows.append([jid, str(len(js)), f"{ok} done, {bad} failed, {len(js) - ok - bad} waiting",
                     ago(min(created)) if created else "-", ago(max(created)) if created else "-"])
    emit(fmt, data, lambda: table(["ID", "SUBJOBS", "PROGRESS", "CREATED", "MODIFIED"], rows))


def print_job(eng, j) -> None:
    click.echo(f"ID: {j.id}\nPipeline: {j.pipeline} (version {j.spec_version})\nState: {j.state}\n"
               f"Started: {ago(j.started)}\nDuration: {duration(j.started, j.finished)}\n"
               f"Datums: {j.processed} processed, {j.skipped} skipped, {j.failed} failed, "
               f"{j.recovered} recovered, {j.total} total\nOutput commit: "
               f"{(j.pipeline + '@' + j.output_commit) if j.output_commit else '<none>'}\n"
               f"Inputs: " + ", ".join(f"{p.repo}@{p.commit}" for p in j.inputs))
    if j.reason:
        click.echo(f"Reason: {j.reason}")
    if j.failed_datum:
        d = eng.inspect_datum(j.pipeline, j.id, j.failed_datum)
        click.echo(f"Failed datum: {d.id}\n  Inputs: {', '.join(d.input_paths)}\n"
                   f"  Tries: {d.tries}\n  Log (tail):")
        for line in d.log.splitlines()[-20:]:
            click.echo(f"    {line}")


@inspect_group.command("job")
@click.argument("job", metavar="PIPELINE@ID")
@project_option
@output_option
@state_option
def inspect_job_cmd(job: str, project: str | None, fmt: str, state_dir: Path | None) -> None:
    """Show a job: state, datum counts, output commit, the failing datum and why."""
    eng = open_engine(state_dir)
    j = eng.inspect_job(*job_ref(project, job))
    emit(fmt, j, lambda: print_job(eng, j))


@wait_group.command("job")
@click.argument("job", metavar="PIPELINE@ID")
@strict_option
@project_option
@output_option
@state_option
def wait_job_cmd(job: str, strict: bool, project: str | None, fmt: str,
                 state_dir: Path | None) -> None:
    """Wait until a job has ended (running it if it is queued here), then show it."""
    from pix2pix.errors import JobError
    eng = open_engine(state_dir)
    name, jid = job_ref(project, job)
    j = eng.inspect_job(name, jid)
    while not j.state.done:
        eng.run_pending()
        j = eng.inspect_job(name, j.id)
        if not j.state.done:
            time.sleep(FOLLOW_POLL_S)
    emit(fmt, j, lambda: print_job(eng, j))
    if j.state != "success":
        if strict:
            raise JobError(f"job {j.pipeline}@{j.id} ended {j.state}: {j.reason}")
        click.echo(f"warning: job {j.pipeline}@{j.id} ended {j.state}: {j.reason}", err=True)


@stop_group.command("job")
@click.argument("job", metavar="PIPELINE@ID")
@project_option
@state_option
def stop_job_cmd(job: str, project: str | None, state_dir: Path | None) -> None:
    """Stop a job for good: its output commit finishes with the reason, the jobs downstream of
    it are unrunnable."""
    j = open_engine(state_dir).stop_job(*job_ref(project, job))
    click.echo(f"job {j.pipeline}@{j.id} is {j.state}", err=True)


@delete_group.command("job")
@click.argument("job", metavar="PIPELINE@ID")
@project_option
@state_option
def delete_job_cmd(job: str, project: str | None, state_dir: Path | None) -> None:
    """Delete a job's record (stopping it first); its output commit stays."""
    name, jid = job_ref(project, job)
    eng = open_engine(state_dir)
    j = eng.inspect_job(name, jid)
    eng.delete_job(name, j.id)
    click.echo(f"job {name}@{j.id} deleted", err=True)


def datum_data(d) -> dict:
    return dataclasses.asdict(d) | {"input_paths": d.input_paths}


@list_group.command("datum")
@click.argument("job", metavar="PIPELINE@ID", required=False)
@click.option("-f", "--file", "spec_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="A pipeline spec: list the datums its input would have now "
                                 "(a dry run; nothing runs).")
@project_option
@output_option
@state_option
def list_datum_cmd(job: str | None, spec_file: Path | None, project: str | None, fmt: str,
                   state_dir: Path | None) -> None:
    """List a job's datums (ID FILES STATUS TIME), or with -f a spec's, as they would be."""
    if bool(job) == bool(spec_file):
        raise UsageError("list datum: give PIPELINE@JOB_ID, or -f SPEC for a dry run")
    eng = open_engine(state_dir)
    if spec_file:
        from pix2pix.pachyderm.specfile import load_spec_file
        specs = load_spec_file(spec_file)
        if len(specs) != 1:
            raise UsageError(f"{spec_file}: a dry run takes one spec, it has {len(specs)}")
        ds = eng.dry_run_datums(specs[0][1].get("input") or {})
    else:
        ds = eng.list_datums(*job_ref(project, job))
    emit(fmt, [datum_data(d) for d in ds], lambda: table(
        ["ID", "FILES", "STATUS", "TIME"],
        [[d.id, ", ".join(d.input_paths[:3]) + (" ..." if len(d.input_paths) > 3 else ""),
          d.state, duration(d.started, d.finished) if d.started else "-"] for d in ds]))


@inspect_group.command("datum")
@click.argument("job", metavar="PIPELINE@ID")
@click.argument("datum_id", metavar="DATUM")
@project_option
@output_option
@state_option
def inspect_datum_cmd(job: str, datum_id: str, project: str | None, fmt: str,
                      state_dir: Path | None) -> None:
    """Show one datum: inputs, outputs, tries, log."""
    d = open_engine(state_dir).inspect_datum(*job_ref(project, job), datum_id)

    def render() -> None:
        click.echo(f"ID: {d.id}\nJob: {d.pipeline}@{d.job_id}\nState: {d.state}\n"
                   f"Tries: {d.tries}\nInputs: {', '.join(d.input_paths)}\n"
                   f"Outputs: {', '.join(d.outputs) or '-'}")
        if d.reason:
            click.echo(f"Reason: {d.reason}")
        click.echo("Log:\n" + d.log)
    emit(fmt, datum_data(d), render)


@restart_group.command("datum")
@click.argument("job", metavar="PIPELINE@ID")
@click.argument("paths", metavar="DATUM_PATH[,DATUM_PATH...]")
@project_option
@state_option
def restart_datum_cmd(job: str, paths: str, project: str | None, state_dir: Path | None) -> None:
    """Restart the datums of a running job whose input paths are given (pachd's RestartDatum)."""
    name, jid = job_ref(project, job)
    open_engine(state_dir).restart_datum(name, jid, [p for p in paths.split(",") if p])


@cli.command("logs")
@click.option("-p", "--pipeline", required=True, help="Pipeline name.")
@click.option("-j", "--job", "job_id", default=None,
              help="Job ID or PIPELINE@ID (default: the latest job).")
@click.option("--datum", "datum_id", default=None, help="Only this datum's lines.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines: until the job ends "
                                                   "with --job, else until Ctrl-C.")
@click.option("--master", is_flag=True, help="Only what the engine wrote about the job (pachd's "
                                             "master logs).")
@project_option
@output_option
@state_option
def logs_cmd(pipeline: str, job_id: str | None, datum_id: str | None, follow: bool, master: bool,
             project: str | None, fmt: str, state_dir: Path | None) -> None:
    """Print what a pipeline's code wrote (stdout and stderr), per datum, then what the engine
    wrote about the job."""
    from pix2pix.pachyderm import queries
    eng = open_engine(state_dir)
    name = qname(project, pipeline)
    if job_id and "@" in job_id:
        name, job_id = job_ref(project, job_id)
    if job_id:
        job_id = eng.inspect_job(name, job_id).id
    printed: dict[tuple, int] = {}

    def show(lines) -> None:
        counts: dict[tuple, int] = {}
        for line, _ in lines:
            key = (line.job_id, line.datum_id)
            counts[key] = counts.get(key, 0) + 1
            if counts[key] > printed.get(key, 0):
                printed[key] = counts[key]
                if fmt == "table":
                    click.echo(line.message)
                else:
                    dump(line, fmt)

    def read(jid):
        return queries.log_lines(eng, name, jid, datum_id, engine_only=master)
    show(read(job_id))
    while follow:
        if job_id and eng.inspect_job(name, job_id).state.done:
            show(read(job_id))
            return
        time.sleep(FOLLOW_POLL_S)
        show(read(job_id))


@cli.group("run", invoke_without_command=True)
@click.option("--executor", type=click.Choice(["process", "container"]),
              envvar="PIX2PIX_EXECUTOR", default=None, help="process (default) or container.")
@state_option
@click.pass_context
def run_group(ctx: click.Context, executor: str | None, state_dir: Path | None) -> None:
    """Run the jobs queued by --no-run / PIX2PIX_DEFER=1 (or left by a killed command); exits 7
    if one of them failed (running jobs is all this command does). `run cron` ticks now."""
    if ctx.invoked_subcommand is not None:
        return
    jobs = JobReport()
    ran = open_engine(state_dir, executor=executor, jobs=jobs).run_pending()
    if not ran:
        click.echo("nothing to run", err=True)
    jobs.check()


@run_group.command("cron")
@click.argument("name", metavar="PIPELINE")
@strict_option
@project_option
@run_options
@state_option
def run_cron_cmd(name: str, strict: bool, project: str | None, executor: str | None,
                 no_run: bool | None, state_dir: Path | None) -> None:
    """Tick each of a pipeline's cron inputs now (pachd's RunCron), and run the job."""
    jobs = JobReport()
    ticks = open_engine(state_dir, executor=executor, no_run=no_run, jobs=jobs).run_cron(
        qname(project, name))
    report_jobs(jobs, strict)
    click.echo(f"{len(ticks)} cron tick(s) made: {', '.join(sorted(set(ticks)))}", err=True)


@cli.command("provenance")
@click.argument("source", metavar="REPO@REF:/path")
@project_option
@output_option
@state_option
def provenance_cmd(source: str, project: str | None, fmt: str, state_dir: Path | None) -> None:
    """Show the chain behind a file: datum, input files and commits, up to user commits."""
    from pix2pix.pachyderm.provenance import render
    ref = ref_arg(project, source)
    node = open_engine(state_dir).provenance(ref.repo, ref.ref, ref.path or "/")
    emit(fmt, node, lambda: click.echo(render(node)))
