"""Fixtures for the embedded engine's tests: a fresh state folder, an Engine on it, the CLI run
in-process or as a real subprocess, and tiny bash transforms (no TensorFlow)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pix2pix.pachyderm.engine import Engine

from engine_testlib import REPO_ROOT  # noqa: E402  (tests/engine is on sys.path)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def eng(state: Path) -> Engine:
    return Engine(state)


@pytest.fixture
def cli_run(state: Path):
    """``cli_run("list", "repo")`` -> click Result, in-process, on the test's state folder; the
    exit code is the one a shell sees (the click group maps errors to exit codes)."""
    from pix2pix.cli import cli
    runner = CliRunner()

    def run(*args: str, input: bytes | str | None = None, env: dict | None = None):
        return runner.invoke(cli, list(args), input=input,
                             env={"PIX2PIX_STATE": str(state), **(env or {})})

    return run


@pytest.fixture
def pix(state: Path):
    """``pix("put", "file", ...)`` -> CompletedProcess of ``python -m pix2pix`` (real exit code)."""

    def run(*args: str, input: bytes | None = None, env: dict | None = None,
            check: bool = False) -> subprocess.CompletedProcess:
        full_env = dict(os.environ, PIX2PIX_STATE=str(state), **(env or {}))
        return subprocess.run([sys.executable, "-m", "pix2pix", *args], input=input,
                              capture_output=True, env=full_env, cwd=REPO_ROOT, check=check,
                              timeout=120)

    return run
