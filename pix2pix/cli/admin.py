"""pachctl's `version`, `fsck` and `garbage-collect` on the embedded engine."""
from __future__ import annotations

from pathlib import Path

import click

from pix2pix import __version__
from pix2pix.cli import cli
from pix2pix.cli.common import (
    emit, human_size, open_engine, output_option, state_option, table,
)
from pix2pix.errors import DataError, StoreBusyError


@cli.command("version")
@click.option("--client-only", is_flag=True, help="Only this command's own version.")
@output_option
def version_cmd(client_only: bool, fmt: str) -> None:
    """Print the versions: pix2pix, and the pachd API its embedded engine speaks."""
    from pix2pix.pachyderm.info import PACHD_VERSION
    versions = {"pix2pix": __version__}
    if not client_only:
        versions["pachd"] = ".".join(map(str, PACHD_VERSION)) + " (embedded engine)"
    emit(fmt, versions, lambda: table(["COMPONENT", "VERSION"], [list(kv) for kv in versions.items()]))


@cli.command("fsck")
@click.option("--fix", is_flag=True, help="Repair what can be repaired without guessing.")
@state_option
def fsck_cmd(fix: bool, state_dir: Path | None) -> None:
    """Check the engine's store: every branch head, parent and provenance commit exists, every
    reference (files, staged puts, datum outputs) finds its content at its recorded size, every
    blob hashes to its name, and nothing is garbage. Exits 3 if a problem is left."""
    from pix2pix.pachyderm import fsck
    problems = list(fsck.check(open_engine(state_dir), fix=fix))
    for p in problems:
        click.echo(p)
    left = [p for p in problems if "(fixed" not in p]
    if left:
        raise DataError(f"fsck: {len(left)} problem(s) found" + ("" if fix else
                        "; `pix2pix fsck --fix` repairs what it can"))
    click.echo("fsck: no problems found" if not problems else
               f"fsck: {len(problems)} problem(s) found and fixed", err=True)


@cli.command("garbage-collect")
@click.option("--wait", "wait_s", type=float, default=60.0, show_default=True,
              help="Seconds to wait for writers that have references on their way.")
@state_option
def garbage_collect_cmd(wait_s: float, state_dir: Path | None) -> None:
    """Remove what killed or failed writes left: blobs nothing refers to, temporary blobs and
    job folders of dead processes. Safe while other commands write (it waits for them)."""
    done = open_engine(state_dir).garbage_collect(wait_s=wait_s)
    if done is None:
        raise StoreBusyError(f"garbage-collect: other processes kept writing for {wait_s:g} s; "
                             "nothing was removed, retry when they are done")
    click.echo(f"garbage-collect: removed {done.blobs} unreferenced blob(s) "
               f"({human_size(done.bytes)}) and {done.scratch} scratch folder(s)", err=True)
