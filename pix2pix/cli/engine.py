"""pachctl's verbs on the embedded engine: ``pix2pix put file images@master:/a.png -f a.png``.

Every command takes ``--state DIR`` (env PIX2PIX_STATE, default ./.pix2pix). Commands that make
commits or pipelines run the downstream jobs before they return, unless ``--no-run`` (env
PIX2PIX_DEFER=1); ``pix2pix run`` runs what was deferred. A job that fails makes the command
exit with JobError's code after the commit itself has landed.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import click

from pix2pix.cli import cli
from pix2pix.errors import JobError, StoreError, UsageError
from pix2pix.fsutil import atomic_write
from pix2pix.pachyderm.refs import COMMIT_ID, clean_path, parse_ref

# -- shared options ------------------------------------------------------------------------------


def _state_option(fn: Callable) -> Callable:
    return click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path),
                        envvar="PIX2PIX_STATE", default=None,
                        help="State folder of the embedded engine [env PIX2PIX_STATE; "
                             "default ./.pix2pix].")(fn)


def _run_options(fn: Callable) -> Callable:
    fn = click.option("--no-run", "no_run", is_flag=True, default=None,
                      help="Queue the downstream pipelines instead of running them now "
                           "(`pix2pix run` runs them) [env PIX2PIX_DEFER=1].")(fn)
    fn = click.option("--executor", type=click.Choice(["process", "container"]),
                      envvar="PIX2PIX_EXECUTOR", default=None,
                      help="Run transforms here (process, default) or in transform.image "
                           "(container: docker, podman or buildah) [env PIX2PIX_EXECUTOR].")(fn)
    return fn


def _output_option(fn: Callable) -> Callable:
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)
    fn = click.option("-o", "--output", "output", type=click.Choice(["table", "json"]),
                      default="table", help="Output format.")(fn)
    return fn


class _Jobs:
    """Collects the jobs a command ran, prints one line per job on stderr."""

    def __init__(self) -> None:
        self.jobs: list = []

    def __call__(self, job) -> None:
        self.jobs.append(job)
        counts = f"{job.processed} processed, {job.skipped} skipped, {job.failed} failed, {job.total} total"
        click.echo(f"job {job.pipeline}@{job.id}: {job.state} ({counts})"
                   + (f": {job.reason}" if job.reason else ""), err=True)

    def check(self) -> None:
        bad = [j for j in self.jobs if j.state != "success"]
        if bad:
            j = bad[0]
            raise JobError(f"job {j.pipeline}@{j.id} failed: {j.reason}; see `pix2pix inspect job "
                           f"{j.pipeline}@{j.id}` and `pix2pix logs -p {j.pipeline} --job {j.id}`"
                           + (f" ({len(bad) - 1} more failed job(s))" if len(bad) > 1 else ""))


def _engine(state_dir: Path | None, *, executor: str | None = None, no_run: bool | None = None,
            jobs: _Jobs | None = None):
    from pix2pix.pachyderm.engine import Engine
    return Engine(state_dir, executor=executor, defer=True if no_run else None, on_job=jobs)


def _as_json(output: str, as_json: bool) -> bool:
    return as_json or output == "json"


def _dump(value: Any) -> None:
    if isinstance(value, list):
        value = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]
    elif dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def _table(headers: list[str], rows: list[list[str]]) -> None:
    """Columns aligned like pachctl's tabwriter output."""
    widths = [max([len(h)] + [len(str(r[i])) for r in rows]) for i, h in enumerate(headers)]
    for line in [headers] + rows:
        click.echo("   ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())


def _ago(t: float | None) -> str:
    if t is None:
        return "-"
    d = max(0.0, time.time() - t)
    for unit, n in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if d >= n:
            k = int(d // n)
            return f"{k} {unit}{'s' if k > 1 else ''} ago"
    return f"{int(d)} seconds ago" if d >= 2 else "just now"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.4g}{unit}"
        n /= 1024
    return str(n)


def _duration(a: float | None, b: float | None) -> str:
    if a is None:
        return "-"
    d = (b or time.time()) - a
    return f"{d:.1f}s" if d < 60 else f"{int(d // 60)}m{int(d % 60)}s"


# -- groups named after pachctl's verbs ----------------------------------------------------------

@cli.group("create")
def create_group() -> None:
    """Create a repo, branch or pipeline (embedded engine)."""


@cli.group("update")
def update_group() -> None:
    """Update a repo or pipeline (embedded engine)."""


@cli.group("list")
def list_group() -> None:
    """List repos, branches, commits, files, pipelines, jobs or datums (embedded engine)."""


@cli.group("inspect")
def inspect_group() -> None:
    """Show one repo, commit, commit set, file, pipeline, job or datum (embedded engine)."""


@cli.group("delete")
def delete_group() -> None:
    """Delete a repo, file or pipeline (embedded engine)."""


@cli.group("put")
def put_group() -> None:
    """Put files into a repo (embedded engine)."""


@cli.group("get")
def get_group() -> None:
    """Get files out of a repo (embedded engine)."""


@cli.group("wait")
def wait_group() -> None:
    """Wait for a commit or commit set and the jobs it causes (embedded engine)."""


# -- repos -----------------------------------------------------------------------------------------

@create_group.command("repo")
@click.argument("name")
@click.option("-d", "--description", default="", help="Description shown by `list repo`.")
@_state_option
def create_repo_cmd(name: str, description: str, state_dir: Path | None) -> None:
    """Create a repo NAME for your data."""
    _engine(state_dir).create_repo(name, description=description)


@update_group.command("repo")
@click.argument("name")
@click.option("-d", "--description", default="", help="New description.")
@_state_option
def update_repo_cmd(name: str, description: str, state_dir: Path | None) -> None:
    """Change a repo's description."""
    eng = _engine(state_dir)
    eng.inspect_repo(name)
    eng.create_repo(name, description=description, update=True)


@list_group.command("repo")
@_output_option
@_state_option
def list_repo_cmd(output: str, as_json: bool, state_dir: Path | None) -> None:
    """List repos: NAME CREATED SIZE (MASTER) DESCRIPTION."""
    repos = _engine(state_dir).list_repos()
    if _as_json(output, as_json):
        return _dump(repos)
    _table(["NAME", "CREATED", "SIZE (MASTER)", "DESCRIPTION"],
           [[r.name, _ago(r.created), _size(r.size), r.description] for r in repos])


@inspect_group.command("repo")
@click.argument("name")
@_output_option
@_state_option
def inspect_repo_cmd(name: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """Show a repo."""
    r = _engine(state_dir).inspect_repo(name)
    if _as_json(output, as_json):
        return _dump(r)
    click.echo(f"Name: {r.name}\nType: {r.type}\nDescription: {r.description}\n"
               f"Created: {_ago(r.created)}\nSize of HEAD on master: {_size(r.size)}\n"
               f"Branches: {', '.join(r.branches)}")


@delete_group.command("repo")
@click.argument("name")
@click.option("-f", "--force", is_flag=True, help="Delete even if pipelines read it.")
@_state_option
def delete_repo_cmd(name: str, force: bool, state_dir: Path | None) -> None:
    """Delete a repo and all its commits."""
    _engine(state_dir).delete_repo(name, force=force)


@create_group.command("branch")
@click.argument("target", metavar="REPO@BRANCH")
@click.option("--head", default=None, help="Commit or branch the new branch points at.")
@_state_option
def create_branch_cmd(target: str, head: str | None, state_dir: Path | None) -> None:
    """Create or move a branch."""
    ref = parse_ref(target, allow_path=False, what="repo@branch")
    if not ref.ref:
        raise UsageError(f"{target!r}: name the branch as repo@branch")
    _engine(state_dir).create_branch(ref.repo, ref.ref, head=head)


@list_group.command("branch")
@click.argument("repo")
@_output_option
@_state_option
def list_branch_cmd(repo: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """List a repo's branches and their heads."""
    branches = _engine(state_dir).list_branches(repo)
    if _as_json(output, as_json):
        return _dump(branches)
    _table(["BRANCH", "HEAD"], [[b.name, b.head or "-"] for b in branches])


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
@_run_options
@_state_option
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
    jobs = _Jobs()
    eng = _engine(state_dir, executor=executor, no_run=no_run, jobs=jobs)
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
@_run_options
@_state_option
def delete_file_cmd(target: str, executor: str | None, no_run: bool | None,
                    state_dir: Path | None) -> None:
    """Delete a file or folder in a new commit."""
    ref = parse_ref(target)
    if not ref.path or ref.path == "/":
        raise UsageError(f"{target!r}: name the path to delete: repo@branch:/path")
    jobs = _Jobs()
    eng = _engine(state_dir, executor=executor, no_run=no_run, jobs=jobs)
    eng.inspect_file(ref.repo, ref.ref or "master", ref.path)
    with eng.commit(ref.repo, ref.ref or "master") as c:
        c.delete_file(ref.path)
    jobs.check()


@get_group.command("file")
@click.argument("source", metavar="REPO@REF:/path")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), default=None,
              help="Write to this file (a folder with -r) instead of stdout.")
@click.option("-r", "--recursive", is_flag=True, help="Get a folder into the -o folder.")
@_state_option
def get_file_cmd(source: str, out: Path | None, recursive: bool, state_dir: Path | None) -> None:
    """Print a file (or write it with -o; a folder with -r -o DIR)."""
    ref = parse_ref(source)
    if not ref.path:
        raise UsageError(f"{source!r}: name the file: repo@ref:/path")
    eng = _engine(state_dir)
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
@_output_option
@_state_option
def list_file_cmd(source: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """List a folder: NAME TYPE SIZE."""
    ref = parse_ref(source)
    files = _engine(state_dir).list_files(ref.repo, ref.ref, ref.path or "/")
    if _as_json(output, as_json):
        return _dump(files)
    _table(["NAME", "TYPE", "SIZE"],
           [[f.path + ("/" if f.type == "dir" else ""), f.type, _size(f.size)] for f in files])


@inspect_group.command("file")
@click.argument("source", metavar="REPO@REF:/path")
@_output_option
@_state_option
def inspect_file_cmd(source: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """Show a file's type, size, hash and commit."""
    ref = parse_ref(source)
    f = _engine(state_dir).inspect_file(ref.repo, ref.ref, ref.path or "/")
    if _as_json(output, as_json):
        return _dump(f)
    click.echo(f"Path: {f.path}\nType: {f.type}\nSize: {_size(f.size)}\n"
               f"Hash: {f.hash or '-'}\nCommit: {f.repo}@{f.commit}")


# -- commits ---------------------------------------------------------------------------------------

def _commit_rows(commits) -> list[list[str]]:
    return [[c.repo, c.branch, c.id, _ago(c.finished), _size(c.size), c.origin, c.description]
            for c in commits]


COMMIT_HEADERS = ["REPO", "BRANCH", "COMMIT", "FINISHED", "SIZE", "ORIGIN", "DESCRIPTION"]


@list_group.command("commit")
@click.argument("source", metavar="REPO[@BRANCH]")
@click.option("-n", "--number", "limit", type=int, default=None, help="At most this many.")
@_output_option
@_state_option
def list_commit_cmd(source: str, limit: int | None, output: str, as_json: bool,
                    state_dir: Path | None) -> None:
    """List commits, newest first (a branch's ancestry with @BRANCH)."""
    ref = parse_ref(source, allow_path=False, what="repo[@branch]")
    commits = _engine(state_dir).list_commits(ref.repo, branch=ref.ref, limit=limit)
    if _as_json(output, as_json):
        return _dump(commits)
    _table(COMMIT_HEADERS, _commit_rows(commits))


def _print_commit(c) -> None:
    click.echo(f"Commit: {c.repo}@{c.id}\nOriginal Branch: {c.branch}\nOrigin: {c.origin}\n"
               f"Parent: {c.parent or '<none>'}\nStarted: {_ago(c.started)}\n"
               f"Finished: {_ago(c.finished)}\nSize: {_size(c.size)}")
    if c.description:
        click.echo(f"Description: {c.description}")
    if c.provenance:
        click.echo("Provenance: " + ", ".join(f"{p.repo}@{p.commit} (branch {p.branch})"
                                            for p in c.provenance))


@inspect_group.command("commit")
@click.argument("source", metavar="REPO@REF")
@_output_option
@_state_option
def inspect_commit_cmd(source: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """Show a commit and its provenance."""
    ref = parse_ref(source, allow_path=False, what="repo@ref")
    c = _engine(state_dir).inspect_commit(ref.repo, ref.ref)
    if _as_json(output, as_json):
        return _dump(c)
    _print_commit(c)


@wait_group.command("commit")
@click.argument("source", metavar="REPO@REF")
@_output_option
@_run_options
@_state_option
def wait_commit_cmd(source: str, output: str, as_json: bool, executor: str | None,
                    no_run: bool | None, state_dir: Path | None) -> None:
    """Return when the commit and the jobs of its commit set are finished (runs queued jobs)."""
    ref = parse_ref(source, allow_path=False, what="repo@ref")
    jobs = _Jobs()
    eng = _engine(state_dir, executor=executor, jobs=jobs)
    c = eng.wait_commit(ref.repo, ref.ref)
    commits = eng.inspect_commit_set(c.id)
    if _as_json(output, as_json):
        _dump(commits)
    else:
        _table(COMMIT_HEADERS, _commit_rows(commits))
    jobs.check()


@inspect_group.command("commitset")
@click.argument("commit_set_id", metavar="ID")
@_output_option
@_state_option
def inspect_commitset_cmd(commit_set_id: str, output: str, as_json: bool,
                          state_dir: Path | None) -> None:
    """List the commits of one commit set (one global ID)."""
    commits = _engine(state_dir).inspect_commit_set(commit_set_id)
    if _as_json(output, as_json):
        return _dump(commits)
    _table(COMMIT_HEADERS, _commit_rows(commits))


@wait_group.command("commitset")
@click.argument("commit_set_id", metavar="ID")
@_run_options
@_state_option
def wait_commitset_cmd(commit_set_id: str, executor: str | None, no_run: bool | None,
                       state_dir: Path | None) -> None:
    """Run what is queued, then list the commit set."""
    jobs = _Jobs()
    commits = _engine(state_dir, executor=executor, jobs=jobs).wait_commit_set(commit_set_id)
    _table(COMMIT_HEADERS, _commit_rows(commits))
    jobs.check()


# -- pipelines -------------------------------------------------------------------------------------

def _load_specs(files: tuple[str, ...]) -> list[tuple[str, dict]]:
    from pix2pix.pachyderm.spec import load_spec_file, load_spec_text
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
@_run_options
@_state_option
def create_pipeline_cmd(files: tuple[str, ...], executor: str | None, no_run: bool | None,
                        state_dir: Path | None) -> None:
    """Create pipelines and run them on the data already in their inputs."""
    jobs = _Jobs()
    infos = _engine(state_dir, executor=executor, no_run=no_run, jobs=jobs).create_pipelines(
        _load_specs(files))
    for p in infos:
        click.echo(f"pipeline {p.name} (version {p.version}) created", err=True)
    jobs.check()


@update_group.command("pipeline")
@click.option("-f", "--file", "files", multiple=True, required=True, help="Spec file(s).")
@click.option("--reprocess", is_flag=True, help="Reprocess datums the previous version already "
                                                "processed.")
@_run_options
@_state_option
def update_pipeline_cmd(files: tuple[str, ...], reprocess: bool, executor: str | None,
                        no_run: bool | None, state_dir: Path | None) -> None:
    """Update pipelines (created if missing); unchanged datums are skipped unless --reprocess."""
    jobs = _Jobs()
    infos = _engine(state_dir, executor=executor, no_run=no_run, jobs=jobs).create_pipelines(
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
@_output_option
@_state_option
def list_pipeline_cmd(output: str, as_json: bool, state_dir: Path | None) -> None:
    """List pipelines: NAME VERSION INPUT CREATED STATE / LAST JOB DESCRIPTION."""
    ps = _engine(state_dir).list_pipelines()
    if _as_json(output, as_json):
        return _dump(ps)
    _table(["NAME", "VERSION", "INPUT", "CREATED", "STATE / LAST JOB", "DESCRIPTION"],
           [[p.name, str(p.version), _input_summary(p.spec.get("input") or {}), _ago(p.created),
             f"{p.state} / {p.last_job_state or '-'}", p.description[:60]] for p in ps])


@inspect_group.command("pipeline")
@click.argument("name")
@_output_option
@_state_option
def inspect_pipeline_cmd(name: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """Show a pipeline and its spec."""
    p = _engine(state_dir).inspect_pipeline(name)
    if _as_json(output, as_json):
        return _dump(p)
    click.echo(f"Name: {p.name}\nVersion: {p.version}\nState: {p.state}\n"
               f"Last job: {p.last_job_state or '-'}\nCreated: {_ago(p.created)}\n"
               f"Input: {_input_summary(p.spec.get('input') or {})}\nSpec:")
    click.echo(json.dumps(p.spec, indent=2))


@delete_group.command("pipeline")
@click.argument("name")
@click.option("--keep-repo", is_flag=True, help="Keep the output repo (as a user repo).")
@click.option("-f", "--force", is_flag=True, help="Delete even if other pipelines read it.")
@_state_option
def delete_pipeline_cmd(name: str, keep_repo: bool, force: bool, state_dir: Path | None) -> None:
    """Delete a pipeline, its jobs and its output repo."""
    _engine(state_dir).delete_pipeline(name, keep_repo=keep_repo, force=force)


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
@_output_option
@_state_option
def list_job_cmd(pipeline: str | None, output: str, as_json: bool, state_dir: Path | None) -> None:
    """List jobs, newest first: PIPELINE ID STARTED DURATION PROGRESS STATE."""
    jobs = _engine(state_dir).list_jobs(pipeline)
    if _as_json(output, as_json):
        return _dump(jobs)
    _table(["PIPELINE", "ID", "STARTED", "DURATION", "PROGRESS", "STATE", "REASON"],
           [[j.pipeline, j.id, _ago(j.started), _duration(j.started, j.finished), _progress(j),
             j.state, j.reason[:80]] for j in jobs])


@inspect_group.command("job")
@click.argument("job", metavar="PIPELINE@ID")
@_output_option
@_state_option
def inspect_job_cmd(job: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """Show a job: state, datum counts, output commit, the failing datum and why."""
    name, jid = _job_ref(job)
    eng = _engine(state_dir)
    j = eng.inspect_job(name, jid)
    if _as_json(output, as_json):
        return _dump(j)
    click.echo(f"ID: {j.id}\nPipeline: {j.pipeline} (version {j.spec_version})\nState: {j.state}\n"
               f"Started: {_ago(j.started)}\nDuration: {_duration(j.started, j.finished)}\n"
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
@_output_option
@_state_option
def list_datum_cmd(job: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """List a job's datums: ID FILES STATUS TIME."""
    name, jid = _job_ref(job)
    ds = _engine(state_dir).list_datums(name, jid)
    if _as_json(output, as_json):
        return _dump([dataclasses.asdict(d) | {"input_paths": d.input_paths} for d in ds])
    _table(["ID", "FILES", "STATUS", "TIME"],
           [[d.id, ", ".join(d.input_paths[:3]) + (" ..." if len(d.input_paths) > 3 else ""),
             d.state, _duration(d.started, d.finished) if d.started else "-"] for d in ds])


@inspect_group.command("datum")
@click.argument("job", metavar="PIPELINE@ID")
@click.argument("datum_id", metavar="DATUM")
@_output_option
@_state_option
def inspect_datum_cmd(job: str, datum_id: str, output: str, as_json: bool,
                      state_dir: Path | None) -> None:
    """Show one datum: inputs, outputs, tries, log."""
    name, jid = _job_ref(job)
    d = _engine(state_dir).inspect_datum(name, jid, datum_id)
    if _as_json(output, as_json):
        return _dump(dataclasses.asdict(d) | {"input_paths": d.input_paths})
    click.echo(f"ID: {d.id}\nJob: {d.pipeline}@{d.job_id}\nState: {d.state}\nTries: {d.tries}\n"
               f"Inputs: {', '.join(d.input_paths)}\nOutputs: {', '.join(d.outputs) or '-'}")
    if d.reason:
        click.echo(f"Reason: {d.reason}")
    click.echo("Log:\n" + d.log)


@cli.command("logs")
@click.option("-p", "--pipeline", required=True, help="Pipeline name.")
@click.option("--job", "job_id", default=None, help="Job ID (default: the latest job).")
@click.option("--datum", "datum_id", default=None, help="Only this datum's lines.")
@_output_option
@_state_option
def logs_cmd(pipeline: str, job_id: str | None, datum_id: str | None, output: str, as_json: bool,
             state_dir: Path | None) -> None:
    """Print what a pipeline's code wrote (stdout and stderr), per datum."""
    lines = _engine(state_dir).logs(pipeline, job_id=job_id, datum_id=datum_id)
    if _as_json(output, as_json):
        return _dump(lines)
    for line in lines:
        click.echo(line.message)


@cli.command("run")
@click.option("--executor", type=click.Choice(["process", "container"]),
              envvar="PIX2PIX_EXECUTOR", default=None, help="process (default) or container.")
@_state_option
def run_cmd(executor: str | None, state_dir: Path | None) -> None:
    """Run the jobs queued by --no-run / PIX2PIX_DEFER=1 (or left by a killed command)."""
    jobs = _Jobs()
    ran = _engine(state_dir, executor=executor, jobs=jobs).run_pending()
    if not ran:
        click.echo("nothing to run", err=True)
    jobs.check()


@cli.command("provenance")
@click.argument("source", metavar="REPO@REF:/path")
@_output_option
@_state_option
def provenance_cmd(source: str, output: str, as_json: bool, state_dir: Path | None) -> None:
    """Show the chain behind a file: datum, input files and commits, up to user commits."""
    from pix2pix.pachyderm.provenance import render
    ref = parse_ref(source)
    node = _engine(state_dir).provenance(ref.repo, ref.ref, ref.path or "/")
    if _as_json(output, as_json):
        return _dump(node)
    click.echo(render(node))
