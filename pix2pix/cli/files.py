"""pachctl's file verbs on the embedded engine: put, get, list, inspect, delete, copy, diff and
glob file. Reads of an open commit see what was put into it so far (read your writes).

    pix2pix put file images@master:/a.png -f a.png
    pix2pix get file edges@master:/a.png -o a.png
    pix2pix glob file "images@master:/**/*.png"
    pix2pix diff file images@master images@master^1
"""
from __future__ import annotations

import dataclasses
import os
import sys
import urllib.parse
from pathlib import Path

import click

from pix2pix.cli.common import (
    JobReport, branch_head, copy_group, delete_group, diff_group, emit, get_group, glob_group, human_size,
    inspect_group, list_group, open_engine, output_option, project_option, put_group, ref_arg,
    landed, report_jobs, run_options, says_what_landed, state_option, strict_option, table,
)
from pix2pix.errors import DataError, NotFoundError, UsageError
from pix2pix.fsutil import atomic_write
from pix2pix.pachyderm import files
from pix2pix.pachyderm.refs import clean_path

def warn_if_errored(eng, repo: str, ref: str | None) -> None:
    """A commit finished with an error (its job failed, or was unrunnable) holds its parent's
    files, not the job's output: say so, so nobody takes them for fresh results."""
    c = eng.inspect_commit(repo, ref)
    if c.error:
        click.echo(f"warning: commit {repo}@{c.id} finished with an error: {c.error}; its files "
                   "are those of its parent commit", err=True)


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
@strict_option
@project_option
@run_options
@state_option
def put_file_cmd(target: str, sources: tuple[str, ...], inputs: tuple[str, ...], recursive: bool,
                 append: bool, untar: bool, full_path: bool, description: str, strict: bool,
                 project: str | None, executor: str | None, no_run: bool | None,
                 state_dir: Path | None) -> None:
    """Put files into REPO@BRANCH, all in one commit (as pachctl: into the branch's open head if
    it has one, else in a new commit, finished at once).

    \b
      pix2pix put file images@master:/a.png -f a.png
      pix2pix put file images@master:/train -r -f ./facades/train
      pix2pix put file images@master -f a.png -f b.png      (lands at /a.png, /b.png)
      pix2pix put file images@master:/x.png -f https://example.com/x.png
      cat x | pix2pix put file images@master:/x
    """
    ref = ref_arg(project, target, what="repo@branch[:/path]")
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
    with says_what_landed(branch_head(eng, ref.repo, branch), landed(ref.repo)):
        info, finished, ops = _put(eng, ref.repo, branch, dest, srcs, target, untar=untar,
                                   append=append, recursive=recursive, full_path=full_path,
                                   description=description)
    report_jobs(jobs, strict)
    if not finished:
        click.echo(f"{len(ops)} file(s) put into open commit {ref.repo}@{info.id}; it runs its "
                   f"jobs once finished (`pix2pix finish commit {ref.repo}@{info.id}`)", err=True)
    click.echo(f"{ref.repo}@{info.id}", err=True)


def _put(eng, repo: str, branch: str, dest: str | None, srcs: list[str], target: str, *,
         untar: bool, append: bool, recursive: bool, full_path: bool, description: str):
    """The ops of ``put file``, stored, then applied in one commit: (info, finished, ops)."""
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
    if not ops:  # only empty folders (or tars): a commit of nothing is no put
        raise DataError(f"{', '.join(srcs)}: no files to put (empty folder); nothing was "
                        "committed")
    info, finished = eng.modify(repo, branch, ops, description=description)
    return info, finished, ops


@delete_group.command("file")
@click.argument("target", metavar="REPO@BRANCH:/path")
@strict_option
@project_option
@run_options
@state_option
def delete_file_cmd(target: str, strict: bool, project: str | None, executor: str | None,
                    no_run: bool | None, state_dir: Path | None) -> None:
    """Delete a file or folder, in the branch's open head or a new commit."""
    ref = ref_arg(project, target)
    if not ref.path or ref.path == "/":
        raise UsageError(f"{target!r}: name the path to delete: repo@branch:/path")
    jobs = JobReport()
    eng = open_engine(state_dir, executor=executor, no_run=no_run, jobs=jobs)
    eng.inspect_file(ref.repo, ref.ref or "master", ref.path)
    with says_what_landed(branch_head(eng, ref.repo, ref.ref or "master"), landed(ref.repo)):
        info, _ = eng.modify(ref.repo, ref.ref or "master", [files.FileOp("delete", ref.path)])
    report_jobs(jobs, strict)
    click.echo(f"{ref.repo}@{info.id}", err=True)


@get_group.command("file")
@click.argument("source", metavar="REPO@REF:/path")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), default=None,
              help="Write to this file (a folder with -r) instead of stdout.")
@click.option("-r", "--recursive", is_flag=True, help="Get a folder into the -o folder.")
@project_option
@state_option
def get_file_cmd(source: str, out: Path | None, recursive: bool, project: str | None,
                 state_dir: Path | None) -> None:
    """Print a file (or write it with -o; a folder with -r -o DIR)."""
    ref = ref_arg(project, source)
    if not ref.path:
        raise UsageError(f"{source!r}: name the file: repo@ref:/path")
    eng = open_engine(state_dir)
    info = eng.inspect_file(ref.repo, ref.ref, ref.path)
    warn_if_errored(eng, ref.repo, ref.ref)
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


def file_rows(infos) -> list[list[str]]:
    return [[f.path + ("/" if f.type == "dir" else ""), f.type, human_size(f.size)] for f in infos]


@list_group.command("file")
@click.argument("source", metavar="REPO@REF[:/path]")
@project_option
@output_option
@state_option
def list_file_cmd(source: str, project: str | None, fmt: str, state_dir: Path | None) -> None:
    """List a folder: NAME TYPE SIZE."""
    ref = ref_arg(project, source)
    eng = open_engine(state_dir)
    _show_files(eng, ref, eng.list_files(ref.repo, ref.ref, ref.path or "/"), fmt)


def _show_files(eng, ref, infos: list, fmt: str) -> None:
    """NAME TYPE SIZE (or the data), after the warning a read of an errored commit gets."""
    warn_if_errored(eng, ref.repo, ref.ref)
    emit(fmt, infos, lambda: table(["NAME", "TYPE", "SIZE"], file_rows(infos)))


@glob_group.command("file")
@click.argument("pattern", metavar='"REPO@REF:PATTERN"')
@project_option
@output_option
@state_option
def glob_file_cmd(pattern: str, project: str | None, fmt: str, state_dir: Path | None) -> None:
    """List the files and folders a glob matches, as a pipeline's input glob would
    (``/*``, ``/**/*.png``, ``/{a,b}/*``). Quote it, so the shell leaves it alone."""
    head, colon, glob = pattern.partition(":")
    ref = ref_arg(project, head, allow_path=False, what='"repo@ref:pattern"')
    if not colon or not glob:
        raise UsageError(f"{pattern!r}: give the pattern after the colon: \"repo@ref:/*.png\"")
    eng = open_engine(state_dir)
    _show_files(eng, ref, eng.glob_files(ref.repo, ref.ref, glob), fmt)


@inspect_group.command("file")
@click.argument("source", metavar="REPO@REF:/path")
@project_option
@output_option
@state_option
def inspect_file_cmd(source: str, project: str | None, fmt: str, state_dir: Path | None) -> None:
    """Show a file's type, size, hash and commit."""
    ref = ref_arg(project, source)
    f = open_engine(state_dir).inspect_file(ref.repo, ref.ref, ref.path or "/")
    emit(fmt, f, lambda: click.echo(
        f"Path: {f.path}\nType: {f.type}\nSize: {human_size(f.size)}\n"
        f"Hash: {f.hash or '-'}\nCommit: {f.repo}@{f.commit}"))


@copy_group.command("file")
@click.argument("source", metavar="SRC_REPO@REF:/path")
@click.argument("dest", metavar="DST_REPO@BRANCH:/path")
@click.option("-a", "--append", is_flag=True, help="Append to the destination file(s).")
@strict_option
@project_option
@run_options
@state_option
def copy_file_cmd(source: str, dest: str, append: bool, strict: bool, project: str | None,
                  executor: str | None, no_run: bool | None, state_dir: Path | None) -> None:
    """Copy a file or folder into a branch (its open head, or a new commit). Only references
    are copied: the data is stored once."""
    src, dst = ref_arg(project, source), ref_arg(project, dest)
    if not src.path:
        raise UsageError(f"{source!r}: name the source path: repo@ref:/path")
    if any(c in (dst.ref or "") for c in "^~"):
        raise UsageError(f"{dest!r}: copy file writes to a branch or an open commit")
    jobs = JobReport()
    eng = open_engine(state_dir, executor=executor, no_run=no_run, jobs=jobs)
    ops = files.copy_ops(eng, src.repo, src.ref, src.path, dst.path or src.path)
    if append:
        ops = [dataclasses.replace(op, op="append") for op in ops]
    with says_what_landed(branch_head(eng, dst.repo, dst.ref or "master"), landed(dst.repo)):
        info, finished = eng.modify(dst.repo, dst.ref or "master", ops)
    report_jobs(jobs, strict)
    click.echo(f"{len(ops)} file(s) copied into {dst.repo}@{info.id}"
               + ("" if finished else " (open commit)"), err=True)


@diff_group.command("file")
@click.argument("new", metavar="NEW_REPO@REF[:/path]")
@click.argument("old", metavar="[OLD_REPO@REF[:/path]]", required=False)
@click.option("--name-only", is_flag=True, help="Print only the paths that differ.")
@project_option
@output_option
@state_option
def diff_file_cmd(new: str, old: str | None, name_only: bool, project: str | None, fmt: str,
                  state_dir: Path | None) -> None:
    """What differs between two commits' files (default OLD: NEW's parent commit): one line per
    path, ``+`` added, ``-`` deleted, ``~`` changed."""
    n = ref_arg(project, new)
    o = ref_arg(project, old) if old else None
    pairs = open_engine(state_dir).diff_file(
        n.repo, n.ref, n.path or "/", old_repo=o.repo if o else None,
        old_ref=(o.ref or "master") if o else None, old_path=o.path if o else None)
    rows = [("+" if of is None else "-" if nf is None else "~", nf or of, nf, of)
            for nf, of in pairs]
    data = [{"op": op, "path": f.path, "new": nf, "old": of} for op, f, nf, of in rows]
    if name_only and fmt == "table":
        for _, f, _, _ in rows:
            click.echo(f.path)
        return
    emit(fmt, data, lambda: table(
        ["OP", "SIZE", "NAME"], [[op, human_size(f.size), f.path] for op, f, _, _ in rows]))
