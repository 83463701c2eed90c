"""Image commands: process (prepare folders) and generate (translate files with a model).
Each parses options and calls one library function."""
from __future__ import annotations

import os
from pathlib import Path

import click

from pix2pix.cli import cli
from pix2pix.errors import DataError
from pix2pix.data.images import WRITE_FORMATS

_dir = click.Path(path_type=Path, file_okay=False)
_BAD = click.Choice(["skip", "fail"])
_FORMATS = click.Choice(list(WRITE_FORMATS))


@cli.command("process")
@click.argument("operation", type=click.Choice(
    ["resize", "combine", "split", "blank", "grayscale", "edges", "tile", "untile"]))
@click.option("--input_dir", required=True, type=_dir,
              help="Images to process (recursively); for combine the A images; for untile the "
                   "folder of *.tiles.json manifests.")
@click.option("--output_dir", required=True, type=_dir,
              help="Where the results go, at the same relative paths.")
@click.option("--b_dir", type=_dir, help="combine: the B images, matched to A by relative name.")
@click.option("--size", default=256, show_default=True, help="resize: output side in pixels.")
@click.option("--pad", is_flag=True,
              help="resize: pad to a square (black) instead of centre-cropping.")
@click.option("--blank_fraction", default=0.3, show_default=True,
              help="blank: side of the white centre square, as a fraction of the short side.")
@click.option("--sigma", default=1.0, show_default=True,
              help="edges: Gaussian blur (pixels) before the gradient.")
@click.option("--low", default=0.1, show_default=True,
              help="edges: weak-edge threshold, fraction of the strongest gradient.")
@click.option("--high", default=0.2, show_default=True,
              help="edges: strong-edge threshold, fraction of the strongest gradient.")
@click.option("--tile_size", default=256, show_default=True, help="tile: tile side in pixels.")
@click.option("--overlap", default=32, show_default=True,
              help="tile: pixels shared by neighbouring tiles.")
@click.option("--tiles_dir", type=_dir,
              help="untile: folder of the tiles (e.g. generate's output); default: beside the "
                   "manifests.")
@click.option("--format", "fmt", type=_FORMATS, default="png", show_default=True,
              help="Output image format.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1),
              help="Processes working in parallel.")
@click.option("--on_bad_image", type=_BAD, default="skip", show_default=True,
              help="An undecodable image is named in a warning and skipped, or stops the run.")
def process_cmd(operation: str, input_dir: Path, output_dir: Path, workers: int, **opts) -> None:
    """Prepare images: OPERATION is one of resize, combine, split, blank, grayscale, edges,
    tile, untile (see the README for each)."""
    from pix2pix.process import ProcessOptions, process

    result = process(operation=operation, input_dir=input_dir, output_dir=output_dir,
                     options=ProcessOptions(**opts), workers=workers)
    nothing_written(operation, result.written, result.skipped, input_dir)
    click.echo(f"{operation}: {result.written} file(s) written to {output_dir}"
               + (f", {result.skipped} input(s) skipped" if result.skipped else ""), err=True)


@cli.command("generate")
@click.option("--model", "model_dir", type=_dir,
              help="An exported model (`pix2pix export` folder with saved_model.pb).")
@click.option("--checkpoint", type=_dir, help="A `pix2pix train` output folder instead.")
@click.option("--input", "inputs", required=True, multiple=True,
              type=click.Path(path_type=Path),
              help="An image file or a folder of them (recursive); repeatable.")
@click.option("--output_dir", required=True, type=_dir,
              help="Where the translated images go, at the inputs' relative paths.")
@click.option("--batch_size", default=4, show_default=True, type=click.IntRange(1),
              help="Images (or tiles) per model call.")
@click.option("--format", "fmt", type=_FORMATS, default="png", show_default=True,
              help="Output image format.")
@click.option("--tile", type=click.Choice(["off", "on", "auto"]), default=None,
              help="off: resize each image to the model size and back. on: translate "
                   "overlapping model-size tiles and blend them (any size, bounded memory). "
                   "auto: tile images larger than twice the model size. [default: on for a "
                   "model trained with --preprocess patches, else off]")
@click.option("--overlap", default=32, show_default=True, help="Tile overlap in pixels.")
@click.option("--resize_back/--model_size", default=True, show_default=True,
              help="Write each output at its input's size, or at the model size.")
@click.option("--workers", default=lambda: min(4, os.cpu_count() or 1),
              show_default="min(4, CPUs)", type=click.IntRange(1),
              help="Decode threads and encode threads (each).")
@click.option("--on_bad_image", type=_BAD, default="skip", show_default=True,
              help="An undecodable image is named in a warning and skipped, or stops the run.")
@click.option("--precision", type=click.Choice(["float32", "bfloat16", "float16", "auto"]),
              default="float32", show_default=True,
              help="Arithmetic of an exported model: float32, bfloat16 (CPUs with AVX512_BF16 "
                   "or AMX; outputs within a few levels of float32), float16 (NVIDIA GPUs), or "
                   "auto (a short timed probe of float32 against the device's 16-bit format "
                   "on this model and batch size keeps the faster; cached per machine).")
@click.option("--datum_batching", is_flag=True, default=None,
              help="Serve Pachyderm datums one after another with the model loaded once "
                   "(default: on when PPS_WORKER_GRPC_PORT is set, i.e. inside a worker).")
def generate_cmd(model_dir: Path | None, checkpoint: Path | None, inputs: tuple[Path, ...],
                 output_dir: Path, datum_batching: bool | None, precision: str,
                 **opts) -> None:
    """Translate images with a trained model."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pix2pix.generate import (WORKER_PORT_ENV, GenerateOptions, generate, load_model,
                                  serve_datums)

    options = GenerateOptions(**opts)
    translator = None

    def run_once() -> None:
        nonlocal translator
        if translator is None:  # loaded once; under datum batching /pfs/model exists only after NextDatum
            translator = load_model(model=model_dir, checkpoint=checkpoint,
                                    precision=precision, batch_size=options.batch_size)
        result = generate(translator=translator, inputs=list(inputs), output_dir=output_dir,
                          options=options)
        nothing_written("generate", result.written, result.skipped,
                        ", ".join(map(str, inputs)))
        click.echo(f"generate: {result.written} image(s) written to {output_dir}"
                   + (f" ({translator.precision})" if translator.precision != "float32" else "")
                   + (f" ({result.tiled} tiled)" if result.tiled else "")
                   + (f", {result.skipped} skipped" if result.skipped else ""), err=True)

    if datum_batching is None:
        datum_batching = bool(os.environ.get(WORKER_PORT_ENV))
    if datum_batching:
        serve_datums(run_once)
    else:
        run_once()


def nothing_written(what: str, written: int, skipped: int, inputs: object) -> None:
    """Every input skipped is no success: exit as an empty folder does (DataError), so a
    pipeline datum whose file is not an image fails, naming why, instead of passing empty."""
    if written == 0 and skipped:
        raise DataError(f"{inputs}: no image written: {what} skipped all {skipped} input(s) "
                        "(each is named in a warning above)")
