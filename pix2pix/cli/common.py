"""What the pachctl-style commands share: the --state/--no-run/--executor/--project options,
the engine they open, output as tables, JSON or YAML (``--raw``, ``-o``), and the command groups
named after pachctl's verbs (``pix2pix create repo``, as ``pachctl create repo``).

Every command takes ``--state DIR`` (env PIX2PIX_STATE, default ./.pix2pix). Commands that make
commits or pipelines run the downstream jobs before they return, unless ``--no-run`` (env
PIX2PIX_DEFER=1); ``pix2pix run`` runs what was deferred. As with pachctl, a command whose
commit landed exits 0 and reports a downstream job's failure on stderr; ``--strict`` makes it
exit with JobError's code instead.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from pix2pix.cli import cli
from pix2pix.errors import JobError, Pix2PixError, UsageError
from pix2pix.pachyderm.refs import FileRef, parse_ref, qualify, split_name

# -- shared options ------------------------------------------------------------------------------


# pachd's pipeline states: pachctl's `list pipeline --state running` would otherwise be taken
# for a state folder named "running" (and an empty engine made there).
_PIPELINE_STATES = {"starting", "running", "restarting", "failure", "failed", "paused", "standby",
                    "crashing"}


def _check_state_dir(ctx: click.Context, param: click.Parameter, value: Path | None):
    if value is not None and value.name.lower() in _PIPELINE_STATES and not value.exists():
        raise UsageError(f"--state {value}: --state names the engine's state folder here, not a "
                         "pipeline state; filter pipelines with --raw and jq")
    return value


def state_option(fn: Callable) -> Callable:
    return click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path),
                        envvar="PIX2PIX_STATE", default=None, callback=_check_state_dir,
                        help="State folder of the embedded engine [env PIX2PIX_STATE; "
                             "default ./.pix2pix].")(fn)


def run_options(fn: Callable) -> Callable:
    fn = click.option("--no-run", "no_run", is_flag=True, default=None,
                      help="Queue the downstream pipelines instead of running them now "
                           "(`pix2pix run` runs them) [env PIX2PIX_DEFER=1].")(fn)
    fn = click.option("--executor", type=click.Choice(["process", "container"]),
                      envvar="PIX2PIX_EXECUTOR", default=None,
                      help="Run transforms here (process, default) or in transform.image "
                           "(container: docker, podman or buildah) [env PIX2PIX_EXECUTOR].")(fn)
    return fn


FORMATS = ("table", "json", "yaml")


def output_option(fn: Callable) -> Callable:
    """pachctl's ``--raw`` and ``-o/--output json|yaml``, plus ``--json``: the command gets one
    ``fmt`` argument, ``table``, ``json`` or ``yaml``. (pachctl wants ``--raw`` before ``-o``;
    here ``-o json`` alone is enough, and ``--raw`` alone means JSON.)"""
    @functools.wraps(fn)
    def wrapper(*args: Any, raw: bool, output: str | None, as_json: bool, **kwargs: Any) -> Any:
        fmt = "json" if as_json else output or ("json" if raw else "table")
        if raw and fmt == "table":
            fmt = "json"
        return fn(*args, fmt=fmt, **kwargs)
    wrapper = click.option("--json", "as_json", is_flag=True, help="Print JSON (same as --raw).")(wrapper)
    wrapper = click.option("-o", "--output", "output", type=click.Choice(FORMATS), default=None,
                           help="Output format: table (default), json or yaml.")(wrapper)
    wrapper = click.option("--raw", is_flag=True, help="Print the data itself (JSON, or YAML "
                                                       "with -o yaml) instead of a table.")(wrapper)
    return wrapper


def project_option(fn: Callable) -> Callable:
    """pachctl's ``--project``: names without ``project/`` are looked up in this project."""
    return click.option("--project", default=None, envvar="PIX2PIX_PROJECT",
                        help="Project of the names given without one [env PIX2PIX_PROJECT; "
                             "default: default].")(fn)


def qname(project: str | None, name: str) -> str:
    """``name`` in ``project`` (a name that already says ``project/`` keeps its own)."""
    return name if "/" in name else qualify(project, name)


def ref_arg(project: str | None, text: str, **kwargs: Any) -> FileRef:
    """``repo[@ref][:/path]`` as pachctl parses it, the repo qualified by ``--project``."""
    ref = parse_ref(text, **kwargs)
    return dataclasses.replace(ref, repo=qname(project, ref.repo))


def split_qname(name: str) -> tuple[str, str]:
    """("proj", "images") for ``proj/images``; ("default", "images") for ``images``."""
    return split_name(name)


class JobReport:
    """Collects the jobs a command ran, prints one line per job on stderr."""

    def __init__(self) -> None:
        self.jobs: list = []

    def __call__(self, job) -> None:
        self.jobs.append(job)
        counts = f"{job.processed} processed, {job.skipped} skipped, {job.failed} failed, {job.total} total"
        click.echo(f"job {job.pipeline}@{job.id}: {job.state} ({counts})"
                   + (f": {job.reason}" if job.reason else ""), err=True)

    def failed(self) -> list:
        return [j for j in self.jobs if j.state != "success"]

    def check(self) -> None:
        bad = self.failed()
        if bad:
            j = bad[0]
            raise JobError(f"job {j.pipeline}@{j.id} failed: {j.reason}; see `pix2pix inspect job "
                           f"{j.pipeline}@{j.id}` and `pix2pix logs -p {j.pipeline} --job {j.id}`"
                           + (f" ({len(bad) - 1} more failed job(s))" if len(bad) > 1 else ""))


def strict_option(fn: Callable) -> Callable:
    return click.option("--strict", is_flag=True,
                        help="Exit with JobError's code (7) if a job this command ran failed "
                             "(without it, as pachctl: exit 0 once the commit landed, and the "
                             "failure reported on stderr).")(fn)


def report_jobs(jobs: "JobReport", strict: bool) -> None:
    """Failed jobs: a JobError with --strict; else one warning line each (the commit stays)."""
    if strict:
        jobs.check()
    for j in jobs.failed():
        click.echo(f"warning: job {j.pipeline}@{j.id} ended {j.state}: {j.reason}; the commit "
                   f"landed (see `pix2pix logs -p {j.pipeline} --job {j.id}`)", err=True)


@contextlib.contextmanager
def says_what_landed(read: Callable[[], Any], say: Callable[[Any, Any], str]) -> Iterator[None]:
    """An error inside ends with what really changed: ``read()`` (of the store) is taken before
    and again after the fault, and ``say(before, after)`` words the difference. A fault after a
    commit landed (a job's disk filling up) must not read as if nothing had happened."""
    before = read()
    try:
        yield
    except Pix2PixError as e:
        try:
            after = read()
        except Pix2PixError:
            raise e from None  # the store cannot be read either: say only what failed
        raise type(e)(f"{e}; {say(before, after)}") from None


def branch_head(eng, repo: str, branch: str) -> Callable[[], Any]:
    """A ``read`` for :func:`says_what_landed`: the branch's head commit (None: no branch)."""
    def read() -> Any:
        b = eng.store.get_branch(repo, branch)
        return None if b is None else b.head
    return read


def landed(repo: str) -> Callable[[Any, Any], str]:
    """A ``say`` for :func:`says_what_landed` over :func:`branch_head`."""
    return lambda before, after: (f"commit {repo}@{after} landed" if after != before
                                  else "nothing was committed")


# Verbs that only read: on a state folder that does not exist they read an empty store (as
# pachctl's on an empty cluster) instead of making one there (a `pix2pix list repo` typed in
# the wrong folder used to leave a ./.pix2pix behind).
READ_ONLY_VERBS = {"list", "inspect", "get", "glob", "diff", "logs", "draw", "wait",
                   "subscribe", "provenance", "fsck", "garbage-collect"}


def open_engine(state_dir: Path | None, *, executor: str | None = None, no_run: bool | None = None,
            jobs: JobReport | None = None):
    from pix2pix.pachyderm.engine import Engine, default_state_dir
    ctx = click.get_current_context(silent=True)
    words = ctx.command_path.split() if ctx is not None else []
    if len(words) > 1 and words[1] in READ_ONLY_VERBS:
        folder = state_dir if state_dir is not None else default_state_dir()
        if not (Path(folder) / "engine.db").is_file():
            state_dir = Path(tempfile.mkdtemp(prefix="pix2pix-empty-"))
            atexit.register(shutil.rmtree, state_dir, True)
    return Engine(state_dir, executor=executor, defer=True if no_run else None, on_job=jobs)


def plain(value: Any) -> Any:
    """Dataclasses (also inside lists and dicts) as JSON-able dicts; enums as their values."""
    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return dataclasses.asdict(v)
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v
    return json.loads(json.dumps(conv(value), default=str))


def dump(value: Any, fmt: str = "json") -> None:
    """Print ``value`` as JSON (one document, indented) or YAML."""
    if fmt == "yaml":
        import yaml
        click.echo(yaml.safe_dump(plain(value), sort_keys=True, allow_unicode=True).rstrip())
    else:
        click.echo(json.dumps(plain(value), indent=2, sort_keys=True))


def emit(fmt: str, value: Any, render: Callable[[], None]) -> None:
    """``value`` as data when ``fmt`` asks for it, else ``render()`` (the table)."""
    if fmt == "table":
        render()
    else:
        dump(value, fmt)


def cell(value: Any) -> str:
    """A table cell on one line: newlines and tabs in names are shown escaped, as Python
    writes them (a file name holding a newline would otherwise break the table)."""
    return str(value).translate(_ESCAPES)


_ESCAPES = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


def table(headers: list[str], rows: list[list[str]]) -> None:
    """Columns aligned like pachctl's tabwriter output."""
    rows = [[cell(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    for line in [headers] + rows:
        click.echo("   ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())


def ago(t: float | None) -> str:
    if t is None:
        return "-"
    d = max(0.0, time.time() - t)
    for unit, n in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if d >= n:
            k = int(d // n)
            return f"{k} {unit}{'s' if k > 1 else ''} ago"
    return f"{int(d)} seconds ago" if d >= 2 else "just now"


def human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.4g}{unit}"
        n /= 1024
    return str(n)


def duration(a: float | None, b: float | None) -> str:
    if a is None:
        return "-"
    d = (b or time.time()) - a
    return f"{d:.1f}s" if d < 60 else f"{int(d // 60)}m{int(d % 60)}s"


# -- groups named after pachctl's verbs (``pix2pix VERB NOUN``, as ``pachctl VERB NOUN``) ------

@cli.group("create")
def create_group() -> None:
    """Create a project, repo, branch or pipeline."""


@cli.group("update")
def update_group() -> None:
    """Update a project, repo or pipeline."""


@cli.group("list")
def list_group() -> None:
    """List projects, repos, branches, commits, files, pipelines, jobs or datums."""


@cli.group("inspect")
def inspect_group() -> None:
    """Show one project, repo, branch, commit, file, pipeline, job or datum."""


@cli.group("delete")
def delete_group() -> None:
    """Delete a project, repo, branch, commit, file, pipeline or job."""


@cli.group("put")
def put_group() -> None:
    """Put files into a repo."""


@cli.group("get")
def get_group() -> None:
    """Get files out of a repo."""


@cli.group("copy")
def copy_group() -> None:
    """Copy files between repos or commits (no data is copied, only references)."""


@cli.group("diff")
def diff_group() -> None:
    """Show what differs between two commits' files."""


@cli.group("glob")
def glob_group() -> None:
    """List the files a glob pattern matches."""


@cli.group("start")
def start_group() -> None:
    """Start a commit or a stopped pipeline."""


@cli.group("finish")
def finish_group() -> None:
    """Finish a commit."""


@cli.group("squash")
def squash_group() -> None:
    """Squash a commit set into its children."""


@cli.group("subscribe")
def subscribe_group() -> None:
    """Print commits as they finish, until interrupted."""


@cli.group("wait")
def wait_group() -> None:
    """Wait for a commit, commit set or job."""


@cli.group("stop")
def stop_group() -> None:
    """Stop a pipeline or a job."""


@cli.group("restart")
def restart_group() -> None:
    """Restart a running job's datums."""


@cli.group("draw")
def draw_group() -> None:
    """Draw the pipelines' graph."""


@cli.group("edit")
def edit_group() -> None:
    """Edit a pipeline's spec in $EDITOR and update it."""
