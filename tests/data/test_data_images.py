"""load_rgb: every image mode becomes uint8 RGB with the right values; bad files are DataErrors
naming the file."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.data.images import load_rgb, read_info, to_rgb
from pix2pix.errors import DataError
from tests.data.conftest import random_image, save


def _check(arr: np.ndarray, shape) -> np.ndarray:
    assert arr.dtype == np.uint8 and arr.shape == shape
    return arr


def test_rgb_png_and_jpeg(tmp_path: Path):
    px = random_image(10, 12)
    assert np.array_equal(_check(load_rgb(save(tmp_path / "x.png", px)), (10, 12, 3)), px)
    jpeg = load_rgb(save(tmp_path / "x.jpg", px, quality=100))
    assert _check(jpeg, (10, 12, 3)).mean() == pytest.approx(px.mean(), abs=3)


def test_grayscale_L_replicated(tmp_path: Path):
    g = np.arange(200, dtype=np.uint8).reshape(10, 20)
    out = load_rgb(save(tmp_path / "g.png", g))
    assert np.array_equal(_check(out, (10, 20, 3)), np.repeat(g[..., None], 3, axis=2))


def test_16bit_png_scaled_not_clipped(tmp_path: Path):
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    out = _check(load_rgb(path), (1, 4, 3))
    assert out[0, :, 0].tolist() == [0, 1, 128, 255]
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_mode_I_32bit_treated_as_16bit():
    im = Image.fromarray(np.array([[0, 65535, 70000, -5]], dtype=np.int32))
    assert im.mode == "I"
    assert to_rgb(im)[0, :, 0].tolist() == [0, 255, 255, 0]


def test_rgba_composited_on_white(tmp_path: Path):
    px = np.array([[[255, 0, 0, 0], [0, 0, 255, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    out = _check(load_rgb(save(tmp_path / "a.png", px)), (1, 3, 3))
    assert out[0, 0].tolist() == [255, 255, 255]  # fully transparent -> white
    assert out[0, 1].tolist() == [0, 0, 255]  # opaque kept
    assert all(126 <= v <= 128 for v in out[0, 2])  # half black over white -> mid grey


def test_la_composited_on_white(tmp_path: Path):
    im = Image.new("LA", (2, 1))
    im.putpixel((0, 0), (100, 255))
    im.putpixel((1, 0), (100, 0))
    im.save(tmp_path / "la.png")
    out = _check(load_rgb(tmp_path / "la.png"), (1, 2, 3))
    assert out[0, 0].tolist() == [100, 100, 100] and out[0, 1].tolist() == [255, 255, 255]


def test_palette_with_and_without_transparency(tmp_path: Path):
    im = Image.new("P", (2, 1))
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    im.putpixel((0, 0), 0)
    im.putpixel((1, 0), 1)
    im.save(tmp_path / "p.png")
    assert load_rgb(tmp_path / "p.png")[0].tolist() == [[10, 20, 30], [200, 100, 50]]
    im.info["transparency"] = 0
    im.save(tmp_path / "pt.png", transparency=0)
    assert load_rgb(tmp_path / "pt.png")[0].tolist() == [[255, 255, 255], [200, 100, 50]]


def test_cmyk(tmp_path: Path):
    im = Image.new("CMYK", (2, 1))
    im.putpixel((0, 0), (0, 0, 0, 0))
    im.putpixel((1, 0), (255, 0, 0, 0))
    im.save(tmp_path / "c.tif")
    assert load_rgb(tmp_path / "c.tif")[0].tolist() == [[255, 255, 255], [0, 255, 255]]


def test_exif_orientation_applied(tmp_path: Path):
    px = random_image(10, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rot.png"
    Image.fromarray(px).save(path, exif=exif)
    out = load_rgb(path)
    assert out.shape == (20, 10, 3)
    assert np.array_equal(out, np.rot90(px, k=-1))
    assert (read_info(path).width, read_info(path).height) == (10, 20)


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(random_image(64, 64)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("name,content,why", [
    ("empty.jpg", b"", "empty"),
    ("text.jpg", b"hello, I am not a picture\n" * 10, "not an image"),
    ("corrupt.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, ""),
    ("truncated.jpg", None, "truncated"),
])
def test_bad_files_raise_data_error_naming_the_file(tmp_path: Path, name, content, why):
    path = tmp_path / name
    path.write_bytes(_jpeg_bytes()[:600] if content is None else content)
    with pytest.raises(DataError) as e:
        load_rgb(path)
    assert str(path) in str(e.value) and why in str(e.value)


def test_missing_file(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        load_rgb(tmp_path / "nope.png")


@pytest.mark.parametrize("limit", [60 * 60, 40 * 40])  # the warning band (1x..2x) and the error
def test_decompression_bomb_is_an_error(tmp_path: Path, monkeypatch, limit):
    path = save(tmp_path / "big.png", random_image(64, 64))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(DataError, match="too large") as e:
        load_rgb(path)
    assert str(path) in str(e.value)
