"""``pix2pix serve``: an exported model over HTTP (TF Serving's REST API, image bytes, a web
page). Parses options and runs :class:`pix2pix.serving.Server` until SIGINT/SIGTERM; SIGHUP
reloads the model in place."""
from __future__ import annotations

import os
import shlex
import signal
import time
from pathlib import Path

import click

from pix2pix.cli import cli
from pix2pix.config import build, click_options
from pix2pix.serving.options import ServeOptions


@cli.command("serve")
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path),
              help="A `pix2pix export` folder (saved_model.pb + options.json); read again on "
                   "SIGHUP.")
@click.option("--port", type=click.IntRange(0, 65535), default=8501, show_default=True,
              help="TCP port (TF Serving's REST port by default); 0 takes a free one.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 for every interface (a container); auto: "
                   "0.0.0.0 inside a Kubernetes pod (a Pachyderm service on a cluster, where "
                   "KUBERNETES_SERVICE_HOST is set), else 127.0.0.1 (the embedded engine).")
@click.option("--model_info", type=click.Path(path_type=Path, dir_okay=False),
              envvar="PIX2PIX_MODEL_INFO", show_envvar=True,
              help='JSON naming the model: {"commit", "repo", "branch", "provenance", '
                   '"metrics"}; shown on the page and in /v1/models/NAME/info, read again on '
                   "SIGHUP.")
@click.option("--model_commit", envvar="model_COMMIT", show_envvar=True,
              help="The model commit to name when the model info has none; Pachyderm sets "
                   "model_COMMIT for a pipeline input named model.")
@click.option("--datum_env", type=click.Path(path_type=Path, dir_okay=False),
              help="Pachyderm's env file of the datum (/pfs/.env), read at every (re)load: the "
                   "commit of the input --model lies in names the model (the embedded engine "
                   "rewrites it before a SIGHUP swap). A missing file is ignored.")
@click.option("--lineage", is_flag=True,
              help="At every (re)load, look the model commit up in the Pachyderm this runs in "
                   "($PIX2PIX_STATE's engine, or pachd from a pod): its checkpoint and training "
                   "commits, training options and metrics, shown on the page and in /info.")
@click_options(ServeOptions)
def serve_cmd(model_dir: Path, port: int, host: str, model_info: Path | None,
              model_commit: str | None, datum_env: Path | None, lineage: bool,
              **given) -> None:
    """Serve an exported model over HTTP until Ctrl-C or SIGTERM; SIGHUP swaps in the model
    found at --model again without losing a request. See docs/serving.md."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pix2pix.serving.server import Server

    options = build(ServeOptions, given, source="serve options")

    def echo(line: str) -> None:
        click.echo(line, err=True)

    if host == "auto":
        host = "0.0.0.0" if os.environ.get("KUBERNETES_SERVICE_HOST") else "127.0.0.1"
    source = None
    if datum_env is not None or lineage:
        from pix2pix.serving.lineage import info_source
        source = info_source(model_dir, datum_env=datum_env, lineage=lineage, echo=echo)
    server = Server(model_dir, host=host, port=port, model_info=model_info,
                    model_commit=model_commit, options=options, info_source=source, echo=echo)

    def hangup(signum: int, frame: object) -> None:
        echo(f"SIGHUP: reloading {model_dir}")
        server.request_reload()

    # Before listening: a supervisor may send SIGHUP as soon as the port accepts, and SIGHUP's
    # default action would end the process.
    previous = signal.signal(signal.SIGHUP, hangup)
    try:
        server.start(load=False)  # listening: /healthz says 503 while the model loads
    except BaseException:
        signal.signal(signal.SIGHUP, previous)
        raise
    try:
        try:
            server.reload()
        except BaseException:  # a bad export, or Ctrl-C while loading: nothing was served
            server.stop(grace_s=0)
            raise
        example = (f"curl -s --data-binary @image.png -o out.png "
                   f"{shlex.quote(server.url + 'predict')}")
        echo(f"ready: {options.model_name} at {server.url}  try: {example}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:  # SIGINT, or SIGTERM (pix2pix.cli.main turns it into this)
            pass
    finally:
        signal.signal(signal.SIGHUP, previous)
    version = server.version
    stats = server.stop()
    echo(f"stopped: {stats['ok']} prediction(s) answered, {stats['client_errors']} refused as "
         f"bad input, {stats['rejected_503']} refused as busy (503), {stats['server_errors']} "
         f"failed; last model version {version} at {server.url}")
