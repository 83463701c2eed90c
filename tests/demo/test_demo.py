"""`pix2pix demo` end to end with a tiny budget: the four-stage DAG runs on the embedded engine,
the page shows every image, and a generated image traces back to the training data."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.demo import synthetic

REPO = Path(__file__).resolve().parents[2]


def test_synthetic_pairs_are_facades_layout(tmp_path: Path):
    paths = synthetic.write_pairs(tmp_path, count=3, size=64, seed=5)
    again = synthetic.write_pairs(tmp_path / "again", count=3, size=64, seed=5)
    for p, q in zip(paths, again):
        pair = np.asarray(Image.open(p))
        assert pair.shape == (64, 128, 3)
        assert np.array_equal(pair, np.asarray(Image.open(q))), "same seed, same data"
        labels = pair[:, 64:].reshape(-1, 3)
        palette = {tuple(c) for c in synthetic.LABELS.values()}
        assert {tuple(c) for c in np.unique(labels, axis=0)} <= palette, "B is a pure label map"
    assert not np.array_equal(np.asarray(Image.open(paths[0])), np.asarray(Image.open(paths[1])))


@pytest.mark.slow
def test_demo_runs_whole_dag(tmp_path: Path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "pix2pix", "demo", "--out", str(out), "--steps", "3",
         "--train-pairs", "4", "--images", "2", "--pipelines", str(REPO / "pipelines")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = (out / "index.html").read_text()
    for name in ("0000", "0001"):
        assert f"images/{name}-output.png" in page
        output = Image.open(out / "images" / f"{name}-output.png")
        assert output.size == Image.open(out / "images" / f"{name}-input.png").size
    # Provenance of one generated image names every stage back to the training commit.
    text = proc.stdout
    for repo in ("generate_images", "preprocess_images", "input_images", "model", "checkpoint", "training"):
        assert re.search(rf"{repo}@[0-9a-f]{{32}}", text), f"{repo} missing from provenance:\n{text}"
    assert "/params.yaml" in text

    # A second run on the same state reuses it: the repos and pipelines are updated, not duplicated.
    again = subprocess.run(
        [sys.executable, "-m", "pix2pix", "demo", "--out", str(out), "--steps", "3",
         "--train-pairs", "4", "--images", "2", "--pipelines", str(REPO / "pipelines")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]


def test_demo_names_missing_pipelines(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "pix2pix", "demo", "--out", str(tmp_path / "o"), "--pipelines", str(tmp_path / "nope")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "nope" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
