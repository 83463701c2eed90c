"""Model commands: train, test, export, evaluate. Each parses options and calls one library
function; TensorFlow is imported inside the commands, so `pix2pix --help` stays fast."""
from __future__ import annotations

import os
from pathlib import Path

import click

from pix2pix.cli import cli
from pix2pix.config import DataConfig, ModelConfig, TrainConfig, click_options

_dir = click.Path(path_type=Path, file_okay=False)

_INFERENCE = (
    click.option("--test_dropout", is_flag=True, default=None,
                 help="Keep dropout on at inference (default: the saved train option)."),
    click.option("--test_stats", type=click.Choice(["image", "running"]), default=None,
                 help="Batch-norm statistics at inference (default: the saved train option)."),
    click.option("--last_weights", is_flag=True, default=False,
                 help="The generator's last weights instead of their moving average (for a "
                      "run trained with --ema_decay > 0, the default)."),
)


def _quiet_tf() -> None:
    """Hide TensorFlow's C++ info/warning lines (set before TF is first imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _inference_options(fn):
    for opt in reversed(_INFERENCE):
        fn = opt(fn)
    return fn


@cli.command("train")
@click.option("--input_dir", required=True, type=_dir, help="Folder of A|B pair images.")
@click.option("--output_dir", required=True, type=_dir,
              help="Where options.json, checkpoints/ and logs/ go; an existing run here resumes.")
@click.option("--params", "params_file", type=click.Path(path_type=Path, dir_okay=False),
              help="YAML/JSON options (groups model/data/train or flat keys). Default: "
                   "params.yaml or params.json at the root of --input_dir, if any. Flags win.")
@click_options(ModelConfig)
@click_options(DataConfig)
@click_options(TrainConfig)
def train_cmd(input_dir: Path, output_dir: Path, params_file: Path | None,
              **given) -> None:
    """Train pix2pix, or resume the run in --output_dir.

    SIGINT/SIGTERM save a checkpoint and exit with code 130; run the same command again to
    resume from that step.
    """
    _quiet_tf()
    from pix2pix.train import resolve_options, train

    model, data, cfg = resolve_options(input_dir=input_dir, output_dir=output_dir,
                                       params_file=params_file, given=given)
    result = train(input_dir=input_dir, output_dir=output_dir, model=model, data=data, train=cfg)
    if result.signal is not None:
        click.echo(f"stopped at step {result.step}/{result.total_steps}; checkpoint "
                   f"{result.checkpoint}; run the same command to resume", err=True)
        # SystemExit, not ctx.exit: click's standalone_mode=False returns ctx.exit's code
        # instead of raising it, and pix2pix.cli.main would then exit 0.
        raise SystemExit(130)
    click.echo(f"done: step {result.step}, checkpoint {result.checkpoint}", err=True)


@cli.command("test")
@click.option("--checkpoint", type=_dir, help="A `pix2pix train` output folder.")
@click.option("--model", type=_dir, help="A `pix2pix export` folder (instead of --checkpoint).")
@click.option("--input_dir", required=True, type=_dir, help="Folder of A|B pair images.")
@click.option("--output_dir", required=True, type=_dir,
              help="Where images/, index.html and metrics.json go.")
@_inference_options
def test_cmd(checkpoint: Path | None, model: Path | None, input_dir: Path, output_dir: Path,
             test_dropout: bool | None, test_stats: str | None, last_weights: bool) -> None:
    """Translate test pairs; write images, an index.html and metrics.json (L1, PSNR, SSIM)."""
    _quiet_tf()
    from pix2pix.testmode import run_test

    run_test(input_dir=input_dir, output_dir=output_dir, checkpoint=checkpoint, model=model,
             test_dropout=test_dropout, test_stats=test_stats, last_weights=last_weights)


@cli.command("export")
@click.option("--checkpoint", required=True, type=_dir, help="A `pix2pix train` output folder.")
@click.option("--output_dir", required=True, type=_dir,
              help="New, empty, or earlier-export folder for the SavedModel.")
@_inference_options
def export_cmd(checkpoint: Path, output_dir: Path, test_dropout: bool | None,
               test_stats: str | None, last_weights: bool) -> None:
    """Export the latest checkpoint as a SavedModel (signatures serving_default: uint8 images
    -> uint8 images, and translate_png: encoded image -> PNG), with options.json."""
    _quiet_tf()
    from pix2pix.export import export

    out = export(checkpoint=checkpoint, output_dir=output_dir, test_dropout=test_dropout,
                 test_stats=test_stats, last_weights=last_weights)
    click.echo(f"exported {out}", err=True)


@cli.command("evaluate")
@click.option("--outputs", required=True, type=_dir, help="Folder of generated images.")
@click.option("--targets", required=True, type=_dir,
              help="Folder of target images, matched to outputs by relative name.")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the metrics to this JSON file.")
def evaluate_cmd(outputs: Path, targets: Path, json_path: Path | None) -> None:
    """L1 (on [0, 1]), PSNR and SSIM (max_val 1) per image and their mean."""
    _quiet_tf()
    from pix2pix.evaluate import evaluate_dirs, format_table, write_json

    result = evaluate_dirs(outputs=outputs, targets=targets)
    click.echo(format_table(result))
    if result["unmatched"]:
        click.echo(f"warning: {len(result['unmatched'])} image(s) without a counterpart, "
                   f"e.g. {result['unmatched'][0]}", err=True)
    if json_path is not None:
        write_json(result, json_path)
