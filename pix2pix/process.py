"""Process mode: prepare image folders for training and generation (after affinelayer's
pix2pix-tensorflow ``tools/process.py``, plus edges, tile and untile).

Every operation reads the image files under ``input_dir`` recursively and writes under
``output_dir`` at the same relative path (PNG unless ``fmt`` says otherwise), each file written
to a temporary name and renamed, in parallel over ``workers`` processes.

  resize     centre-crop to a square (or pad it, black, with ``pad``), then scale to ``size``
  combine    A (input_dir) and B (b_dir) images with the same relative name -> one A|B image
  split      A|B images -> A/<name> and B/<name>
  blank      a white square over the centre (``blank_fraction`` of the short side): inpainting
  grayscale  ITU-R 601 luma, written as 3 equal channels so it pairs with RGB images
  edges      black edges on white (the edges2shoes look) by Canny: Gaussian blur, Sobel,
             non-maximum suppression, hysteresis; see :func:`canny`
  tile       cut into overlapping ``tile_size`` tiles + ``<stem>.tiles.json`` manifests
  untile     put tiles back from the manifests (blending overlaps), e.g. after ``generate``
"""
from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Literal

import numpy as np
from PIL import Image, ImageFilter

from pix2pix.data.dataset import bad_image, check_folder, image_files
from pix2pix.data.images import WRITE_FORMATS, load_rgb
from pix2pix.errors import DataError, UsageError
from pix2pix.fsutil import atomic_path
from pix2pix.tiling import MANIFEST_SUFFIX, Manifest, Tile, assemble, cut

log = logging.getLogger("pix2pix.process")

OPERATIONS = ("resize", "combine", "split", "blank", "grayscale", "edges", "tile", "untile")


@dataclass(frozen=True)
class ProcessOptions:
    """Options of every operation (each uses the ones it names)."""

    size: int = 256  # resize: output side
    pad: bool = False  # resize: pad to a square instead of centre-cropping
    b_dir: Path | None = None  # combine: the B folder
    blank_fraction: float = 0.3  # blank: side of the white square over the short side
    sigma: float = 1.0  # edges: Gaussian blur before the gradient
    low: float = 0.1  # edges: hysteresis thresholds, fractions of the strongest gradient
    high: float = 0.2
    tile_size: int = 256  # tile
    overlap: int = 32  # tile
    tiles_dir: Path | None = None  # untile: where the tiles are (default: next to the manifests)
    fmt: str = "png"  # output file format
    on_bad_image: Literal["skip", "fail"] = "skip"


@dataclass
class ProcessResult:
    written: int = 0
    skipped: int = 0


def process(*, operation: str, input_dir: Path, output_dir: Path, options: ProcessOptions,
            workers: int = 1) -> ProcessResult:
    """Run ``operation`` over every image under ``input_dir`` into ``output_dir``.

    Raises:
        UsageError: unknown operation or contradictory options.
        DataError: missing folder, no image, or a bad image under on_bad_image=fail.
    """
    if operation not in OPERATIONS:
        raise UsageError(f"unknown operation {operation!r}; one of {', '.join(OPERATIONS)}")
    pil_format(options.fmt)
    _check_options(operation, options)
    input_dir, output_dir = check_folder(Path(input_dir)), Path(output_dir)
    if operation == "untile":
        sources = sorted(input_dir.rglob(f"*{MANIFEST_SUFFIX}"))
        what = f"tile manifests (*{MANIFEST_SUFFIX})"
    else:
        sources = image_files(input_dir)
        what = "image files"
    if operation == "combine":
        check_folder(options.b_dir, "--b_dir folder")
    if not sources:
        raise DataError(f"{input_dir}: no {what} found")
    jobs = [(operation, s, s.relative_to(input_dir).as_posix(), output_dir, options)
            for s in sources]
    outputs: dict[str, Path] = {}
    for _, src, rel, _, _ in jobs:  # a.jpg and a.png would both become a.png
        key = PurePosixPath(rel).with_suffix("").as_posix()
        if key in outputs:
            raise UsageError(f"{src} and {outputs[key]} would both be written as {key}; "
                             "rename one or process them separately")
        outputs[key] = src
    output_dir.mkdir(parents=True, exist_ok=True)
    result = ProcessResult()
    if workers <= 1 or len(jobs) == 1:
        outcomes = map(_run_one, jobs)
        _collect(outcomes, result, options)
    else:
        # spawn: safe even when the caller has TensorFlow loaded (fork would copy its threads).
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            _collect(pool.map(_run_one, jobs, chunksize=max(1, len(jobs) // (workers * 8))),
                     result, options)
    return result


def _check_options(operation: str, o: ProcessOptions) -> None:
    if operation == "combine" and o.b_dir is None:
        raise UsageError("combine needs --b_dir (the B images; --input_dir holds A)")
    if operation == "resize" and o.size < 1:
        raise UsageError(f"--size must be >= 1, not {o.size}")
    if operation == "blank" and not 0 < o.blank_fraction <= 1:
        raise UsageError(f"--blank_fraction must be in (0, 1], not {o.blank_fraction}")
    if operation == "edges" and not 0 <= o.low <= o.high <= 1:
        raise UsageError(f"--low {o.low} and --high {o.high}: need 0 <= low <= high <= 1")
    if operation == "tile" and not 0 <= o.overlap < o.tile_size:
        raise UsageError(f"--overlap {o.overlap} must be >= 0 and below --tile_size {o.tile_size}")
    if operation == "tile" and pil_format(o.fmt) in ("JPEG", "WEBP"):  # lossy
        raise UsageError("tile writes lossless tiles: use --format png, tif or bmp")


def _collect(outcomes, result: ProcessResult, options: ProcessOptions) -> None:
    for written, error in outcomes:
        if error:
            bad_image(error, options.on_bad_image)
            result.skipped += 1
        result.written += written


def _run_one(job) -> tuple[int, str | None]:
    """One file in a worker: (files written, DataError message or None)."""
    operation, src, rel, output_dir, options = job
    try:
        return _OPS[operation](src, rel, output_dir, options), None
    except DataError as e:
        return 0, str(e)


# ---------------------------------------------------------------------------------------------
# Writing

def pil_format(fmt: str) -> str:
    """Pillow's format name for a ``--format`` value (any case); UsageError for another."""
    try:
        return WRITE_FORMATS[fmt.lower()]
    except KeyError:
        raise UsageError(f"--format {fmt!r}: one of {', '.join(WRITE_FORMATS)}") from None


def output_path(output_dir: Path, rel: str, fmt: str) -> Path:
    ext = "jpg" if fmt.lower() == "jpeg" else fmt.lower()
    return output_dir / PurePosixPath(rel).with_suffix(f".{ext}")


def write_image(path: Path, image: np.ndarray, fmt: str = "png", *, fast: bool = False) -> None:
    """uint8 [H, W, 3] -> ``path`` via a temporary file and a rename: never half a file.

    ``fast``: PNG compression level 1 instead of 6, about 3.5x less CPU for files about 6%
    larger (generate uses it so encoding never holds the model back).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = pil_format(fmt)
    extra = {"quality": 95} if fmt == "JPEG" else {}
    if fmt == "PNG":
        extra = {"compress_level": 1 if fast else 6}
    # atomic_path names the output in a full-disk error, which Pillow reports without a name.
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image, np.uint8)).save(tmp, format=fmt, **extra)


# ---------------------------------------------------------------------------------------------
# Operations: (source, relative name, output folder, options) -> files written

def square_resize(image: np.ndarray, size: int, pad: bool = False) -> np.ndarray:
    """Centre-crop (or pad, black) to a square, then bicubic-resize to ``size``."""
    h, w = image.shape[:2]
    if pad:
        side = max(h, w)
        out = np.zeros((side, side, 3), np.uint8)
        y, x = (side - h) // 2, (side - w) // 2
        out[y:y + h, x:x + w] = image
    else:
        side = min(h, w)
        y, x = (h - side) // 2, (w - side) // 2
        out = image[y:y + side, x:x + side]
    if side != size:
        out = np.asarray(Image.fromarray(np.ascontiguousarray(out)).resize(
            (size, size), Image.Resampling.BICUBIC))
    return out


def _resize(src: Path, rel: str, out: Path, o: ProcessOptions) -> int:
    write_image(output_path(out, rel, o.fmt), square_resize(load_rgb(src), o.size, o.pad), o.fmt)
    return 1


def _combine(src: Path, rel: str, out: Path, o: ProcessOptions) -> int:
    stem = PurePosixPath(rel).with_suffix("")
    partners = [p for p in Path(o.b_dir, *stem.parent.parts).glob(f"{stem.name}.*")
                if p.is_file() and not p.name.startswith(".")]
    if not partners:
        raise DataError(f"{src}: no B image named {stem}.* in {o.b_dir}")
    a, b = load_rgb(src), load_rgb(sorted(partners)[0])
    if a.shape != b.shape:
        raise DataError(f"{src}: A is {a.shape[1]}x{a.shape[0]} but its B "
                        f"{sorted(partners)[0]} is {b.shape[1]}x{b.shape[0]}; resize both first")
    write_image(output_path(out, rel, o.fmt), np.concatenate([a, b], axis=1), o.fmt)
    return 1


def _split(src: Path, rel: str, out: Path, o: ProcessOptions) -> int:
    image = load_rgb(src)
    if image.shape[1] % 2:
        raise DataError(f"{src}: width {image.shape[1]} is odd, so it is not an A|B image")
    half = image.shape[1] // 2
    write_image(output_path(out / "A", rel, o.fmt), image[:, :half], o.fmt)
    write_image(output_path(out / "B", rel, o.fmt), image[:, half:], o.fmt)
    return 2


def _blank(src: Path, rel: str, out: Path, o: ProcessOptions) -> int:
    image = load_rgb(src).copy()
    h, w = image.shape[:2]
    side = max(1, round(min(h, w) * o.blank_fraction))
    y, x = (h - side) // 2, (w - side) // 2
    image[y:y + side, x:x + side] = 255
    write_image(output_path(out, rel, o.fmt), image, o.fmt)
    return 1


def _grayscale(src: Path, rel: str, out: Path, o: ProcessOptions) -> int:
    gray = np.asarray(Image.fromarray(load_rgb(src)).convert("L"))
    write_image(output_path(out, rel, o.fmt), np.repeat(gray[..., None], 3, axis=2), o.fmt)
    return 1


def canny(gray: np.ndarray, *, sigma: float = 1.0, low: float = 0.1,
          high: float = 0.2) -> np.ndarray:
    """Canny edges of a uint8 grey image -> bool [H, W].

    Why Canny rather than PIL's FIND_EDGES + threshold: non-maximum suppression gives one-pixel
    lines (the thin strokes of the edges2shoes/handbags sets, which were made with HED + thinning)
    and hysteresis keeps weak edges only where they continue strong ones, so texture noise does
    not become speckle. Thresholds are fractions of the image's strongest gradient, so one
    setting works across exposures. Pure numpy: no OpenCV or SciPy dependency.
    """
    g = np.asarray(Image.fromarray(gray).filter(ImageFilter.GaussianBlur(sigma)), np.float32)
    p = np.pad(g, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    mag = np.hypot(gx, gy)
    if mag.max() <= 0:
        return np.zeros(gray.shape, bool)
    # Non-maximum suppression along the gradient direction quantised to 0/45/90/135 degrees.
    angle = (np.rad2deg(np.arctan2(gy, gx)) + 180.0) % 180.0
    m = np.pad(mag, 1)
    h, w = mag.shape
    shifted = {d: m[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
               for d, (dy, dx) in {"E": (0, 1), "W": (0, -1), "N": (-1, 0), "S": (1, 0),
                                   "NE": (-1, 1), "SW": (1, -1), "NW": (-1, -1),
                                   "SE": (1, 1)}.items()}
    horiz = (angle < 22.5) | (angle >= 157.5)
    diag1 = (angle >= 22.5) & (angle < 67.5)  # gradient towards +x +y: compare SE and NW
    vert = (angle >= 67.5) & (angle < 112.5)
    diag2 = (angle >= 112.5) & (angle < 157.5)
    keep = ((horiz & (mag >= shifted["E"]) & (mag >= shifted["W"]))
            | (vert & (mag >= shifted["N"]) & (mag >= shifted["S"]))
            | (diag1 & (mag >= shifted["SE"]) & (mag >= shifted["NW"]))
            | (diag2 & (mag >= shifted["NE"]) & (mag >= shifted["SW"])))
    thin = np.where(keep, mag, 0.0)
    strong = thin >= high * mag.max()
    weak = thin >= low * mag.max()
    # Hysteresis: grow the strong edges through 8-connected weak pixels until nothing changes.
    edges = strong
    while True:
        e = np.pad(edges, 1)
        grown = weak & (e[:-2, :-2] | e[:-2, 1:-1] | e[:-2, 2:] | e[1:-1, :-2] | e[1:-1, 2:]
                        | e[2:, :-2] | e[2:, 1:-1] | e[2:, 2:] | edges)
        if np.array_equal(grown, edges):
            return edges
        edges = grown


def _edges(src: Path, rel: str, out: Path, o: ProcessOptions) -> int:
    gray = np.asarray(Image.fromarray(load_rgb(src)).convert("L"))
    edges = canny(gray, sigma=o.sigma, low=o.low, high=o.high)
    image = np.where(edges[..., None], 0, 255).astype(np.uint8).repeat(3, axis=2)
    write_image(output_path(out, rel, o.fmt), image, o.fmt)
    return 1


def _tile(src: Path, rel: str, out: Path, o: ProcessOptions) -> int:
    image = load_rgb(src)
    stem = PurePosixPath(rel).with_suffix("")
    manifest = Manifest(source=rel, width=image.shape[1], height=image.shape[0],
                        tile_size=o.tile_size, overlap=o.overlap)
    for x, y, pixels in cut(image, tile=o.tile_size, overlap=o.overlap):
        name = f"{stem.name}_y{y:05d}_x{x:05d}.{o.fmt.lower()}"
        write_image(out / stem.parent / name, pixels, o.fmt)
        manifest.tiles.append(Tile(file=name, x=x, y=y, width=pixels.shape[1],
                                   height=pixels.shape[0]))
    # The manifest last: its presence means every tile it names is there.
    manifest.write(out / stem.parent / f"{stem.name}{MANIFEST_SUFFIX}")
    return len(manifest.tiles) + 1


def _untile(src: Path, rel: str, out: Path, o: ProcessOptions) -> int:
    manifest = Manifest.read(src)
    rel_dir = PurePosixPath(rel).parent
    tiles_dir = Path(o.tiles_dir, *rel_dir.parts) if o.tiles_dir else src.parent

    def load(name: str) -> np.ndarray:
        # generate may have changed the extension (e.g. .png -> .jpg): match on the stem.
        path = tiles_dir / name
        if not path.is_file():
            found = sorted(tiles_dir.glob(f"{PurePosixPath(name).stem}.*"))
            if not found:
                raise DataError(f"{src}: tile {name} not found in {tiles_dir}")
            path = found[0]
        return load_rgb(path)

    image = assemble(manifest, load)
    name = PurePosixPath(manifest.source).name
    write_image(output_path(out / rel_dir, name, o.fmt), image, o.fmt)
    return 1


_OPS: dict[str, Callable[[Path, str, Path, ProcessOptions], int]] = {
    "resize": _resize, "combine": _combine, "split": _split, "blank": _blank,
    "grayscale": _grayscale, "edges": _edges, "tile": _tile, "untile": _untile}
