"""find_pairs and make_dataset: layouts, direction, paired jitter, bad files, determinism."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from pix2pix.config import DataConfig
from pix2pix.data.dataset import find_pairs, make_dataset, resize_uint8
from pix2pix.errors import DataError
from tests.data.conftest import random_image, save, write_ab, write_inverse_pairs


def _collect(ds):
    ins, tars, names = [], [], []
    for i, t, n in ds:
        ins.append(i.numpy()), tars.append(t.numpy()), names.extend(x.decode() for x in n.numpy())
    return np.concatenate(ins), np.concatenate(tars), names


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round((x + 1.0) * 127.5).astype(np.int16)


@pytest.fixture
def inverse_pairs(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A|B files where B = 255 - A, so any crop or flip that differs between them shows."""
    d = tmp_path / "pairs"
    return d, write_inverse_pairs(d)


@pytest.mark.parametrize("cache_mb", [2048, 0])  # cached in memory, streamed from disk
def test_split_and_direction(inverse_pairs, cache_mb):
    d, a_images = inverse_pairs
    ab, n = make_dataset(d, data=DataConfig(cache_mb=cache_mb), crop_size=48, batch_size=2,
                         training=False, seed=None)
    ba, _ = make_dataset(d, data=DataConfig(direction="BtoA", cache_mb=cache_mb), crop_size=48,
                         batch_size=2, training=False, seed=None)
    i1, t1, names = _collect(ab)
    i2, t2, names2 = _collect(ba)
    assert n == 3 and names == names2 == ["0.png", "1.png", "2.png"]
    assert i1.shape == (3, 48, 48, 3) and i1.dtype == np.float32
    assert i1.min() >= -1.0 and i1.max() <= 1.0
    for k, name in enumerate(names):  # AtoB: input is the left half, pixel for pixel
        assert np.array_equal(_u8(i1[k]), a_images[name])
        assert np.array_equal(_u8(t1[k]), 255 - a_images[name])
    assert np.array_equal(i1, t2) and np.array_equal(t1, i2)


def _find_offset(big: np.ndarray, crop: np.ndarray) -> tuple[int, int, bool] | None:
    c = crop.shape[0]
    for flipped, img in ((False, crop), (True, crop[:, ::-1])):
        for y in range(big.shape[0] - c + 1):
            for x in range(big.shape[1] - c + 1):
                if np.array_equal(big[y:y + c, x:x + c], img):
                    return y, x, flipped
    return None


@pytest.mark.parametrize("no_flip", [False, True])
def test_jitter_is_a_crop_of_the_resized_image_same_for_input_and_target(inverse_pairs, no_flip):
    d, a_images = inverse_pairs
    data = DataConfig(load_size=40, no_flip=no_flip)
    ds, n = make_dataset(d, data=data, crop_size=32, batch_size=1, training=True, seed=3,
                         repeat=True)
    seen_flip, seen_offsets = set(), set()
    for inp, tar, name in ds.take(30):
        inp, tar = _u8(inp.numpy()[0]), _u8(tar.numpy()[0])
        assert inp.shape == (32, 32, 3)
        # B = 255 - A before jitter, so after a shared crop and flip too (bicubic is linear;
        # rounding may differ by one level).
        assert np.abs(inp + tar - 255).max() <= 1
        resized = resize_uint8(a_images[name.numpy()[0].decode()], 40, 40)
        found = _find_offset(resized, inp)
        assert found is not None, "input is not a crop of the resized A image"
        y, x, flipped = found
        assert 0 <= y <= 8 and 0 <= x <= 8
        seen_flip.add(flipped)
        seen_offsets.add((y, x))
    assert seen_flip == ({False} if no_flip else {False, True})
    assert len(seen_offsets) > 5  # the crop really moves


def test_preprocess_crop_takes_patches_without_resizing(tmp_path: Path):
    a = random_image(60, 60, seed=1)
    write_ab(tmp_path / "p" / "map.png", a, 255 - a)
    write_ab(tmp_path / "p" / "other_size.png", a[:40, :50], 255 - a[:40, :50])
    ds, _ = make_dataset(tmp_path / "p", data=DataConfig(preprocess="crop", no_flip=True),
                         crop_size=16, batch_size=1, training=True, seed=0, repeat=True)
    for inp, tar, _ in ds.take(8):
        inp = _u8(inp.numpy()[0])
        assert inp.shape == (16, 16, 3)
        assert _find_offset(a, inp) is not None  # a patch of the original pixels
        assert np.array_equal(_u8(tar.numpy()[0]), 255 - inp)


def test_seeded_runs_are_identical_and_seeds_differ(inverse_pairs):
    d, _ = inverse_pairs
    def first(seed, cache_mb=2048):
        ds, _ = make_dataset(d, data=DataConfig(load_size=40, cache_mb=cache_mb), crop_size=32,
                             batch_size=3, training=True, seed=seed)
        return _collect(ds)
    a, b, c = first(7), first(7), first(8)
    assert np.array_equal(a[0], b[0]) and a[2] == b[2]
    assert not np.array_equal(a[0], c[0])
    assert np.array_equal(first(7, cache_mb=0)[0], a[0])  # streaming == cached, pixel for pixel


def test_folder_layout_matched_by_name(tmp_path: Path, caplog):
    d = tmp_path / "ab"
    a1, b1 = random_image(32, 32, 1), random_image(32, 32, 2)
    save(d / "A" / "x" / "1.png", a1)
    save(d / "B" / "x" / "1.png", b1)
    save(d / "A" / "only_a.png", a1)
    save(d / "B" / "only_b.png", b1)
    with caplog.at_level(logging.WARNING):
        pairs = find_pairs(d)
    assert [p.name for p in pairs] == ["x/1.png"]
    assert "only_a" in caplog.text and "only_b" in caplog.text
    ds, n = make_dataset(d, data=DataConfig(), crop_size=32, batch_size=1, training=False,
                         seed=None)
    i, t, names = _collect(ds)
    assert n == 1 and names == ["x/1.png"]
    assert np.array_equal(_u8(i[0]), a1) and np.array_equal(_u8(t[0]), b1)


def test_folder_layout_with_no_match_is_an_error(tmp_path: Path):
    save(tmp_path / "A" / "1.png", random_image(8, 8))
    save(tmp_path / "B" / "2.png", random_image(8, 8))
    with pytest.raises(DataError, match="no file name in A/ matches"):
        find_pairs(tmp_path)


def test_missing_empty_and_not_a_folder(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        find_pairs(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no usable image pair"):
        make_dataset(tmp_path / "empty", data=DataConfig(), crop_size=8, batch_size=1,
                     training=False, seed=None)
    (tmp_path / "f.png").write_bytes(b"")
    with pytest.raises(DataError, match="not a folder"):
        find_pairs(tmp_path / "f.png")


def test_odd_width_is_skipped_or_fails(tmp_path: Path, caplog):
    a = random_image(16, 16)
    write_ab(tmp_path / "good.png", a, a)
    odd = save(tmp_path / "odd.png", random_image(16, 33))
    with caplog.at_level(logging.WARNING):
        assert [p.name for p in find_pairs(tmp_path)] == ["good.png"]
    assert str(odd) in caplog.text and "odd" in caplog.text
    with pytest.raises(DataError, match="odd") as e:
        find_pairs(tmp_path, on_bad_image="fail")
    assert str(odd) in str(e.value)


@pytest.mark.parametrize("cache_mb", [2048, 0])
def test_bad_files_skipped_with_a_warning_or_fail(tmp_path: Path, caplog, cache_mb):
    import io

    from PIL import Image
    for i in range(2):
        a = random_image(16, 16, i)
        write_ab(tmp_path / f"good{i}.png", a, a)
    buf = io.BytesIO()
    Image.fromarray(random_image(64, 128)).save(buf, format="JPEG")
    bad = {"truncated.jpg": buf.getvalue()[:700], "empty.png": b"", "text.jpg": b"not an image"}
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
    with caplog.at_level(logging.WARNING):
        ds, n = make_dataset(tmp_path, data=DataConfig(cache_mb=cache_mb), crop_size=16,
                             batch_size=4, training=False, seed=None)
        _, _, names = _collect(ds)
    assert names == ["good0.png", "good1.png"]
    for name in bad:
        assert str(tmp_path / name) in caplog.text
    with pytest.raises(DataError) as e:
        make_dataset(tmp_path, data=DataConfig(on_bad_image="fail", cache_mb=cache_mb),
                     crop_size=16, batch_size=4, training=False, seed=None)
    assert str(tmp_path / "empty.png") in str(e.value)


def test_decompression_bomb_skipped_in_the_dataset(tmp_path: Path, monkeypatch, caplog):
    from PIL import Image
    small = random_image(8, 8)
    write_ab(tmp_path / "small.png", small, small)
    big = random_image(64, 64)
    write_ab(tmp_path / "big.png", big, big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with caplog.at_level(logging.WARNING):
        assert [p.name for p in find_pairs(tmp_path)] == ["small.png"]
    assert "big.png" in caplog.text and "too large" in caplog.text


def test_facades_real_data(facades_dir: Path):
    ds, n = make_dataset(facades_dir / "train", data=DataConfig(direction="BtoA"),
                         crop_size=256, batch_size=4, training=True, seed=0)
    inp, tar, names = next(iter(ds))
    assert n == 400 and inp.shape == (4, 256, 256, 3) and tar.shape == (4, 256, 256, 3)
    assert int(ds.cardinality()) == 100


@pytest.mark.parametrize("cache_mb", [2048, 0])
def test_truncated_file_under_fail_is_a_data_error_before_training(tmp_path: Path, cache_mb):
    import io

    from PIL import Image
    a = random_image(16, 16)
    write_ab(tmp_path / "good.png", a, a)
    buf = io.BytesIO()
    Image.fromarray(random_image(64, 128)).save(buf, format="JPEG")
    (tmp_path / "trunc.jpg").write_bytes(buf.getvalue()[:700])  # the header reads fine
    assert len(find_pairs(tmp_path, on_bad_image="fail")) == 2
    with pytest.raises(DataError, match="truncated") as e:
        make_dataset(tmp_path, data=DataConfig(on_bad_image="fail", cache_mb=cache_mb),
                     crop_size=16, batch_size=1, training=True, seed=0)
    assert str(tmp_path / "trunc.jpg") in str(e.value)
