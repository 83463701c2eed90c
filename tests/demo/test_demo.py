"""`pix2pix demo` end to end with a tiny budget: the DAG runs on the embedded engine, the model
is evaluated, promoted and served (the printed curl line works after the demo returns), the page shows
every image, and a generated image traces back to the training data."""
from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.demo import synthetic

REPO = Path(__file__).resolve().parents[2]


def test_synthetic_pairs_are_facades_layout(tmp_path: Path):
    paths = synthetic.write_pairs(tmp_path, count=3, size=64, seed=5)
    again = synthetic.write_pairs(tmp_path / "again", count=3, size=64, seed=5)
    for p, q in zip(paths, again):
        pair = np.asarray(Image.open(p))
        assert pair.shape == (64, 128, 3)
        assert np.array_equal(pair, np.asarray(Image.open(q))), "same seed, same data"
        labels = pair[:, 64:].reshape(-1, 3)
        palette = {tuple(c) for c in synthetic.LABELS.values()}
        assert {tuple(c) for c in np.unique(labels, axis=0)} <= palette, "B is a pure label map"
    assert not np.array_equal(np.asarray(Image.open(paths[0])), np.asarray(Image.open(paths[1])))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _demo(out: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pix2pix", "demo", "--out", str(out), "--steps", "3",
            "--train-pairs", "4", "--images", "2", "--pipelines", str(REPO / "pipelines"),
            "--port", str(port), *extra]


@pytest.mark.slow
def test_demo_runs_whole_dag(tmp_path: Path):
    out = tmp_path / "demo"
    port = _free_port()
    proc = subprocess.run(_demo(out, port, "--stop-service"), capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = (out / "index.html").read_text()
    for name in ("0000", "0001"):
        assert f"images/{name}-output.png" in page
        output = Image.open(out / "images" / f"{name}-output.png")
        assert output.size == Image.open(out / "images" / f"{name}-input.png").size
    # Provenance of one generated image names every stage back to the training commit.
    text = proc.stdout
    for repo in ("generate_images", "preprocess_images", "input_images", "model", "checkpoint", "training"):
        assert re.search(rf"{repo}@[0-9a-f]{{32}}", text), f"{repo} missing from provenance:\n{text}"
    assert "/params.yaml" in text
    # Evaluated, promoted and served; the service stopped at the end (--stop-service).
    model = re.search(r"model@([0-9a-f]{32}) on the test pairs: L1 [0-9.]+ PSNR [0-9.]+ SSIM", text)
    assert model, text
    assert f"serving model@{model[1]} at http://127.0.0.1:{port}/" in text
    assert f"made by model@{model[1]}" in text
    assert "stopped serve_model" in text.splitlines()[-1]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    listed = json.loads(subprocess.run(
        [sys.executable, "-m", "pix2pix", "list", "model", "-o", "json", "--state",
         str(out / "state")], capture_output=True, text=True, timeout=120).stdout)
    assert [(m["commit"], m["branches"]) for m in listed] == [(model[1], ["master", "production"])]
    assert listed[0]["metrics"]["l1"] > 0 and listed[0]["evaluated_images"] == 2
    # generate_images' datum logs carry the code's lines, not python_pachyderm's config search.
    logs = subprocess.run([sys.executable, "-m", "pix2pix", "logs", "-p", "generate_images",
                           "--state", str(out / "state")], capture_output=True, text=True,
                          timeout=120)
    assert logs.returncode == 0 and logs.stdout.strip(), logs.stderr
    assert "no config found" not in logs.stdout

    # A second run on the same state reuses it: the repos and pipelines are updated, not
    # duplicated. Without --stop-service it returns with the model still served in the
    # background (the service's supervisor outlives it); its curl line works after it returns.
    again = subprocess.run(_demo(out, port), capture_output=True, text=True, timeout=600,
                           cwd=tmp_path)
    try:
        assert again.returncode == 0, again.stderr[-2000:]
        lines = again.stdout.splitlines()
        served = re.match(rf"serve_model serves model@([0-9a-f]{{32}}) at "
                          rf"http://127\.0\.0\.1:{port}/ in the background; stop it with "
                          r"`pix2pix stop pipeline serve_model --state (.+)`$", lines[-1])
        assert served, lines[-1]
        assert f"serving model@{served[1]} at http://127.0.0.1:{port}/" in again.stdout
        assert Path(served[2]) == (out / "state").resolve()
        curl_line = next(ln for ln in lines if ln.startswith("try: curl "))[len("try: "):]
        argv = shlex.split(curl_line)
        argv[argv.index("-o") + 1] = str(tmp_path / "out.png")
        if _has_curl():
            r = subprocess.run(argv, capture_output=True, timeout=120)
            assert r.returncode == 0, r.stderr
        else:  # the same request: the file's bytes POSTed to the URL
            import urllib.request
            body = Path(argv[argv.index("--data-binary") + 1].lstrip("@")).read_bytes()
            with urllib.request.urlopen(urllib.request.Request(argv[-1], body), timeout=120) as r:
                (tmp_path / "out.png").write_bytes(r.read())
        assert Image.open(tmp_path / "out.png").size == (256, 256)
    finally:
        stop = subprocess.run([sys.executable, "-m", "pix2pix", "stop", "pipeline", "serve_model",
                               "--state", str(out / "state")], capture_output=True, text=True,
                              timeout=120)
    assert stop.returncode == 0, stop.stderr
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def _has_curl() -> bool:
    import shutil
    return shutil.which("curl") is not None


def test_demo_names_missing_pipelines(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "pix2pix", "demo", "--out", str(tmp_path / "o"), "--pipelines", str(tmp_path / "nope")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "nope" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
