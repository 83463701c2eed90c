"""`pix2pix cluster models` and `pix2pix cluster promote` through python-pachyderm against
`local serve`: the same registry rows as the embedded engine's `pix2pix list model`, and a
promotion that moves model@production (or says in one line why it cannot)."""
from __future__ import annotations

import json

from click.testing import CliRunner

import pix2pix.cli
from tests.cluster.conftest import _spec

_EVALUATE = r"""
import json, os, pathlib
n = len([p for p in pathlib.Path('/pfs/test_pairs').rglob('*') if p.is_file()])
json.dump({'count': n, 'mean': {'l1': 0.25, 'psnr': 12.0, 'ssim': 0.3},
           'model_commit': os.environ['model_COMMIT'],
           'test_data_commit': os.environ['test_pairs_COMMIT']},
          open('/pfs/out/metrics.json', 'w'))
"""


def _deploy(pix, standin_pipelines, tmp_path):
    cross = {"cross": [{"pfs": {"repo": "model", "branch": "master", "glob": "/"}},
                       {"pfs": {"repo": "test_pairs", "branch": "master", "glob": "/"}}]}
    (standin_pipelines / "evaluate_model.json").write_text(
        json.dumps(_spec("evaluate_model", _EVALUATE, cross)))
    pix("deploy", "--pipelines", str(standin_pipelines))
    (tmp_path / "t.png").write_bytes(b"pair")
    pix("put", "test_pairs", str(tmp_path / "t.png"))
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "a.png").write_bytes(b"a")
    (tmp_path / "params.yaml").write_text("train: {max_steps: 5}\n")
    r = pix("put", "training", str(tmp_path / "train"), str(tmp_path / "params.yaml"))
    pix("wait", "training")
    return r.output.split("commit ")[-1].strip()


def test_models_and_promote_agree_with_the_engine(pix, local_server, standin_pipelines,
                                                  tmp_path):
    _, state = local_server
    commit = _deploy(pix, standin_pipelines, tmp_path)
    rows = json.loads(pix("models", "-o", "json").output)
    assert [(m["commit"], m["training_commit"], m["checkpoint_commit"], m["metrics"]["l1"],
             m["options"], m["branches"]) for m in rows] == \
        [(commit, commit, commit, 0.25, {"train": {"max_steps": 5}}, ["master"])]
    r = pix("promote", commit)
    assert r.output.strip() == f"model@production -> {commit}"
    table = pix("models").output
    engine_table = CliRunner().invoke(pix2pix.cli.cli, ["list", "model", "--state", str(state)])
    assert engine_table.exit_code == 0
    strip = lambda text: [line.split("   ") for line in text.splitlines()]  # noqa: E731
    assert [r[:1] + r[2:] for r in strip(table)] == [r[:1] + r[2:] for r in strip(engine_table.output)]
    assert "master, production" in table and "L1 0.2500" in table


def test_promote_names_a_missing_commit(pix, local_server, standin_pipelines, tmp_path):
    _deploy(pix, standin_pipelines, tmp_path)
    r = pix("promote", "0" * 32, ok=False)
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert "0" * 32 in r.output.strip().splitlines()[-1]
