"""`pix2pix cluster` pieces that need no pachd: refs, put plans, safe get targets, spec loading,
and the one-line errors when no pachd answers."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pix2pix.cluster.data import _safe_target, plan_put
from pix2pix.cluster.deploy import load_specs, read_spec_file, source_repos
from pix2pix.cluster.refs import parse_ref
from pix2pix.errors import DataError, SpecError, UsageError

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_parse_ref_forms():
    assert parse_ref("images").repo == "images"
    assert parse_ref("images").ref == "master"
    r = parse_ref("images@dev:/a/b.png")
    assert (r.repo, r.ref, r.path) == ("images", "dev", "/a/b.png")
    cid = "0123456789ab4def0123456789abcdef"
    r = parse_ref(f"model@{cid}")
    assert r.is_commit_id and r.commit().id == cid and r.commit().branch.repo.name == "model"
    assert parse_ref("images@master").commit().branch.name == "master"
    anc = parse_ref("images@master^2").commit()
    assert (anc.id, anc.branch.name) == ("master^2", "")


@pytest.mark.parametrize("bad", ["", "a b", "images@", "images@x:/../etc", "../x"])
def test_parse_ref_rejects(bad):
    with pytest.raises(UsageError):
        parse_ref(bad)


def test_parse_ref_no_path_where_none_allowed():
    with pytest.raises(UsageError, match="no :/path"):
        parse_ref("images@master:/a", allow_path=False)


def test_plan_put_keeps_relative_paths(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.png").write_bytes(b"a")
    (tmp_path / "d" / "sub" / "b.png").write_bytes(b"b")
    (tmp_path / "params.yaml").write_text("max_steps: 1\n")
    plan = plan_put([tmp_path / "d", tmp_path / "params.yaml"], dest="/")
    assert [remote for _, remote in plan] == ["/a.png", "/params.yaml", "/sub/b.png"]
    plan = plan_put([tmp_path / "d"], dest="/train/")
    assert [remote for _, remote in plan] == ["/train/a.png", "/train/sub/b.png"]


def test_plan_put_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        plan_put([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no files"):
        plan_put([tmp_path / "empty"])
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a").write_text("1")
    (tmp_path / "a").write_text("2")
    with pytest.raises(UsageError, match="both be written"):
        plan_put([tmp_path / "x", tmp_path / "a"])
    with pytest.raises(UsageError):
        plan_put([tmp_path / "a"], dest="/../up")


@pytest.mark.parametrize("rel", ["../x", "/etc/passwd", "a/../../x", "", "a\\..\\b"])
def test_safe_target_refuses_escapes(tmp_path, rel):
    with pytest.raises(DataError):
        _safe_target(tmp_path, rel)


def test_safe_target_refuses_symlinked_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(DataError, match="outside"):
        _safe_target(tmp_path / "out", "link/x.png")
    assert _safe_target(tmp_path / "out", "a/b.png") == tmp_path / "out" / "a" / "b.png"


def test_load_project_specs_in_dependency_order():
    specs = load_specs(REPO_ROOT / "pipelines")
    names = [s.name for s in specs]
    assert set(names) == {"checkpoint", "model", "preprocess_images", "generate_images",
                          "evaluate_model", "serve_model"}
    assert names.index("checkpoint") < names.index("model") < names.index("generate_images")
    assert names.index("model") < names.index("evaluate_model")
    assert names.index("model") < names.index("serve_model")
    assert names.index("preprocess_images") < names.index("generate_images")
    assert source_repos(specs) == ["input_images", "test_pairs", "training"]
    assert all(not s.source.stem.endswith("-gpu") for s in specs)
    gpu = load_specs(REPO_ROOT / "pipelines", gpu=True)
    assert all(s.source.stem.endswith("-gpu") for s in gpu)


def test_multi_spec_file_and_bad_json(tmp_path):
    a = {"pipeline": {"name": "a"}, "input": {"pfs": {"repo": "src", "glob": "/"}}, "transform": {"cmd": ["true"]}}
    b = {"pipeline": {"name": "b"}, "input": {"pfs": {"repo": "a", "glob": "/"}}, "transform": {"cmd": ["true"]}}
    (tmp_path / "all.json").write_text(json.dumps(b) + "\n---\n" + json.dumps(a))
    assert [s.name for s in read_spec_file(tmp_path / "all.json")] == ["b", "a"]
    assert [s.name for s in load_specs(tmp_path)] == ["a", "b"]
    (tmp_path / "bad.json").write_text('{"pipeline": {"name": "c"},')
    with pytest.raises(SpecError, match="bad.json.*line 1"):
        load_specs(tmp_path)


def test_own_files_win_over_a_combined_file_and_gpu_picks_variants(tmp_path):
    def spec(name, src, image):
        return {"pipeline": {"name": name}, "input": {"pfs": {"repo": src, "glob": "/"}},
                "transform": {"cmd": ["true"], "image": image}}
    (tmp_path / "a.json").write_text(json.dumps(spec("a", "src", "own-cpu")))
    (tmp_path / "a-gpu.json").write_text(json.dumps(spec("a", "src", "own-gpu")))
    (tmp_path / "all.json").write_text(json.dumps([spec("a", "src", "combined"), spec("b", "a", "combined")]))
    (tmp_path / "all-gpu.json").write_text(json.dumps([spec("b", "a", "combined-gpu")]))
    images = lambda specs: {s.name: s.spec.transform.image for s in specs}  # noqa: E731
    assert images(load_specs(tmp_path)) == {"a": "own-cpu", "b": "combined"}
    assert images(load_specs(tmp_path, gpu=True)) == {"a": "own-gpu", "b": "combined-gpu"}
    (tmp_path / "more.json").write_text(json.dumps(spec("b", "a", "again")))
    with pytest.raises(SpecError, match="also defined in"):
        load_specs(tmp_path)


def test_spec_cycle_is_refused(tmp_path):
    for name, src in (("a", "b"), ("b", "a")):
        (tmp_path / f"{name}.json").write_text(json.dumps(
            {"pipeline": {"name": name}, "input": {"pfs": {"repo": src, "glob": "/"}},
             "transform": {"cmd": ["true"]}}))
    with pytest.raises(SpecError, match="pipelines form a cycle: a -> b -> a"):
        load_specs(tmp_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_server_is_one_line_naming_the_address(tmp_path):
    port = _free_port()  # nothing listens there once the socket is closed
    proc = subprocess.run(
        [sys.executable, "-m", "pix2pix", "cluster", "--pachd-address", f"grpc://localhost:{port}", "status"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 8, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: cannot reach pachd at localhost:") and str(port) in lines[0]
    assert "Traceback" not in proc.stderr


def test_bad_address_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pix2pix", "cluster", "--pachd-address", "ftp://x:1", "status"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert "--pachd-address" in proc.stderr and "Traceback" not in proc.stderr


def test_address_from_pachctl_config(tmp_path, monkeypatch):
    from pix2pix.cluster.connection import connect

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"v2": {"active_context": "c", "contexts": {"c": {"pachd_address": "grpc://10.1.2.3:31400"}}}}))
    monkeypatch.setenv("PACH_CONFIG", str(cfg))
    assert connect(None).address == "10.1.2.3:31400"
    assert connect("grpc://localhost:1234").address == "localhost:1234"  # the option wins
    cfg.write_text("{not json")
    from pix2pix.errors import ClusterError
    with pytest.raises(ClusterError, match="pachctl config .*config.json"):
        connect(None)


def test_address_from_env_var(refused):
    from click.testing import CliRunner

    import pix2pix.cli
    from pix2pix.errors import ClusterError

    r = CliRunner().invoke(pix2pix.cli.cli, ["cluster", "status"], env={"PACHD_ADDRESS": "grpc://localhost:1"})
    assert refused(r, ClusterError).startswith("cannot reach pachd at localhost:1 ")
