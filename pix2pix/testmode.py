"""Test mode: translate every pair of a folder with a checkpoint or an export, and write

  images/<name>-inputs.png, -outputs.png, -targets.png   (the affinelayer/pix2pix-tensorflow layout)
  index.html                                              name | input | output | target
  metrics.json                                            evaluate_pairs over outputs vs targets
"""
from __future__ import annotations

import html
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np

from pix2pix.config import DataConfig, from_dict
from pix2pix.errors import UsageError
from pix2pix.evaluate import evaluate_pairs, format_table, write_json
from pix2pix.fsutil import atomic_path, atomic_write


def run_test(*, input_dir: Path, output_dir: Path, checkpoint: Path | None = None,
             model: Path | None = None, test_dropout: bool | None = None,
             test_stats: str | None = None, last_weights: bool = False,
             dataset_fn: Callable | None = None) -> dict:
    """Translate the pairs in ``input_dir`` and write images, index.html and metrics.json.

    Args:
        checkpoint: a ``pix2pix train`` output folder; or
        model: a ``pix2pix export`` folder (exactly one of the two).
        test_dropout, test_stats, last_weights: inference behaviour (checkpoint only; an export
            has its own).
        dataset_fn: ``make_dataset`` replacement for tests.

    Returns:
        The metrics dict (see :func:`pix2pix.evaluate.evaluate_pairs`).
    """
    from pix2pix.export import load_translator, to_uint8
    if dataset_fn is None:
        from pix2pix.data.dataset import make_dataset as dataset_fn

    if (checkpoint is None) == (model is None):
        raise UsageError("give exactly one of --checkpoint (a train folder) or --model "
                         "(an export folder)")
    if checkpoint is not None:
        from pix2pix.model.trainer import restore_generator
        generator, options = restore_generator(checkpoint, test_dropout=test_dropout,
                                               test_stats=test_stats, last_weights=last_weights)
        translate = lambda x: to_uint8(generator(x, training=False))  # noqa: E731
    else:
        if test_dropout or test_stats or last_weights:
            raise UsageError("--test_dropout/--test_stats/--last_weights apply to --checkpoint; "
                             "an export keeps the ones it was exported with (re-export to "
                             "change them)")
        loaded, options = load_translator(model)
        serve = loaded.signatures["serving_default"]
        translate = lambda x: serve(images=to_uint8(x))["output"]  # noqa: E731
    data = from_dict(DataConfig, options.get("data", {}), source="options.json data")
    crop = int(options["model"]["crop_size"])
    if data.preprocess == "patches":
        # Trained on full-resolution patches: translate each pair whole, in blended tiles,
        # as `pix2pix generate` does for such a model.
        from pix2pix.export import from_uint8
        from pix2pix.generate import GenerateOptions
        from pix2pix.tiling import translate_tiled
        whole = translate

        def translate(x):  # noqa: F811
            return np.stack([translate_tiled(
                to_uint8(image).numpy(), lambda b: np.asarray(whole(from_uint8(b))), size=crop,
                overlap=min(GenerateOptions.overlap, crop // 4),
                batch_size=GenerateOptions.batch_size)
                for image in x])
    dataset, _ = dataset_fn(Path(input_dir), data=data, crop_size=crop, batch_size=1,
                            training=False, seed=None)

    output_dir = Path(output_dir)
    images_dir = output_dir / "images"
    names, outputs, targets, rows = [], [], [], []
    for inp, tar, name in dataset:
        out = np.asarray(translate(inp))
        for i in range(out.shape[0]):
            stem = _safe_stem(name[i].numpy().decode())
            pngs = {"inputs": to_uint8(inp[i]).numpy(), "outputs": out[i],
                    "targets": to_uint8(tar[i]).numpy()}
            for role, image in pngs.items():
                _write_png(images_dir / f"{stem}-{role}.png", image)
            names.append(stem)
            outputs.append(out[i])
            targets.append(pngs["targets"])
            rows.append(stem)
    metrics = evaluate_pairs(outputs, targets, names=names)
    metrics.update(_data_commits(model or checkpoint, input_dir))
    _write_index(output_dir / "index.html", rows, metrics)
    write_json(metrics, output_dir / "metrics.json")
    print(format_table(metrics), flush=True)
    return metrics


def _data_commits(model: Path, input_dir: Path) -> dict:
    """Which model and test-data commits were scored, when run as a Pachyderm datum (from the
    worker's ``<input>_COMMIT`` env; None elsewhere), and the job that scored them."""
    from pix2pix import pachenv
    found_model, found_data = pachenv.input_of(model), pachenv.input_of(input_dir)
    return {"model_commit": found_model[1] if found_model else None,
            "model_input": found_model[0] if found_model else None,
            "test_data_commit": found_data[1] if found_data else None,
            "test_data_input": found_data[0] if found_data else None,
            "job": pachenv.job_id()}


def _safe_stem(name: str) -> str:
    """Relative name without extension; '..' and absolute parts dropped."""
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).with_suffix("").parts
             if p not in ("", ".", "..", "/")]
    return "/".join(parts) or "image"


def _write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp, format="PNG")


def _write_index(path: Path, stems: list[str], metrics: dict) -> None:
    by_name = {r["name"]: r for r in metrics["images"]}
    out = ["<!doctype html>", "<html><head><meta charset='utf-8'><title>pix2pix test</title>",
           "<style>td{vertical-align:top;font-family:monospace}img{width:256px}</style>",
           "</head><body>",
           f"<p>{metrics['count']} images; mean L1 {metrics['mean']['l1']:.4f} (on [0, 1]), "
           f"PSNR {metrics['mean']['psnr']:.2f} dB, SSIM {metrics['mean']['ssim']:.4f}</p>",
           *([f"<p>model commit {html.escape(metrics['model_commit'])}, test data commit "
              f"{html.escape(str(metrics.get('test_data_commit')))}</p>"]
             if metrics.get("model_commit") else []),
           "<table><tr><th>name</th><th>input</th><th>output</th><th>target</th></tr>"]
    for stem in stems:
        r = by_name[stem]
        cells = "".join(f"<td><img src='images/{html.escape(stem)}-{role}.png'></td>"
                        for role in ("inputs", "outputs", "targets"))
        out.append(f"<tr><td>{html.escape(stem)}<br>L1 {r['l1']:.4f}<br>PSNR {r['psnr']:.2f}"
                   f"<br>SSIM {r['ssim']:.4f}</td>{cells}</tr>")
    out.append("</table></body></html>")
    atomic_write(path, "\n".join(out) + "\n")
