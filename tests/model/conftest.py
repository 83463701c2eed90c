"""Fixtures for the model tests: tiny configs, the dataset function, pair folders."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import make_pair_image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def make_dataset():
    """The data part's make_dataset (the contract every mode trains and tests through)."""
    from pix2pix.data.dataset import make_dataset
    return make_dataset


def write_pairs(folder: Path, n: int = 4, size: int = 64) -> Path:
    for i in range(n):
        make_pair_image(folder / f"{i}.png", size=size, seed=i)
    return folder


TINY_FLAGS = ["--generator", "unet_128", "--ngf", "8", "--ndf", "8", "--crop_size", "128",
              "--load_size", "128", "--summary_freq", "0"]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, make_dataset):
    """A `pix2pix train` output folder of a tiny unet_128 after 3 steps, and its pairs."""
    from pix2pix.config import DataConfig, ModelConfig, TrainConfig
    from pix2pix.train import train
    root = tmp_path_factory.mktemp("run")
    pairs = write_pairs(root / "pairs", n=3, size=128)
    train(input_dir=pairs, output_dir=root / "run",
          model=ModelConfig(generator="unet_128", ngf=8, ndf=8, crop_size=128),
          data=DataConfig(load_size=128), train=TrainConfig(max_steps=3, seed=0, summary_freq=2),
          progress=False, dataset_fn=make_dataset)
    return root / "run", pairs
