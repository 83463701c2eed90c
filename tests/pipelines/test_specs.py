"""The shipped pipeline specs: valid against Pachyderm's official schema, shaped as the DAG the
product promises (training -> checkpoint -> model -> evaluate_model with test_pairs;
input_images -> preprocess_images -> generate_images with the model on branch production;
serve_model, a service, on branch production too), and CPU/GPU variants that differ only where
they must."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
STAGES = ["checkpoint", "model", "preprocess_images", "generate_images", "evaluate_model",
          "serve_model"]
CPU_IMAGE = "pix2pix-pachyderm:0.1.0-cpu"
GPU_IMAGE = "pix2pix-pachyderm:0.1.0-gpu"


def load(name: str) -> dict:
    return json.loads((PIPELINES / f"{name}.json").read_text())


def spec_files() -> list[Path]:
    return sorted(PIPELINES.glob("*.json"))


def test_every_stage_has_a_cpu_and_a_gpu_spec():
    names = {p.stem for p in spec_files()}
    assert names == set(STAGES) | {f"{s}-gpu" for s in STAGES}


@pytest.mark.parametrize("path", spec_files(), ids=lambda p: p.name)
def test_spec_validates_against_official_schema(path: Path, schema_dir: Path):
    schema = json.loads((schema_dir / "CreatePipelineRequest.schema.json").read_text())
    validator = jsonschema.Draft4Validator(schema)
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(json.loads(path.read_text()))]
    assert errors == []


def test_schema_rejects_what_it_should(schema_dir: Path):
    """The oracle itself is sharp: a snake_case field and the legacy integer gpu fail it."""
    schema = json.loads((schema_dir / "CreatePipelineRequest.schema.json").read_text())
    validator = jsonschema.Draft4Validator(schema)
    bad_case = load("checkpoint") | {"parallelism_spec": {"constant": 1}}
    bad_gpu = load("checkpoint-gpu") | {"resourceLimits": {"gpu": 1}}
    assert list(validator.iter_errors(bad_case))
    assert list(validator.iter_errors(bad_gpu))


def _pfs_inputs(node: dict) -> list[dict]:
    if "pfs" in node:
        return [node["pfs"]]
    return [p for key in ("cross", "union", "join", "group") for child in node.get(key, []) for p in _pfs_inputs(child)]


def test_dag_shape():
    inputs = {s: [(p["repo"], p.get("branch", "master"), p["glob"])
                  for p in _pfs_inputs(load(s)["input"])] for s in STAGES}
    assert inputs == {
        "checkpoint": [("training", "master", "/")],
        "model": [("checkpoint", "master", "/")],
        "preprocess_images": [("input_images", "master", "/*")],
        # generation and serving read the model users promote; every model is evaluated
        "generate_images": [("preprocess_images", "master", "/*"), ("model", "production", "/")],
        "evaluate_model": [("model", "master", "/"), ("test_pairs", "master", "/")],
        "serve_model": [("model", "production", "/")],
    }
    assert "cross" in load("generate_images")["input"]
    assert "cross" in load("evaluate_model")["input"]
    for s in STAGES:
        assert load(s)["pipeline"]["name"] == s


def test_evaluation_scores_the_model_on_the_test_pairs_into_pfs_out():
    cmd = load("evaluate_model")["transform"]["cmd"]
    assert cmd[:2] == ["pix2pix", "test"]
    assert cmd[cmd.index("--model") + 1] == "/pfs/model"
    assert cmd[cmd.index("--input_dir") + 1] == "/pfs/test_pairs"


def test_serving_is_a_service_on_one_port_pair_with_a_readiness_probe():
    spec = load("serve_model")
    svc, cmd = spec["service"], spec["transform"]["cmd"]
    assert cmd[:2] == ["pix2pix", "serve"] and cmd[cmd.index("--model") + 1] == "/pfs/model"
    # the code listens on internalPort (every interface inside a pod: --host auto); Kubernetes'
    # NodePort range holds externalPort
    assert int(cmd[cmd.index("--port") + 1]) == svc["internalPort"]
    assert cmd[cmd.index("--host") + 1] == "auto"
    assert 30000 <= svc["externalPort"] <= 32767
    assert spec["parallelismSpec"] == {"constant": 1}  # pachd refuses any other for a service
    # the model swaps in place on the embedded engine; the page names it
    assert spec["metadata"]["annotations"]["pix2pix/reload-signal"] == "SIGHUP"
    assert "--lineage" in cmd and cmd[cmd.index("--datum_env") + 1] == "/pfs/.env"
    probe = json.loads(spec["podPatch"])
    assert probe == [{"op": "add", "path": "/containers/0/readinessProbe",
                      "value": {"httpGet": {"path": "/healthz", "port": svc["internalPort"]},
                                "periodSeconds": 2}}]


def test_generation_amortises_model_load_with_datum_batching():
    spec = load("generate_images")
    assert spec["transform"].get("datumBatching") is True
    assert "--datum_batching" in spec["transform"]["cmd"]


@pytest.mark.parametrize("stage", STAGES)
def test_gpu_variant_differs_only_in_image_and_resources(stage: str):
    cpu, gpu = load(stage), load(f"{stage}-gpu")
    assert cpu["transform"]["image"] == CPU_IMAGE
    assert gpu["transform"]["image"] == GPU_IMAGE
    assert gpu["transform"]["cmd"] == cpu["transform"]["cmd"]
    assert gpu["input"] == cpu["input"]
    strip = lambda s: {k: v for k, v in s.items() if k not in ("transform", "resourceLimits", "description")}  # noqa: E731
    assert strip(gpu) == strip(cpu)


@pytest.mark.parametrize("stage", ["checkpoint", "generate_images", "evaluate_model",
                                   "serve_model"])
def test_gpu_stages_request_a_gpu_and_bound_memory(stage: str):
    limits = load(f"{stage}-gpu")["resourceLimits"]
    assert limits["gpu"]["number"] >= 1 and limits["gpu"]["type"]
    assert limits["memory"]


def test_specs_run_pix2pix_commands_on_pfs_paths():
    for s in STAGES:
        cmd = load(s)["transform"]["cmd"]
        assert cmd[0] == "pix2pix"
        assert ("/pfs/out" in cmd) == ("service" not in load(s)), s  # a service writes nothing
