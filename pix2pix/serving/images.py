"""Request images: bytes -> uint8 RGB (checked against the pixel limit before decoding), the
translation as ``pix2pix generate --tile auto`` does it, and PNG bytes back.

Sizes: an image up to twice the model size S on its longer side is resized to S x S, translated
and resized back to its own size; a larger one is cut into overlapping S x S tiles
(:func:`pix2pix.tiling.translate_tiled`, one band of tile rows in memory at a time) and comes
back at its own size too.
"""
from __future__ import annotations

import io
import warnings
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from pix2pix.data.images import decode_opened
from pix2pix.serving.errors import BadRequest, TooLarge
from pix2pix.tiling import translate_tiled

Translate = Callable[[np.ndarray], np.ndarray]


def open_image(data: bytes, what: str) -> Image.Image:
    """Pillow's lazy open (the header only); BadRequest naming ``what`` when it is no image."""
    if not data:
        raise BadRequest(f"{what}: empty; send the bytes of a PNG, JPEG, BMP, GIF, TIFF or "
                         "WebP image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise TooLarge(f"{what}: image too large to decode safely ({e})") from None
    except UnidentifiedImageError:
        raise BadRequest(f"{what}: not an image (PNG, JPEG, BMP, GIF, TIFF or WebP bytes "
                         f"expected, got {len(data)} bytes starting {data[:8]!r})") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise BadRequest(f"{what}: cannot read the image header ({e})") from None


def check_pixels(images: list[tuple[str, Image.Image]], max_pixels: int) -> None:
    """TooLarge when the images of one request add up to more than ``max_pixels``."""
    total = sum(im.size[0] * im.size[1] for _, im in images)
    if total > max_pixels:
        what = (f"{images[0][0]}: image of {images[0][1].size[0]}x{images[0][1].size[1]}"
                if len(images) == 1 else f"request: {len(images)} images")
        raise TooLarge(f"{what} = {total:,} pixels, over the server's limit of {max_pixels:,} "
                       "per request (--max_pixels)")


def decode(im: Image.Image, what: str) -> np.ndarray:
    """Decode an opened image to uint8 [H, W, 3] (EXIF orientation applied, alpha on white);
    BadRequest (400) or TooLarge (413) naming ``what``."""
    return decode_opened(im, what, bad=BadRequest, too_large=TooLarge)


def encode_png(image: np.ndarray) -> bytes:
    """uint8 [H, W, 3] -> PNG bytes (compression level 1, as generate writes: encoding must
    not hold the model back)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def needs_tiling(image: np.ndarray, size: int) -> bool:
    """generate --tile auto's rule: tile when the longer side is over twice the model size."""
    return max(image.shape[:2]) > 2 * size


def _resize(image: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BICUBIC))


def translate_images(images: list[np.ndarray], run: Translate, *, size: int, overlap: int,
                     max_batch: int) -> tuple[list[np.ndarray], int]:
    """Translate each image at its own size; small ones go to ``run`` together, large ones
    tile by tile. Returns the outputs and how many were tiled."""
    outs: list[np.ndarray | None] = [None] * len(images)
    small = [i for i, im in enumerate(images) if not needs_tiling(im, size)]
    if small:
        batch = np.stack([images[i] if images[i].shape[:2] == (size, size)
                          else _resize(images[i], size, size) for i in small])
        for i, y in zip(small, run(batch)):
            h, w = images[i].shape[:2]
            outs[i] = y if (h, w) == (size, size) else _resize(y, w, h)
    tiled = 0
    for i, im in enumerate(images):
        if outs[i] is None:
            outs[i] = translate_tiled(im, run, size=size, overlap=overlap, batch_size=max_batch)
            tiled += 1
    return outs, tiled  # type: ignore[return-value]
