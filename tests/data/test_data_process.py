"""process: each operation on small images, round trips, bad files, the CLI."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pix2pix.cli import cli
from pix2pix.errors import DataError, UsageError
from pix2pix.process import ProcessOptions, canny, process
from tests.data.conftest import random_image, save


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _bands(h: int, w: int) -> np.ndarray:
    """Red | green | blue vertical bands: columns [0, w/5) red, [4w/5, w) blue."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 5, 0] = 255
    img[:, w // 5: 4 * w // 5, 1] = 255
    img[:, 4 * w // 5:, 2] = 255
    return img


def test_resize_centre_crop(tmp_path: Path):
    save(tmp_path / "in" / "sub" / "wide.bmp", _bands(60, 100))
    r = process(operation="resize", input_dir=tmp_path / "in", output_dir=tmp_path / "out",
                options=ProcessOptions(size=32))
    out = _read(tmp_path / "out" / "sub" / "wide.png")  # relative path kept, PNG
    assert r.written == 1 and out.shape == (32, 32, 3)
    assert out[..., 1].min() > 240 and out[..., [0, 2]].max() < 15  # only the green centre


def test_resize_pad(tmp_path: Path):
    save(tmp_path / "in" / "wide.png", np.full((60, 100, 3), 255, np.uint8))
    process(operation="resize", input_dir=tmp_path / "in", output_dir=tmp_path / "out",
            options=ProcessOptions(size=50, pad=True))
    out = _read(tmp_path / "out" / "wide.png")
    assert out.shape == (50, 50, 3)
    assert out[:8].max() == 0 and out[-8:].max() == 0 and out[20:30].min() == 255


def test_combine_then_split_round_trip(tmp_path: Path):
    a = {f"{i}": random_image(20, 24, seed=i) for i in range(3)}
    b = {f"{i}": random_image(20, 24, seed=10 + i) for i in range(3)}
    for k in a:
        save(tmp_path / "A" / "d" / f"{k}.png", a[k])
        save(tmp_path / "B" / "d" / f"{k}.jpg" if k == "0" else tmp_path / "B" / "d" / f"{k}.png",
             b[k], **({"quality": 100} if k == "0" else {}))
    process(operation="combine", input_dir=tmp_path / "A", output_dir=tmp_path / "AB",
            options=ProcessOptions(b_dir=tmp_path / "B"))
    combined = _read(tmp_path / "AB" / "d" / "1.png")
    assert combined.shape == (20, 48, 3)
    process(operation="split", input_dir=tmp_path / "AB", output_dir=tmp_path / "S",
            options=ProcessOptions(), workers=2)
    for k in ("1", "2"):
        assert np.array_equal(_read(tmp_path / "S" / "A" / "d" / f"{k}.png"), a[k])
        assert np.array_equal(_read(tmp_path / "S" / "B" / "d" / f"{k}.png"), b[k])
    assert np.array_equal(_read(tmp_path / "S" / "A" / "d" / "0.png"), a["0"])


def test_combine_size_mismatch_is_skipped_or_fails(tmp_path: Path, caplog):
    save(tmp_path / "A" / "1.png", random_image(10, 10))
    save(tmp_path / "B" / "1.png", random_image(12, 10))
    save(tmp_path / "A" / "2.png", random_image(10, 10))
    save(tmp_path / "B" / "2.png", random_image(10, 10))
    with caplog.at_level(logging.WARNING):
        r = process(operation="combine", input_dir=tmp_path / "A", output_dir=tmp_path / "o",
                    options=ProcessOptions(b_dir=tmp_path / "B"))
    assert (r.written, r.skipped) == (1, 1) and "1.png" in caplog.text
    with pytest.raises(DataError, match="resize both"):
        process(operation="combine", input_dir=tmp_path / "A", output_dir=tmp_path / "o",
                options=ProcessOptions(b_dir=tmp_path / "B", on_bad_image="fail"))


def test_blank_whitens_only_the_centre(tmp_path: Path):
    img = random_image(40, 60, seed=3) // 2  # nothing white before
    save(tmp_path / "in" / "x.png", img)
    process(operation="blank", input_dir=tmp_path / "in", output_dir=tmp_path / "o",
            options=ProcessOptions(blank_fraction=0.5))
    out = _read(tmp_path / "o" / "x.png")
    white = (out == 255).all(axis=2)
    ys, xs = np.nonzero(white)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (10, 29, 20, 39)
    assert white.sum() == 400 and np.array_equal(out[~white], img[~white])


def test_grayscale_three_equal_channels(tmp_path: Path):
    img = random_image(8, 8, seed=4)
    save(tmp_path / "in" / "x.png", img)
    process(operation="grayscale", input_dir=tmp_path / "in", output_dir=tmp_path / "o",
            options=ProcessOptions())
    out = _read(tmp_path / "o" / "x.png")
    expected = np.asarray(Image.fromarray(img).convert("L"))
    assert all(np.array_equal(out[..., c], expected) for c in range(3))


def test_edges_outline_a_square(tmp_path: Path):
    img = np.zeros((64, 64), np.uint8)
    img[16:48, 16:48] = 255
    edges = canny(img)
    assert edges[16:48, 14:18].any(axis=1).all()  # the left side, every row
    assert not edges[24:40, 24:40].any() and not edges[:8].any()  # interior, far background
    assert edges.sum() < 4 * 32 * 3  # thin lines, not a blob
    save(tmp_path / "in" / "sq.png", np.repeat(img[..., None], 3, axis=2))
    process(operation="edges", input_dir=tmp_path / "in", output_dir=tmp_path / "o",
            options=ProcessOptions())
    out = _read(tmp_path / "o" / "sq.png")
    assert set(np.unique(out)) == {0, 255} and out[0, 0].tolist() == [255, 255, 255]
    assert np.array_equal(out[..., 0] == 0, edges)


def test_tile_manifest_round_trip(tmp_path: Path):
    img = random_image(150, 230, seed=5)
    save(tmp_path / "in" / "d" / "big.png", img)
    save(tmp_path / "in" / "small.png", random_image(20, 30, seed=6))
    process(operation="tile", input_dir=tmp_path / "in", output_dir=tmp_path / "t",
            options=ProcessOptions(tile_size=64, overlap=16))
    manifest = json.loads((tmp_path / "t" / "d" / "big.tiles.json").read_text())
    assert (manifest["width"], manifest["height"], manifest["tile_size"]) == (230, 150, 64)
    for t in manifest["tiles"]:
        tile = _read(tmp_path / "t" / "d" / t["file"])
        assert tile.shape == (64, 64, 3)
        assert np.array_equal(tile, img[t["y"]:t["y"] + 64, t["x"]:t["x"] + 64])
    process(operation="untile", input_dir=tmp_path / "t", output_dir=tmp_path / "u",
            options=ProcessOptions(), workers=2)
    assert np.array_equal(_read(tmp_path / "u" / "d" / "big.png"), img)
    assert _read(tmp_path / "u" / "small.png").shape == (20, 30, 3)


def test_bad_image_skipped_and_named(tmp_path: Path, caplog):
    save(tmp_path / "in" / "ok.png", random_image(8, 8))
    (tmp_path / "in" / "bad.jpg").write_text("not an image")
    with caplog.at_level(logging.WARNING):
        r = process(operation="grayscale", input_dir=tmp_path / "in", output_dir=tmp_path / "o",
                    options=ProcessOptions())
    assert (r.written, r.skipped) == (1, 1) and "bad.jpg" in caplog.text
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["ok.png"]  # no temp files


def test_usage_errors(tmp_path: Path):
    save(tmp_path / "in" / "ok.png", random_image(8, 8))
    with pytest.raises(UsageError, match="--b_dir"):
        process(operation="combine", input_dir=tmp_path / "in", output_dir=tmp_path / "o",
                options=ProcessOptions())
    with pytest.raises(UsageError, match="overlap"):
        process(operation="tile", input_dir=tmp_path / "in", output_dir=tmp_path / "o",
                options=ProcessOptions(tile_size=32, overlap=32))
    with pytest.raises(DataError, match="no image files"):
        (tmp_path / "empty").mkdir()
        process(operation="resize", input_dir=tmp_path / "empty", output_dir=tmp_path / "o",
                options=ProcessOptions())


def test_cli_process(tmp_path: Path):
    save(tmp_path / "in" / "x.jpg", random_image(30, 40))
    result = CliRunner().invoke(cli, ["process", "resize", "--input_dir", str(tmp_path / "in"),
                                      "--output_dir", str(tmp_path / "o"), "--size", "16"])
    assert result.exit_code == 0, result.output
    assert _read(tmp_path / "o" / "x.png").shape == (16, 16, 3)


def test_colliding_output_names_are_refused(tmp_path: Path):
    save(tmp_path / "in" / "a.png", random_image(8, 8))
    save(tmp_path / "in" / "a.jpg", random_image(8, 8))
    with pytest.raises(UsageError, match="both be written"):
        process(operation="grayscale", input_dir=tmp_path / "in", output_dir=tmp_path / "o",
                options=ProcessOptions())
    assert not (tmp_path / "o").exists()
