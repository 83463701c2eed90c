"""Fixtures and helpers of the reliability suite: run the CLI as a user does (a real
``python -m pix2pix`` process, or ``pix2pix.cli.main`` in-process for speed), check that an error
is ONE line naming the file, and check that a folder holds nothing half-written.

Every test here carries ``@pytest.mark.rel(kind, n=1)``: kind is ``fault`` (a fault injected),
``bad_input`` (a bad file, spec or option tried) or ``hostile`` (a hostile path tried), and n
the cases one collected item tries (1 for each item of a parametrized test; a property counts
once though it tries 100 generated examples). ``count_cases.py`` sums them for the README.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

KINDS = ("fault", "bad_input", "hostile")


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "rel(kind, n=1): reliability case count (kind: fault, bad_input, hostile)")


def pix(*args: str, state: Path | None = None, env: dict | None = None, timeout: float = 300,
        input: bytes | None = None, user: int | None = None) -> subprocess.CompletedProcess:
    """``python -m pix2pix ARGS`` as a real process: real exit code, real stderr (text).
    ``user``: run under that uid/gid (setpriv), to see what a non-root user meets."""
    full = dict(os.environ, **(env or {}))
    if state is not None:
        full["PIX2PIX_STATE"] = str(state)
    cmd = [sys.executable, "-m", "pix2pix", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
        full["HOME"] = "/tmp"
    r = subprocess.run(cmd, capture_output=True, timeout=timeout, env=full, cwd=REPO,
                       input=input)
    r.stdout_text = r.stdout.decode(errors="replace")
    r.stderr_text = r.stderr.decode(errors="replace")
    return r


def main_in_process(capsys, *args: str) -> tuple[int, str]:
    """``pix2pix.cli.main`` as the console script runs it: (exit code, stderr)."""
    import pix2pix.cli
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        pix2pix.cli.main(list(args))
    code = exit_.value.code
    return (0 if code is None else code), capsys.readouterr().err


def one_error_line(stderr: str, *needles: str) -> str:
    """The single ``Error:`` line of stderr (no traceback), which must contain every needle."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, f"expected one Error: line, got {len(lines)}:\n{stderr[-3000:]}"
    assert "Traceback" not in stderr, stderr[-3000:]
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    return lines[0]


def no_half_written(folder: Path) -> list[Path]:
    """Every file under ``folder`` (none if it does not exist); fails on temp names, empty files
    and images that do not decode completely."""
    from PIL import Image
    if not folder.exists():
        return []
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    for p in files:
        assert ".tmp" not in p.name, f"temp file left behind: {p}"
        assert p.stat().st_size > 0, f"empty file left behind: {p}"
        if p.suffix.lower() in (".png", ".jpg", ".jpeg"):
            with Image.open(p) as im:
                im.load()
    return files


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot(eng, repo: str) -> dict[str, dict[str, str]]:
    """Every finished commit of a repo -> {path: sha256 of the content read back}."""
    return {c.id: {f.path: sha256(eng.get_file(repo, c.id, f.path))
                   for f in eng.walk_files(repo, c.id)}
            for c in eng.list_commits(repo) if c.finished is not None}


def _tmpfs(size: str):
    """A tmpfs of ``size`` (needs root and mount); skipped where it cannot be made."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    d = Path(tempfile.mkdtemp(prefix="pix2pix-full-"))
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                       capture_output=True)
    if r.returncode != 0:
        d.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tiny_tmpfs():
    """A 1 MiB tmpfs (needs root and mount); skipped where it cannot be made."""
    yield from _tmpfs("1m")


@pytest.fixture
def small_tmpfs():
    """A 20 MiB tmpfs: room for a store and a job, not for a job that fills it."""
    yield from _tmpfs("20m")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"
