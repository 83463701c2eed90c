"""Spec loading and validation: multi-document files, JSON arrays, YAML, snake_case, the official
schema, semantic checks, Pachyderm's own example specs and this project's pipelines/."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pix2pix.errors import SpecError
from pix2pix.pachyderm.engine import Engine
from pix2pix.pachyderm.spec import parse_spec, validate_spec
from pix2pix.pachyderm.specfile import camelize, load_spec_file, load_spec_text

from engine_testlib import REPO_ROOT, pfs, put

SPEC = {"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "in", "glob": "/*"}},
        "transform": {"cmd": ["true"]}}


def test_multi_document_json_and_yaml(tmp_path: Path):
    f = tmp_path / "two.json"
    f.write_text(json.dumps(SPEC) + "\n---\n" + "pipeline:\n  name: q\ninput:\n  pfs: {repo: p, glob: /}\n"
                 "transform:\n  cmd: [cat]\n")
    docs = load_spec_file(f)
    assert [(src, d["pipeline"]["name"]) for src, d in docs] == [(f"{f}#1", "p"), (f"{f}#2", "q")]
    arr = load_spec_text(json.dumps([SPEC, SPEC]), source="a.json")
    assert [s for s, _ in arr] == ["a.json#1", "a.json#2"]


def test_unreadable_specs_name_the_file(tmp_path: Path):
    with pytest.raises(SpecError, match="not found"):
        load_spec_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"pipeline": {"name": "p"},,}')
    with pytest.raises(SpecError, match=r"bad\.json: not valid JSON or YAML \(line 1"):
        load_spec_file(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("\n")
    with pytest.raises(SpecError, match="empty"):
        load_spec_file(empty)


def test_snake_case_is_accepted_by_converting_but_env_keys_are_kept():
    spec = dict(SPEC, parallelism_spec={"constant": 1}, datum_tries=2,
                transform={"cmd": ["true"], "env": {"MY_VAR": "1"}, "datum_batching": True})
    out = validate_spec(spec, source="s.json")
    assert out["parallelismSpec"] == {"constant": 1} and out["datumTries"] == 2
    assert out["transform"]["env"] == {"MY_VAR": "1"} and out["transform"]["datumBatching"] is True
    assert camelize({"join_on": 1}) == {"joinOn": 1}


def test_schema_errors_are_reported_with_field_paths():
    with pytest.raises(SpecError, match=r's\.json: pipeline "p": datumTimeout: .*does not match'):
        validate_spec(dict(SPEC, datumTimeout="10m"), source="s.json")
    with pytest.raises(SpecError, match=r"Additional properties are not allowed \('bogus'"):
        validate_spec(dict(SPEC, bogus=1), source="s.json")
    with pytest.raises(SpecError, match=r"resourceLimits\.gpu"):
        validate_spec(dict(SPEC, resourceLimits={"gpu": 1}), source="s.json")


def test_semantic_errors():
    with pytest.raises(SpecError, match="input: missing"):
        validate_spec({"pipeline": {"name": "p"}, "transform": {"cmd": ["x"]}})
    with pytest.raises(SpecError, match=r"input\.pfs\.glob: missing"):
        validate_spec(dict(SPEC, input={"pfs": {"repo": "in"}}))
    with pytest.raises(SpecError, match=r'input\.union\[1\]\.pfs\.glob: "/\[a" is not a valid glob'):
        validate_spec(dict(SPEC, input={"union": [pfs("a"), pfs("b", "/[a")]}))
    with pytest.raises(SpecError, match="transform: missing"):
        validate_spec({"pipeline": {"name": "p"}, "input": pfs("in")})


def _example_files(shared_dir: Path) -> list[Path]:
    return sorted((shared_dir / "reference" / "pachyderm" / "examples").rglob("*.json"))


def test_every_official_example_loads_and_validates(shared_dir: Path):
    files = _example_files(shared_dir)
    assert len(files) >= 9
    names = []
    for f in files:
        for src, spec in load_spec_file(f):
            names.append(validate_spec(spec, source=src)["pipeline"]["name"])
    assert {"edges", "montage", "checkpoint", "model", "preprocess_images", "generate_images",
            "inner_join", "outer_join", "group_store_revenue"} <= set(names)


def test_official_examples_create_on_the_engine(shared_dir: Path, tmp_path: Path):
    """Every example is accepted by create pipeline (deferred: their images' code is not here),
    edges-union too, which reads a second project: an input repo in a missing project is one
    clear line, and once the project and repo exist it creates."""
    for f in _example_files(shared_dir):
        eng = Engine(tmp_path / f.stem, defer=True)
        docs = load_spec_file(f)
        own = {parse_spec(s).qname for _, s in docs}
        missing = {p.qrepo for _, s in docs for p in parse_spec(s).pfs_inputs} - own
        for repo in sorted(r for r in missing if "/" not in r):
            eng.create_repo(repo)
        other = sorted(r for r in missing if "/" in r)
        if other:
            with pytest.raises(SpecError, match=f"repo '{other[0]}' does not exist"):
                eng.create_pipelines(docs)
            for repo in other:
                eng.create_project(repo.split("/")[0], update=True)
                eng.create_repo(repo)
        infos = eng.create_pipelines(docs)
        assert {i.name for i in infos} == own


def test_montage_example_runs_here_when_its_tools_exist(shared_dir: Path, tmp_path: Path):
    """The only example whose transform is a shell line: it runs if ImageMagick's montage is
    installed (the others need code baked into their images)."""
    import shutil
    if not shutil.which("montage"):
        pytest.skip("ImageMagick montage is not installed")
    f = shared_dir / "reference" / "pachyderm" / "examples" / "opencv" / "montage.pipeline.json"
    eng = Engine(tmp_path / "s")
    eng.create_repo("images")
    eng.create_repo("edges")  # stands in for the edges pipeline's output
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, "PNG")
    put(eng, "images", {"/a.png": buf.getvalue()})
    eng.create_pipelines(load_spec_file(f))
    put(eng, "edges", {"/a.png": buf.getvalue()})
    assert eng.list_jobs("montage")[0].state == "success"


def test_project_pipeline_specs_validate_and_create(tmp_path: Path):
    """The lead's pipelines/*.json: valid, and the DAG is accepted by the engine."""
    specs_dir = REPO_ROOT / "pipelines"
    files = sorted(p for p in specs_dir.glob("*.json") if not p.stem.endswith("-gpu"))
    if not files:
        pytest.skip("no pipelines/*.json yet")
    eng = Engine(tmp_path / "s", defer=True)
    for repo in ("training", "input_images", "test_pairs"):
        eng.create_repo(repo)
    docs = [d for f in files for d in load_spec_file(f)]
    try:
        infos = eng.create_pipelines(docs)
        assert {i.name for i in infos} == {"checkpoint", "model", "preprocess_images",
                                           "generate_images", "evaluate_model", "serve_model"}
        # generation and serving read the branch users move; pachd creates it, empty
        assert eng.inspect_branch("model", "production").head is not None
    finally:
        eng.stop_pipeline("serve_model")  # its supervisor, started by create
