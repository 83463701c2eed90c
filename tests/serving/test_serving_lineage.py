"""How `pix2pix serve` in a pipeline names its model (no TensorFlow): the input commit its
--model lies in, from the worker env or the datum env file the engine rewrites before a
reload, and with --lineage that commit's checkpoint and training commits, params.yaml and
metrics looked up in the engine it runs on."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pix2pix import pachenv
from pix2pix.pachyderm.engine import Engine
from pix2pix.serving.lineage import info_source

CHECKPOINT = "import pathlib; pathlib.Path('/pfs/out/ckpt').write_text('c')"
MODEL = "import pathlib; pathlib.Path('/pfs/out/saved_model.pb').write_text('m')"
EVALUATE = ("import json, os; json.dump({'count': 1, 'mean': {'l1': 0.2, 'psnr': 11.0, "
            "'ssim': 0.4}, 'model_commit': os.environ['model_COMMIT']}, "
            "open('/pfs/out/metrics.json', 'w'))")


def _spec(name: str, code: str, inp: dict) -> dict:
    return {"pipeline": {"name": name}, "input": inp,
            "transform": {"cmd": [sys.executable, "-c", code]}}


def _pfs(repo: str) -> dict:
    return {"pfs": {"repo": repo, "glob": "/"}}


def test_input_of_finds_the_input_a_path_lies_in():
    env = {"model": "/pfs/model", "model_COMMIT": "m1", "images": "/pfs/images/a.png",
           "images_COMMIT": "i1", "OTHER_COMMIT": "x", "PACH_JOB_ID": "j"}
    assert pachenv.input_of("/pfs/model", env) == ("model", "m1")
    assert pachenv.input_of("/pfs/model/variables", env) == ("model", "m1")
    assert pachenv.input_of("/pfs/images/a.png", env) == ("images", "i1")
    assert pachenv.input_of("/pfs/modelx", env) is None  # a sibling is not inside
    assert pachenv.input_of("/data/model", env) is None
    assert pachenv.input_of("/pfs/model", {}) is None  # outside Pachyderm
    assert pachenv.job_id(env) == "j"


def test_env_file_overrides_the_process_env_after_a_swap(tmp_path: Path, monkeypatch):
    root = tmp_path / "pfs"
    (root / "model").mkdir(parents=True)
    monkeypatch.setenv("model", str(root / "model"))
    monkeypatch.setenv("model_COMMIT", "old")
    monkeypatch.delenv("PIX2PIX_STATE", raising=False)
    source = info_source(root / "model", datum_env=root / ".env", lineage=False, echo=print)
    assert source() == {"commit": "old"}  # no env file yet: the process env
    (root / ".env").write_text(f"model={root / 'model'}\nmodel_COMMIT=new\n")
    assert source() == {"commit": "new"}


def test_lineage_names_checkpoint_training_params_and_metrics(tmp_path: Path, monkeypatch):
    state = tmp_path / "state"
    eng = Engine(state)
    for repo in ("training", "test_pairs"):
        eng.create_repo(repo)
    eng.create_pipelines([
        ("c", _spec("checkpoint", CHECKPOINT, _pfs("training"))),
        ("m", _spec("model", MODEL, _pfs("checkpoint"))),
        ("e", _spec("evaluate_model", EVALUATE, {"cross": [_pfs("model"), _pfs("test_pairs")]})),
    ])
    with eng.commit("test_pairs") as c:
        c.put_file("/p.png", b"pair")
    with eng.commit("training") as c:
        c.put_file("/a.png", b"a")
        c.put_file("/params.yaml", b"model: {ngf: 8}\n")
    model = eng.inspect_branch("model", "master").head
    eng.create_branch("model", "production", head=model)
    folder = tmp_path / "pfs" / "model"
    folder.mkdir(parents=True)
    monkeypatch.setenv("PIX2PIX_STATE", str(state))
    monkeypatch.setenv("model", str(folder))
    monkeypatch.setenv("model_COMMIT", model)
    lines: list[str] = []
    info = info_source(folder, datum_env=None, lineage=True, echo=lines.append)()
    assert lines == []
    assert info["commit"] == model and info["repo"] == "model"
    assert info["branch"] == "master, production"
    assert info["provenance"] == {"checkpoint": c.id, "training": c.id,
                                  "params.yaml": {"model": {"ngf": 8}}}
    assert info["metrics"]["mean"] == {"l1": 0.2, "psnr": 11.0, "ssim": 0.4}
    json.dumps(info)  # what /info serves

    # a commit the engine does not know is one line, and the model is still named
    monkeypatch.setenv("model_COMMIT", "f" * 32)
    info = info_source(folder, datum_env=None, lineage=True, echo=lines.append)()
    assert info == {"commit": "f" * 32} and len(lines) == 1 and "not found" in lines[0]
