"""Overlapping tiles: where they go, how they are weighted, and putting them back.

Used by ``process tile``/``untile`` (tiles on disk plus a JSON manifest) and by ``generate --tile``
(tiles translated in batches and blended in memory, one row of tiles at a time).

Blending: each tile's pixels are weighted by a separable raised-cosine window that rises from
near 0 at the tile's edges to 1 over ``overlap`` pixels, and the result is the weighted sum over
the summed weights. Where tiles agree (an identity model, or the same pixels cut by ``tile``)
that is exactly the original; where they disagree (a real generator sees different context) the
change fades in over the overlap instead of a visible seam.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from pix2pix.errors import DataError, UsageError
from pix2pix.fsutil import atomic_write

MANIFEST_SUFFIX = ".tiles.json"


def grid(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``[0, length)`` with tiles of ``tile`` overlapping by at least
    ``overlap``; the last tile ends exactly at ``length`` (one tile at 0 when length <= tile)."""
    if tile <= 0 or overlap < 0 or overlap >= tile:
        raise UsageError(f"tile size {tile} and overlap {overlap}: need 0 <= overlap < tile size")
    if length <= tile:
        return [0]
    stride = tile - overlap
    n = math.ceil((length - tile) / stride) + 1
    # Spread the tiles evenly, so every overlap is at least `overlap` and no tile sticks out.
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def window(tile: int, overlap: int) -> np.ndarray:
    """1-D weights [tile]: raised cosine over the first and last ``overlap`` pixels, 1 between.
    Strictly positive, so a pixel covered by one tile only keeps that tile's value exactly."""
    w = np.ones(tile, np.float32)
    if overlap > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)
        w[:overlap] = ramp
        w[tile - overlap:] = np.minimum(w[tile - overlap:], ramp[::-1])
    return w


@dataclass
class Tile:
    file: str  # relative to the manifest's folder
    x: int
    y: int
    width: int
    height: int


@dataclass
class Manifest:
    """How to put the tiles of one image back (``<stem>.tiles.json`` beside the tiles)."""

    source: str
    width: int
    height: int
    tile_size: int
    overlap: int
    tiles: list[Tile] = field(default_factory=list)
    version: int = 1

    def write(self, path: Path) -> None:
        atomic_write(path, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        try:
            d = json.loads(Path(path).read_text())
            tiles = [Tile(**t) for t in d.pop("tiles")]
            return cls(**d, tiles=tiles)
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise DataError(f"{path}: not a readable tile manifest ({e})") from None


def cut(image: np.ndarray, *, tile: int, overlap: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """(x, y, view) for every tile of ``image``, row by row; edge tiles of an image smaller than
    ``tile`` are smaller too."""
    h, w = image.shape[:2]
    for y in grid(h, tile, overlap):
        for x in grid(w, tile, overlap):
            yield x, y, image[y:y + tile, x:x + tile]


def assemble(manifest: Manifest, load: Callable[[str], np.ndarray]) -> np.ndarray:
    """The image of ``manifest`` from its tiles (``load(file)`` -> uint8 [h, w, 3]), blended.

    Tiles are accumulated one at a time into float32 sums, so memory is the output image plus
    two float copies, never all tiles.
    """
    h, w = manifest.height, manifest.width
    acc = np.zeros((h, w, 3), np.float32)
    wsum = np.zeros((h, w, 1), np.float32)
    for t in manifest.tiles:
        pixels = load(t.file)
        if pixels.shape[:2] != (t.height, t.width):
            raise DataError(f"{t.file}: tile is {pixels.shape[1]}x{pixels.shape[0]}, the "
                            f"manifest says {t.width}x{t.height}")
        weight = (window(t.height, min(manifest.overlap, t.height // 2))[:, None]
                  * window(t.width, min(manifest.overlap, t.width // 2))[None, :])[..., None]
        acc[t.y:t.y + t.height, t.x:t.x + t.width] += pixels.astype(np.float32) * weight
        wsum[t.y:t.y + t.height, t.x:t.x + t.width] += weight
    if not np.all(wsum > 0):
        raise DataError(f"{manifest.source}: the tiles do not cover the whole image")
    return np.clip(np.round(acc / wsum), 0, 255).astype(np.uint8)


def translate_tiled(image: np.ndarray, translate: Callable[[np.ndarray], np.ndarray], *,
                    size: int, overlap: int, batch_size: int) -> np.ndarray:
    """Translate an image of any size with a model of input ``size``: overlapping tiles, in
    batches, blended with :func:`window`.

    Memory: the input and output uint8 images plus float32 sums for ONE band of tile rows
    (about ``2 * size * width * 16`` bytes), whatever the height. A 5000x5000 image needs about
    75 MB per uint8 copy and 80 MB of band sums.

    Args:
        translate: uint8 [N, size, size, 3] -> uint8 [N, size, size, 3].
    """
    h, w = image.shape[:2]
    # An image smaller than the model in a side is padded (edge-replicated) up to it.
    ph, pw = max(h, size), max(w, size)
    if (ph, pw) != (h, w):
        image = np.pad(image, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    ys, xs = grid(ph, size, overlap), grid(pw, size, overlap)
    weight = (window(size, overlap)[:, None] * window(size, overlap)[None, :])[..., None]
    out = np.empty((ph, pw, 3), np.uint8)
    top = 0  # first image row held in the band sums
    acc = np.zeros((0, pw, 3), np.float32)
    wsum = np.zeros((0, pw, 1), np.float32)
    for r, y in enumerate(ys):
        grow = y + size - top - acc.shape[0]
        if grow > 0:
            acc = np.concatenate([acc, np.zeros((grow, pw, 3), np.float32)])
            wsum = np.concatenate([wsum, np.zeros((grow, pw, 1), np.float32)])
        for i in range(0, len(xs), batch_size):
            row_xs = xs[i:i + batch_size]
            batch = np.stack([image[y:y + size, x:x + size] for x in row_xs])
            result = np.asarray(translate(batch))
            for x, tile in zip(row_xs, result):
                acc[y - top:y - top + size, x:x + size] += tile.astype(np.float32) * weight
                wsum[y - top:y - top + size, x:x + size] += weight
        # Rows above the next tile row get no more contributions: finish and drop them.
        done = (ys[r + 1] if r + 1 < len(ys) else ph) - top
        out[top:top + done] = np.clip(np.round(acc[:done] / wsum[:done]), 0, 255).astype(np.uint8)
        acc, wsum, top = acc[done:], wsum[done:], top + done
    return out[:h, :w]
