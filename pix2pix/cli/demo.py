"""``pix2pix demo``: the whole four-stage DAG on the embedded engine."""
from __future__ import annotations

from pathlib import Path

import click

from pix2pix.cli import cli


@cli.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"), show_default=True,
              help="Folder for the HTML page, images and (by default) the engine state.")
@click.option("--state", type=click.Path(file_okay=False, path_type=Path), envvar="PIX2PIX_STATE",
              help="Engine state folder [default: OUT/state].")
@click.option("--data", type=click.Path(path_type=Path),
              help="Your own A|B training pairs (facades layout). Default: synthetic facades made by the package.")
@click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default="BtoA", show_default=True,
              help="Direction for --data (facades label->photo is BtoA).")
@click.option("--pipelines", type=click.Path(file_okay=False, path_type=Path),
              help="Folder with the four pipeline specs [default: the repo's pipelines/].")
@click.option("--steps", type=int, default=1200, show_default=True, help="Training steps.")
@click.option("--train-pairs", "train_pairs", type=int, default=200, show_default=True, help="Synthetic training pairs.")
@click.option("--images", type=int, default=6, show_default=True, help="Images to put into input_images.")
@click.option("--ngf", type=int, default=16, show_default=True, help="Generator/discriminator width of the demo model.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for data and training.")
def demo(**options) -> None:
    """Run the whole pipeline on this machine and write an HTML page of results.

    Creates the training and input_images repos and the four pipelines, commits training pairs
    with a params.yaml (checkpoint trains, model exports), commits label maps (preprocess_images
    and generate_images run), writes OUT/index.html and prints the provenance of one output.
    """
    from pix2pix.demo.run import DemoConfig, run_demo

    run_demo(DemoConfig(**options), log=click.echo)
