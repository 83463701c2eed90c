"""Fixtures for the model tests: tiny configs, a dataset function, pair folders."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_pair_image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _stand_in_make_dataset(input_dir, *, data, crop_size, batch_size, training, seed,
                           repeat=False):
    """The data contract (pix2pix.data.dataset.make_dataset) on A|B PNGs, without jitter:
    used only while the data part is absent."""
    import tensorflow as tf
    from PIL import Image

    from pix2pix.errors import DataError
    files = sorted(p for p in Path(input_dir).iterdir() if p.suffix in (".png", ".jpg"))
    if not files:
        raise DataError(f"{input_dir}: no images")
    a, b, names = [], [], []
    for p in files:
        im = np.asarray(Image.open(p).convert("RGB").resize((2 * crop_size, crop_size)))
        left, right = im[:, :crop_size], im[:, crop_size:]
        if data.direction == "BtoA":
            left, right = right, left
        a.append(left), b.append(right), names.append(p.name)
    to = lambda x: np.stack(x).astype(np.float32) / 127.5 - 1.0  # noqa: E731
    ds = tf.data.Dataset.from_tensor_slices((to(a), to(b), names))
    if training:
        ds = ds.shuffle(len(files), seed=seed)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size), len(files)


def _real_make_dataset():
    try:
        from pix2pix.data.dataset import make_dataset
    except ImportError:
        return None
    return make_dataset


@pytest.fixture(scope="session")
def make_dataset():
    """The data part's make_dataset once it exists, else the stand-in above."""
    return _real_make_dataset() or _stand_in_make_dataset


@pytest.fixture(scope="session")
def real_make_dataset():
    fn = _real_make_dataset()
    if fn is None:
        pytest.skip("pix2pix.data.dataset not written yet: the CLI training tests need it")
    return fn


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
