"""Fixtures for the cluster tests: a `local serve` endpoint in this process on a free port (the
real gRPC server, reached through the real python-pachyderm client), and small stand-in pipeline
specs with the product's names, repos and input structure (the real TensorFlow specs run in one
slow test only)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import pix2pix.cli

# Each stand-in leaves a trace of its input in its output, so the tests can check what ran on what.
_CHECKPOINT = r"""
import hashlib, pathlib
root = pathlib.Path('/pfs/training')
h = hashlib.sha256()
for p in sorted(root.rglob('*')):
    if p.is_file():
        h.update(p.relative_to(root).as_posix().encode()); h.update(p.read_bytes())
pathlib.Path('/pfs/out/checkpoint.txt').write_text('ckpt:' + h.hexdigest()[:16])
"""
_MODEL = r"""
import pathlib
ck = pathlib.Path('/pfs/checkpoint/checkpoint.txt').read_text()
pathlib.Path('/pfs/out/model.txt').write_text('model<' + ck + '>')
"""
_PREPROCESS = r"""
import pathlib
for p in sorted(pathlib.Path('/pfs/input_images').rglob('*')):
    if p.is_file():
        pathlib.Path('/pfs/out', p.stem + '.png').write_bytes(b'pre:' + p.read_bytes())
"""
_GENERATE = r"""
import pathlib
model = pathlib.Path('/pfs/model/model.txt').read_bytes()
for p in sorted(pathlib.Path('/pfs/preprocess_images').rglob('*')):
    if p.is_file():
        pathlib.Path('/pfs/out', p.name).write_bytes(b'gen[' + model + b']' + p.read_bytes())
"""


def _spec(name: str, code: str, inp: dict) -> dict:
    return {"pipeline": {"name": name}, "description": f"test stand-in for {name}",
            "transform": {"image": "python:3.11-slim", "cmd": ["python3", "-c", code]},
            "input": inp, "parallelismSpec": {"constant": 1}, "datumTries": 1}


def standin_specs() -> dict[str, dict]:
    pfs = lambda repo, glob: {"pfs": {"repo": repo, "branch": "master", "glob": glob}}  # noqa: E731
    return {
        "checkpoint": _spec("checkpoint", _CHECKPOINT, pfs("training", "/")),
        "model": _spec("model", _MODEL, pfs("checkpoint", "/")),
        "preprocess_images": _spec("preprocess_images", _PREPROCESS, pfs("input_images", "/*")),
        "generate_images": _spec("generate_images", _GENERATE,
                                 {"cross": [pfs("preprocess_images", "/*"), pfs("model", "/")]}),
    }


@pytest.fixture
def standin_pipelines(tmp_path: Path) -> Path:
    d = tmp_path / "pipelines"
    d.mkdir()
    for name, spec in standin_specs().items():
        (d / f"{name}.json").write_text(json.dumps(spec, indent=2))
    return d


@pytest.fixture
def local_server(tmp_path: Path, monkeypatch):
    """(port, state_dir) of a `local serve` endpoint running in this process."""
    from pix2pix.pachyderm.server import serve

    # Transforms run as `python3`: make it this interpreter's environment.
    import sys
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    state = tmp_path / "state"
    server, port = serve(state, port=0)
    try:
        yield port, state
    finally:
        server.stop(grace=None)
        server.adapter.close()
        stop_services(state)


def stop_services(state: Path) -> None:
    """Stop the supervisors of the service pipelines a test created (they outlive the server)."""
    from pix2pix.pachyderm.engine import Engine
    if not (state / "engine.db").exists():
        return
    eng = Engine(state)
    for p in eng.list_pipelines():
        if p.parsed.long_running and p.state == "running":
            eng.stop_pipeline(p.name)


@pytest.fixture
def pix(local_server):
    """Run `pix2pix cluster --pachd-address ... ARGS` in-process; returns the click Result."""
    port, _ = local_server
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        result = runner.invoke(pix2pix.cli.cli, ["cluster", "--pachd-address", f"grpc://localhost:{port}",
                                                 *args], catch_exceptions=True)
        if ok and result.exit_code != 0:
            raise AssertionError(f"pix2pix cluster {' '.join(args)} failed: {result.exception!r}\n{result.output}")
        return result

    return run
