"""Bad pipeline specs and options that contradict a checkpoint, as a user meets them:
`pix2pix create pipeline -f FILE` and `pix2pix train`. One ``Error:`` line naming the file and
the field, the right exit code, and nothing created. A pipeline over an empty repo is not an
error: no datums, a successful job, an empty output commit.

Spec validation itself is unit-tested in tests/engine/test_engine_specs.py and
tests/engine/test_engine_pipelines.py::test_spec_errors_name_file_pipeline_and_field."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pix2pix.errors import SpecError, StoreError, UsageError
from pix2pix.pachyderm.engine import Engine

from tests.reliability.conftest import main_in_process, one_error_line


def _spec(name: str = "p", repo: str = "images", glob: str = "/*", **extra) -> dict:
    spec = {"pipeline": {"name": name}, "input": {"pfs": {"repo": repo, "glob": glob}},
            "transform": {"cmd": ["bash"], "stdin": ["cp -r /pfs/images/* /pfs/out/ || true"]}}
    spec.update(extra)
    return spec


def _cycle() -> list[dict]:
    return [_spec("a", repo="b"), _spec("b", repo="a")]


# case -> (specs in the file, exit code, words the one error line must contain)
BAD_SPECS = {
    "unknown_field": ([_spec(colour="blue")], SpecError, ["colour", "Additional properties"]),
    "wrong_type": ([_spec(datumTries="three")], SpecError, ["datumTries", "'three'"]),
    "wrong_type_nested": ([{**_spec(), "transform": {"cmd": "bash"}}], SpecError,
                          ["transform.cmd"]),
    "bad_glob": ([_spec(glob="/[a,b")], SpecError, ["input.pfs.glob", "not a valid glob"]),
    "missing_input_repo": ([_spec(repo="nosuchrepo")], SpecError,
                           ["input.pfs.repo", "'nosuchrepo' does not exist"]),
    "cycle": (_cycle(), SpecError, ["cycle", "a -> b -> a"]),
    "self_cycle": ([_spec("images2", repo="images2")], SpecError, ["own output", "cycle"]),
    "bad_name": ([_spec("no spaces allowed")], SpecError, ["pipeline.name"]),
    "bad_timeout": ([_spec(datumTimeout="10 minutes")], SpecError, ["datumTimeout"]),
}


@pytest.mark.rel("bad_input")
@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_is_one_line_naming_file_and_field(tmp_path: Path, capsys, monkeypatch, case):
    state = tmp_path / "state"
    monkeypatch.setenv("PIX2PIX_STATE", str(state))
    Engine(state).create_repo("images")
    specs, error, needles = BAD_SPECS[case]
    f = tmp_path / f"{case}.json"
    f.write_text("\n---\n".join(json.dumps(s) for s in specs))
    code, err = main_in_process(capsys, "create", "pipeline", "-f", str(f))
    assert code == error.exit_code
    one_error_line(err, str(f), *needles)
    eng = Engine(state)
    assert eng.list_pipelines() == [] and [r.name for r in eng.list_repos()] == ["images"]


@pytest.mark.rel("bad_input", 3)
def test_unparsable_missing_and_empty_spec_files(tmp_path: Path, capsys, monkeypatch):
    cases = {"broken.json": ('{"pipeline": {"name": "p"', "line 1"),
             "empty.yaml": ("   \n", "empty"),
             "missing.json": (None, "not found")}
    for name, (text, word) in cases.items():
        f = tmp_path / name
        if text is not None:
            f.write_text(text)
        monkeypatch.setenv("PIX2PIX_STATE", str(tmp_path / "state"))
        code, err = main_in_process(capsys, "create", "pipeline", "-f", str(f))
        assert code == SpecError.exit_code, err
        one_error_line(err, str(f), word)


@pytest.mark.rel("bad_input", 2)
def test_pipeline_over_an_empty_repo_succeeds_with_empty_output(tmp_path: Path, capsys,
                                                                monkeypatch):
    """No commit yet: as pachd, the input branch gets an empty first commit and the pipeline's
    first job, with no datums, succeeds. An empty commit: the same again."""
    state = tmp_path / "state"
    monkeypatch.setenv("PIX2PIX_STATE", str(state))
    eng = Engine(state)
    eng.create_repo("images")
    f = tmp_path / "p.json"
    f.write_text(json.dumps(_spec()))
    code, err = main_in_process(capsys, "create", "pipeline", "-f", str(f))
    assert code == 0, err
    [first] = Engine(state).list_jobs("p")
    assert (first.state, first.total) == ("success", 0)
    with Engine(state).commit("images"):
        pass  # an empty commit
    eng = Engine(state)
    job, _ = eng.list_jobs("p")
    assert (job.state, job.total, job.processed) == ("success", 0, 0)
    assert eng.walk_files("p", "master") == []
    assert eng.inspect_commit("p", "master").id == job.output_commit


# model option -> (value saved by the run, value asked for)
CONTRADICTIONS = {"ngf": ("8", "16"), "ndf": ("8", "32"), "generator": ("unet_128", "unet_256"),
                  "crop_size": ("128", "256"), "norm": ("batch", "instance")}


@pytest.mark.rel("bad_input")
@pytest.mark.parametrize("option", sorted(CONTRADICTIONS))
def test_options_contradicting_the_checkpoint_are_one_line(tmp_path: Path, capsys, option):
    """The run in --output_dir was made with other model options: refused before anything is
    touched (tests/model/test_model_cli.py checks --ngf on a real trained run)."""
    from pix2pix.config import DataConfig, ModelConfig, TrainConfig, save_options
    from tests.model.conftest import write_pairs
    pairs = write_pairs(tmp_path / "pairs", n=1, size=64)
    run = tmp_path / "run"
    run.mkdir()
    model = ModelConfig(generator="unet_128", ngf=8, ndf=8, crop_size=128, norm="batch")
    save_options(run / "options.json", model=model, data=DataConfig(), train=TrainConfig())
    before = (run / "options.json").read_text()
    saved, asked = CONTRADICTIONS[option]
    code, err = main_in_process(capsys, "train", "--input_dir", str(pairs), "--output_dir",
                                str(run), f"--{option}", asked, "--max_steps", "1")
    assert code == UsageError.exit_code
    one_error_line(err, f"--{option}", f"{option}={asked}", f"{option}={saved}", str(run))
    assert (run / "options.json").read_text() == before
    assert sorted(p.name for p in run.iterdir()) == ["options.json"]


@pytest.mark.rel("bad_input", 2)
def test_unknown_repo_in_put_and_missing_source_file(tmp_path: Path, capsys, monkeypatch):
    state = tmp_path / "state"
    monkeypatch.setenv("PIX2PIX_STATE", str(state))
    src = tmp_path / "a.txt"
    src.write_text("x")
    code, err = main_in_process(capsys, "put", "file", "nope@master:/a", "-f", str(src))
    assert code == StoreError.exit_code
    one_error_line(err, "'nope'", "not found")
    assert main_in_process(capsys, "create", "repo", "images")[0] == 0
    code, err = main_in_process(capsys, "put", "file", "images@master:/a", "-f",
                                str(tmp_path / "missing.txt"))
    assert code == StoreError.exit_code
    one_error_line(err, str(tmp_path / "missing.txt"))
    assert Engine(state).list_commits("images") == []
