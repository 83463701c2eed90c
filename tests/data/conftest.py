"""Fixtures for the data, process and generate tests: image writers and a tiny exported model."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def save(path: Path, pixels: np.ndarray, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, np.uint8)).save(path, **kw)
    return path


def random_image(h: int, w: int, seed: int = 0, smooth: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if not smooth:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    small = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR))


def write_ab(path: Path, a: np.ndarray, b: np.ndarray) -> Path:
    return save(path, np.concatenate([a, b], axis=1))


def write_inverse_pairs(folder: Path, *, n: int = 3, h: int = 48,
                        w: int = 48) -> dict[str, np.ndarray]:
    """``n`` A|B files of random A and B = 255 - A, so any crop or flip that differs between
    the two halves shows; returns the A images by file name."""
    images = {}
    for i in range(n):
        a = random_image(h, w, seed=i)
        write_ab(folder / f"{i}.png", a, 255 - a)
        images[f"{i}.png"] = a
    return images


def build_export(folder: Path, *, size: int, op: str = "identity", options: bool = True) -> Path:
    """A SavedModel with the export's serving_default contract: uint8 [N,S,S,3] -> {"output"}.
    op: identity, invert (255 - x), or conv (a fixed 3x3 box blur, a real convolution)."""
    import tensorflow as tf

    class Tiny(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8,
                                                    name="images")])
        def serve(self, images):
            if op == "invert":
                return {"output": 255 - images}
            if op == "conv":
                x = tf.cast(images, tf.float32)
                k = tf.ones([3, 3, 3, 1], tf.float32) / 9.0
                y = tf.nn.depthwise_conv2d(x, k, [1, 1, 1, 1], "SAME")
                return {"output": tf.cast(tf.round(y), tf.uint8)}
            return {"output": tf.identity(images)}

    module = Tiny()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serve})
    if options:
        (folder / "options.json").write_text(json.dumps({"model": {"crop_size": size}}))
    return folder


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory) -> dict[str, Path]:
    """Tiny exports at size 64: identity and invert."""
    root = tmp_path_factory.mktemp("exports")
    return {op: build_export(root / op, size=64, op=op) for op in ("identity", "invert")}
