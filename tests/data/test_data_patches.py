"""Patch training (preprocess patches): N crops of crop_size per pair and epoch, at full
resolution, random or going round the covering grid; and the pairs held back for validation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pix2pix.config import DataConfig
from pix2pix.data.dataset import find_pairs, grid_tile, held_back, make_dataset
from pix2pix.errors import DataError
from pix2pix.tiling import grid
from tests.data.conftest import random_image, write_ab, write_inverse_pairs

CROP = 32


@pytest.fixture
def large_pairs(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """Three 80x72 A|B pairs (larger than the model in both sides), B = 255 - A."""
    d = tmp_path / "pairs"
    return d, write_inverse_pairs(d, h=80, w=72)


def _u8(x) -> np.ndarray:
    return np.round((np.asarray(x) + 1.0) * 127.5).astype(np.int16)


def _offset(image: np.ndarray, patch: np.ndarray) -> tuple[int, int]:
    """Where ``patch`` lies in ``image``, pixel for pixel (so no resize happened)."""
    c = patch.shape[0]
    for y in range(image.shape[0] - c + 1):
        for x in range(image.shape[1] - c + 1):
            if np.array_equal(image[y:y + c, x:x + c], patch):
                return y, x
    raise AssertionError("patch is not a full-resolution crop of its image")


def _patches(d, data, seed):
    ds, n = make_dataset(d, data=data, crop_size=CROP, batch_size=2, training=True, seed=seed)
    out = [(name.decode(), i, t) for inp, tar, names in ds
           for name, i, t in zip(names.numpy(), inp.numpy(), tar.numpy())]
    return out, n, ds


@pytest.mark.parametrize("cache_mb", [2048, 0])  # cached in memory, streamed from disk
@pytest.mark.parametrize("sampling", ["random", "grid"])
def test_n_patches_per_pair_at_full_resolution(large_pairs, cache_mb, sampling):
    d, images = large_pairs
    data = DataConfig(preprocess="patches", patches_per_image=5, patch_sampling=sampling,
                      no_flip=True, cache_mb=cache_mb)
    out, n, ds = _patches(d, data, seed=7)
    assert n == 3 and len(out) == 15  # 3 pairs x 5 patches
    if cache_mb:
        assert int(ds.cardinality()) == 8  # ceil(15 / 2) batches: what an epoch's steps are
    assert sorted({name for name, _, _ in out}) == sorted(images)
    assert all(sum(name == k for name, _, _ in out) == 5 for k in images)
    for name, inp, tar in out:
        assert inp.shape == tar.shape == (CROP, CROP, 3)
        y, x = _offset(images[name], _u8(inp))
        assert np.array_equal(_u8(tar), 255 - images[name][y:y + CROP, x:x + CROP])  # same crop
    # Shuffled across pairs: not all patches of a pair in a row.
    assert [name for name, _, _ in out] != sorted(name for name, _, _ in out)


def test_random_patches_differ_within_an_epoch_and_follow_the_seed(large_pairs):
    d, images = large_pairs
    data = DataConfig(preprocess="patches", patches_per_image=4, no_flip=True)
    out, _, _ = _patches(d, data, seed=1)
    again, _, _ = _patches(d, data, seed=1)
    other, _, _ = _patches(d, data, seed=2)
    offsets = lambda o: sorted((n, _offset(images[n], _u8(i))) for n, i, _ in o)  # noqa: E731
    assert offsets(out) == offsets(again) and offsets(out) != offsets(other)
    per_pair = {}
    for name, off in offsets(out):
        per_pair.setdefault(name, set()).add(off)
    assert all(len(v) > 1 for v in per_pair.values())


def test_grid_patches_cover_each_pair_over_consecutive_epochs(large_pairs):
    """80x72 at 32: a 3 x 3 grid (tiling.grid's offsets). With 4 patches an epoch, epochs
    seeded s, s + 1, s + 2 take tiles 4s..4s+11 modulo 9: every tile, so every pixel."""
    d, images = large_pairs
    data = DataConfig(preprocess="patches", patches_per_image=4, patch_sampling="grid",
                      no_flip=True)
    ys, xs = grid(80, CROP, 0), grid(72, CROP, 0)
    assert (ys, xs) == ([0, 24, 48], [0, 20, 40])
    seen: dict[str, set] = {k: set() for k in images}
    covered = {k: np.zeros((80, 72), bool) for k in images}
    for epoch in range(3):
        out, _, _ = _patches(d, data, seed=10 + epoch)
        offsets = {k: [] for k in images}
        for name, inp, _ in out:
            y, x = _offset(images[name], _u8(inp))
            offsets[name].append((y, x))
            covered[name][y:y + CROP, x:x + CROP] = True
        for name, offs in offsets.items():
            assert all(y in ys and x in xs for y, x in offs)  # grid tiles only
            assert len(set(offs)) == 4  # 4 different tiles of 9 in one epoch
            seen[name] |= set(offs)
    assert all(len(v) == 9 for v in seen.values())
    assert all(c.all() for c in covered.values())


@pytest.mark.parametrize("h,w", [(80, 72), (32, 32), (100, 33), (64, 96)])
def test_grid_tile_places_tiles_as_tiling_grid(h, w):
    x = tf.reshape(tf.range(h * w * 2), [h, w, 2])
    ys, xs = grid(h, CROP, 0), grid(w, CROP, 0)
    for t in range(len(ys) * len(xs) + 2):  # and wraps around
        tile = grid_tile(x, t, CROP).numpy()
        k = t % (len(ys) * len(xs))
        y, x0 = ys[k // len(xs)], xs[k % len(xs)]
        assert np.array_equal(tile, x.numpy()[y:y + CROP, x0:x0 + CROP])


def test_patches_outside_training_are_whole_pairs(large_pairs):
    d, images = large_pairs
    ds, n = make_dataset(d, data=DataConfig(preprocess="patches"), crop_size=CROP,
                         batch_size=4, training=False, seed=None)
    batches = list(ds)
    assert n == 3 and len(batches) == 3  # one pair per batch: sizes may differ
    for (inp, tar, name) in batches:
        assert inp.shape == (1, 80, 72, 3)
        assert np.array_equal(_u8(inp[0]), images[name[0].numpy().decode()])


def test_held_back_pairs_are_stable_and_disjoint(tmp_path: Path):
    d = tmp_path / "p"
    for i in range(10):
        a = random_image(16, 16, seed=i)
        write_ab(d / f"{i:02d}.png", a, a)
    pairs = find_pairs(d)
    val = held_back(pairs, 0.2)
    assert len(val) == 2 and val == held_back(list(reversed(pairs)), 0.2)
    assert held_back(pairs, 0.0) == set() and len(held_back(pairs, 0.01)) == 1
    data = DataConfig(val_fraction=0.2)
    names = lambda holdout: {n.decode() for _, _, b in make_dataset(  # noqa: E731
        d, data=data, crop_size=16, batch_size=4, training=False, seed=0,
        holdout=holdout)[0] for n in b.numpy()}
    assert names("only") == val
    assert names("exclude") == {p.name for p in pairs} - val
    assert len(names(None)) == 10
    with pytest.raises(DataError, match="leaves none to train on"):
        held_back(pairs, 0.99)
