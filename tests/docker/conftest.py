"""Fixtures for the tests that run the built CPU image with buildah (marked ``container``).

They skip, with the reason, when buildah is missing, cannot run as this user, or the image has not
been built (``make image-test`` builds it, then runs them).
"""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
_cfg = configparser.ConfigParser()
_cfg.read(REPO / "setup.cfg")
VERSION = _cfg["metadata"]["version"]
IMAGE = os.environ.get("PIX2PIX_IMAGE", f"pix2pix-pachyderm:{VERSION}-cpu")

RunInImage = Callable[..., subprocess.CompletedProcess]


def image_skip_reason(image: str = IMAGE) -> str | None:
    """Why the image cannot be run here, or None when it can."""
    if not shutil.which("buildah"):
        return "buildah is not installed (make image-test installs it and builds the image)"
    if os.geteuid() != 0:
        return "buildah run --isolation chroot needs root here"
    r = subprocess.run(["buildah", "inspect", "--type", "image", image],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"image {image} is not built (run: docker/build.sh cpu --local-base, or make image-test)"
    return None


@pytest.fixture(scope="session")
def image() -> str:
    reason = image_skip_reason()
    if reason:
        # image-test.sh has just built the image: there, a missing one is a failure, not a skip.
        if os.environ.get("PIX2PIX_REQUIRE_IMAGE") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return IMAGE


@pytest.fixture(scope="module")
def run_in_image(image: str):
    """``run(argv, mounts={host: container}, user=None)`` in one working container of the image
    (``buildah from`` once per module: each run is then a fresh process, like a Pachyderm datum)."""
    out = subprocess.run(["buildah", "from", image], capture_output=True, text=True, check=True)
    cid = out.stdout.strip().splitlines()[-1]

    def run(argv: list[str], mounts: dict[Path, str] | None = None,
            user: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        cmd = ["buildah", "run", "--isolation", "chroot"]
        if user is not None:
            cmd += ["--user", user]
        for host, inside in (mounts or {}).items():
            cmd += ["-v", f"{Path(host).resolve()}:{inside}"]
        return subprocess.run(cmd + [cid, "--", *argv], capture_output=True, text=True,
                              timeout=timeout)

    yield run
    subprocess.run(["buildah", "rm", cid], capture_output=True)
