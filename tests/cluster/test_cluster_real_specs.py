"""The shipped pipeline specs (TensorFlow training, export, evaluation, preprocessing,
generation, serving) deployed through `pix2pix cluster` onto `local serve`, with a tiny training
budget set as data in params.yaml at the root of the training repo: the model is evaluated,
listed by `cluster models`, promoted by `cluster promote`, and then generation and serving
use it."""
from __future__ import annotations

import json
import shutil
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.demo.run import with_service_ports
from tests.conftest import make_pair_image

REPO_ROOT = Path(__file__).resolve().parents[2]

PARAMS = """\
model: {ngf: 8, ndf: 8, crop_size: 256}
data: {preprocess: none, direction: AtoB}
train: {max_steps: 2, batch_size: 1, seed: 0, save_freq: 2, summary_freq: 0, keep_checkpoints: 1}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _specs_on_free_ports(folder: Path) -> tuple[Path, int]:
    """A copy of pipelines/ whose serve_model listens on free ports (tests run side by side)."""
    shutil.copytree(REPO_ROOT / "pipelines", folder)
    port = _free_port()
    for name in ("serve_model.json", "serve_model-gpu.json"):
        spec = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps(
            with_service_ports(spec, external=port, internal=_free_port())))
    return folder, port


@pytest.mark.slow
def test_real_specs_train_export_generate_and_trace(pix, tmp_path):
    specs, port = _specs_on_free_ports(tmp_path / "pipelines")
    r = pix("deploy", "--pipelines", str(specs))
    assert "created pipeline generate_images" in r.output
    assert "created pipeline serve_model" in r.output and "created repo test_pairs" in r.output
    pairs = tmp_path / "test_pairs"
    make_pair_image(pairs / "t0.png", size=64, seed=7)
    pix("put", "test_pairs", str(pairs))

    train = tmp_path / "train"
    for i in range(2):
        make_pair_image(train / f"{i}.png", size=64, seed=i)
    (tmp_path / "params.yaml").write_text(PARAMS)
    r = pix("put", "training", str(train), str(tmp_path / "params.yaml"))
    training_commit = r.output.split("commit ")[-1].strip()
    r = pix("wait", "training")
    assert "job checkpoint: success" in r.output and "job model: success" in r.output
    assert "job evaluate_model: success" in r.output
    models = json.loads(pix("models", "-o", "json").output)
    assert [(m["commit"], m["training_commit"], m["evaluated_images"]) for m in models] == \
        [(training_commit, training_commit, 1)]
    assert models[0]["options"]["train"]["max_steps"] == 2 and models[0]["branches"] == ["master"]
    r = pix("promote", training_commit)
    assert r.output.strip().startswith(f"model@production -> {training_commit}")

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

    # the promoted model serves, and says which commit it is
    deadline = time.monotonic() + 240
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as h:
                health = json.loads(h.read())
            if health.get("commit") == training_commit:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "serve_model never served the promoted model"
        time.sleep(0.5)
    models = json.loads(pix("models", "--json").output)
    assert models[0]["branches"] == ["master", "production"]
