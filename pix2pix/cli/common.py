"""What the pachctl-style commands share: the --state/--no-run/--executor/-o options, the engine
they open, output as tables or JSON, and the command groups named after pachctl's verbs
(``pix2pix create ...``, ``list``, ``inspect``, ``delete``, ``put``, ``get``, ``wait``).

Every command takes ``--state DIR`` (env PIX2PIX_STATE, default ./.pix2pix). Commands that make
commits or pipelines run the downstream jobs before they return, unless ``--no-run`` (env
PIX2PIX_DEFER=1); ``pix2pix run`` runs what was deferred. A job that fails makes the command
exit with JobError's code after the commit itself has landed.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

import click

from pix2pix.cli import cli
from pix2pix.errors import JobError

# -- shared options ------------------------------------------------------------------------------


def state_option(fn: Callable) -> Callable:
    return click.option("--state", "state_dir", type=click.Path(file_okay=False, path_type=Path),
                        envvar="PIX2PIX_STATE", default=None,
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


def output_option(fn: Callable) -> Callable:
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(fn)
    fn = click.option("-o", "--output", "output", type=click.Choice(["table", "json"]),
                      default="table", help="Output format.")(fn)
    return fn


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


def open_engine(state_dir: Path | None, *, executor: str | None = None, no_run: bool | None = None,
            jobs: JobReport | None = None):
    from pix2pix.pachyderm.engine import Engine
    return Engine(state_dir, executor=executor, defer=True if no_run else None, on_job=jobs)


def wants_json(output: str, as_json: bool) -> bool:
    return as_json or output == "json"


def dump(value: Any) -> None:
    if isinstance(value, list):
        value = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]
    elif dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def table(headers: list[str], rows: list[list[str]]) -> None:
    """Columns aligned like pachctl's tabwriter output."""
    widths = [max([len(h)] + [len(str(r[i])) for r in rows]) for i, h in enumerate(headers)]
    for line in [headers] + rows:
        click.echo("   ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())


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
