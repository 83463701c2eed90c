"""Which model a server serves, when it runs as a Pachyderm service (``pix2pix serve
--datum_env /pfs/.env --lineage``): the commit of the input its ``--model`` lies in, from the
worker's env (or the datum env file the embedded engine rewrites before a SIGHUP swap), and that
commit's lineage (checkpoint and training commits, training options, metrics on the test pairs)
from the Pachyderm it runs in: the embedded engine of ``$PIX2PIX_STATE``, or pachd from inside
the cluster. Looked up again at every (re)load; a failed lookup is one line and the model still
loads, named by its commit.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Optional

from pix2pix import pachenv
from pix2pix.lineage import EVAL_REPO, Reader, describe_model


def info_source(model_dir: Path, *, datum_env: Optional[Path], lineage: bool,
                echo: Callable[[str], None]) -> Callable[[], dict[str, Any]]:
    """A ``Server(info_source=...)`` callable."""
    def source() -> dict[str, Any]:
        env = dict(os.environ)
        if datum_env is not None:
            env.update(pachenv.read_env_file(datum_env))
        found = pachenv.input_of(model_dir, env)
        if found is None:
            return {}
        name, commit = found
        info: dict[str, Any] = {"commit": commit}
        if not lineage:
            return info
        try:
            reader, repo = _reader(env, name)
            if reader is None:
                echo("lineage: no Pachyderm to ask (neither $PIX2PIX_STATE nor a cluster)")
                return info
            entry = describe_model(reader, commit, model_repo=repo, eval_repo=EVAL_REPO)
        except Exception as e:  # the model still serves, named by its commit
            echo(f"lineage: lookup of {name}@{commit} failed ({e})")
            return info
        if entry is None:
            echo(f"lineage: commit {commit} not found in repo {repo!r}")
            return info
        return {k: v for k, v in entry.model_info().items() if v is not None}
    return source


def _reader(env: dict[str, str], name: str) -> tuple[Optional[Reader], str]:
    """A reader of the Pachyderm this code runs in, and the repo of input ``name``."""
    state = env.get("PIX2PIX_STATE")
    if state and (Path(state) / "engine.db").is_file():
        from pix2pix.lineage import EngineReader
        from pix2pix.pachyderm.engine import Engine
        eng = Engine(Path(state))
        return EngineReader(eng), _input_repo(eng, env, name)
    if env.get("PACHD_PEER_SERVICE_HOST") or env.get("KUBERNETES_SERVICE_HOST"):
        import python_pachyderm

        from pix2pix.cluster.lineage import ClusterReader
        return ClusterReader(python_pachyderm.Client.new_in_cluster()), name
    return None, name


def _input_repo(eng, env: dict[str, str], name: str) -> str:
    """The repo the input ``name`` of this pipeline reads (pachd names an input by its repo
    unless the spec says otherwise)."""
    from pix2pix.pachyderm.refs import qualify
    pipeline = env.get("PPS_PIPELINE_NAME")
    if pipeline:
        try:
            spec = eng.inspect_pipeline(qualify(env.get("PPS_PROJECT_NAME"), pipeline)).parsed
        except Exception:
            return name
        for pfs in spec.pfs_inputs:
            if pfs.name == name:
                return pfs.qrepo
    return name
