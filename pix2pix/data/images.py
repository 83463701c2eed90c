"""Decode any Pillow-readable image file to uint8 RGB, with one clear DataError when it cannot.

Mode conversions (``load_rgb``):
  RGB, YCbCr, LAB, HSV, CMYK, 1, L   Pillow's own conversion to RGB (grey replicated).
  I;16*, I (16-bit grey)             scaled 0..65535 -> 0..255 with rounding (v * 255 / 65535),
                                     never clipped, so a 16-bit scan keeps its full tonal range.
  F (float grey)                     0..1 when its maximum is <= 1, else 0..255; clipped.
  RGBA, LA, PA, P with transparency  composited on WHITE: a transparent background reads as paper
                                     (as a browser shows it) rather than as black.
  animated GIF / multi-page TIFF     the first frame.
EXIF orientation is applied first, so a phone photo comes out the way it is displayed.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pix2pix.errors import DataError

# The one list of image file types: every extension read as an image, and Pillow's format name.
IMAGE_FORMATS: dict[str, str] = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP",
                                 ".gif": "GIF", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}
IMAGE_EXTENSIONS = tuple(IMAGE_FORMATS)
# Formats written (``--format``), without the dot. GIF is read, never written: its 256-colour
# palette would lose most of a photo.
WRITE_FORMATS: dict[str, str] = {ext[1:]: fmt for ext, fmt in IMAGE_FORMATS.items() if fmt != "GIF"}


def is_image_file(path: Path) -> bool:
    """True for a non-hidden file whose extension is one of :data:`IMAGE_EXTENSIONS`."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


@dataclass(frozen=True)
class ImageInfo:
    """What the header says, read without decoding the pixels."""

    width: int  # as displayed, i.e. after EXIF rotation
    height: int
    format: str  # Pillow's format name: JPEG, PNG, ...
    mode: str


def _open(path: Path) -> Image.Image:
    """Image.open with every failure turned into DataError; the decompression-bomb warning is an
    error too (Pillow only warns between 1x and 2x MAX_IMAGE_PIXELS)."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(path)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: image too large to decode safely ({e})") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image Pillow can read (corrupt, or not the format its "
                        "name says)") from None
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f"{path}: cannot open image ({e})") from None


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # a malformed EXIF block must not make a good image unusable
        return 1


def read_info(path: Path) -> ImageInfo:
    """Header facts of ``path`` (size as displayed, format, mode); DataError when unreadable."""
    with _open(path) as im:
        w, h = im.size
        orient = _orientation(im)
        if orient in (5, 6, 7, 8):  # rotated by 90 or 270 degrees
            w, h = h, w
        return ImageInfo(width=w, height=h, format=im.format or "", mode=im.mode)


def load_rgb(path: Path) -> np.ndarray:
    """Decode ``path`` to a uint8 array [H, W, 3] (see the module docstring for each mode).

    Raises:
        DataError: naming the file, for empty, truncated, corrupt, non-image or oversized files.
    """
    path = Path(path)
    with _open(path) as im:
        return decode_opened(im, str(path))


def decode_opened(im: Image.Image, what: str, *, bad: type[Exception] = DataError,
                  too_large: type[Exception] = DataError) -> np.ndarray:
    """Decode an opened image to uint8 [H, W, 3] (EXIF orientation applied), raising ``bad``
    or ``too_large`` with one line naming ``what`` (the server passes its 400/413 classes)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im.load()
            im = ImageOps.exif_transpose(im) or im
            return to_rgb(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise too_large(f"{what}: image too large to decode safely ({e})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise bad(f"{what}: cannot decode the image ({e}); it is truncated or corrupt") from None


def to_rgb(im: Image.Image) -> np.ndarray:
    """A loaded Pillow image -> uint8 [H, W, 3]."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im).astype(np.int64)
        a = np.clip(a, 0, 65535)
        g = ((a * 255 + 32767) // 65535).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "F":
        a = np.asarray(im, dtype=np.float32)
        scale = 255.0 if a.size and np.nanmax(a) <= 1.0 else 1.0
        g = np.clip(np.nan_to_num(a) * scale + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    elif mode == "PA":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "RGBa", "La"):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy()
