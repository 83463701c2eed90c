"""``pix2pix list model``: the model registry of the embedded engine, one row per commit of the
``model`` repo: when it was made, its checkpoint and training commits, its training options
(the training commit's params.yaml), its metrics on the test pairs (``evaluate_model``) and the
branches that point at it (``production`` is the one generation and serving read).

    pix2pix list model
    pix2pix list model -o json
    pix2pix create branch model@production --head <commit>    # promote it, or roll back to it
"""
from __future__ import annotations

from pathlib import Path

import click

from pix2pix.cli.common import ago, dump, list_group, open_engine, output_option, state_option
from pix2pix.cli.common import table
from pix2pix.lineage import (EVAL_REPO, MODEL_REPO, EngineReader, ModelEntry, list_models,
                             metrics_summary, options_summary)

HEADERS = ["COMMIT", "CREATED", "BRANCHES", "CHECKPOINT", "TRAINING", "METRICS (test pairs)",
           "OPTIONS (params.yaml)"]


def model_rows(entries: list[ModelEntry]) -> list[list[str]]:
    """The table's rows (shared with ``pix2pix cluster models``)."""
    short = lambda c: c[:12] if c else "-"  # noqa: E731
    return [[e.commit, ago(e.created), ", ".join(e.branches) or "-", short(e.checkpoint_commit),
             short(e.training_commit),
             f"failed: {e.error[:40]}" if e.error else metrics_summary(e.metrics),
             options_summary(e.options)] for e in entries]


def print_models(entries: list[ModelEntry], *, fmt: str, model_repo: str) -> None:
    """``fmt``: table, json or yaml (see :func:`pix2pix.cli.common.output_option`)."""
    if fmt != "table":
        return dump([e.to_dict() for e in entries], fmt)
    if not entries:
        click.echo(f"no commits in repo {model_repo!r} yet (the model pipeline makes one per "
                   "training commit)", err=True)
        return
    table(HEADERS, model_rows(entries))


@list_group.command("model")
@click.option("--repo", "model_repo", default=MODEL_REPO, show_default=True,
              help="The repo of exported models.")
@click.option("--eval-repo", "eval_repo", default=EVAL_REPO, show_default=True,
              help="The repo whose metrics.json files score them (evaluate_model's output).")
@output_option
@state_option
def list_model_cmd(model_repo: str, eval_repo: str, fmt: str, state_dir: Path | None) -> None:
    """List every model commit: CREATED, BRANCHES, CHECKPOINT, TRAINING, METRICS, OPTIONS."""
    eng = open_engine(state_dir)
    eng.inspect_repo(model_repo)  # NotFoundError naming the repo when it does not exist
    entries = list_models(EngineReader(eng), model_repo=model_repo, eval_repo=eval_repo)
    print_models(entries, fmt=fmt, model_repo=model_repo)
