"""pachctl's PFS verbs on the embedded engine: repos, branches, files and commits.

    pix2pix create repo images
    pix2pix put file images@master:/a.png -f a.png
    pix2pix get file edges@master:/a.png -o a.png
    pix2pix list commit images@master
"""
from __future__ import annotations

import os
import sys
import urllib.parse
from pathlib import Path
from typing import Callable

import click

from pix2pix.cli.common import (
    JobReport, ago, wants_json, dump, open_engine, output_option, run_options, human_size,
    state_option, table, create_group, delete_group, get_group, inspect_group, list_group,
    put_group, update_group, wait_group,
)
from pix2pix.errors import DataError, NotFoundError, UsageError
from pix2pix.fsutil import atomic_write
from pix2pix.pachyderm import files
from pix2pix.pachyderm.refs import clean_path, parse_ref

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

def _destination(src: str, dest: str | None, as_folder: bool, full_path: bool = False) -> str:
    """Where a -f source lands: ``dest`` itself (one source), ``dest/<name>`` (several sources
    or a dest ending in /), or ``/<name>`` (no dest). ``<name>`` is the source's base name (its
    whole path with --full-path); a folder's files go under that with their relative paths."""
    if src == "-":
        name = ""
    elif "://" in src:
        name = Path(urllib.parse.urlsplit(src).path).name
    else:
        name = Path(src).as_posix().lstrip("/") if full_path else Path(src).resolve().name
    if dest is None:
        return "/" + name
    return dest.rstrip("/") + "/" + name if as_folder else dest


def _sources(sources: tuple[str, ...], inputs: tuple[str, ...]) -> list[str]:
    """-f values, then the paths or URLs listed (one per line) in each -i file; stdin when
    neither is given, as pachctl's -f defaults to it."""
    out = list(sources)
    for listing in inputs:
        try:
            text = sys.stdin.read() if listing == "-" else Path(listing).read_text()
        except OSError as e:
            raise DataError(f"-i {listing}: cannot read ({e.strerror})") from None
        out += [line.strip() for line in text.splitlines() if line.strip()]
    return out or ["-"]


def _strict_option(fn: Callable) -> Callable:
    return click.option("--strict", is_flag=True,
                        help="Exit with JobError's code (7) if a job this command ran failed "
                             "(without it, as pachctl: exit 0 once the commit landed, and the "
                             "failure reported on stderr).")(fn)


@put_group.command("file")
@click.argument("target", metavar="REPO@BRANCH[:/path]")
@click.option("-f", "--file", "sources", multiple=True,
              help="A file, a folder (with -r), an http(s):// or file:// URL, or - for stdin "
                   "(the default); repeat for several.")
@click.option("-i", "--input-file", "inputs", multiple=True,
              help="A file listing paths or URLs to put, one per line (- for stdin).")
@click.option("-r", "--recursive", is_flag=True, help="Put a folder's files, keeping their "
                                                      "relative paths.")
@click.option("-a", "--append", is_flag=True, help="Append to the file instead of overwriting it.")
@click.option("--untar", is_flag=True, help="Each source is a tar: put its files instead.")
@click.option("--full-path", is_flag=True, help="Name each file by its full path (not its "
                                                "base name) under the destination.")
@click.option("-m", "--message", "description", default="", help="Commit description.")
@_strict_option
@run_options
@state_option
def put_file_cmd(target: str, sources: tuple[str, ...], inputs: tuple[str, ...], recursive: bool,
                 append: bool, untar: bool, full_path: bool, description: str, strict: bool,
                 executor: str | None, no_run: bool | None, state_dir: Path | None) -> None:
    """Put files into REPO@BRANCH, all in one commit (as pachctl: into the branch's open head if
    it has one, else in a new commit, finished at once).

    \b
      pix2pix put file images@master:/a.png -f a.png
      pix2pix put file images@master:/train -r -f ./facades/train
      pix2pix put file images@master -f a.png -f b.png      (lands at /a.png, /b.png)
      pix2pix put file images@master:/x.png -f https://example.com/x.png
      cat x | pix2pix put file images@master:/x
    """
    ref = parse_ref(target, what="repo@branch[:/path]")
    branch = ref.ref or "master"
    if any(c in branch for c in "^~"):
        raise UsageError(f"{target!r}: put file needs a branch or an open commit, not {branch}")
    dest = ref.path  # None: no path given; "/" the root
    srcs = _sources(sources, inputs)
    for s in srcs:
        if s == "-" or "://" in s:
            continue
        if not os.path.exists(s):
            raise NotFoundError(f"{s}: no such file or folder")
        if os.path.isdir(s) and not recursive:
            raise UsageError(f"{s} is a folder; use -r to put its files")
    if "-" in srcs and dest in (None, "/") and not untar:
        raise UsageError("-f - (stdin) needs a destination path: repo@branch:/path")
    jobs = JobReport()
    eng = open_engine(state_dir, executor=executor, no_run=no_run, jobs=jobs)
    eng.inspect_repo(ref.repo)
    many = len(srcs) > 1
    as_folder = many or target.endswith("/") or dest == "/"
    ops = []
    for s in srcs:
        where = _destination(s, dest, as_folder, full_path)
        if untar:
            with (sys.stdin.buffer if s == "-" else open(s, "rb")) as fh:
                ops += files.tar_ops(eng, fh, dest or "/", append=append)
        elif s == "-":
            ops.append(files.file_op(eng, dest, sys.stdin.buffer, append=append))
        elif "://" in s:
            ops += files.url_ops(eng, s, where, recursive=recursive, append=append)
        elif os.path.isdir(s):
            # One folder with a path: its files go right under that path (pachctl -r).
            ops += files.local_ops(eng, Path(s), dest if dest is not None and not many else where,
                                   recursive=True, append=append)
        else:
            with open(s, "rb") as fh:
                ops.append(files.file_op(eng, where, fh, append=append))
    info, finished = eng.modify(ref.repo, branch, ops, description=description)
    _report(jobs, strict)
    if not finished:
        click.echo(f"{len(ops)} file(s) put into open commit {ref.repo}@{info.id}; it runs its "
                   f"jobs once finished (`pix2pix finish commit {ref.repo}@{info.id}`)", err=True)
    click.echo(f"{ref.repo}@{info.id}", err=True)


def _report(jobs: JobReport, strict: bool) -> None:
    """Failed jobs: a JobError with --strict; else one warning line each (the commit stays)."""
    if strict:
        jobs.check()
    for j in jobs.failed():
        click.echo(f"warning: job {j.pipeline}@{j.id} ended {j.state}: {j.reason}; the commit "
                   f"landed (see `pix2pix logs -p {j.pipeline} --job {j.id}`)", err=True)


@delete_group.command("file")
@click.argument("target", metavar="REPO@BRANCH:/path")
@_strict_option
@run_options
@state_option
def delete_file_cmd(target: str, strict: bool, executor: str | None, no_run: bool | None,
                    state_dir: Path | None) -> None:
    """Delete a file or folder, in the branch's open head or a new commit."""
    ref = parse_ref(target)
    if not ref.path or ref.path == "/":
        raise UsageError(f"{target!r}: name the path to delete: repo@branch:/path")
    jobs = JobReport()
    eng = open_engine(state_dir, executor=executor, no_run=no_run, jobs=jobs)
    eng.inspect_file(ref.repo, ref.ref or "master", ref.path)
    info, _ = eng.modify(ref.repo, ref.ref or "master", [files.FileOp("delete", ref.path)])
    _report(jobs, strict)
    click.echo(f"{ref.repo}@{info.id}", err=True)


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
