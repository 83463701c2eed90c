"""Paired images -> a tf.data pipeline of ``(input, target, name)`` batches.

Layouts (checked in this order)::

    input_dir/A/**/x.png + input_dir/B/**/x.jpg   two folders matched by relative path without
                                                  extension (labels as PNG, photos as JPEG is fine)
    input_dir/**/x.jpg                            one A|B file per pair: left half A, right half B
                                                  (the facades / affinelayer layout)

Decoding is done ONCE: when the decoded set fits the memory budget (``DataConfig.cache_mb``,
and at most a quarter of the available memory) every pair is decoded with :func:`load_rgb` in a thread
pool, resized (Pillow bicubic) to the size jitter starts from, and kept as one uint8 tensor; each
epoch then only crops, flips and scales, so training from JPEG files runs at the in-memory rate.
A larger set streams from disk through the same decode function in parallel tf.data workers.

Jitter is stateless: the crop offsets and the flip of element ``k`` come from ``(seed, k)``,
so a seeded run is reproducible whatever the parallelism, and A and B, stacked on the channel
axis before cropping, always get the same crop and the same flip.
"""
from __future__ import annotations

import hashlib
import logging
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from pix2pix.config import DataConfig
from pix2pix.data.images import IMAGE_EXTENSIONS, ImageInfo, is_image_file, load_rgb, read_info
from pix2pix.errors import DataError, UsageError

log = logging.getLogger("pix2pix.data")

OnBadImage = Literal["skip", "fail"]


@dataclass(frozen=True)
class Pair:
    """One training pair on disk."""

    name: str  # relative path (posix) of the A|B file, or of the A/ file without "A/"
    a: Path  # the A|B file, or the A/ file
    b: Path | None  # the B/ file; None for an A|B file
    a_info: ImageInfo
    b_info: ImageInfo | None = None

    @property
    def side_by_side(self) -> bool:
        return self.b is None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the A image (half the file's width for an A|B file)."""
        w = self.a_info.width // 2 if self.side_by_side else self.a_info.width
        return self.a_info.height, w


def bad_image(message: str, on_bad_image: OnBadImage) -> None:
    """Warn and go on (skip) or stop with DataError (fail)."""
    if on_bad_image == "fail":
        raise DataError(message)
    log.warning("skipping %s", message)


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, sorted; hidden files and folders are ignored."""
    out = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(root, f) for f in files if is_image_file(Path(f)))
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def check_folder(folder: Path, what: str = "input folder") -> Path:
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder}: {what} not found")
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} is not a folder")
    return folder


def find_pairs(input_dir: Path, *, on_bad_image: OnBadImage = "skip") -> list[Pair]:
    """List the pairs under ``input_dir`` (see the module docstring), reading only headers.

    A file whose header cannot be read, or an A|B file of odd width (no middle to split at),
    is named in a warning and skipped (``on_bad_image="skip"``) or raises DataError ("fail").
    Files that are truncated further in are found when decoded (:func:`make_dataset`).

    Raises:
        DataError: the folder is missing, or holds no usable pair.
    """
    input_dir = check_folder(input_dir)
    if (input_dir / "A").is_dir() and (input_dir / "B").is_dir():
        pairs = _folder_pairs(input_dir, on_bad_image)
        layout = "folders A/ and B/"
    else:
        pairs = []
        for path in image_files(input_dir):
            try:
                info = _cached_info(path)
            except DataError as e:
                bad_image(str(e), on_bad_image)
                continue
            if info.width % 2:
                bad_image(f"{path}: width {info.width} is odd, so it is not an A|B pair "
                          "(left half A, right half B, equal widths)", on_bad_image)
                continue
            pairs.append(Pair(path.relative_to(input_dir).as_posix(), path, None, info))
        layout = "A|B side-by-side image files"
    if not pairs:
        raise DataError(f"{input_dir}: no usable image pair (looked for {layout}; image "
                        f"extensions {', '.join(IMAGE_EXTENSIONS)})")
    return pairs


# Header facts by (path, mtime, size): a trainer that lists the folder every epoch opens each
# file's header once per run. Errors are not remembered, so a fixed file is seen next time.
_infos: dict[tuple[str, int, int], ImageInfo] = {}


def _cached_info(path: Path) -> ImageInfo:
    try:
        key = (str(path), *_stat(path))
    except OSError:
        return read_info(path)  # raises the DataError naming the file
    info = _infos.get(key)
    if info is None:
        info = _infos[key] = read_info(path)
    return info


def _folder_pairs(input_dir: Path, on_bad_image: OnBadImage) -> list[Pair]:
    sides = {}
    for side in ("A", "B"):
        found: dict[str, Path] = {}
        for path in image_files(input_dir / side):
            key = path.relative_to(input_dir / side).with_suffix("").as_posix()
            if key in found:
                log.warning("%s: %s also has %s; using the first", path, side, found[key].name)
                continue
            found[key] = path
        sides[side] = found
    a, b = sides["A"], sides["B"]
    matched = sorted(a.keys() & b.keys())
    for side, only in (("A", sorted(a.keys() - b.keys())), ("B", sorted(b.keys() - a.keys()))):
        if only:
            shown = ", ".join(only[:10]) + (f" and {len(only) - 10} more" if len(only) > 10 else "")
            log.warning("%s: %d file(s) in %s/ have no partner in %s/: %s", input_dir, len(only),
                        side, "B" if side == "A" else "A", shown)
    if not matched:
        raise DataError(f"{input_dir}: no file name in A/ matches one in B/ (pairs are matched "
                        "by relative path without extension, e.g. A/1.png with B/1.jpg)")
    pairs = []
    for key in matched:
        try:
            ia, ib = _cached_info(a[key]), _cached_info(b[key])
        except DataError as e:
            bad_image(str(e), on_bad_image)
            continue
        pairs.append(Pair(a[key].relative_to(input_dir / "A").as_posix(), a[key], b[key], ia, ib))
    return pairs


# ---------------------------------------------------------------------------------------------
# Decoding to the size jitter starts from

def _base_size(data: DataConfig, crop_size: int, training: bool) -> int | None:
    """Square side every pair is resized to before jitter; None keeps each pair's own size."""
    if data.preprocess == "patches":
        return None  # full resolution, in training and out of it
    if not training or data.preprocess == "none":
        return crop_size
    if data.preprocess == "crop":
        return None
    if data.load_size < crop_size:
        raise UsageError(f"load_size {data.load_size} is smaller than crop_size {crop_size}; "
                         "random crops need load_size >= crop_size")
    return data.load_size


def resize_uint8(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [H, W, C] -> [height, width, C] with Pillow's bicubic (antialiased when shrinking),
    the resize of junyanz/pytorch-CycleGAN-and-pix2pix. TensorFlow's antialiased bicubic is about
    10x slower on CPU, and Pillow releases the GIL, so decode threads scale."""
    if image.shape[:2] == (height, width):
        return image
    from PIL import Image
    channels = [Image.fromarray(np.ascontiguousarray(image[..., i:i + 3]))
                for i in range(0, image.shape[2], 3)]
    return np.concatenate([np.asarray(c.resize((width, height), Image.Resampling.BICUBIC))
                           for c in channels], axis=2)


def _min_size(h: int, w: int, crop: int) -> tuple[int, int]:
    """Smallest size >= (h, w) in both sides >= crop, keeping the aspect ratio (crop mode)."""
    if h >= crop and w >= crop:
        return h, w
    s = max(crop / h, crop / w)
    return max(crop, round(h * s)), max(crop, round(w * s))


def decode_pair(pair: Pair, *, base: int | None, crop: int) -> np.ndarray:
    """Decode a pair with load_rgb and resize it: uint8 [S, S, 6] (A on channels 0-2, B on 3-5).
    ``base`` None (preprocess crop) keeps A's size, enlarged only where a side is below crop."""
    a = load_rgb(pair.a)
    if pair.side_by_side:
        if a.shape[1] % 2:
            raise DataError(f"{pair.a}: width {a.shape[1]} is odd, so it is not an A|B pair")
        half = a.shape[1] // 2
        a, b = a[:, :half], a[:, half:]
    else:
        b = load_rgb(pair.b)
    h, w = (base, base) if base is not None else _min_size(a.shape[0], a.shape[1], crop)
    return np.concatenate([resize_uint8(a, h, w), resize_uint8(b, h, w)], axis=2)


def _cache_bytes(pairs: list[Pair], base: int | None, crop: int) -> int:
    if base is not None:
        return len(pairs) * base * base * 6
    return sum(np.prod(_min_size(*p.size, crop)) * 6 for p in pairs)


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 << 30


# One decoded set is remembered, so a trainer that asks for a fresh dataset every epoch (for a new
# seed) decodes the files once per run, not once per epoch.
_memo: dict = {}


def _decoded_set(pairs: list[Pair], *, base: int | None, crop: int, on_bad_image: OnBadImage):
    """(images, names): images is one uint8 tf.Tensor [N, S, S, 6] when every pair has the same
    size (always, unless preprocess is crop), else a list of arrays."""
    import tensorflow as tf
    key = (tuple((str(p.a), str(p.b), *_stat(p.a), *_stat(p.b)) for p in pairs), base, crop,
           on_bad_image)
    if _memo.get("key") == key:
        return _memo["images"], _memo["names"]
    _memo.clear()

    def one(pair: Pair):
        try:
            return decode_pair(pair, base=base, crop=crop)
        except DataError as e:
            return e

    # Pillow releases the GIL while decoding and resizing: threads scale. Results go straight
    # into one preallocated array, so the peak is that array plus TensorFlow's copy of it.
    stacked = (np.empty((len(pairs), base, base, 6), np.uint8) if base is not None else None)
    images: list[np.ndarray] = []
    names: list[str] = []
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for pair, result in zip(pairs, pool.map(one, pairs)):
            if isinstance(result, DataError):
                bad_image(str(result), on_bad_image)
                continue
            if stacked is not None:
                stacked[len(names)] = result
            else:
                images.append(result)
            names.append(pair.name)
    if stacked is not None:
        out = tf.constant(stacked[:len(names)])
    elif images and len({im.shape for im in images}) == 1:
        out = tf.constant(np.stack(images))
    else:
        out = images
    del stacked, images
    _memo.update(key=key, images=out, names=names)
    return out, names


_validated: set = set()


def _validate_all(pairs: list[Pair], *, base: int | None, crop: int) -> None:
    """Decode every pair once (results dropped), so on_bad_image=fail stops with a DataError
    naming the file before training rather than a TensorFlow error mid-epoch. Once per run."""
    key = tuple((str(p.a), str(p.b), *_stat(p.a), *_stat(p.b)) for p in pairs)
    if key in _validated:
        return
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for _ in pool.map(lambda p: decode_pair(p, base=base, crop=crop).shape, pairs):
            pass  # the first DataError propagates
    _validated.add(key)


def _stat(path: Path | None) -> tuple[int, int]:
    if path is None:
        return (0, 0)
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def held_back(pairs: list[Pair], fraction: float) -> set[str]:
    """Names of the pairs held back for validation: ``round(fraction * len(pairs))`` of them
    (at least one), those whose names hash lowest, so the same pairs whatever the seed, the
    listing order or a resume.

    Raises:
        DataError: the fraction would leave no pair to train on.
    """
    if fraction <= 0:
        return set()
    k = max(1, round(fraction * len(pairs)))
    if k >= len(pairs):
        raise DataError(f"val_fraction {fraction} of {len(pairs)} pair(s) leaves none to train "
                        "on; lower --val_fraction or add pairs")
    ranked = sorted(pairs, key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
    return {p.name for p in ranked[:k]}


def grid_tile(x, t, crop: int):
    """Tile ``t`` (modulo their number) of the grid of ``crop`` x ``crop`` tiles that covers
    image ``x`` [H, W, C], row by row; the offsets are :func:`pix2pix.tiling.grid`'s with no
    overlap (evenly spread, the last tile flush with the border)."""
    import tensorflow as tf

    def starts(length):
        n = (length + crop - 1) // crop  # tiles along this side
        step = tf.cast(length - crop, tf.float64) / tf.cast(tf.maximum(n - 1, 1), tf.float64)
        return n, lambda i: tf.cast(tf.round(tf.cast(i, tf.float64) * step), tf.int32)

    shape = tf.shape(x)
    ny, row = starts(shape[0])
    nx, col = starts(shape[1])
    t = tf.cast(t, tf.int32) % (ny * nx)
    y, x0 = row(t // nx), col(t % nx)
    return x[y:y + crop, x0:x0 + crop]


# ---------------------------------------------------------------------------------------------
# The tf.data pipeline

def make_dataset(input_dir: Path, *, data: DataConfig, crop_size: int, batch_size: int,
                 training: bool, seed: int | None, repeat: bool = False,
                 holdout: Literal["exclude", "only"] | None = None,
                 ) -> tuple["tf.data.Dataset", int]:  # noqa: F821
    """Batches of ``(input, target, name)`` from the pairs in ``input_dir``.

    input/target: float32 [N, crop_size, crop_size, 3] in [-1, 1]; input is A when
    ``data.direction`` is AtoB. name: tf.string, the pair's relative file name.
    Training: shuffled, jittered by ``data.preprocess`` (same crop and flip for input and
    target), flipped unless ``data.no_flip``. Otherwise: resized to crop_size, in name order.

    ``preprocess="patches"``: in training, ``patches_per_image`` crops of crop_size per pair
    at full resolution (random offsets, or under ``patch_sampling="grid"`` the tiles
    ``seed * N ... seed * N + N - 1`` modulo their number of the grid covering the pair, so
    epochs seeded seed, seed + 1, ... go round the grid); the count is pairs x N. Otherwise
    each pair at full resolution, one per batch (test and validation tile it).

    Args:
        holdout: "exclude" leaves out the pairs :func:`held_back` for validation by
            ``data.val_fraction``, "only" keeps just them; None: every pair.

    Returns:
        (dataset, number of usable pairs).

    Raises:
        DataError: missing folder, no usable pair, or a bad image under on_bad_image=fail.
    """
    import tensorflow as tf

    if batch_size < 1:
        raise UsageError(f"batch_size must be >= 1, not {batch_size}")
    pairs = find_pairs(input_dir, on_bad_image=data.on_bad_image)
    if holdout is not None:
        val = held_back(pairs, data.val_fraction)
        pairs = [p for p in pairs if (p.name in val) == (holdout == "only")]
        if not pairs:
            raise DataError(f"{input_dir}: no validation pair held back (val_fraction "
                            f"{data.val_fraction})")
    base = _base_size(data, crop_size, training)
    if seed is None:
        seed = secrets.randbits(31)
    # A quarter of the free memory at most: building the cache briefly holds two copies.
    budget = min(int(data.cache_mb) << 20, _available_bytes() // 4)
    cached = _cache_bytes(pairs, base, crop_size) <= budget

    if cached:
        images, names = _decoded_set(pairs, base=base, crop=crop_size,
                                     on_bad_image=data.on_bad_image)
        if not names:
            raise DataError(f"{input_dir}: none of the {len(pairs)} pair(s) could be decoded")
        n = len(names)
        fetch = _cached_fetch(images, names)
    else:
        if data.on_bad_image == "fail":
            _validate_all(pairs, base=base, crop=crop_size)
        n = len(pairs)
        fetch = _streaming_fetch(pairs, base=base, crop=crop_size, on_bad_image=data.on_bad_image)
        log.info("%s: %d pairs stream from disk (decoded size over the %d MiB cache budget)",
                 input_dir, n, budget >> 20)

    patches = data.preprocess == "patches"
    per = data.patches_per_image if training and patches else 1  # elements per pair
    ds = tf.data.Dataset.range(n * per)
    if training:
        ds = ds.shuffle(n * per, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.enumerate()  # (k, i): k seeds the jitter of the k-th element served
    flip = training and not data.no_flip
    crop_jitter = training and (data.preprocess in ("resize_and_crop", "crop")
                                or patches and data.patch_sampling == "random")
    grid = training and patches and data.patch_sampling == "grid"
    size = None if patches and not training else crop_size  # full resolution outside training

    def load(k, i):
        """Element i is patch i % per of pair i // per."""
        x, name = fetch(i // per)
        return k, i % per, x, name

    a_first = data.direction == "AtoB"

    def jitter(k, j, x, name):
        """Same crop and flip for A and B: they are the two halves of one 6-channel image."""
        if crop_jitter:
            x = tf.image.stateless_random_crop(x, [crop_size, crop_size, 6],
                                               seed=tf.stack([tf.cast(seed, tf.int64), 2 * k]))
        if grid:
            x = grid_tile(x, tf.cast(seed, tf.int64) * per + j, crop_size)
        if flip:
            x = tf.image.stateless_random_flip_left_right(
                x, seed=tf.stack([tf.cast(seed, tf.int64), 2 * k + 1]))
        x = tf.ensure_shape(x, [size, size, 6])
        x = tf.cast(x, tf.float32) / 127.5 - 1.0
        a, b = x[..., :3], x[..., 3:]
        return (a, b, name) if a_first else (b, a, name)

    # Plain graph code (the `if`s are on Python values): AutoGraph has nothing to convert.
    # One traced function on the cached path: tracing is most of what a new epoch's dataset
    # costs (~0.1 s per function).
    plain = tf.autograph.experimental.do_not_convert
    if cached:
        ds = ds.map(plain(lambda k, i: jitter(*load(k, i))),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(plain(load), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.filter(plain(lambda k, j, x, name: tf.size(x) > 0))  # bad files skipped
        ds = ds.map(plain(jitter), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    # Full-resolution pairs may differ in size: one per batch.
    ds = ds.batch(batch_size if size is not None else 1)
    return ds.prefetch(tf.data.AUTOTUNE), n


def _cached_fetch(images, names: list[str]):
    import tensorflow as tf
    names_t = tf.constant(names)
    if isinstance(images, tf.Tensor):
        def fetch(index):
            return tf.gather(images, index), tf.gather(names_t, index)
        return fetch

    # Pairs of different sizes (preprocess crop): one ragged lookup per element.
    def get(index):
        return images[int(index)]

    def fetch(index):
        x = tf.numpy_function(get, [index], tf.uint8, stateful=False)
        return tf.ensure_shape(x, [None, None, 6]), tf.gather(names_t, index)
    return fetch


def _streaming_fetch(pairs: list[Pair], *, base: int | None, crop: int,
                     on_bad_image: OnBadImage):
    """Decode with :func:`decode_pair` inside tf.data: the same pixels as the cached path.
    A bad file gives an empty array (filtered out later) under skip, an error under fail."""
    import tensorflow as tf
    names = tf.constant([p.name for p in pairs])

    def get(index):
        try:
            return decode_pair(pairs[int(index)], base=base, crop=crop)
        except DataError as e:
            bad_image(str(e), on_bad_image)
            return np.zeros((0, 0, 6), np.uint8)

    def fetch(index):
        x = tf.numpy_function(get, [index], tf.uint8, stateful=False)
        return tf.ensure_shape(x, [None, None, 6]), tf.gather(names, index)
    return fetch
