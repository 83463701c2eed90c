"""What the code of a Pachyderm datum knows about its inputs, from the worker's env: for an
input named ``N``, ``N`` is its path under /pfs and ``N_COMMIT`` the commit it was read from
(pachd's ``driver.UserCodeEnv``; the embedded engine sets the same, and writes the datum's env
to ``/pfs/.env`` too). So a command given ``--model /pfs/model`` can say which commit its model
is, with no option naming it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional


def inputs(env: Optional[Mapping[str, str]] = None) -> dict[str, tuple[str, str]]:
    """Input name -> (path, commit) of every input the env describes."""
    env = os.environ if env is None else env
    out = {}
    for key, commit in env.items():
        if not key.endswith("_COMMIT") or not commit:
            continue
        name = key[:-len("_COMMIT")]
        path = env.get(name)
        if name and path and path.startswith("/"):
            out[name] = (path, commit)
    return out


def input_of(path: Path | str, env: Optional[Mapping[str, str]] = None) -> Optional[tuple[str, str]]:
    """(input name, commit) of the input ``path`` lies in (the input's folder or under it);
    None outside a Pachyderm datum."""
    target = Path(os.path.abspath(path))
    for name, (root, commit) in inputs(env).items():
        base = Path(os.path.abspath(root))
        if target == base or base in target.parents:
            return name, commit
    return None


def job_id(env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    env = os.environ if env is None else env
    return env.get("PACH_JOB_ID") or None


def read_env_file(path: Path) -> dict[str, str]:
    """A ``KEY=VALUE`` per line file (``/pfs/.env``); {} when it is missing."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return {}
    out = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq and key:
            out[key] = value
    return out
