"""pachctl's verbs for projects, repos and branches, on the embedded engine.

    pix2pix create project vision
    pix2pix create repo images --project vision       (or: create repo vision/images)
    pix2pix create branch model@production --head master
    pix2pix list branch model
"""
from __future__ import annotations

from pathlib import Path

import click

from pix2pix.cli.common import (
    JobReport, ago, create_group, delete_group, emit, human_size, inspect_group, list_group, open_engine,
    output_option, project_option, qname, ref_arg, report_jobs, run_options, split_qname,
    state_option, strict_option, table, update_group,
)
from pix2pix.errors import UsageError
from pix2pix.pachyderm.refs import DEFAULT_PROJECT

# -- projects --------------------------------------------------------------------------------------


@create_group.command("project")
@click.argument("name")
@click.option("-d", "--description", default="", help="Description shown by `list project`.")
@state_option
def create_project_cmd(name: str, description: str, state_dir: Path | None) -> None:
    """Create a project: a namespace of repos and pipelines."""
    open_engine(state_dir).create_project(name, description=description)
    click.echo(f"project {name} created", err=True)


@update_group.command("project")
@click.argument("name")
@click.option("-d", "--description", default="", help="New description.")
@state_option
def update_project_cmd(name: str, description: str, state_dir: Path | None) -> None:
    """Change a project's description."""
    eng = open_engine(state_dir)
    eng.inspect_project(name)
    eng.create_project(name, description=description, update=True)


@list_group.command("project")
@project_option
@output_option
@state_option
def list_project_cmd(project: str | None, fmt: str, state_dir: Path | None) -> None:
    """List projects: ACTIVE PROJECT CREATED DESCRIPTION (ACTIVE marks --project's)."""
    projects = open_engine(state_dir).list_projects()
    active = project or DEFAULT_PROJECT
    emit(fmt, projects, lambda: table(
        ["ACTIVE", "PROJECT", "CREATED", "DESCRIPTION"],
        [["*" if p.name == active else "", p.name, ago(p.created), p.description]
         for p in projects]))


@inspect_group.command("project")
@click.argument("name")
@output_option
@state_option
def inspect_project_cmd(name: str, fmt: str, state_dir: Path | None) -> None:
    """Show a project."""
    p = open_engine(state_dir).inspect_project(name)
    emit(fmt, p, lambda: click.echo(
        f"Name: {p.name}" + (f"\nDescription: {p.description}" if p.description else "")
        + f"\nCreated: {ago(p.created)}"))


@delete_group.command("project")
@click.argument("name")
@click.option("-f", "--force", is_flag=True, help="Delete its pipelines and repos too.")
@state_option
def delete_project_cmd(name: str, force: bool, state_dir: Path | None) -> None:
    """Delete a project (empty, or with --force everything in it)."""
    open_engine(state_dir).delete_project(name, force=force)
    click.echo(f"project {name} deleted", err=True)


# -- repos -----------------------------------------------------------------------------------------


@create_group.command("repo")
@click.argument("name")
@click.option("-d", "--description", default="", help="Description shown by `list repo`.")
@project_option
@state_option
def create_repo_cmd(name: str, description: str, project: str | None,
                    state_dir: Path | None) -> None:
    """Create a repo NAME for your data (it has no branch until its first commit)."""
    open_engine(state_dir).create_repo(qname(project, name), description=description)


@update_group.command("repo")
@click.argument("name")
@click.option("-d", "--description", default="", help="New description.")
@project_option
@state_option
def update_repo_cmd(name: str, description: str, project: str | None,
                    state_dir: Path | None) -> None:
    """Change a repo's description."""
    eng = open_engine(state_dir)
    eng.inspect_repo(qname(project, name))
    eng.create_repo(qname(project, name), description=description, update=True)


def repo_rows(repos) -> list[list[str]]:
    return [[*split_qname(r.name), ago(r.created), human_size(r.size), r.description]
            for r in repos]


@list_group.command("repo")
@click.option("-A", "--all-projects", is_flag=True, help="Repos of every project.")
@project_option
@output_option
@state_option
def list_repo_cmd(all_projects: bool, project: str | None, fmt: str,
                  state_dir: Path | None) -> None:
    """List a project's repos: PROJECT NAME CREATED SIZE (MASTER) DESCRIPTION."""
    repos = open_engine(state_dir).list_repos(None if all_projects else project or DEFAULT_PROJECT)
    emit(fmt, repos, lambda: table(["PROJECT", "NAME", "CREATED", "SIZE (MASTER)", "DESCRIPTION"],
                                   repo_rows(repos)))


@inspect_group.command("repo")
@click.argument("name")
@project_option
@output_option
@state_option
def inspect_repo_cmd(name: str, project: str | None, fmt: str, state_dir: Path | None) -> None:
    """Show a repo."""
    r = open_engine(state_dir).inspect_repo(qname(project, name))
    emit(fmt, r, lambda: click.echo(
        f"Name: {r.name}\nProject: {r.project}\nType: {r.type}\nDescription: {r.description}\n"
        f"Created: {ago(r.created)}\nSize of HEAD on master: {human_size(r.size)}\n"
        f"Branches: {', '.join(r.branches) or '<none>'}"))


@delete_group.command("repo")
@click.argument("name", required=False)
@click.option("-f", "--force", is_flag=True, help="Delete even if pipelines read it.")
@click.option("--all", "all_repos", is_flag=True, help="Delete every repo of the project.")
@project_option
@state_option
def delete_repo_cmd(name: str | None, force: bool, all_repos: bool, project: str | None,
                    state_dir: Path | None) -> None:
    """Delete a repo and all its commits (a repo that does not exist: nothing to do, as pachd)."""
    if bool(name) == all_repos:
        raise UsageError("delete repo: name one repo, or use --all")
    eng = open_engine(state_dir)
    names = ([r.name for r in eng.list_repos(project or DEFAULT_PROJECT) if r.type == "user"]
             if all_repos else [qname(project, name)])
    for n in names:
        existed = eng.delete_repo(n, force=force)
        click.echo(f"repo {n} deleted" if existed else f"repo {n} does not exist; nothing deleted",
                   err=True)


# -- branches --------------------------------------------------------------------------------------


@create_group.command("branch")
@click.argument("target", metavar="REPO@BRANCH")
@click.option("--head", default=None, help="Commit or branch (of the same repo) it points at.")
@click.option("-p", "--provenance", multiple=True, metavar="REPO@BRANCH",
              help="A branch this branch is computed from (repeatable).")
@click.option("-t", "--trigger", "trigger_branch", default=None, metavar="BRANCH",
              help="Move this branch to BRANCH's head when the conditions below hold.")
@click.option("--trigger-size", default=None, help="Condition: this much new data (e.g. 100MB).")
@click.option("--trigger-commits", type=int, default=0, help="Condition: this many new commits.")
@click.option("--trigger-cron", default=None, help="Condition: a cron schedule.")
@click.option("--trigger-all", is_flag=True, help="All conditions must hold (default: any).")
@strict_option
@project_option
@run_options
@state_option
def create_branch_cmd(target: str, head: str | None, provenance: tuple[str, ...],
                      trigger_branch: str | None, trigger_size: str | None, trigger_commits: int,
                      trigger_cron: str | None, trigger_all: bool, strict: bool,
                      project: str | None,
                      executor: str | None, no_run: bool | None, state_dir: Path | None) -> None:
    """Create or move a branch. Moving a branch's head (promote, roll back) runs what reads it.

    \b
      pix2pix create branch model@production --head 2f1c...   (promote a model commit)
      pix2pix create branch model@production --head master^1 (roll back one)
    """
    ref = ref_arg(project, target, allow_path=False, what="repo@branch")
    if not ref.ref:
        raise UsageError(f"{target!r}: name the branch as repo@branch")
    conditions = trigger_size or trigger_commits or trigger_cron or trigger_all
    if conditions and not trigger_branch:
        raise UsageError("--trigger-size/--trigger-commits/--trigger-cron/--trigger-all need "
                         "--trigger BRANCH")
    trigger = None
    if trigger_branch:
        trigger = {"branch": trigger_branch, "size": trigger_size, "commits": trigger_commits,
                   "cronSpec": trigger_cron, "all": trigger_all}
    jobs = JobReport()
    eng = open_engine(state_dir, executor=executor, no_run=no_run, jobs=jobs)
    b = eng.create_branch(ref.repo, ref.ref, head=head,
                          provenance=[qname(project, p) for p in provenance], trigger=trigger)
    report_jobs(jobs, strict)
    click.echo(f"branch {b.repo}@{b.name} -> {b.head or '<no head>'}", err=True)


def _trigger_text(t: dict | None) -> str:
    if not t:
        return "-"
    conds = [f"{k}={t[k]}" for k in ("size", "commits", "cronSpec") if t.get(k)]
    return f"{t['branch']} on " + (" and " if t.get("all") else " or ").join(conds) \
        if conds else t["branch"]


@list_group.command("branch")
@click.argument("repo")
@project_option
@output_option
@state_option
def list_branch_cmd(repo: str, project: str | None, fmt: str, state_dir: Path | None) -> None:
    """List a repo's branches: BRANCH HEAD TRIGGER."""
    branches = open_engine(state_dir).list_branches(qname(project, repo))
    emit(fmt, branches, lambda: table(
        ["BRANCH", "HEAD", "TRIGGER"],
        [[b.name, b.head or "-", _trigger_text(b.trigger)] for b in branches]))


@inspect_group.command("branch")
@click.argument("target", metavar="REPO@BRANCH")
@project_option
@output_option
@state_option
def inspect_branch_cmd(target: str, project: str | None, fmt: str, state_dir: Path | None) -> None:
    """Show a branch: head, provenance, trigger."""
    ref = ref_arg(project, target, allow_path=False, what="repo@branch")
    if not ref.ref:
        raise UsageError(f"{target!r}: name the branch as repo@branch")
    b = open_engine(state_dir).inspect_branch(ref.repo, ref.ref)
    emit(fmt, b, lambda: click.echo(
        f"Name: {b.repo}@{b.name}\nHead Commit: " + (f"{b.repo}@{b.head}" if b.head else "<none>")
        + (f"\nProvenance: {' '.join(b.provenance)}" if b.provenance else "")
        + (f"\nTrigger: {_trigger_text(b.trigger)}" if b.trigger else "")
        + (f"\nCreated: {ago(b.created)}" if b.created else "")))


@delete_group.command("branch")
@click.argument("target", metavar="REPO@BRANCH")
@click.option("-f", "--force", is_flag=True, help="Delete even if other branches are computed "
                                                   "from it.")
@project_option
@state_option
def delete_branch_cmd(target: str, force: bool, project: str | None,
                      state_dir: Path | None) -> None:
    """Delete a branch (its commits stay, by ID)."""
    ref = ref_arg(project, target, allow_path=False, what="repo@branch")
    if not ref.ref:
        raise UsageError(f"{target!r}: name the branch as repo@branch")
    open_engine(state_dir).delete_branch(ref.repo, ref.ref, force=force)
    click.echo(f"branch {ref.repo}@{ref.ref} deleted", err=True)
