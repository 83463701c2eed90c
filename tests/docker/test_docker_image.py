"""The built CPU image, run with buildah the way Pachyderm runs a stage: the pipeline's cmd as
the whole command line, as the image's non-root user, with folders mounted under /pfs."""
from __future__ import annotations

import configparser
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.container

_cfg = configparser.ConfigParser()
_cfg.read(Path(__file__).resolve().parents[2] / "setup.cfg")
VERSION = _cfg["metadata"]["version"]


def _write_images(folder: Path) -> dict[str, tuple[int, int]]:
    folder.mkdir(parents=True)
    sizes = {"wide.png": (60, 40), "tall.jpg": (30, 50)}
    rng = np.random.default_rng(0)
    for name, (w, h) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)
    return sizes


def test_image_runs_pix2pix_help_as_uid_1000(run_in_image):
    r = run_in_image(["sh", "-c", "id -u; id -g; pix2pix --help"])
    assert r.returncode == 0, r.stderr
    uid, gid, *help_lines = r.stdout.splitlines()
    assert (uid, gid) == ("1000", "1000")
    help_text = "\n".join(help_lines)
    for command in ("train", "export", "process", "generate"):
        assert command in help_text


def test_image_default_command_prints_help(image):
    cmd = subprocess.run(["buildah", "inspect", "--type", "image", "--format",
                          "{{.OCIv1.Config.Cmd}} {{.OCIv1.Config.Entrypoint}}", image],
                         capture_output=True, text=True, check=True).stdout
    assert cmd.strip() == "[pix2pix --help] []"


def test_image_labels_carry_the_package_version(image):
    out = subprocess.run(["buildah", "inspect", "--type", "image", image],
                         capture_output=True, text=True, check=True).stdout
    labels = json.loads(out)["OCIv1"]["config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert "org.opencontainers.image.source" in labels


def test_image_has_no_compilers_or_pip_cache(run_in_image):
    # As root, so that /root is readable too.
    script = ("for t in gcc cc g++ make; do command -v $t && exit 1; done; "
              "find / -xdev -type d -path '*/.cache/pip' -print | grep . && exit 2; "
              "ls -d /opt/venv/lib/python3*/site-packages/tensorflow/include 2>/dev/null && exit 3; "
              "exit 0")
    r = run_in_image(["sh", "-c", script], user="0:0")
    assert r.returncode == 0, f"found in the image: {r.stdout.strip()} (exit {r.returncode})"


def test_process_resize_on_mounted_folders_writes_files_the_image_user_owns(run_in_image, tmp_path):
    sizes = _write_images(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    # Pachyderm gives /pfs to uid 1000 (fsGroup); a host folder must be writable by it too.
    os.chown(out, 1000, 1000)
    r = run_in_image(["pix2pix", "process", "resize", "--input_dir", "/pfs/in",
                      "--output_dir", "/pfs/out", "--size", "32"],
                     mounts={tmp_path / "in": "/pfs/in", out: "/pfs/out"})
    assert r.returncode == 0, r.stdout + r.stderr
    written = sorted(out.iterdir())
    assert sorted(p.stem for p in written) == sorted(Path(n).stem for n in sizes)
    for p in written:
        st = p.stat()
        assert (st.st_uid, st.st_gid) == (1000, 1000), p.name
        with Image.open(p) as im:
            assert im.size == (32, 32)


def test_unwritable_output_folder_is_one_clear_error(run_in_image, tmp_path):
    _write_images(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir(mode=0o755)  # owned by root: not writable by uid 1000
    r = run_in_image(["pix2pix", "process", "resize", "--input_dir", "/pfs/in",
                      "--output_dir", "/pfs/out", "--size", "32"],
                     mounts={tmp_path / "in": "/pfs/in", out: "/pfs/out"})
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert "/pfs/out" in r.stderr
    assert not list(out.iterdir())


def test_image_works_under_an_arbitrary_uid_in_group_0(run_in_image):
    # Clusters that override the user (transform.user, OpenShift) keep group 0: HOME and /pfs
    # must stay writable and pix2pix must start.
    r = run_in_image(["sh", "-c", 'touch "$HOME/probe" /pfs/probe && pix2pix --version'],
                     user="4321:0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pix2pix, version" in r.stdout
