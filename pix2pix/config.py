"""Typed configuration: one dataclass per concern, built from CLI options, saved with every
checkpoint and export (``options.json``) and reloaded by test, export and generate.

Defaults are the paper's (arXiv 1611.07004, section 3 and appendix 6.1) unless a field's help
says otherwise. Each field's ``metadata["help"]`` is the CLI help text, so the options and the
config never drift apart: :func:`click_options` turns a dataclass into click options.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Literal, get_args, get_type_hints

import click

from pix2pix.errors import UsageError
from pix2pix.fsutil import atomic_write


def _f(default: Any, help: str, choices: tuple | None = None, aliases: tuple[str, ...] = ()) -> Any:
    """A config field; ``aliases`` are other option names for it (junyanz's spellings)."""
    return field(default=default, metadata={"help": help, "choices": choices, "aliases": aliases})


def aliases(cls: type) -> dict[str, str]:
    """Alias -> field name for every field of ``cls`` that has one."""
    return {a: f.name for f in fields(cls) for a in f.metadata.get("aliases", ())}


@dataclass
class ModelConfig:
    """Architecture: what a checkpoint must agree with to be loaded."""

    generator: Literal["unet_256", "unet_128", "resnet_9blocks", "resnet_6blocks"] = _f(
        "unet_256", "Generator: U-Net unet_256 (8 down/up blocks) or unet_128 (7); or junyanz's "
        "ResNet resnet_9blocks / resnet_6blocks (two stride-2 downsamplings, 9 or 6 residual "
        "blocks, two upsamplings; any crop_size divisible by 4).")
    ngf: int = _f(64, "Generator filters in the first conv layer.")
    no_dropout: bool = _f(
        False, "No dropout in the generator (junyanz's --no_dropout). By default the U-Net's "
        "three innermost decoder blocks and every ResNet block drop half their units in "
        "training.")
    ndf: int = _f(64, "Discriminator filters in the first conv layer.")
    netd_receptive_field: Literal[1, 16, 70, 286] = _f(
        70, "PatchGAN receptive field in pixels: 1 (PixelGAN), 16, 70 or 286 (ImageGAN at 256).",
        (1, 16, 70, 286))
    num_D: int = _f(
        1, "Discriminators: 1, or K PatchGANs on the pair at full, 1/2, ... 1/2^(K-1) size "
        "(pix2pixHD's multi-scale discrimination; pix2pixHD uses 2).")
    norm: Literal["batch", "instance"] = _f("batch", "Normalisation layers: batch or instance.")
    norm_epsilon: float = _f(
        1e-3, "Epsilon added to the variance in every normalisation layer: 1e-3 (Keras' and the "
        "TF tutorial's; fewer grid artefacts at batch size 1, docs/quality.md) or the paper "
        "code's 1e-5.")
    input_nc: int = _f(3, "Input channels.")
    output_nc: int = _f(3, "Output channels.")
    crop_size: int = _f(256, "Training and inference image size (square) the model sees.")


@dataclass
class DataConfig:
    """How paired images are found, decoded and jittered."""

    direction: Literal["AtoB", "BtoA"] = _f("AtoB", "Translate A to B or B to A (facades labels->photo is BtoA).")
    load_size: int = _f(286, "Resize to this size before a random crop (preprocess resize_and_crop).")
    preprocess: Literal["resize_and_crop", "crop", "none", "patches"] = _f(
        "resize_and_crop",
        "Jitter: resize_and_crop (resize to load_size, random crop), crop (random crops, no resize), "
        "none (resize to crop_size only), patches (patches_per_image crops of crop_size per "
        "image and epoch at full resolution, for images larger than the model; test and "
        "generate then tile).")
    patches_per_image: int = _f(4, "Crops per image and epoch under preprocess patches.")
    patch_sampling: Literal["random", "grid"] = _f(
        "random", "preprocess patches: random offsets, or the next patches_per_image tiles of "
        "the grid that covers the image (each epoch goes on where the last one stopped).")
    val_fraction: float = _f(
        0.0, "Hold this fraction of the training pairs back (the same pairs on every run and "
        "resume) for the validation L1 that lr_policy plateau watches.")
    val_dir: str | None = _f(
        None, "Folder of validation pairs for the validation L1 (instead of val_fraction); "
        "must not lie inside input_dir.")
    no_flip: bool = _f(False, "Do not flip training pairs horizontally at random.")
    on_bad_image: Literal["skip", "fail"] = _f(
        "skip", "An undecodable image is named in a warning and skipped, or stops the run.")
    cache_mb: int = _f(
        2048, "Decode the whole set once into memory when its decoded size is under this many "
        "MiB (and a quarter of the free memory); larger sets stream from disk every epoch.")


@dataclass
class TrainConfig:
    """Optimisation and the training loop."""

    max_steps: int | None = _f(None, "Stop after this many steps (overrides max_epochs).")
    max_epochs: int | None = _f(200, "Stop after this many epochs.")
    batch_size: int = _f(1, "Pairs per step (the paper uses 1 with batch norm, i.e. instance-like).")
    lr: float = _f(2e-4, "Adam learning rate.")
    beta1: float = _f(0.5, "Adam beta1.")
    gan_mode: Literal["vanilla", "lsgan", "wgangp"] = _f(
        "vanilla", "GAN loss: vanilla (BCE on logits), lsgan (least squares) or wgangp "
        "(Wasserstein critic with gradient penalty, as junyanz's cal_gradient_penalty).")
    lambda_gp: float = _f(10.0, "Weight of the gradient penalty (gan_mode wgangp).")
    l1_weight: float = _f(100.0, "Weight of the L1 term in the generator loss (lambda; 0 "
                          "drops L1, e.g. for a perceptual loss alone).", aliases=("lambda_L1",))
    gan_weight: float = _f(1.0, "Weight of the GAN term in the generator loss.")
    perceptual_loss: Literal["none", "vgg19"] = _f(
        "none", "Perceptual loss: none, or vgg19 (L1 between VGG19 features of output and "
        "target, pix2pixHD's layers and weights; needs vgg_weights).")
    lambda_perceptual: float = _f(10.0, "Weight of the perceptual loss (pix2pixHD's 10).")
    vgg_weights: str | None = _f(
        None, "Keras VGG19 ImageNet weights file (vgg19_weights_tf_dim_ordering_tf_kernels_"
        "notop.h5; docs/model.md says where to get it) for perceptual_loss vgg19.")
    lambda_feat: float = _f(
        0.0, "Weight of the feature-matching loss: L1 between the discriminators' "
        "intermediate activations on real and generated pairs (pix2pixHD; it uses 10).")
    lr_policy: Literal["constant", "linear", "step", "plateau", "cosine"] = _f(
        "linear", "Learning rate policy: linear (constant, then linear decay to 0 over the last "
        "lr_decay_epochs; junyanz's default), constant, step (x0.1 every lr_decay_iters "
        "epochs), plateau (x0.2 when the validation L1 has not improved by 1% for 5 "
        "validations) or cosine (cosine annealing to 0 over the run).")
    lr_decay_epochs: int = _f(100, "Epochs of linear decay at the end (lr_policy linear).")
    lr_decay_iters: int = _f(50, "Epochs between two x0.1 steps (lr_policy step).")
    val_freq: int | None = _f(
        None, "Steps between validation L1 measurements (with val_fraction or val_dir; "
        "default: once an epoch, when junyanz steps its schedules).")
    clip_grad: float | None = _f(None, "Clip gradients to this global norm (off by default).")
    ema_decay: float = _f(
        0.999, "Test, export and generate use an exponential moving average of the generator's "
        "weights over the last quarter of the steps so far, at most 1/(1 - ema_decay) steps "
        "(1000 at 0.999; docs/model.md). 0: the last weights, as the paper.")
    seed: int | None = _f(None, "Random seed for weights, shuffling and jitter.")
    save_freq: int = _f(500, "Write a checkpoint every this many steps (and always at the end).")
    keep_checkpoints: int = _f(3, "How many checkpoints to keep.")
    summary_freq: int = _f(100, "Write TensorBoard summaries every this many steps (0 to turn off).")
    wandb: str | None = _f(
        None, "Also log to this Weights & Biases project (needs the optional wandb package).")
    display_freq: int = _f(400, "Log losses, learning rate and sample images to wandb every "
                           "this many steps.")
    test_dropout: bool = _f(False, "Keep dropout on at inference, as the paper does for noise.")
    test_stats: Literal["image", "running"] = _f(
        "image", "Batch-norm statistics at inference: image (each image's own, as training at "
        "batch size 1 sees them; the paper's choice) or running (moving averages).")
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = _f(
        "auto", "Training arithmetic: auto (float32 or the 16-bit format of the device, "
        "mixed_bfloat16 on a CPU and mixed_float16 on a GPU, whichever a short timed probe "
        "of both on this model and batch size finds faster; cached per machine), float32, "
        "mixed_bfloat16 (float32 weights, bfloat16 compute) or mixed_float16 (float32 "
        "weights, float16 compute, dynamic loss scaling). Inference: see generate "
        "--precision.")
    jit_compile: bool = _f(False, "Compile the train step with XLA.")


# Options added after runs were already saved: the value those runs were trained with, which is
# not necessarily today's default.
_SAVED_MODEL_FALLBACKS = {"norm_epsilon": 1e-5}
_SAVED_TRAIN_FALLBACKS = {"ema_decay": 0.0}


def saved_train_options(values: dict[str, Any] | None) -> dict[str, Any]:
    """A saved run's train options (``options.json``'s "train" group), with the value its run
    was trained with for every option the file predates."""
    return {**_SAVED_TRAIN_FALLBACKS, **(values or {})}


def saved_model_config(values: dict[str, Any], *, source: str) -> ModelConfig:
    """The ModelConfig of a saved run or export (``options.json``'s "model" group); options the
    file predates take the value its run was trained with."""
    return from_dict(ModelConfig, {**_SAVED_MODEL_FALLBACKS, **values}, source=source)


def to_dict(*configs: Any) -> dict[str, dict[str, Any]]:
    """``{"model": {...}, "data": {...}, ...}`` keyed by the dataclass name minus 'Config'."""
    return {type(c).__name__.removesuffix("Config").lower(): dataclasses.asdict(c) for c in configs}


def from_dict(cls: type, values: dict[str, Any], *, source: str) -> Any:
    """Build ``cls`` from a dict, refusing unknown keys and wrong types with one clear line."""
    known = {f.name: f for f in fields(cls)}
    hints = get_type_hints(cls)
    values = {aliases(cls).get(k, k): v for k, v in values.items()}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UsageError(f"{source}: unknown option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(known))}")
    out = {}
    for name, value in values.items():
        out[name] = _coerce(hints[name], value, f"{source}: {name}")
    return cls(**out)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    args = get_args(hint)
    if value is None and type(None) in args:
        return None
    if getattr(hint, "__origin__", None) is Literal:
        # click hands numeric choices over as strings ("70"): match them by their text.
        value = next((a for a in args if a == value or str(a) == str(value)), value)
        if value not in args:
            raise UsageError(f"{where}: {value!r} is not one of {', '.join(map(str, args))}")
        return value
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if getattr(base, "__origin__", None) is Literal:
        return _coerce(base, value, where)
    try:
        if base is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if base is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return base(value)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: {value!r} is not a valid {base.__name__}") from None


def save_options(path: Path, **configs: Any) -> None:
    """Write ``options.json`` atomically (temp file + rename) so a crash never leaves half of it."""
    atomic_write(path, json.dumps({k: dataclasses.asdict(v) for k, v in configs.items()},
                                  indent=2) + "\n")


def click_options(cls: type, *, exclude: tuple[str, ...] = ()) -> Callable:
    """Decorator adding one ``--name`` option per dataclass field, default None (= not given),
    so callers can tell explicit flags from defaults when merging with a saved options.json."""
    hints = get_type_hints(cls)

    def decorate(fn: Callable) -> Callable:
        for f in reversed(fields(cls)):
            if f.name in exclude:
                continue
            hint = hints[f.name]
            args = [a for a in get_args(hint) if a is not type(None)] or [hint]
            base = args[0]
            help_ = f.metadata.get("help", "")
            default = f.default
            names = (f"--{f.name}", *(f"--{a}" for a in f.metadata.get("aliases", ())), f.name)
            if base is bool:
                fn = click.option(*names, default=None, is_flag=True, flag_value=True,
                                  help=f"{help_}")(fn)
                continue
            if getattr(hint, "__origin__", None) is Literal or getattr(base, "__origin__", None) is Literal:
                lits = get_args(hint) if getattr(hint, "__origin__", None) is Literal else get_args(base)
                if all(isinstance(x, str) for x in lits):
                    ptype: Any = click.Choice(lits)
                else:
                    ptype = click.Choice([str(x) for x in lits])
            else:
                ptype = base
            fn = click.option(*names, default=None, type=ptype,
                              help=f"{help_} [default: {default}]")(fn)
        return fn

    return decorate


def build(cls: type, given: dict[str, Any], saved: dict[str, Any] | None = None, *,
          source: str = "options") -> Any:
    """Defaults, overlaid by ``saved`` (from options.json or a params file), overlaid by the
    options the user actually gave (``None`` means not given)."""
    names = {f.name for f in fields(cls)}
    merged: dict[str, Any] = dict(saved or {})
    merged.update({k: v for k, v in given.items() if k in names and v is not None})
    return from_dict(cls, merged, source=source)
