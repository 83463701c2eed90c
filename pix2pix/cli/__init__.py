"""The ``pix2pix`` command: one click group; each concern registers its subcommands from its
own module, and this module's group alone maps exceptions to exit codes.

Heavy imports (TensorFlow) happen inside the commands that need them, so engine verbs such as
``pix2pix list repo`` answer in a fraction of a second.
"""
from __future__ import annotations

import signal
import sys

import click

from pix2pix import __version__
from pix2pix.errors import Pix2PixError


class Pix2PixGroup(click.Group):
    """The ``pix2pix`` group. A user error raised by any command becomes one line on stderr and
    its class's exit code here, in the group, so click's CliRunner sees exactly what a shell
    sees; no traceback reaches the user."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Pix2PixError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            ctx.exit(1)
        except OSError as e:
            # Permission denied, disk full, read-only file system: the file and the reason.
            where = f"{e.filename}: " if e.filename else ""
            click.echo(f"Error: {where}{e.strerror or e}", err=True)
            ctx.exit(1)


@click.group(cls=Pix2PixGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="pix2pix")
def cli() -> None:
    """pix2pix image-to-image translation, run as a Pachyderm data-versioned pipeline.

    \b
    Model modes:     train, test, export, process, generate, evaluate, serve
    Engine:          pachctl's verbs on the embedded engine, typed as for pachctl:
                     create/inspect/list/delete project|repo|branch|pipeline,
                     put/get/list/inspect/copy/diff/glob/delete file,
                     start/finish/list/inspect/wait/subscribe/squash/delete commit,
                     stop/start/edit/draw pipeline, list/inspect/wait/stop/delete job,
                     list/inspect/restart datum, logs, run, provenance, fsck, version
    A real cluster:  cluster deploy|put|wait|get|provenance|status, local serve
    Everything:      demo
    """


def _register() -> None:
    # Each module adds its commands to `cli`; imported here so that a module's absence during
    # development never breaks the others.
    from pix2pix.cli import train as _train  # noqa: F401  train, test, export, evaluate
    from pix2pix.cli import images as _images  # noqa: F401  process, generate
    # pachctl's verbs on the embedded engine, one module per kind of thing, as pachctl's own
    # cmds packages are split (pfs: projects/repos/branches, files, commits; pps: pipelines, jobs).
    from pix2pix.cli import repos as _repos  # noqa: F401  projects, repos, branches
    from pix2pix.cli import files as _files  # noqa: F401  put/get/list/inspect/copy/diff/glob file
    from pix2pix.cli import commits as _commits  # noqa: F401  commits and commit sets
    from pix2pix.cli import pipelines as _pipelines  # noqa: F401  pipelines, draw, edit
    from pix2pix.cli import jobs as _jobs  # noqa: F401  jobs, datums, logs, run, provenance
    from pix2pix.cli import admin as _admin  # noqa: F401  version, fsck
    from pix2pix.cli import cluster as _cluster  # noqa: F401  cluster ..., local serve
    from pix2pix.cli import demo as _demo  # noqa: F401  demo
    from pix2pix.cli import serve as _serve  # noqa: F401  serve
    from pix2pix.cli import models as _models  # noqa: F401  list model


_register()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Console entry point. User errors are handled by the group (:class:`Pix2PixGroup`); what
    is left here is click's own: usage errors, --help/--version exits and Ctrl-C at a prompt."""
    # SIGTERM (timeout, kill, a pod stopping) unwinds like Ctrl-C, so a running job stops its
    # transform and removes its container instead of leaving them behind. `train` installs its
    # own handler (checkpoint, then exit).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        # Without standalone mode click returns ctx.exit(n)'s code instead of exiting with it.
        code = cli.main(args=argv, prog_name="pix2pix", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
