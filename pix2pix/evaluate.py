"""Evaluate mode: L1, PSNR and SSIM of generated images against their targets.

All three are computed on RGB scaled to [0, 1]: L1 is the mean absolute difference per pixel
and channel (multiply by 2 for the [-1, 1] scale the training loss uses); PSNR and SSIM are
``tf.image.psnr`` / ``tf.image.ssim`` with ``max_val=1.0``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from pix2pix.data.images import IMAGE_EXTENSIONS, load_rgb
from pix2pix.errors import DataError
from pix2pix.fsutil import atomic_write

# affinelayer-style test outputs (name-outputs.png / name-targets.png) match on "name".
_ROLE = re.compile(r"-(outputs|targets|inputs)$")


def _to_unit(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    a = a[..., :3]
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    return np.clip(a.astype(np.float32), 0.0, 1.0)


def evaluate_pairs(outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                   names: Sequence[str] | None = None) -> dict:
    """Metrics for each (output, target) pair and their mean.

    Args:
        outputs, targets: HxWx3 arrays, uint8 (0..255) or float in [0, 1]; same size per pair.
        names: a label per pair (default: its index).

    Returns:
        ``{"scale": "[0, 1]", "count": n, "mean": {"l1", "psnr", "ssim"}, "images": [{"name",
        "l1", "psnr", "ssim"}, ...]}``.
    """
    import tensorflow as tf

    if len(outputs) != len(targets):
        raise DataError(f"{len(outputs)} outputs but {len(targets)} targets")
    if not outputs:
        raise DataError("no image pairs to evaluate")
    names = list(names) if names is not None else [str(i) for i in range(len(outputs))]
    rows = []
    for name, out, tar in zip(names, outputs, targets):
        o, t = _to_unit(out), _to_unit(tar)
        if o.shape != t.shape:
            raise DataError(f"{name}: output is {o.shape[1]}x{o.shape[0]} but target is "
                            f"{t.shape[1]}x{t.shape[0]}; metrics need equal sizes")
        if min(o.shape[:2]) < 11:
            raise DataError(f"{name}: {o.shape[1]}x{o.shape[0]} is smaller than SSIM's 11x11 "
                            "window")
        to, tt = tf.constant(o), tf.constant(t)
        rows.append({"name": name, "l1": float(np.mean(np.abs(o - t))),
                     "psnr": float(tf.image.psnr(to, tt, max_val=1.0)),
                     "ssim": float(tf.image.ssim(to, tt, max_val=1.0))})
    # PSNR of identical images is +inf; keep it in the rows but average the finite ones.
    mean = {k: float(np.mean([r[k] for r in rows if np.isfinite(r[k])] or [np.inf]))
            for k in ("l1", "psnr", "ssim")}
    return {"scale": "[0, 1]", "count": len(rows), "mean": mean, "images": rows}


def _key(rel: Path) -> str:
    return _ROLE.sub("", str(rel.with_suffix("")))


def _index(folder: Path) -> dict[str, Path]:
    return {_key(p.relative_to(folder)): p for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS}


def evaluate_dirs(*, outputs: Path, targets: Path) -> dict:
    """Match images by relative path (extension and a -outputs/-targets suffix ignored) and
    evaluate each pair. Images present on one side only are listed under ``unmatched``."""
    for d, what in ((outputs, "outputs"), (targets, "targets")):
        if not Path(d).is_dir():
            raise DataError(f"{d}: {what} folder not found")
    outs, tars = _index(Path(outputs)), _index(Path(targets))
    if outputs == targets:  # one images/ folder holding both name-outputs and name-targets
        outs = {_key(p.relative_to(outputs)): p for p in Path(outputs).rglob("*-outputs.*")}
        tars = {_key(p.relative_to(targets)): p for p in Path(targets).rglob("*-targets.*")}
    common = sorted(set(outs) & set(tars))
    if not common:
        raise DataError(f"no image in {outputs} has a same-named target in {targets} "
                        f"({len(outs)} outputs, {len(tars)} targets)")
    result = evaluate_pairs([load_rgb(outs[k]) for k in common],
                            [load_rgb(tars[k]) for k in common], names=common)
    result["unmatched"] = sorted(set(outs) ^ set(tars))
    return result


def format_table(result: dict) -> str:
    """Plain-text table: one row per image, then the mean."""
    width = max([len("mean")] + [len(r["name"]) for r in result["images"]])
    lines = [f"{'image':<{width}}  {'L1[0,1]':>8}  {'PSNR':>7}  {'SSIM':>6}"]
    for r in result["images"] + [{"name": "mean", **result["mean"]}]:
        lines.append(f"{r['name']:<{width}}  {r['l1']:8.4f}  {r['psnr']:7.2f}  {r['ssim']:6.4f}")
    return "\n".join(lines)


def write_json(result: dict, path: Path) -> None:
    """Write ``result`` atomically (temp file, then rename); an infinite PSNR (identical
    images) becomes null, as JSON has no infinity."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(_finite(result), indent=2, allow_nan=False) + "\n")


def _finite(x):
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x
