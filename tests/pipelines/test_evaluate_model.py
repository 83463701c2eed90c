"""pipelines/evaluate_model.json on the embedded engine with the real `pix2pix test`: each model
commit gets a metrics.json (L1 on [0, 1], PSNR, SSIM per image and mean, with the model and
test-data commits) and an index.html of input | output | target; new test pairs re-evaluate."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pix2pix.cli import cli
from pix2pix.pachyderm.engine import Engine
from pix2pix.pachyderm.specfile import load_spec_file
from tests.conftest import make_pair_image
from tests.model.conftest import make_dataset, trained_run  # noqa: F401 (fixtures)
from tests.serving.conftest import real_export  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]


def _pairs(folder: Path, seeds: range) -> Path:
    for i in seeds:
        make_pair_image(folder / f"p{i}.png", size=64, seed=i)
    return folder


@pytest.mark.slow
def test_every_model_commit_is_scored_on_the_test_pairs(real_export, tmp_path):  # noqa: F811
    eng = Engine(tmp_path / "state")
    for repo in ("model", "test_pairs"):
        eng.create_repo(repo)
    with eng.commit("model") as c:
        c.put_local(real_export, "/")
    model = c.id
    with eng.commit("test_pairs") as c:
        c.put_local(_pairs(tmp_path / "pairs", range(2)), "/")
    pairs = c.id
    eng.create_pipelines(load_spec_file(REPO / "pipelines" / "evaluate_model.json"))
    assert eng.list_jobs("evaluate_model")[0].state == "success"

    metrics = json.loads(eng.get_file("evaluate_model", "master", "/metrics.json"))
    assert (metrics["model_commit"], metrics["test_data_commit"]) == (model, pairs)
    assert metrics["scale"] == "[0, 1]" and metrics["count"] == 2
    assert [r["name"] for r in metrics["images"]] == ["p0", "p1"]
    for row in metrics["images"] + [metrics["mean"]]:
        assert 0 <= row["l1"] <= 1 and row["psnr"] > 0 and -1 <= row["ssim"] <= 1
    page = eng.get_file("evaluate_model", "master", "/index.html").decode()
    assert f"model commit {model}" in page
    files = {f.path for f in eng.walk_files("evaluate_model", "master")}
    for role in ("inputs", "outputs", "targets"):
        assert f"images/p1-{role}.png" in page and f"/images/p1-{role}.png" in files

    # new test pairs: the same model is scored again, on them
    with eng.commit("test_pairs") as c:
        c.put_local(_pairs(tmp_path / "more", range(2, 3)), "/")
    metrics = json.loads(eng.get_file("evaluate_model", "master", "/metrics.json"))
    assert (metrics["model_commit"], metrics["test_data_commit"], metrics["count"]) == \
        (model, c.id, 3)
    listed = json.loads(CliRunner().invoke(cli, ["list", "model", "-o", "json"],
                                           env={"PIX2PIX_STATE": str(tmp_path / "state")}).stdout)
    assert [(m["commit"], m["evaluated_images"], m["test_data_commit"]) for m in listed] == \
        [(model, 3, c.id)]
