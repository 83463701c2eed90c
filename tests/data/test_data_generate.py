"""generate: resize-back, relative paths, tiled blending, bounded memory, datum batching, CLI."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent import futures
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from python_pachyderm.proto.v2.worker import worker_pb2_grpc

from pix2pix.errors import DataError, JobError, UsageError
from pix2pix.generate import GenerateOptions, generate, list_inputs, load_model, serve_datums
from pix2pix.tiling import grid, translate_tiled
from tests.data.conftest import build_export, random_image, save

REPO = Path(__file__).resolve().parents[2]


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _run(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "pix2pix", *args], capture_output=True,
                          text=True, cwd=REPO, env=full_env, timeout=300, **kw)


def test_resize_back_and_relative_paths(tmp_path: Path, export_dir):
    src = tmp_path / "in"
    a = save(src / "a.png", random_image(100, 150, seed=1, smooth=True))
    save(src / "sub" / "deeper" / "b.jpg", random_image(64, 64, seed=2, smooth=True))
    single = save(tmp_path / "elsewhere" / "c.bmp", random_image(30, 20, seed=3, smooth=True))
    translator = load_model(model=export_dir["invert"])
    assert translator.size == 64
    r = generate(translator=translator, inputs=[src, single], output_dir=tmp_path / "out",
                 options=GenerateOptions(batch_size=2))
    assert (r.written, r.skipped) == (3, 0)
    found = sorted(p.relative_to(tmp_path / "out").as_posix()
                   for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert found == ["a.png", "c.png", "sub/deeper/b.png"]
    out = _read(tmp_path / "out" / "a.png")
    assert out.shape == (100, 150, 3)  # back at the input's size
    assert abs(out.mean() - (255 - _read(a).mean())) < 3  # and translated (inverted)
    assert _read(tmp_path / "out" / "c.png").shape == (30, 20, 3)


def test_model_size_and_format(tmp_path: Path, export_dir):
    save(tmp_path / "in" / "a.png", random_image(100, 150))
    generate(translator=load_model(model=export_dir["identity"]), inputs=[tmp_path / "in"],
             output_dir=tmp_path / "out", options=GenerateOptions(resize_back=False, fmt="jpg"))
    assert _read(tmp_path / "out" / "a.jpg").shape == (64, 64, 3)


def test_export_without_options_uses_signature_shape(tmp_path: Path):
    model = build_export(tmp_path / "m", size=32, options=False)
    assert load_model(model=model).size == 32


def test_bad_images_skipped_or_fail(tmp_path: Path, export_dir, caplog):
    save(tmp_path / "in" / "ok.png", random_image(64, 64))
    (tmp_path / "in" / "bad.png").write_bytes(b"")
    translator = load_model(model=export_dir["identity"])
    r = generate(translator=translator, inputs=[tmp_path / "in"], output_dir=tmp_path / "out",
                 options=GenerateOptions())
    assert (r.written, r.skipped) == (1, 1) and "bad.png" in caplog.text
    with pytest.raises(DataError, match="bad.png"):
        generate(translator=translator, inputs=[tmp_path / "in"], output_dir=tmp_path / "o2",
                 options=GenerateOptions(on_bad_image="fail"))


def test_colliding_output_names_are_refused(tmp_path: Path):
    save(tmp_path / "x" / "a.png", random_image(8, 8))
    save(tmp_path / "y" / "a.jpg", random_image(8, 8))
    with pytest.raises(UsageError, match="both be written"):
        list_inputs([tmp_path / "x", tmp_path / "y"])


def test_grid_covers_with_at_least_the_overlap():
    for length, tile, overlap in [(1000, 64, 16), (64, 64, 8), (65, 64, 8), (5000, 256, 32)]:
        starts = grid(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] + tile == max(length, tile)
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_tiled_identity_reproduces_the_image(tmp_path: Path, export_dir):
    img = random_image(1000, 1000, seed=7)
    save(tmp_path / "in" / "big.png", img)
    r = generate(translator=load_model(model=export_dir["identity"]), inputs=[tmp_path / "in"],
                 output_dir=tmp_path / "out",
                 options=GenerateOptions(tile="auto", overlap=16, batch_size=16))
    assert r.tiled == 1
    out = _read(tmp_path / "out" / "big.png")
    assert out.shape == img.shape
    assert np.abs(out.astype(int) - img).max() <= 1


def test_tiled_small_side_is_padded_then_cropped():
    img = random_image(40, 300, seed=8)
    out = translate_tiled(img, lambda b: 255 - b, size=64, overlap=16, batch_size=3)
    assert np.array_equal(out, 255 - img)


def test_blending_hides_seams():
    # A horizontal ramp; the "model" answers each tile with its mean, so pasted tiles would step
    # by ~12 levels at every seam. Blended, neighbouring columns differ by a couple of levels.
    ramp = np.tile(np.linspace(0, 255, 1000, dtype=np.float32)[None, :, None], (64, 1, 3))
    img = np.round(ramp).astype(np.uint8)

    def means(batch):
        return np.broadcast_to(batch.mean(axis=(1, 2), keepdims=True), batch.shape).astype(np.uint8)

    out = translate_tiled(img, means, size=64, overlap=32, batch_size=8).astype(int)
    step = np.abs(np.diff(out[32, :, 0]))
    tiles = means(np.stack([img[:, x:x + 64] for x in grid(1000, 64, 32)]))[:, 0, 0, 0]
    assert np.abs(np.diff(tiles.astype(int))).max() >= 8  # what pasting would show
    assert step.max() <= 3


@pytest.mark.slow
def test_5000px_image_tiles_in_bounded_memory(tmp_path: Path):
    model = build_export(tmp_path / "m256", size=256, op="conv")
    img = random_image(5000, 5000, seed=9, smooth=True)
    save(tmp_path / "in" / "aerial.png", img, compress_level=1)
    # The child's own peak (VmHWM of its address space). Not getrusage's ru_maxrss: Linux carries
    # the forking process's peak across exec into it, so a big pytest process would be counted.
    code = ("import sys\nfrom pix2pix.cli import main\n"
            "try:\n    main(sys.argv[1:])\nfinally:\n"
            "    hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
            "    print('maxrss_kb', hwm[0], file=sys.stderr)\n")
    p = subprocess.run([sys.executable, "-c", code, "generate", "--model", str(model), "--input",
                        str(tmp_path / "in"), "--output_dir", str(tmp_path / "out"),
                        "--tile", "auto", "--batch_size", "8"], capture_output=True, text=True,
                       cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=600)
    assert p.returncode == 0, p.stderr
    rss_kb = int(p.stderr.split("maxrss_kb")[1].split()[0])
    assert rss_kb < 3 * 1024 * 1024, f"peak RSS {rss_kb / 1024:.0f} MiB"
    out = _read(tmp_path / "out" / "aerial.png")
    assert out.shape == (5000, 5000, 3)
    # the model is a 3x3 box blur: tiled and blended, it matches the blur of the whole image
    # (inside the 1-pixel border, where the model's zero padding differs) seams included
    f = img.astype(np.float32)
    box = sum(f[1 + dy:4999 + dy, 1 + dx:4999 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    assert np.abs(out[1:-1, 1:-1] - np.round(box / 9.0)).max() <= 1


# ---------------------------------------------------------------------------------------------
# Datum batching

class _FakeWorkerObject:
    def __init__(self):
        self.errors: list[str] = []

    def next_datum(self, *, error: str = ""):
        from python_pachyderm.proto.v2.worker import worker_pb2
        self.errors.append(error)
        return worker_pb2.NextDatumResponse(env=[f"P2P_TEST_DATUM={len(self.errors)}", "junk"])


def test_serve_datums_reports_errors_and_applies_env(monkeypatch):
    monkeypatch.delenv("P2P_TEST_DATUM", raising=False)
    worker, seen = _FakeWorkerObject(), []

    def process():
        seen.append(os.environ["P2P_TEST_DATUM"])
        if len(seen) == 2:
            raise DataError("x.png: broken")

    assert serve_datums(process, worker=worker, max_datums=3) == 3
    assert seen == ["1", "2", "3"]
    # each call reports the datum before it: the 2nd datum's failure goes with the 3rd call
    assert worker.errors[:2] == ["", ""]
    assert worker.errors[2] == repr(DataError("x.png: broken"))


def test_datum_batching_needs_a_worker(monkeypatch):
    monkeypatch.delenv("PPS_WORKER_GRPC_PORT", raising=False)
    with pytest.raises(UsageError, match="PPS_WORKER_GRPC_PORT"):
        serve_datums(lambda: None)


class _Servicer(worker_pb2_grpc.WorkerServicer):
    """A Pachyderm worker's NextDatum: call k puts datum k's files in the input folder; the call
    after the last datum kills the user process (ending="kill") or answers an error."""

    def __init__(self, datums: list[dict[str, bytes]], folder: Path, ending: str):
        self.datums, self.folder, self.ending = datums, folder, ending
        self.errors: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.finished = threading.Event()

    def NextDatum(self, request, context):  # noqa: N802 (gRPC method name)
        import grpc
        from python_pachyderm.proto.v2.worker import worker_pb2
        self.errors.append(request.error)
        k = len(self.errors) - 1
        for old in self.folder.iterdir():
            old.unlink()
        if k >= len(self.datums):
            self.finished.set()
            if self.ending == "kill":
                self.proc.kill()
            context.abort(grpc.StatusCode.UNAVAILABLE, "no datums left")
        for name, content in self.datums[k].items():
            (self.folder / name).write_bytes(content)
        return worker_pb2.NextDatumResponse(env=[f"PACH_DATUM_ID=datum{k}"])


@pytest.mark.parametrize("ending", ["kill", pytest.param("error", marks=pytest.mark.slow)])
def test_datum_batching_against_a_fake_worker(tmp_path: Path, export_dir, ending):
    import io

    import grpc

    def png(seed):
        buf = io.BytesIO()
        Image.fromarray(random_image(64, 64, seed=seed)).save(buf, format="PNG")
        return buf.getvalue()

    datums = [{"d0.png": png(0)}, {"d1.jpg": b"not an image"}, {"d2.png": png(2), "e.png": png(3)}]
    folder = tmp_path / "pfs" / "images"
    folder.mkdir(parents=True)
    servicer = _Servicer(datums, folder, ending)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    worker_pb2_grpc.add_WorkerServicer_to_server(servicer, server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    try:
        servicer.proc = subprocess.Popen(
            [sys.executable, "-m", "pix2pix", "generate", "--model", str(export_dir["invert"]),
             "--input", str(folder), "--output_dir", str(tmp_path / "out"),
             "--on_bad_image", "fail"],  # no --datum_batching: the env var turns it on
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PPS_WORKER_GRPC_PORT": str(port), "TF_CPP_MIN_LOG_LEVEL": "3"})
        _, stderr = servicer.proc.communicate(timeout=300)
    finally:
        server.stop(0)
    assert servicer.finished.is_set(), stderr
    assert len(servicer.errors) == 4
    assert servicer.errors[0] == servicer.errors[1] == servicer.errors[3] == ""
    assert "DataError" in servicer.errors[2] and "d1.jpg" in servicer.errors[2]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["d0.png", "d2.png", "e.png"]
    assert np.array_equal(_read(tmp_path / "out" / "d2.png"),
                          255 - np.asarray(Image.open(io.BytesIO(datums[2]["d2.png"]))))
    if ending == "kill":
        assert servicer.proc.returncode == -9
    else:
        assert servicer.proc.returncode == JobError.exit_code
        assert stderr.strip().splitlines()[-1].startswith("Error: Pachyderm worker")


# ---------------------------------------------------------------------------------------------
# The CLI as a user runs it

def test_cli_generate(tmp_path: Path, export_dir):
    save(tmp_path / "in" / "x.png", random_image(80, 80))
    p = _run("generate", "--model", str(export_dir["identity"]), "--input", str(tmp_path / "in"),
             "--output_dir", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr
    assert _read(tmp_path / "out" / "x.png").shape == (80, 80, 3)


@pytest.mark.parametrize("args,code,message", [
    (["generate", "--model", "{tmp}/nope", "--input", "{tmp}", "--output_dir", "{tmp}/o"], 4,
     "no saved_model.pb"),
    (["generate", "--model", "{tmp}", "--checkpoint", "{tmp}", "--input", "{tmp}",
      "--output_dir", "{tmp}/o"], 2, "exactly one of"),
    (["process", "resize", "--input_dir", "{tmp}/missing", "--output_dir", "{tmp}/o"], 3,
     "not found"),
    (["process", "combine", "--input_dir", "{tmp}", "--output_dir", "{tmp}/o"], 2, "--b_dir"),
])
def test_cli_errors_are_one_line_and_an_exit_code(tmp_path: Path, args, code, message):
    p = _run(*[a.format(tmp=tmp_path) for a in args])
    assert p.returncode == code, p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], p.stderr


def test_cli_help():
    for mode in ("process", "generate"):
        p = _run(mode, "--help")
        assert p.returncode == 0 and "--output_dir" in p.stdout


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 150), w=st.integers(1, 150), size=st.integers(8, 64),
       overlap_frac=st.floats(0, 0.9))
def test_tiling_identity_is_exact_for_any_shape(h, w, size, overlap_frac):
    overlap = min(size - 1, int(size * overlap_frac))
    img = random_image(h, w, seed=h * 1000 + w)
    out = translate_tiled(img, lambda b: b, size=size, overlap=overlap, batch_size=5)
    assert np.array_equal(out, img)
    starts = grid(w, size, overlap)
    assert starts == sorted(set(starts)) and starts[-1] + size >= w


def test_generate_from_a_checkpoint(tmp_path: Path):
    """--checkpoint: the model part's restore_generator, called on [-1, 1] floats."""
    from pix2pix.config import DataConfig, ModelConfig, TrainConfig
    from pix2pix.model.trainer import restore_generator
    from pix2pix.train import train
    from tests.conftest import make_pair_image
    for i in range(2):
        make_pair_image(tmp_path / "pairs" / f"{i}.png", size=128, seed=i)
    train(input_dir=tmp_path / "pairs", output_dir=tmp_path / "run",
          model=ModelConfig(generator="unet_128", ngf=8, ndf=8, crop_size=128),
          data=DataConfig(load_size=128), train=TrainConfig(max_steps=1, seed=0, summary_freq=0),
          progress=False)
    img = random_image(128, 128, seed=4)
    save(tmp_path / "in" / "x.png", img)
    translator = load_model(checkpoint=tmp_path / "run")
    assert translator.size == 128
    generate(translator=translator, inputs=[tmp_path / "in"], output_dir=tmp_path / "out",
             options=GenerateOptions())
    generator, _ = restore_generator(tmp_path / "run")
    expected = np.round((np.clip(generator(img[None] / 127.5 - 1.0, training=False).numpy()[0],
                                 -1, 1) + 1) * 127.5)
    assert np.abs(_read(tmp_path / "out" / "x.png").astype(int) - expected).max() <= 1
