"""pachctl's commit verbs on the embedded engine: start, finish, list, inspect, wait, subscribe,
squash and delete commit, and commit sets (one global ID across repos).

    pix2pix start commit images@master           (prints the new commit's ID)
    pix2pix put file images@master:/a.png -f a.png
    pix2pix finish commit images@master          (now the pipelines reading it run)
    pix2pix list commit                          (commit sets; `list commit images` one repo's)
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from pix2pix.cli.common import (
    JobReport, ago, delete_group, emit, finish_group, human_size, inspect_group, list_group,
    open_engine, output_option, plain, project_option, ref_arg, report_jobs, run_options,
    split_qname,
    squash_group, start_group, state_option, strict_option, subscribe_group, table, wait_group,
)
from pix2pix.errors import JobError, UsageError
from pix2pix.pachyderm.refs import COMMIT_ID

COMMIT_HEADERS = ["PROJECT", "REPO", "BRANCH", "COMMIT", "FINISHED", "SIZE", "ORIGIN",
                  "DESCRIPTION"]
SUBSCRIBE_POLL_S = 0.25


def commit_rows(commits) -> list[list[str]]:
    """pachctl's commit table; an open commit's FINISHED is ``-``, an errored one says so."""
    return [[*split_qname(c.repo), c.branch, c.id, ago(c.finished) if c.finished else "-",
             human_size(c.size), c.origin,
             (f"ERROR: {c.error}" + (f" ({c.description})" if c.description else "")) if c.error
             else c.description] for c in commits]


def warn_errors(commits) -> int:
    """One stderr line per commit finished with an error (a failed or unrunnable job's output):
    the reader of a table must not take it for data. Returns how many."""
    bad = [c for c in commits if c.error]
    for c in bad:
        click.echo(f"warning: commit {c.repo}@{c.id} finished with an error: {c.error}", err=True)
    return len(bad)


def _commit_set_rows(eng, ids: list[str]) -> tuple[list[dict], list[list[str]]]:
    data, rows = [], []
    for cid in ids:
        cs = eng.inspect_commit_set(cid)
        ok = sum(1 for c in cs if c.finished and not c.error)
        bad = sum(1 for c in cs if c.finished and c.error)
        started = [c.started for c in cs]
        data.append({"id": cid, "commits": cs})
        rows.append([cid, str(len(cs)), f"{ok} done, {bad} failed, {len(cs) - ok - bad} open",
                     ago(min(started)), ago(max(started))])
    return data, rows


@list_group.command("commit")
@click.argument("source", metavar="[REPO[@BRANCH] | COMMIT_SET_ID]", required=False)
@click.option("-n", "--number", "limit", type=int, default=None, help="At most this many.")
@click.option("-x", "--expand", is_flag=True, help="With no repo: one line per commit instead "
                                                     "of per commit set.")
@click.option("--origin", type=click.Choice(["USER", "AUTO"], case_sensitive=False), default=None,
              help="Only commits of this origin.")
@click.option("--all", "all_origins", is_flag=True, help="Commits of every origin (the default "
                                                          "here: USER and AUTO).")
@project_option
@output_option
@state_option
def list_commit_cmd(source: str | None, limit: int | None, expand: bool, origin: str | None,
                    all_origins: bool, project: str | None, fmt: str,
                    state_dir: Path | None) -> None:
    """List commits, newest first: with no argument the commit sets (one global ID each), with
    a commit set's ID its commits, with REPO that repo's, with REPO@BRANCH that branch's
    ancestry."""
    eng = open_engine(state_dir)
    origin = origin.upper() if origin else None
    if source is None and not expand:
        data, rows = _commit_set_rows(eng, eng.list_commit_sets(limit))
        return emit(fmt, data, lambda: table(
            ["ID", "SUBCOMMITS", "PROGRESS", "CREATED", "MODIFIED"], rows))
    if source is None:
        commits = eng.list_commits(None, limit=limit, project=project, origin=origin)
    elif COMMIT_ID.match(source):
        commits = eng.inspect_commit_set(source)[:limit or None]
    else:
        ref = ref_arg(project, source, allow_path=False, what="repo[@branch]")
        commits = eng.list_commits(ref.repo, branch=ref.ref, limit=limit, origin=origin)
    emit(fmt, commits, lambda: table(COMMIT_HEADERS, commit_rows(commits)))
    if fmt == "table":
        warn_errors(commits)


def print_commit(c) -> None:
    click.echo(f"Commit: {c.repo}@{c.id}\nOriginal Branch: {c.branch}\nOrigin: {c.origin}\n"
               f"Parent: {c.parent or '<none>'}\nStarted: {ago(c.started)}\n"
               f"Finished: {ago(c.finished) if c.finished else '<open>'}\n"
               f"Size: {human_size(c.size)}")
    if c.description:
        click.echo(f"Description: {c.description}")
    if c.error:
        click.echo(f"Error: {c.error}")
    if c.provenance:
        click.echo("Provenance: " + ", ".join(f"{p.repo}@{p.commit} (branch {p.branch})"
                                            for p in c.provenance))


@inspect_group.command("commit")
@click.argument("source", metavar="REPO@REF")
@project_option
@output_option
@state_option
def inspect_commit_cmd(source: str, project: str | None, fmt: str, state_dir: Path | None) -> None:
    """Show a commit: origin, parent, times, size, error, provenance."""
    ref = ref_arg(project, source, allow_path=False, what="repo@ref")
    c = open_engine(state_dir).inspect_commit(ref.repo, ref.ref)
    emit(fmt, c, lambda: print_commit(c))


@start_group.command("commit")
@click.argument("target", metavar="REPO@BRANCH")
@click.option("-p", "--parent", default=None, help="The new commit's parent (default: the "
                                                    "branch head).")
@click.option("-d", "--description", "-m", "--message", "description", default="",
              help="Commit description.")
@project_option
@state_option
def start_commit_cmd(target: str, parent: str | None, description: str, project: str | None,
                     state_dir: Path | None) -> None:
    """Start a commit on a branch; prints its ID. `put file` and `delete file` on the branch
    then write into it, its files are readable at once, and nothing downstream runs until
    `finish commit`."""
    ref = ref_arg(project, target, allow_path=False, what="repo@branch")
    eng = open_engine(state_dir)
    cid = eng.start_commit(ref.repo, ref.ref or "master", parent=parent, description=description,
                           owned=False)
    click.echo(cid)


@finish_group.command("commit")
@click.argument("target", metavar="REPO@BRANCH_OR_COMMIT")
@click.option("-d", "--description", "-m", "--message", "description", default=None,
              help="Replace the commit's description.")
@strict_option
@project_option
@run_options
@state_option
def finish_commit_cmd(target: str, description: str | None, strict: bool, project: str | None,
                      executor: str | None, no_run: bool | None, state_dir: Path | None) -> None:
    """Finish an open commit: its files land, and the pipelines reading it run."""
    ref = ref_arg(project, target, allow_path=False, what="repo@branch-or-commit")
    jobs = JobReport()
    eng = open_engine(state_dir, executor=executor, no_run=no_run, jobs=jobs)
    c = eng.finish_commit(ref.repo, eng.resolve(ref.repo, ref.ref), description=description)
    report_jobs(jobs, strict)
    click.echo(f"commit {c.repo}@{c.id} finished ({human_size(c.size)})", err=True)


@wait_group.command("commit")
@click.argument("source", metavar="REPO@REF")
@click.option("--timeout", "timeout_s", type=float, default=None,
              help="Give up after this many seconds (exit 6) if the commit is still open.")
@strict_option
@project_option
@output_option
@run_options
@state_option
def wait_commit_cmd(source: str, timeout_s: float | None, strict: bool, project: str | None,
                    fmt: str, executor: str | None, no_run: bool | None,
                    state_dir: Path | None) -> None:
    """Wait until the commit is finished (an open one by another command, or the output of a
    job still to run), then show its commit set. A commit finished with an error (a failed or
    unrunnable job) is shown with it, and warned about on stderr; --strict exits 7 then."""
    ref = ref_arg(project, source, allow_path=False, what="repo@ref")
    jobs = JobReport()
    eng = open_engine(state_dir, executor=executor, jobs=jobs)
    c = eng.wait_commit(ref.repo, ref.ref, timeout_s=timeout_s)
    commits = eng.inspect_commit_set(c.id)
    emit(fmt, commits, lambda: table(COMMIT_HEADERS, commit_rows(commits)))
    report_jobs(jobs, strict)
    bad = warn_errors(commits)
    if strict and bad:
        raise JobError(f"{bad} commit(s) of commit set {c.id} finished with an error")


@subscribe_group.command("commit")
@click.argument("source", metavar="REPO[@BRANCH]")
@click.option("--new", "only_new", is_flag=True, help="Only commits finished from now on.")
@click.option("--from", "from_id", default=None, help="Only commits after this one.")
@project_option
@output_option
@state_option
def subscribe_commit_cmd(source: str, only_new: bool, from_id: str | None, project: str | None,
                         fmt: str, state_dir: Path | None) -> None:
    """Print the branch's commits as they finish (first the existing ones, oldest first, unless
    --new), until Ctrl-C."""
    if only_new and from_id:
        raise UsageError("--new and --from cannot be used together")
    ref = ref_arg(project, source, allow_path=False, what="repo[@branch]")
    eng = open_engine(state_dir)
    seen: set[str] = set()
    existing = eng.list_commits(ref.repo, branch=ref.ref)
    if only_new:
        seen = {c.id for c in existing}
    elif from_id:
        ids = [c.id for c in existing]
        if from_id not in ids:
            raise UsageError(f"--from {from_id}: not a commit of {ref}")
        seen = set(ids[ids.index(from_id):])
    first = True
    while True:
        fresh = [c for c in reversed(eng.list_commits(ref.repo, branch=ref.ref))
                 if c.finished and c.id not in seen]
        for c in fresh:
            seen.add(c.id)
            if fmt == "table":
                rows = commit_rows([c])
                if first:
                    click.echo("   ".join(COMMIT_HEADERS))
                    first = False
                click.echo("   ".join(rows[0]))
            else:
                click.echo(json.dumps(plain(c), sort_keys=True))
        time.sleep(SUBSCRIBE_POLL_S)


def _commit_set_id(eng, project: str | None, text: str) -> str:
    """A commit set's ID, given as the ID or as repo@ref (that commit's set)."""
    if COMMIT_ID.match(text):
        return text
    ref = ref_arg(project, text, allow_path=False, what="commit-set ID or repo@ref")
    return eng.resolve(ref.repo, ref.ref)


@squash_group.command("commit")
@click.argument("commit_set", metavar="COMMIT_SET_ID | REPO@REF")
@project_option
@state_option
def squash_commit_cmd(commit_set: str, project: str | None, state_dir: Path | None) -> None:
    """Squash a commit set: its commits go, their data stays in their children."""
    eng = open_engine(state_dir)
    gone = eng.squash_commit_set(_commit_set_id(eng, project, commit_set))
    click.echo(f"{len(gone)} commit(s) squashed into their children", err=True)


@delete_group.command("commit")
@click.argument("commit_set", metavar="COMMIT_SET_ID | REPO@REF")
@project_option
@state_option
def delete_commit_cmd(commit_set: str, project: str | None, state_dir: Path | None) -> None:
    """Delete (drop) a commit set: its commits and their data go; the branches move back to
    their parents."""
    eng = open_engine(state_dir)
    gone = eng.drop_commit_set(_commit_set_id(eng, project, commit_set))
    click.echo(f"{len(gone)} commit(s) deleted", err=True)


@inspect_group.command("commitset")
@click.argument("commit_set_id", metavar="ID")
@output_option
@state_option
def inspect_commitset_cmd(commit_set_id: str, fmt: str, state_dir: Path | None) -> None:
    """List the commits of one commit set (one global ID)."""
    commits = open_engine(state_dir).inspect_commit_set(commit_set_id)
    emit(fmt, commits, lambda: table(COMMIT_HEADERS, commit_rows(commits)))


@wait_group.command("commitset")
@click.argument("commit_set_id", metavar="ID")
@strict_option
@run_options
@state_option
def wait_commitset_cmd(commit_set_id: str, strict: bool, executor: str | None,
                       no_run: bool | None, state_dir: Path | None) -> None:
    """Run what is queued, then list the commit set."""
    jobs = JobReport()
    commits = open_engine(state_dir, executor=executor, jobs=jobs).wait_commit_set(commit_set_id)
    table(COMMIT_HEADERS, commit_rows(commits))
    report_jobs(jobs, strict)
    warn_errors(commits)
