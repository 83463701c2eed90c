"""Fixtures shared by every test area: the real facades set (skipped when ../shared is absent)
and small synthetic paired images whose content does not matter."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest_plugins = ["conformance.conformance_summary"]

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PIX2PIX_SHARED", REPO.parent / "shared"))

# TensorFlow: quiet logs and a bounded thread pool, so two test workers share 2 cores sanely.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# precision auto's cached probes (pix2pix.model.precision) go to a folder of this test process
# (and the commands it starts), never to the user's ~/.cache; removed when the process ends.
if "PIX2PIX_CACHE_DIR" not in os.environ:
    os.environ["PIX2PIX_CACHE_DIR"] = tempfile.mkdtemp(prefix="pix2pix-test-cache-")
    atexit.register(shutil.rmtree, os.environ["PIX2PIX_CACHE_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"../shared not found at {SHARED}: the real-data and reference tests need it")
    return SHARED


@pytest.fixture(scope="session")
def facades_dir(shared_dir: Path) -> Path:
    d = shared_dir / "datasets" / "facades"
    if not (d / "train").is_dir():
        pytest.skip(f"facades dataset not found under {d}")
    return d


@pytest.fixture(scope="session")
def schema_dir(shared_dir: Path) -> Path:
    d = shared_dir / "reference" / "pachyderm" / "jsonschema" / "v2.11.6"
    if not d.is_dir():
        pytest.skip(f"Pachyderm JSON schema not found under {d}")
    return d


def make_pair_image(path: Path, size: int = 64, seed: int = 0) -> Path:
    """Write one A|B side-by-side RGB JPEG/PNG: A is a random blocky pattern, B its colour inverse,
    so the mapping A->B is learnable and deterministic."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    a = np.kron(blocks, np.ones((size // 4, size // 4, 1), dtype=np.uint8))
    b = 255 - a
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([a, b], axis=1)).save(path)
    return path


@pytest.fixture
def pairs_dir(tmp_path: Path) -> Path:
    """Four 64x64 A|B pairs as PNG in a fresh folder."""
    d = tmp_path / "pairs"
    for i in range(4):
        make_pair_image(d / f"{i}.png", size=64, seed=i)
    return d


@pytest.fixture
def refused():
    """``refused(result, ErrorClass, *words)``: a click Result of a command that failed as a user
    sees it: the class's exit code, the last line on stderr is ``Error: ...`` holding every word,
    no traceback. Returns the message (without ``Error: ``)."""

    def check(result, cls, *words: str) -> str:
        assert result.exit_code == cls.exit_code, (result.exit_code, result.output, result.exception)
        lines = result.stderr.strip().splitlines()
        assert lines and lines[-1].startswith("Error: "), result.stderr
        assert "Traceback" not in result.output
        message = lines[-1][len("Error: "):]
        for w in words:
            assert w in message, (w, message)
        return message

    return check
