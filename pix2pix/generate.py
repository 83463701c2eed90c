"""Generate mode: translate image files of any size with an exported model or a checkpoint.

Flow (one model load, then a stream)::

    files --decode threads--> resize to S x S --batches--> model --write threads--> resize back,
                                                                                    encode, rename
    large image (--tile on/auto) --> overlapping S x S tiles, a row at a time --> blend --> write

Decoding and encoding run in thread pools (Pillow releases the GIL) while the model runs, so the
files cost little beyond the model's own time. Outputs keep each file's path relative to the
``--input`` folder it came from; a file given directly keeps its name.

Under Pachyderm datum batching (:func:`serve_datums`) the model is loaded once and the same
input paths are re-read for every datum the worker hands over.
"""
from __future__ import annotations

import collections
import errno
import json
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Literal

import numpy as np
from PIL import Image

from pix2pix.data.dataset import bad_image, image_files
from pix2pix.data.images import IMAGE_EXTENSIONS, is_image_file, load_rgb, read_info
from pix2pix.errors import DataError, JobError, ModelError, UsageError
from pix2pix.process import output_path, pil_format, write_image
from pix2pix.tiling import translate_tiled

log = logging.getLogger("pix2pix.generate")

WORKER_PORT_ENV = "PPS_WORKER_GRPC_PORT"
_EXTENSIONS = " ".join(IMAGE_EXTENSIONS)  # for error messages


@dataclass(frozen=True)
class GenerateOptions:
    batch_size: int = 4  # images (or tiles) per model call
    fmt: str = "png"  # output format
    # auto: tile images over 2x the model size; None: the model's default, "on" for a model
    # trained on patches (preprocess patches), else "off"
    tile: Literal["off", "on", "auto"] | None = None
    overlap: int = 32  # tile overlap in pixels
    resize_back: bool = True  # write outputs at the input's size (else at the model size)
    on_bad_image: Literal["skip", "fail"] = "skip"
    workers: int = 2  # decode and encode threads each


@dataclass
class GenerateResult:
    written: int = 0
    skipped: int = 0
    tiled: int = 0


class Translator:
    """uint8 [N, S, S, 3] -> uint8 [N, S, S, 3], from an export or a checkpoint."""

    def __init__(self, fn: Callable, size: int, source: str, patches: bool = False):
        self.fn, self.size, self.source = fn, size, source
        self.patches = patches  # trained on full-resolution patches: tile by default
        self.precision = "float32"  # the arithmetic it runs in (load_model may pick 16 bits)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(images))


PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def load_model(*, model: Path | None = None, checkpoint: Path | None = None,
               precision: str = "float32", batch_size: int = 4,
               jit_compile: bool = False, **choose_kwargs) -> Translator:
    """A :class:`Translator` for an export folder (``model``) or a train folder (``checkpoint``).

    An export is called through the signature of ``precision`` (pix2pix.export.SIGNATURES:
    float32 ``serving_default``, ``serving_bfloat16``, ``serving_float16``), with its weights
    frozen into the graph as constants, which lets Grappler fold the 16-bit casts of the
    weights away and oneDNN cache its reordered weights. float32 is the default: the 16-bit
    signatures change outputs by a few uint8 levels (docs/bench.md gives the PSNR), so they
    are asked for, never implied. "auto" times float32 against the
    device's 16-bit signature on a ``batch_size`` batch and keeps the faster (cached;
    pix2pix.model.precision.choose); an export without 16-bit signatures runs float32. Its
    size comes from the ``options.json`` beside ``saved_model.pb`` (``{"model":
    {"crop_size": S}}``), else from the signature's input shape. ``jit_compile`` compiles the
    call with XLA (for GPUs; slower than oneDNN on CPUs). A checkpoint runs float32.
    """
    if (model is None) == (checkpoint is None):
        raise UsageError("give exactly one of --model (an export folder) or --checkpoint "
                         "(a train folder)")
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r}: one of {', '.join(PRECISIONS)}")
    if checkpoint is not None and precision in ("bfloat16", "float16"):
        raise UsageError(f"--precision {precision} needs an export (--model); a checkpoint "
                         "runs float32")
    if model is not None and not (Path(model) / "saved_model.pb").is_file():
        raise ModelError(f"{model}: no saved_model.pb; give a `pix2pix export` folder "
                         "(or --checkpoint for a train folder)")
    import tensorflow as tf

    if checkpoint is not None:
        try:
            from pix2pix.model.trainer import restore_generator
        except ImportError:  # the contract's first home
            from pix2pix.train import restore_generator  # type: ignore[attr-defined,no-redef]
        generator, options = restore_generator(Path(checkpoint))
        size = int(options["model"]["crop_size"])

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8)],
                     jit_compile=jit_compile)
        def fn(images):
            x = tf.cast(images, tf.float32) / 127.5 - 1.0
            y = generator(x, training=False)
            return tf.cast(tf.round((tf.clip_by_value(y, -1.0, 1.0) + 1.0) * 127.5), tf.uint8)
        return Translator(fn, size, str(checkpoint), patches=_patches(options))

    from pix2pix.export import SIGNATURES
    model = Path(model)
    try:
        loaded = tf.saved_model.load(str(model))
        serve = loaded.signatures["serving_default"]
    except KeyError:
        raise ModelError(f"{model}: the SavedModel has no serving_default signature") from None
    except (OSError, ValueError, tf.errors.OpError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelError(f"{model}: cannot load the exported model ({first})") from None
    specs = serve.structured_input_signature[1]
    if len(specs) != 1:
        raise ModelError(f"{model}: serving_default takes {len(specs)} inputs; expected one "
                         "uint8 [N, S, S, 3] batch")
    key, spec = next(iter(specs.items()))
    size = _export_size(model, spec)
    try:
        options = json.loads((model / "options.json").read_text())
    except (OSError, ValueError):
        options = {}
    available = {p: loaded.signatures[name] for p, (name, _) in SIGNATURES.items()
                 if name in loaded.signatures}
    if precision not in ("auto", "float32") and precision not in available:
        raise ModelError(f"{model}: the export has no {SIGNATURES[precision][0]} signature "
                         f"(--precision {precision}); export it again with this version, or "
                         "use --precision float32")

    def make(p: str) -> Callable:
        return _fast_call(available[p], key, str(model), jit_compile=jit_compile)

    if precision == "auto":
        from pix2pix.model.precision import choose, reduced_candidates
        candidates = ["float32", *(p for p in reduced_candidates() if p in available)]
        batch = np.zeros((batch_size, size, size, 3), np.uint8)

        def warmed(p: str):
            def build():
                f = make(p)
                f(batch)
                return lambda: f(batch)
            return build
        shape = {"size": size, "batch_size": batch_size, "jit_compile": jit_compile,
                 "model": options.get("model") if isinstance(options, dict) else None,
                 "export": options.get("export") if isinstance(options, dict) else None}
        precision = choose("generate", shape, {p: warmed(p) for p in candidates},
                           **choose_kwargs)
    fn = make(precision)
    fn.keep_alive = loaded  # an unfrozen signature needs its module alive
    translator = Translator(fn, size, str(model), patches=_patches(options))
    translator.precision = precision
    return translator


def _fast_call(signature, key: str, source: str, *, jit_compile: bool) -> Callable:
    """uint8 batch -> uint8 array through ``signature`` with its variables frozen into
    constants (Grappler then folds the weight-side work, such as the 16-bit casts of the
    weights, once, and oneDNN reuses its reordered weights; docs/bench.md measures the frozen
    export against the same weights over variables); the signature as it is when it cannot
    be frozen."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)
    try:
        frozen = convert_variables_to_constants_v2(signature)
        run = lambda x: frozen(**{key: x})  # noqa: E731
    except Exception as e:  # noqa: BLE001  an op the converter does not know: run unfrozen
        log.warning("%s: running the signature unfrozen (%s)", source, e)
        run = lambda x: signature(**{key: x})  # noqa: E731
    if jit_compile:
        run = tf.function(run, jit_compile=True)

    def fn(images):
        out = run(tf.constant(images, tf.uint8))
        if isinstance(out, dict):
            if "output" not in out:
                raise ModelError(f"{source}: serving_default returns {sorted(out)}, "
                                 "not 'output'")
            out = out["output"]
        elif isinstance(out, (list, tuple)):
            out = out[0]
        return out.numpy()
    return fn


def _patches(options: dict) -> bool:
    """Whether a train or export options.json says the model was trained on patches."""
    data = options.get("data") if isinstance(options, dict) else None
    return isinstance(data, dict) and data.get("preprocess") == "patches"


def _export_size(model: Path, spec) -> int:
    options = model / "options.json"
    if options.is_file():
        try:
            return int(json.loads(options.read_text())["model"]["crop_size"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{options}: no model.crop_size ({e})") from None
    shape = spec.shape.as_list()
    if len(shape) == 4 and shape[1] and shape[1] == shape[2]:
        return int(shape[1])
    raise ModelError(f"{model}: no options.json and the signature's input shape {shape} does "
                     "not give the model size")


def list_inputs(inputs: list[Path]) -> list[tuple[Path, str]]:
    """(file, relative output name) for each image: relative to its --input folder, or the
    file's own name. Two inputs mapping to the same name is a UsageError."""
    found: list[tuple[Path, str]] = []
    for entry in inputs:
        entry = Path(entry)
        if entry.is_dir():
            files = image_files(entry)
            if not files:
                raise DataError(f"{entry}: no image files found (extensions {_EXTENSIONS})")
            found.extend((f, f.relative_to(entry).as_posix()) for f in files)
        elif entry.is_file():
            if not is_image_file(entry):
                raise DataError(f"{entry}: not an image file name (extensions {_EXTENSIONS})")
            found.append((entry, entry.name))
        else:
            raise DataError(f"{entry}: input not found")
    seen: dict[str, Path] = {}
    for path, rel in found:
        key = PurePosixPath(rel).with_suffix("").as_posix()
        if key in seen and seen[key] != path:
            raise UsageError(f"{path} and {seen[key]} would both be written as {key}; give them "
                             "in separate runs or rename one")
        seen[key] = path
    return found


@dataclass
class _Item:
    rel: str
    size: tuple[int, int]  # (width, height) of the input
    pixels: np.ndarray | None  # S x S (resize path); None for a tiled image until its turn
    tiled: bool
    path: Path


def generate(*, translator: Translator, inputs: list[Path], output_dir: Path,
             options: GenerateOptions) -> GenerateResult:
    """Translate every image of ``inputs`` into ``output_dir`` (see the module docstring)."""
    if options.batch_size < 1:
        raise UsageError(f"--batch_size must be >= 1, not {options.batch_size}")
    pil_format(options.fmt)
    if not 0 <= options.overlap < translator.size:
        raise UsageError(f"--overlap {options.overlap} must be >= 0 and below the model size "
                         f"{translator.size}")
    files = list_inputs(inputs)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    size, result = translator.size, GenerateResult()
    tile = options.tile or ("on" if translator.patches else "off")

    def decode(path: Path, rel: str) -> _Item | DataError:
        try:
            info = read_info(path)
            tiled = tile == "on" or (tile == "auto" and max(info.width, info.height) > 2 * size)
            if tiled:  # decoded when its turn comes, so one large image is in memory at a time
                return _Item(rel, (info.width, info.height), None, True, path)
            image = load_rgb(path)
        except DataError as e:
            return e
        h, w = image.shape[:2]
        if (h, w) != (size, size):
            image = np.asarray(Image.fromarray(image).resize((size, size),
                                                             Image.Resampling.BICUBIC))
        return _Item(rel, (w, h), image, False, path)

    def write(item: _Item, out: np.ndarray) -> None:
        if options.resize_back and not item.tiled and item.size != (size, size):
            out = np.asarray(Image.fromarray(out).resize(item.size, Image.Resampling.BICUBIC))
        path = output_path(output_dir, item.rel, options.fmt)
        try:
            write_image(path, out, options.fmt, fast=True)
        except OSError as e:
            if e.errno == errno.ENOSPC:  # not the data's fault: the CLI prints file and reason
                raise OSError(e.errno, "disk full (no space left on device)", str(path)) from None
            raise DataError(f"{path}: cannot write the output ({e})") from None

    workers = max(1, options.workers)
    ahead = 2 * options.batch_size + workers  # decoded images waiting: bounded memory
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as decoders, \
            ThreadPoolExecutor(workers, thread_name_prefix="encode") as encoders:
        pending: collections.deque[Future] = collections.deque()
        writes: collections.deque[Future] = collections.deque()
        batch: list[_Item] = []
        todo = iter(files)

        def top_up() -> None:
            while len(pending) < ahead:
                nxt = next(todo, None)
                if nxt is None:
                    return
                pending.append(decoders.submit(decode, *nxt))

        def queue_write(item: _Item, out: np.ndarray) -> None:
            writes.append(encoders.submit(write, item, out))
            while len(writes) > ahead or (writes and writes[0].done()):
                writes.popleft().result()  # re-raises a failed write
                result.written += 1

        def flush() -> None:
            if batch:
                outs = translator(np.stack([b.pixels for b in batch]))
                for item, out in zip(batch, outs):
                    queue_write(item, out)
                batch.clear()

        top_up()
        while pending:
            item = pending.popleft().result()
            top_up()
            if isinstance(item, DataError):
                bad_image(str(item), options.on_bad_image)
                result.skipped += 1
                continue
            if item.tiled:
                try:
                    image = load_rgb(item.path)
                except DataError as e:
                    bad_image(str(e), options.on_bad_image)
                    result.skipped += 1
                    continue
                out = translate_tiled(image, translator, size=size,
                                      overlap=options.overlap, batch_size=options.batch_size)
                result.tiled += 1
                queue_write(item, out)
                continue
            batch.append(item)
            if len(batch) == options.batch_size:
                flush()
        flush()
        while writes:
            writes.popleft().result()
            result.written += 1
    return result


def serve_datums(process: Callable[[], object], *, worker=None,
                 max_datums: int | None = None) -> int:
    """Pachyderm datum batching: ask the worker for the next datum, run ``process`` on it,
    repeat. The worker kills this process when no datum is left (Pachyderm's protocol; see
    python_pachyderm's ``batch_all_datums``), so without ``max_datums`` this never returns.

    Each call reports the previous datum's failure (``repr`` of its exception, "" when it
    succeeded) and applies the ``KEY=VALUE`` entries of the response's ``env`` to os.environ.

    Returns:
        The number of datums processed (only when ``max_datums`` is reached).
    """
    if worker is None:
        if not os.environ.get(WORKER_PORT_ENV):
            raise UsageError(f"--datum_batching needs a Pachyderm worker ({WORKER_PORT_ENV} "
                             "is not set); run it from a pipeline with datumBatching: true")
        import python_pachyderm
        # No pachctl config lookup (it printed "no config found" into every datum's log): the
        # worker API is reached on PPS_WORKER_GRPC_PORT alone.
        worker = python_pachyderm.Client(use_default_host=False).worker
    error, done = "", 0
    while max_datums is None or done < max_datums:
        try:
            response = worker.next_datum(error=error)
        except Exception as e:  # grpc.RpcError: the worker ended the batch with an error
            code = getattr(e, "code", lambda: None)()
            details = getattr(e, "details", lambda: str(e))()
            raise JobError(f"Pachyderm worker: NextDatum failed "
                           f"({getattr(code, 'name', type(e).__name__)}: {details})") from None
        for entry in response.env:
            key, sep, value = entry.partition("=")
            if sep:
                os.environ[key] = value
        error = ""
        try:
            process()
        except Exception as e:  # reported to the worker, which fails this datum, not the job
            error = repr(e)
            log.error("datum failed: %s", e)
        done += 1
    return done
