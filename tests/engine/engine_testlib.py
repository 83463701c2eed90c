"""Helpers shared by the engine tests (a module, not a conftest, so tests can import it)."""
from __future__ import annotations

from pathlib import Path

from pix2pix.pachyderm.engine import Engine

REPO_ROOT = Path(__file__).resolve().parents[2]


def bash_spec(name: str, inp: dict, script: str, **extra) -> dict:
    """A pipeline spec whose transform is a bash script fed on stdin (as Pachyderm runs it)."""
    spec = {"pipeline": {"name": name}, "input": inp,
            "transform": {"image": "bash:5", "cmd": ["bash"], "stdin": ["set -e", script]}}
    spec.update(extra)
    return spec


def pfs(repo: str, glob: str = "/*", **kw) -> dict:
    return {"pfs": {"repo": repo, "glob": glob, **kw}}


def put(eng: Engine, repo: str, files: dict[str, bytes | str], **kw):
    """One commit with these files; returns its CommitInfo."""
    with eng.commit(repo, **kw) as c:
        for path, data in files.items():
            c.put_file(path, data.encode() if isinstance(data, str) else data)
    return c.info
