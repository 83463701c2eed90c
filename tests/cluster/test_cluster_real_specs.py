"""The shipped pipeline specs (TensorFlow training, export, preprocessing, generation) deployed
through `pix2pix cluster` onto `local serve`, with a tiny training budget set as data in
params.yaml at the root of the training repo."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_pair_image

REPO_ROOT = Path(__file__).resolve().parents[2]

PARAMS = """\
model: {ngf: 8, ndf: 8, crop_size: 256}
data: {preprocess: none, direction: AtoB}
train: {max_steps: 2, batch_size: 1, seed: 0, save_freq: 2, summary_freq: 0, keep_checkpoints: 1}
"""


@pytest.mark.slow
def test_real_specs_train_export_generate_and_trace(pix, tmp_path):
    r = pix("deploy", "--pipelines", str(REPO_ROOT / "pipelines"))
    assert "created pipeline generate_images" in r.output

    train = tmp_path / "train"
    for i in range(2):
        make_pair_image(train / f"{i}.png", size=64, seed=i)
    (tmp_path / "params.yaml").write_text(PARAMS)
    r = pix("put", "training", str(train), str(tmp_path / "params.yaml"))
    training_commit = r.output.split("commit ")[-1].strip()
    r = pix("wait", "training")
    assert "job checkpoint: success" in r.output and "job model: success" in r.output

    photo = tmp_path / "photos" / "house.jpg"
    photo.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(photo)
    r = pix("put", "input_images", str(photo.parent))
    images_commit = r.output.split("commit ")[-1].strip()
    r = pix("wait", "input_images")
    assert "job generate_images: success" in r.output

    out = tmp_path / "out"
    pix("get", "generate_images", "-o", str(out))
    outputs = [p for p in out.rglob("*") if p.is_file()]
    assert outputs, "generate_images wrote nothing"
    image_out = next(p for p in outputs if p.suffix.lower() in (".png", ".jpg"))
    assert Image.open(image_out).size == (256, 256)

    rel = "/" + image_out.relative_to(out).as_posix()
    t = json.loads(pix("provenance", f"generate_images@master:{rel}", "--json").output)
    assert t["commits"]["input_images"] == images_commit
    assert {t["commits"][r] for r in ("model", "checkpoint", "training")} == {training_commit}
    assert {"repo": "input_images", "commit": images_commit, "path": "/house.jpg"} in t["sources"]
