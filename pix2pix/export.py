"""Export mode: a training checkpoint -> a SavedModel that needs only TensorFlow to serve.

Signatures (each returns its result under the key "output"):
  serving_default(images: uint8 [N, S, S, 3]) -> uint8 [N, S, S, 3]   S = crop_size, float32
  serving_bfloat16, serving_float16: the same over the same weights, computed in bfloat16
      (CPUs with AVX512_BF16 or AMX) or float16 (NVIDIA GPUs); weights and the uint8
      conversions stay float32 (generate and serve pick one: ``--precision``)
  translate_png(image: string scalar, PNG/JPEG/BMP/GIF bytes of any size) -> string (PNG bytes,
      S x S: the image is resized to the model's size, translated, and returned at that size)

The exported generator is the inference form of the trained one (same outputs up to float
rounding): with batch norm at running statistics (``--test_stats running``) each norm is
folded into the convolution before it, and the U-Net's transposed convolutions run as phase
convolutions (pix2pix.model.upconv.UpConv). ``options.json`` (the training options, plus an
"export" group saying which) sits next to ``saved_model.pb``. The folder is written under a
temporary name and renamed at the end, so a reader never sees half an export.
"""
from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf

from pix2pix.errors import ModelError, UsageError
from pix2pix.fsutil import atomic_dir

OPTIONS_FILE = "options.json"
IN_PLACE_TMP = ".export.tmp"  # temp folder inside an existing empty --output_dir


def from_uint8(images: tf.Tensor) -> tf.Tensor:
    """uint8 0..255 -> float32 in [-1, 1], the generator's range."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def to_uint8(images: tf.Tensor) -> tf.Tensor:
    """float in [-1, 1] -> uint8 0..255, rounded."""
    return tf.cast(tf.round((tf.clip_by_value(images, -1.0, 1.0) + 1.0) * 127.5), tf.uint8)


# precision -> (signature, Keras dtype policy the generator computes in)
SIGNATURES = {"float32": ("serving_default", "float32"),
              "bfloat16": ("serving_bfloat16", "mixed_bfloat16"),
              "float16": ("serving_float16", "mixed_float16")}


class Translator(tf.Module):
    """The generator wrapped with uint8 and encoded-image entry points."""

    def __init__(self, generator: tf.keras.Model, size: int):
        super().__init__(name="pix2pix")
        self.generator, self.size = generator, size
        spec = tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")
        self.serve = tf.function(self._serve, input_signature=[spec])
        self.translate_png = tf.function(self._translate_png, input_signature=[
            tf.TensorSpec([], tf.string, name="image")])
        self._traced = {"serving_default": self.serve.get_concrete_function(),
                        "translate_png": self.translate_png.get_concrete_function()}
        # The 16-bit signatures: the same layers and variables, traced with a 16-bit policy.
        # Handed to tf.saved_model.save as traced concrete functions: given a tf.function it
        # traces again, outside the policy.
        from pix2pix.model.inference import compute_policy
        for precision in ("bfloat16", "float16"):
            name, policy = SIGNATURES[precision]
            with compute_policy(generator, policy):
                self._traced[name] = tf.function(
                    self._serve, input_signature=[spec]).get_concrete_function()

    def signatures(self) -> dict:
        """Signature name -> traced function, for tf.saved_model.save."""
        return dict(self._traced)

    def _serve(self, images):
        return {"output": to_uint8(self.generator(from_uint8(images), training=False))}

    def _translate_png(self, image):
        decoded = tf.io.decode_image(image, channels=3, expand_animations=False)
        x = tf.image.resize(tf.cast(decoded, tf.float32), [self.size, self.size],
                            antialias=True)
        x = tf.clip_by_value(x, 0.0, 255.0) / 127.5 - 1.0
        y = to_uint8(self.generator(x[None], training=False))[0]
        return {"output": tf.io.encode_png(y)}


def inference_generator(generator: tf.keras.Model, model: dict, *, test_stats: str,
                        test_dropout: bool) -> tuple[tf.keras.Model, dict]:
    """The fastest network with ``generator``'s outputs, and the "export" group saying how:
    batch norm folded into the convolutions (batch norm at running statistics), phase-form
    transposed convolutions (U-Net)."""
    from pix2pix.config import saved_model_config
    from pix2pix.model.inference import fold_batch_norm
    from pix2pix.model.networks import build_generator
    cfg = saved_model_config(model, source="options.json")
    subpixel = cfg.generator.startswith("unet")
    if cfg.norm == "batch" and test_stats == "running":
        fast = fold_batch_norm(generator, cfg, test_dropout=test_dropout, subpixel=subpixel)
        batch_norm = "folded"
    else:
        fast = build_generator(cfg, test_dropout=test_dropout, test_stats=test_stats,
                               subpixel=subpixel)
        fast.set_weights(generator.get_weights())
        batch_norm = "per-image statistics" if cfg.norm == "batch" else "instance norm"
    return fast, {"batch_norm": batch_norm,
                  "transposed_conv": "phases" if subpixel else "plain",
                  "signatures": {p: name for p, (name, _) in SIGNATURES.items()}}


def export(*, checkpoint: Path, output_dir: Path, test_dropout: bool | None = None,
           test_stats: str | None = None, last_weights: bool = False) -> Path:
    """Write the SavedModel of the latest checkpoint in ``checkpoint`` to ``output_dir``, with
    its options.json (``"weights"`` says whether the weight average or the last weights).

    ``output_dir`` must not exist, be empty, or hold an earlier export (which is replaced).
    """
    from pix2pix.config import saved_train_options
    from pix2pix.model.trainer import restore_generator

    checkpoint, output_dir = Path(checkpoint), Path(output_dir)
    generator, options = restore_generator(checkpoint, test_dropout=test_dropout,
                                           test_stats=test_stats, last_weights=last_weights)
    model = options["model"]
    if model.get("input_nc", 3) != 3 or model.get("output_nc", 3) != 3:
        raise ModelError(f"{checkpoint}: export serves RGB; this model has input_nc="
                         f"{model.get('input_nc')} output_nc={model.get('output_nc')}")
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"{output_dir}: exists and is not a folder")
    # An export killed while writing into this folder left only its temp folder: not content.
    existing = ([p for p in output_dir.iterdir() if p.name != IN_PLACE_TMP]
                if output_dir.is_dir() else [])
    if existing and not (output_dir / "saved_model.pb").is_file():
        raise UsageError(f"{output_dir}: folder is not empty and holds no earlier export; "
                         "give an empty or new --output_dir")
    if train := options.get("train"):
        if test_dropout is not None:
            train["test_dropout"] = test_dropout
        if test_stats is not None:
            train["test_stats"] = test_stats

    # Built beside the target and renamed onto it; inside it when the target already exists
    # empty (e.g. a Pachyderm /pfs/out mount, which cannot be renamed), saved_model.pb moved
    # last as the mark of a complete export.
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    saved_train = saved_train_options(options.get("train"))
    fast, options["export"] = inference_generator(
        generator, model, test_stats=saved_train.get("test_stats", "image"),
        test_dropout=bool(saved_train.get("test_dropout", False)))
    module = Translator(fast, int(model["crop_size"]))
    with atomic_dir(output_dir, in_place=IN_PLACE_TMP, last="saved_model.pb") as tmp:
        tf.saved_model.save(module, str(tmp), signatures=module.signatures())
        (tmp / OPTIONS_FILE).write_text(json.dumps(options, indent=2) + "\n")
    return output_dir


def load_translator(model_dir: Path):
    """``tf.saved_model.load`` of an export, with its options; ModelError when not an export."""
    model_dir = Path(model_dir)
    if not (model_dir / "saved_model.pb").is_file():
        raise ModelError(f"{model_dir}: no saved_model.pb; is it a `pix2pix export` folder?")
    try:
        loaded = tf.saved_model.load(str(model_dir))
        options = json.loads((model_dir / OPTIONS_FILE).read_text())
    except (OSError, ValueError, tf.errors.OpError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"{model_dir}: cannot load the exported model ({first})") from None
    return loaded, options
