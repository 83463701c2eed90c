"""pachctl's PFS verbs on the embedded engine: repos, branches, files and commits.

    pix2pix create repo images
    pix2pix put file images@master:/a.png -f a.png
    pix2pix get file edges@master:/a.png -o a.png
    pix2pix list commit images@master
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from pix2pix.cli.common import (
    JobReport, ago, wants_json, dump, open_engine, output_option, run_options, human_size,
    state_option, table, create_group, delete_group, get_group, inspect_group, list_group,
    put_group, update_group, wait_group,
)
from pix2pix.errors import StoreError, UsageError
from pix2pix.fsutil import atomic_write
from pix2pix.pachyderm.refs import COMMIT_ID, clean_path, parse_ref

# -- repos -----------------------------------------------------------------------------------------

@create_group.command("repo")
@click.argument("name")
@click.option("-d", "--description", default="", help="Description shown by `list repo`.")
@state_option
def create_repo_cmd(name: str, description: str, state_dir: Path | None) -> None:
    """Create a repo NAME for your data."""
    open_engine(state_dir).create_repo(name, description=description)


@update_group.command("repo")
@click.argument("name")
@click.option("-d", "--description", default="", help="New description.")
@state_option
def update_repo_cmd(name: str, description: str, state_dir: Path | None) -> None:
    """Change a repo's description."""
    eng = open_engine(state_dir)
    eng.inspect_repo(name)
    eng.create_repo(name, description=description, update=True)


@list_group.command("repo")
@output_option
@state_option
def list_repo_cmd(output: str, as_json: bool, state_dir: Path | None) -> None:
    """List repos: NAME CREATED SIZE (MASTER) DESCRIPTION."""
    repos = open_engine(state_dir).list_repos()
    if wants_json(output, as_json):
        return dump(repos)
    table(["NAME", "CREATED", "SIZE (MASTER)", "DESCRIPTION"],
           [[r.name, ago(r.created), human_size(r.size), r.description] for r in repos])


@inspect_group.command("repo")
@click.argument("name")
@output_option
@state_option
def inspect_repo_cmd(name: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """Show a repo."""
    r = open_engine(state_dir).inspect_repo(name)
    if wants_json(output, as_json):
        return dump(r)
    click.echo(f"Name: {r.name}\nType: {r.type}\nDescription: {r.description}\n"
               f"Created: {ago(r.created)}\nSize of HEAD on master: {human_size(r.size)}\n"
               f"Branches: {', '.join(r.branches)}")


@delete_group.command("repo")
@click.argument("name")
@click.option("-f", "--force", is_flag=True, help="Delete even if pipelines read it.")
@state_option
def delete_repo_cmd(name: str, force: bool, state_dir: Path | None) -> None:
    """Delete a repo and all its commits."""
    open_engine(state_dir).delete_repo(name, force=force)


@create_group.command("branch")
@click.argument("target", metavar="REPO@BRANCH")
@click.option("--head", default=None, help="Commit or branch the new branch points at.")
@state_option
def create_branch_cmd(target: str, head: str | None, state_dir: Path | None) -> None:
    """Create or move a branch."""
    ref = parse_ref(target, allow_path=False, what="repo@branch")
    if not ref.ref:
        raise UsageError(f"{target!r}: name the branch as repo@branch")
    open_engine(state_dir).create_branch(ref.repo, ref.ref, head=head)


@list_group.command("branch")
@click.argument("repo")
@output_option
@state_option
def list_branch_cmd(repo: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """List a repo's branches and their heads."""
    branches = open_engine(state_dir).list_branches(repo)
    if wants_json(output, as_json):
        return dump(branches)
    table(["BRANCH", "HEAD"], [[b.name, b.head or "-"] for b in branches])


# -- files -----------------------------------------------------------------------------------------

def _destination(src: str, dest: str | None, as_folder: bool) -> str:
    """Where a -f source lands: ``dest`` itself (one source), ``dest/<name>`` (several sources
    or a dest ending in /), or ``/<name>`` (no dest). ``<name>`` is the source's base name; a
    folder's files go under that with their relative paths."""
    name = Path(src).resolve().name if src != "-" else ""
    if dest is None:
        return "/" + name
    return dest.rstrip("/") + "/" + name if as_folder else dest


@put_group.command("file")
@click.argument("target", metavar="REPO@BRANCH[:/path]")
@click.option("-f", "--file", "sources", multiple=True, required=True,
              help="A file, a folder (with -r) or - for stdin; repeat for several.")
@click.option("-r", "--recursive", is_flag=True, help="Put a folder's files, keeping their "
                                                      "relative paths.")
@click.option("-a", "--append", is_flag=True, help="Append to the file instead of overwriting it.")
@click.option("-m", "--message", "description", default="", help="Commit description.")
@run_options
@state_option
def put_file_cmd(target: str, sources: tuple[str, ...], recursive: bool, append: bool,
                 description: str, executor: str | None, no_run: bool | None,
                 state_dir: Path | None) -> None:
    """Put files into a new commit on REPO@BRANCH, all in one commit.

    \b
      pix2pix put file images@master:/a.png -f a.png
      pix2pix put file images@master:/train -r -f ./facades/train
      pix2pix put file images@master -f a.png -f b.png      (lands at /a.png, /b.png)
      cat x | pix2pix put file images@master:/x -f -
    """
    ref = parse_ref(target, what="repo@branch[:/path]")
    branch = ref.ref or "master"
    if COMMIT_ID.match(branch) or any(c in branch for c in "^~"):
        raise UsageError(f"{target!r}: put file needs a branch, not a commit")
    dest = ref.path  # None: no path given; "/" the root
    for s in sources:
        if s != "-" and not os.path.exists(s):
            raise StoreError(f"{s}: no such file or folder")
        if s != "-" and os.path.isdir(s) and not recursive:
            raise UsageError(f"{s} is a folder; use -r to put its files")
    if "-" in sources and dest in (None, "/"):
        raise UsageError("-f - (stdin) needs a destination path: repo@branch:/path")
    jobs = JobReport()
    eng = open_engine(state_dir, executor=executor, no_run=no_run, jobs=jobs)
    many = len(sources) > 1
    as_folder = many or target.endswith("/") or dest == "/"
    with eng.commit(ref.repo, branch, description=description) as c:
        for s in sources:
            where = _destination(s, dest, as_folder)
            if s == "-":
                c.put_file(dest, sys.stdin.buffer, append=append)
            elif os.path.isdir(s):
                # One folder with a path: its files go right under that path (pachctl -r).
                c.put_local(Path(s), dest if dest is not None and not many else where,
                            recursive=True)
            else:
                with open(s, "rb") as fh:
                    c.put_file(where, fh, append=append)
    click.echo(f"{ref.repo}@{c.info.id}", err=True)
    jobs.check()


@delete_group.command("file")
@click.argument("target", metavar="REPO@BRANCH:/path")
@run_options
@state_option
def delete_file_cmd(target: str, executor: str | None, no_run: bool | None,
                    state_dir: Path | None) -> None:
    """Delete a file or folder in a new commit."""
    ref = parse_ref(target)
    if not ref.path or ref.path == "/":
        raise UsageError(f"{target!r}: name the path to delete: repo@branch:/path")
    jobs = JobReport()
    eng = open_engine(state_dir, executor=executor, no_run=no_run, jobs=jobs)
    eng.inspect_file(ref.repo, ref.ref or "master", ref.path)
    with eng.commit(ref.repo, ref.ref or "master") as c:
        c.delete_file(ref.path)
    jobs.check()


@get_group.command("file")
@click.argument("source", metavar="REPO@REF:/path")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), default=None,
              help="Write to this file (a folder with -r) instead of stdout.")
@click.option("-r", "--recursive", is_flag=True, help="Get a folder into the -o folder.")
@state_option
def get_file_cmd(source: str, out: Path | None, recursive: bool, state_dir: Path | None) -> None:
    """Print a file (or write it with -o; a folder with -r -o DIR)."""
    ref = parse_ref(source)
    if not ref.path:
        raise UsageError(f"{source!r}: name the file: repo@ref:/path")
    eng = open_engine(state_dir)
    info = eng.inspect_file(ref.repo, ref.ref, ref.path)
    if info.type == "dir":
        if not recursive or out is None:
            raise UsageError(f"{source} is a folder; use -r -o DIR to get it")
        n = get_tree(eng, ref.repo, ref.ref, ref.path, out)
        click.echo(f"{n} file(s) written under {out}", err=True)
        return
    if out is None:
        for chunk in eng.get_file_stream(ref.repo, ref.ref, ref.path):
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    if out.is_dir():
        out = out / Path(ref.path).name
    _write_atomic(out, eng.get_file_stream(ref.repo, ref.ref, ref.path))


def get_tree(eng, repo: str, ref: str | None, path: str, out: Path) -> int:
    """Write every file under repo path ``path`` into folder ``out``, keeping relative paths.
    Refuses, before writing anything, when any target would resolve outside ``out`` (e.g.
    through a symlink already in it)."""
    root = out.resolve()
    prefix = clean_path(path).rstrip("/") + "/"
    plan = []
    for f in eng.walk_files(repo, ref, path):
        rel = f.path[len(prefix):] if f.path.startswith(prefix) else Path(f.path).name
        target = (root / rel).resolve()
        if root != target and root not in target.parents:
            raise UsageError(f"{f.path}: would be written outside {out}; refused, nothing "
                             "was written")
        plan.append((target, f))
    for target, f in plan:
        _write_atomic(target, eng.get_file_stream(repo, f.commit, f.path))
    return len(plan)


def _write_atomic(path: Path, chunks) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, chunks)


@list_group.command("file")
@click.argument("source", metavar="REPO@REF[:/path]")
@output_option
@state_option
def list_file_cmd(source: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """List a folder: NAME TYPE SIZE."""
    ref = parse_ref(source)
    files = open_engine(state_dir).list_files(ref.repo, ref.ref, ref.path or "/")
    if wants_json(output, as_json):
        return dump(files)
    table(["NAME", "TYPE", "SIZE"],
           [[f.path + ("/" if f.type == "dir" else ""), f.type, human_size(f.size)] for f in files])


@inspect_group.command("file")
@click.argument("source", metavar="REPO@REF:/path")
@output_option
@state_option
def inspect_file_cmd(source: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """Show a file's type, size, hash and commit."""
    ref = parse_ref(source)
    f = open_engine(state_dir).inspect_file(ref.repo, ref.ref, ref.path or "/")
    if wants_json(output, as_json):
        return dump(f)
    click.echo(f"Path: {f.path}\nType: {f.type}\nSize: {human_size(f.size)}\n"
               f"Hash: {f.hash or '-'}\nCommit: {f.repo}@{f.commit}")


# -- commits ---------------------------------------------------------------------------------------

def _commit_rows(commits) -> list[list[str]]:
    return [[c.repo, c.branch, c.id, ago(c.finished), human_size(c.size), c.origin, c.description]
            for c in commits]


COMMIT_HEADERS = ["REPO", "BRANCH", "COMMIT", "FINISHED", "SIZE", "ORIGIN", "DESCRIPTION"]


@list_group.command("commit")
@click.argument("source", metavar="REPO[@BRANCH]")
@click.option("-n", "--number", "limit", type=int, default=None, help="At most this many.")
@output_option
@state_option
def list_commit_cmd(source: str, limit: int | None, output: str, as_json: bool,
                    state_dir: Path | None) -> None:
    """List commits, newest first (a branch's ancestry with @BRANCH)."""
    ref = parse_ref(source, allow_path=False, what="repo[@branch]")
    commits = open_engine(state_dir).list_commits(ref.repo, branch=ref.ref, limit=limit)
    if wants_json(output, as_json):
        return dump(commits)
    table(COMMIT_HEADERS, _commit_rows(commits))


def _print_commit(c) -> None:
    click.echo(f"Commit: {c.repo}@{c.id}\nOriginal Branch: {c.branch}\nOrigin: {c.origin}\n"
               f"Parent: {c.parent or '<none>'}\nStarted: {ago(c.started)}\n"
               f"Finished: {ago(c.finished)}\nSize: {human_size(c.size)}")
    if c.description:
        click.echo(f"Description: {c.description}")
    if c.provenance:
        click.echo("Provenance: " + ", ".join(f"{p.repo}@{p.commit} (branch {p.branch})"
                                            for p in c.provenance))


@inspect_group.command("commit")
@click.argument("source", metavar="REPO@REF")
@output_option
@state_option
def inspect_commit_cmd(source: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """Show a commit and its provenance."""
    ref = parse_ref(source, allow_path=False, what="repo@ref")
    c = open_engine(state_dir).inspect_commit(ref.repo, ref.ref)
    if wants_json(output, as_json):
        return dump(c)
    _print_commit(c)


@wait_group.command("commit")
@click.argument("source", metavar="REPO@REF")
@output_option
@run_options
@state_option
def wait_commit_cmd(source: str, output: str, as_json: bool, executor: str | None,
                    no_run: bool | None, state_dir: Path | None) -> None:
    """Return when the commit and the jobs of its commit set are finished (runs queued jobs)."""
    ref = parse_ref(source, allow_path=False, what="repo@ref")
    jobs = JobReport()
    eng = open_engine(state_dir, executor=executor, jobs=jobs)
    c = eng.wait_commit(ref.repo, ref.ref)
    commits = eng.inspect_commit_set(c.id)
    if wants_json(output, as_json):
        dump(commits)
    else:
        table(COMMIT_HEADERS, _commit_rows(commits))
    jobs.check()


@inspect_group.command("commitset")
@click.argument("commit_set_id", metavar="ID")
@output_option
@state_option
def inspect_commitset_cmd(commit_set_id: str, output: str, as_json: bool,
                          state_dir: Path | None) -> None:
    """List the commits of one commit set (one global ID)."""
    commits = open_engine(state_dir).inspect_commit_set(commit_set_id)
    if wants_json(output, as_json):
        return dump(commits)
    table(COMMIT_HEADERS, _commit_rows(commits))


@wait_group.command("commitset")
@click.argument("commit_set_id", metavar="ID")
@run_options
@state_option
def wait_commitset_cmd(commit_set_id: str, executor: str | None, no_run: bool | None,
                       state_dir: Path | None) -> None:
    """Run what is queued, then list the commit set."""
    jobs = JobReport()
    commits = open_engine(state_dir, executor=executor, jobs=jobs).wait_commit_set(commit_set_id)
    table(COMMIT_HEADERS, _commit_rows(commits))
    jobs.check()
