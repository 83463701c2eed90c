"""No silent success: a file in ``input_images`` that is not an image (zero bytes, truncated)
is a failed datum of ``preprocess_images``, as a Pachyderm user expects of code that cannot
read its input: the job fails naming the file and why, `put file` says so on stderr (the
commit landed; `--strict` exits 7), and fixing the file reprocesses only it. Likewise
`pix2pix process` / `pix2pix generate` that write nothing because every input was skipped
exit 3, as an empty folder does."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.errors import DataError, JobError
from pix2pix.pachyderm.engine import Engine

from tests.conftest import REPO
from tests.reliability.conftest import main_in_process, one_error_line, pix


def _png(seed: int = 0) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


NOT_IMAGES = {"zero_byte": b"", "truncated": _png()[:120]}


@pytest.mark.slow  # runs the preprocess pipeline's code (pix2pix process) a few times, ~15 s
@pytest.mark.rel("bad_input")
@pytest.mark.parametrize("kind", sorted(NOT_IMAGES))
def test_a_non_image_in_input_images_is_a_failed_datum(tmp_path: Path, kind: str):
    state = tmp_path / "state"
    spec = json.loads((REPO / "pipelines" / "preprocess_images.json").read_text())
    spec["transform"]["cmd"][-1] = "32"  # --size: small and quick
    spec["datumTries"] = 1  # one try per bad file is enough to see it fail
    spec_file = tmp_path / "pre.json"
    spec_file.write_text(json.dumps(spec))
    good, bad = tmp_path / "good.png", tmp_path / "cat.png"
    good.write_bytes(_png(1))
    bad.write_bytes(NOT_IMAGES[kind])
    assert pix("create", "repo", "input_images", state=state).returncode == 0
    assert pix("create", "pipeline", "-f", str(spec_file), state=state).returncode == 0
    r = pix("put", "file", "input_images@master", "-f", str(good), "-f", str(bad), state=state)
    assert r.returncode == 0, r.stderr_text  # as pachctl: the commit landed...
    warning = [ln for ln in r.stderr_text.splitlines() if ln.startswith("warning: job")]
    assert len(warning) == 1, r.stderr_text  # ...and the failure is said, naming the file
    assert "preprocess_images" in warning[0] and "failed" in warning[0]
    assert "/cat.png" in warning[0] and "exit code 3" in warning[0]
    eng = Engine(state)
    job = eng.list_jobs("preprocess_images")[0]
    assert (job.state, job.failed, job.processed) == ("failure", 1, 1)
    datum = next(d for d in eng.list_datums("preprocess_images", job.id) if d.state == "failed")
    assert "cat.png" in datum.reason and "Error:" in datum.reason, datum.reason

    r = pix("put", "file", "input_images@master:/cat2.png", "-f", str(bad), "--strict",
            state=state)
    assert r.returncode == JobError.exit_code
    # cat.png failed before, so it is tried again (as pachd does) with the new cat2.png
    one_error_line(r.stderr_text, "preprocess_images", "failed", "no image written",
                   "/cat.png", "1 more datum")

    bad.write_bytes(_png(2))
    fixed = tmp_path / "fixed"
    fixed.mkdir()
    (fixed / "cat.png").write_bytes(_png(2))
    (fixed / "cat2.png").write_bytes(_png(3))
    r = pix("put", "file", "input_images@master:/", "-r", "-f", str(fixed), state=state)
    assert r.returncode == 0 and "warning" not in r.stderr_text, r.stderr_text
    eng = Engine(state)
    job = eng.list_jobs("preprocess_images")[0]
    assert (job.state, job.processed, job.skipped) == ("success", 2, 1)
    assert {f.path for f in eng.walk_files("preprocess_images", "master")} == \
        {"/good.png", "/cat.png", "/cat2.png"}


@pytest.mark.rel("bad_input", 2)
def test_process_and_generate_with_every_input_skipped_exit_3(tmp_path: Path, capsys, caplog):
    from tests.data.conftest import build_export
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "empty.png").write_bytes(b"")
    (inp / "cut.png").write_bytes(_png()[:120])
    code, err = main_in_process(capsys, "process", "resize", "--input_dir", str(inp),
                                "--output_dir", str(tmp_path / "p"), "--size", "32")
    assert code == DataError.exit_code
    one_error_line(err, str(inp), "no image written", "2 input(s)")
    model = build_export(tmp_path / "model", size=64)
    code, err = main_in_process(capsys, "generate", "--model", str(model), "--input", str(inp),
                                "--output_dir", str(tmp_path / "g"))
    assert code == DataError.exit_code
    one_error_line(err, str(inp), "no image written", "2 input(s)")
    assert "empty.png" in caplog.text and "cut.png" in caplog.text  # each named in a warning


@pytest.mark.rel("fault")
def test_generate_onto_a_full_disk_is_not_a_data_error(tmp_path: Path, tiny_tmpfs: Path,
                                                        capsys):
    from tests.data.conftest import build_export
    model = build_export(tmp_path / "model", size=64)
    inp = tmp_path / "in"
    inp.mkdir()
    for i in range(12):
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)).save(
            inp / f"{i}.png")
    out = tiny_tmpfs / "out"
    code, err = main_in_process(capsys, "generate", "--model", str(model), "--input", str(inp),
                                "--output_dir", str(out), "--format", "png")
    assert code not in (0, DataError.exit_code), err
    one_error_line(err, str(out), "disk full")
