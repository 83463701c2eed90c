"""bench/quality.py end to end with a tiny budget: both models trained on the same batches,
scored on the test pairs, and the report written (HTML, loss plots, samples, results.json)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _quality():
    spec = importlib.util.spec_from_file_location("bench_quality", REPO / "bench" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check_report(out: Path, result: dict, *, n_test: int, samples: int, steps: int,
                  baseline: bool = False) -> None:
    for name in ("index.html", "results.json", "losses_seed0.png"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "results.json").read_text())
    assert saved["test_pairs"] == n_test
    assert set(saved["summary"]) == {"project", "project_other_stats", "project_last_weights",
                                     "reference", "project_training_mode",
                                     "reference_training_mode",
                                     *(["baseline"] if baseline else [])}
    run = saved["runs"][0]
    assert run["steps"] == steps
    for model, metrics in run["metrics"].items():
        assert metrics["count"] == n_test, model
        assert len(metrics["images"]) == n_test, model
        assert set(metrics["mean"]) == {"l1", "psnr", "ssim"}, model
        assert 0.0 <= metrics["mean"]["l1"] <= 1.0 and -1.0 <= metrics["mean"]["ssim"] <= 1.0
        assert saved["summary"][model]["l1"]["per_seed"] == [metrics["mean"]["l1"]]
        assert metrics["grid_ratio"] >= 0.0, model
        assert saved["summary"][model]["grid"]["per_seed"] == [metrics["grid_ratio"]]
    # One loss value per step for each model: the same batches went to both.
    assert len(run["losses"]["project"]["g_l1"]) == steps
    assert len(run["losses"]["reference"]["g_total"]) == steps
    if baseline:  # the ablation trained on the same batches too, and is named in the report
        assert len(run["losses"]["baseline"]["g_l1"]) == steps
        assert saved["baseline_options"] in (out / "index.html").read_text()
    assert len(run["samples"]) == samples
    page = (out / "index.html").read_text()
    for s in run["samples"]:
        for column in ("input", *saved["summary"], "target"):  # every scored model is shown
            assert (out / s[column]).is_file()
            assert s[column] in page
    ssim = saved["summary"]["project"]["ssim"]["mean"]
    assert result["summary"]["project"]["ssim"]["mean"] == ssim


@pytest.mark.slow
def test_quality_on_facades(facades_dir: Path, shared_dir: Path, tmp_path: Path):
    out = tmp_path / "report"
    result = _quality().main(data=facades_dir, reference=shared_dir / "bench" / "tf_reference.py",
                             out=out, steps=3, max_test=4, samples=2,
                             project={"ngf": 8, "ndf": 8}, baseline={"lr_policy": "constant"},
                             eval_batch=4, log=lambda m: None)
    _check_report(out, result, n_test=4, samples=2, steps=3, baseline=True)
    assert result["baseline_options"] == "lr_policy=constant"
    assert result["config"]["direction"] == "BtoA"


@pytest.mark.slow
def test_quality_on_another_image_size(shared_dir: Path, tmp_path: Path):
    """300x150 A|B files (150x150 halves): resized to load_size and cropped to 256 for both."""
    from PIL import Image

    from pix2pix.demo.synthetic import write_pairs
    data = tmp_path / "maps"
    write_pairs(data / "train", count=3, size=150, seed=0)
    write_pairs(data / "test", count=3, size=150, seed=1)
    with Image.open(next((data / "test").iterdir())) as im:
        assert im.size == (300, 150)
    out = tmp_path / "report"
    result = _quality().main(data=data, reference=shared_dir / "bench" / "tf_reference.py",
                             out=out, steps=2, samples=3, direction="AtoB", load_size=286,
                             project={"ngf": 8, "ndf": 8}, eval_batch=2, log=lambda m: None)
    _check_report(out, result, n_test=3, samples=3, steps=2)
    assert result["train_pairs"] == 3


def test_grid_share_finds_an_8_pixel_pattern_wherever_it_starts():
    q = _quality()
    rng = np.random.default_rng(0)
    tile = rng.uniform(0, 255, (8, 8, 3))
    pattern = np.tile(tile, (32, 16, 1))  # 256x128, repeats every 8 px in both directions
    assert q.grid_share(pattern) == pytest.approx(1.0)
    assert q.grid_share(np.roll(pattern, (3, 5), axis=(0, 1))) == pytest.approx(1.0)
    assert q.grid_share(np.full((64, 64, 3), 128.0)) == 0.0  # flat: nothing to measure


def test_grid_ratio_flags_a_faint_checkerboard_on_a_photo_like_image():
    q = _quality()
    rng = np.random.default_rng(1)
    # Photo-like: smooth (low-pass) structure, most energy at low frequencies.
    spectrum = np.fft.fft2(rng.normal(size=(256, 256)))
    f = np.fft.fftfreq(256)
    smooth = np.real(np.fft.ifft2(spectrum / (1e-2 + np.hypot(*np.meshgrid(f, f)))))
    photo = np.repeat(((smooth - smooth.min()) / np.ptp(smooth) * 255)[..., None], 3, axis=-1)
    checker = np.tile(rng.uniform(-1, 1, (8, 8, 1)), (32, 32, 3)) * 0.1 * photo.std()
    assert q.grid_share(photo) < 0.05
    assert q.grid_ratio([photo], [photo]) == pytest.approx(1.0)
    assert q.grid_ratio([photo + checker], [photo]) > 2.0  # at a tenth of the contrast
    assert q.grid_ratio([photo, photo + checker], [photo, photo]) > 1.5  # and in a mean


def test_quality_refuses_bad_options(tmp_path: Path, capsys):
    cli = _quality().cli
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    assert cli(["--data", str(tmp_path), "--crop_size", "128"]) == 2
    assert "--crop_size 128" in capsys.readouterr().err
    assert cli(["--data", str(tmp_path / "nope")]) == 2
    assert "train" in capsys.readouterr().err
    assert cli(["--data", str(tmp_path), "--reference", str(tmp_path / "missing.py")]) == 2
    assert "missing.py" in capsys.readouterr().err
    assert cli(["--data", str(tmp_path), "--baseline", "colour=red"]) == 2
    assert "--baseline colour: not a project model/train option" in capsys.readouterr().err
    assert cli(["--data", str(tmp_path), "--baseline", "lr_policy"]) == 2
    assert "--baseline 'lr_policy': expected KEY=VALUE" in capsys.readouterr().err


def test_quality_takes_the_new_model_options_and_refuses_plateau():
    """--project/--baseline reach issue 23's options (as bench/quality.py is run for the
    ResNet and multi-scale results), with the train command's own checks."""
    from pix2pix.errors import UsageError
    q = _quality()
    model, train = q.project_configs(q.parse_overrides(
        ["generator=resnet_9blocks", "num_D=2", "lambda_feat=10", "gan_mode=wgangp"]),
        crop_size=256)
    assert (model.generator, model.num_D, train.lambda_feat, train.gan_mode) == \
        ("resnet_9blocks", 2, 10.0, "wgangp")
    with pytest.raises(UsageError, match="lr_policy=plateau: the benchmark holds no validation"):
        q.project_configs({"lr_policy": "plateau"}, crop_size=256)
    with pytest.raises(UsageError, match="--num_D 9: the coarsest discriminator"):
        q.project_configs({"num_D": "9"}, crop_size=256)


@pytest.mark.slow  # two tiny project models on two facades steps, no reference: ~1 min
def test_quality_without_the_reference(facades_dir: Path, tmp_path: Path):
    out = tmp_path / "report"
    result = _quality().main(data=facades_dir, out=out, steps=2, max_test=2, samples=1,
                             with_reference=False, project={"num_D": "2"},
                             baseline={"num_D": "1"}, log=lambda _: None)
    assert not any(k.startswith("reference") for k in result["summary"])
    assert {"project", "baseline", "project_last_weights"} <= set(result["summary"])
    assert len(result["runs"][0]["losses"]["baseline"]["g_l1"]) == 2
    assert (out / "index.html").is_file() and (out / "losses_seed0.png").is_file()


def test_curve_points_merge_eval_at_and_eval_every_below_the_budget():
    q = _quality()
    assert q.curve_points(10, (3, 10), 4) == {3, 4, 8}  # the last step is scored in full anyway
    assert q.curve_points(10) == set()
    from pix2pix.errors import UsageError
    with pytest.raises(UsageError, match="--eval_at 12: past the run's 10 steps"):
        q.curve_points(10, (5, 12))


@pytest.mark.slow
def test_learning_curve_scores_at_the_asked_steps_and_leaves_training_alone(
        facades_dir: Path, shared_dir: Path, tmp_path: Path):
    """One run scored at steps 1 and 2 of 4: a curve per model and inference mode ending at the
    full scoring, and the same final weights (so the same scores) as a run that scored only at
    the end, though the tutorial mode ran both models with dropout on at steps 1 and 2."""
    q = _quality()
    common = dict(data=facades_dir, reference=shared_dir / "bench" / "tf_reference.py",
                  steps=4, max_test=2, samples=1, project={"ngf": 8, "ndf": 8}, eval_batch=2,
                  log=lambda m: None)
    curved = q.main(out=tmp_path / "curve", eval_at=(1, 2), **common)
    plain = q.main(out=tmp_path / "plain", **common)
    curves = curved["curves"]
    assert set(curves) == {"project", "reference", "project_training_mode",
                           "reference_training_mode"}
    for key, points in curves.items():
        assert [p["step"] for p in points] == [1, 2, 4], key
        assert points[-1]["l1"]["mean"] == curved["summary"][key]["l1"]["mean"]
        if key in ("project", "reference"):  # deterministic modes (dropout off)
            assert plain["summary"][key]["l1"]["mean"] == pytest.approx(
                curved["summary"][key]["l1"]["mean"], abs=1e-6), f"{key}: scoring changed training"
    assert curved["config"]["eval_at"] == [1, 2]
    assert (tmp_path / "curve" / "curves.png").stat().st_size > 0
    page = (tmp_path / "curve" / "index.html").read_text()
    assert "learning curve" in page and "curves.png" in page
    assert plain["curves"] == {} and "learning curve" not in (tmp_path / "plain" /
                                                                "index.html").read_text()


@pytest.mark.slow
def test_scores_survive_a_missing_plotting_package(tmp_path: Path, monkeypatch):
    """Without matplotlib: results.json and the page are written, the plots skipped with one
    warning line."""
    import builtins

    from pix2pix.demo.synthetic import write_pairs
    data = tmp_path / "pairs"
    write_pairs(data / "train", count=2, size=64, seed=0)
    write_pairs(data / "test", count=2, size=64, seed=1)
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    lines: list[str] = []
    out = tmp_path / "report"
    q = _quality()
    result = q.main(data=data, out=out, steps=2, samples=1, project={"ngf": 8, "ndf": 8},
                    eval_batch=2, with_reference=False, eval_at=(1,), log=lines.append)
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"]["project"]["l1"]["mean"] == result["summary"]["project"]["l1"]["mean"]
    assert [p["step"] for p in saved["curves"]["project"]] == [1, 2]
    partial = json.loads((out / "curve_seed0.partial.json").read_text())  # written at step 1
    assert [p["step"] for p in partial["curve"]["project"]] == [1]
    assert saved["runs"][0]["loss_plot"] is None and not (out / "losses_seed0.png").exists()
    warnings = [ln for ln in lines if ln.startswith("warning: no plots")]
    assert len(warnings) == 2 and "results.json" in warnings[0]  # losses, then the curve
    assert "no loss plot" in (out / "index.html").read_text()
