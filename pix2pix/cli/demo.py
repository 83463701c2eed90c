"""``pix2pix demo``: the whole DAG on the embedded engine: train, export, evaluate, promote,
generate, serve."""
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
              help="Folder with the six pipeline specs [default: the repo's pipelines/].")
@click.option("--steps", type=int, default=1200, show_default=True, help="Training steps.")
@click.option("--train-pairs", "train_pairs", type=int, default=200, show_default=True, help="Synthetic training pairs.")
@click.option("--images", type=int, default=6, show_default=True, help="Images to put into input_images.")
@click.option("--ngf", type=int, default=16, show_default=True, help="Generator/discriminator width of the demo model.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for data and training.")
@click.option("--port", type=click.IntRange(1, 65535), default=30501, show_default=True,
              help="Port of 127.0.0.1 the model is served on (serve_model's externalPort).")
@click.option("--stop-service", "stop_service", is_flag=True,
              help="Stop serve_model at the end (by default it serves on in the background).")
def demo(**options) -> None:
    """Run the whole pipeline on this machine, write an HTML page of results, and leave the
    model served in the background (stop it with `pix2pix stop pipeline serve_model`).

    Creates the training, input_images and test_pairs repos and the six pipelines, commits
    held-out test pairs, training pairs with a params.yaml (checkpoint trains, model exports,
    evaluate_model scores it), promotes the model to branch production, commits label maps
    (preprocess_images and generate_images run), writes OUT/index.html, prints the provenance
    of one output, checks that serve_model answers and prints its URL and a curl line.
    """
    from pix2pix.demo.run import DemoConfig, run_demo

    run_demo(DemoConfig(**options), log=click.echo)
