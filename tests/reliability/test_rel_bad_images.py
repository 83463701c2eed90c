"""Bad image files through the commands a user types (`process`, `train`, `generate`): one
``Error:`` line naming the file and the problem and a non-zero exit where the run stops, a
warning naming the file where it skips, and nothing half-written in the output folder.
Image modes that are merely unusual (16-bit, grey, RGBA, palette, CMYK) must work, as RGB.

Decoding each mode is unit-tested in tests/data/test_data_images.py; here the same files go
through the CLI end to end."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.errors import DataError

from tests.reliability.conftest import main_in_process, no_half_written, one_error_line, pix


def _rgb(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _encoded(fmt: str, h: int = 64, w: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_rgb(h, w)).save(buf, format=fmt)
    return buf.getvalue()


# name -> (bytes, a word the error must contain)
BAD_FILES = {
    "corrupt.jpg": (_encoded("JPEG")[:200] + bytes(range(256)) * 8, ""),
    "truncated.jpg": (_encoded("JPEG")[:700], "truncated"),
    "corrupt.png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, ""),
    "truncated.png": (_encoded("PNG")[:900], "truncated"),
    "empty.jpg": (b"", "empty"),
    "text.jpg": (b"this is a text file, not a picture\n" * 20, "not an image"),
}


def _good_folder(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(_rgb(seed=i)).save(folder / f"good{i}.png")
    return folder


@pytest.mark.rel("bad_input")
@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_process_stops_on_a_bad_file_with_one_line_naming_it(tmp_path: Path, capsys, name):
    inp = _good_folder(tmp_path / "in")
    data, why = BAD_FILES[name]
    (inp / name).write_bytes(data)
    out = tmp_path / "out"
    code, err = main_in_process(capsys, "process", "resize", "--input_dir", str(inp),
                                "--output_dir", str(out), "--size", "32",
                                "--on_bad_image", "fail")
    assert code == DataError.exit_code
    one_error_line(err, str(inp / name), why)
    # Whatever was written before the stop is whole; no temp file is left.
    for f in no_half_written(out):
        assert f.stem.startswith("good")


@pytest.mark.rel("bad_input")
@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_process_skips_a_bad_file_naming_it_and_loses_nothing_else(tmp_path: Path, capsys,
                                                                   caplog, name):
    inp = _good_folder(tmp_path / "in")
    data, _ = BAD_FILES[name]
    (inp / name).write_bytes(data)
    out = tmp_path / "out"
    code, err = main_in_process(capsys, "process", "resize", "--input_dir", str(inp),
                                "--output_dir", str(out), "--size", "32")
    assert code == 0, err
    # The warning goes through logging (pytest's caplog in-process, stderr in a real run).
    assert str(inp / name) in caplog.text + err and "Traceback" not in err
    assert "1 input(s) skipped" in err
    assert [f.name for f in no_half_written(out)] == ["good0.png", "good1.png", "good2.png"]


@pytest.mark.rel("bad_input", 1)
def test_process_real_process_exit_code_and_single_line(tmp_path: Path):
    """The same as the in-process test, as a real `python -m pix2pix` (exit code, stderr)."""
    inp = _good_folder(tmp_path / "in", n=1)
    (inp / "zz.jpg").write_bytes(BAD_FILES["truncated.jpg"][0])
    r = pix("process", "grayscale", "--input_dir", str(inp), "--output_dir", str(tmp_path / "o"),
            "--on_bad_image", "fail")
    assert r.returncode == DataError.exit_code
    one_error_line(r.stderr_text, str(inp / "zz.jpg"), "truncated")
    no_half_written(tmp_path / "o")


@pytest.mark.rel("bad_input")
@pytest.mark.parametrize("limit", [60 * 60, 40 * 40])  # Pillow's warning band, then its error
def test_decompression_bomb_is_one_line(tmp_path: Path, capsys, monkeypatch, limit):
    inp = _good_folder(tmp_path / "in", n=0)
    Image.fromarray(_rgb(64, 64)).save(inp / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    code, err = main_in_process(capsys, "process", "resize", "--input_dir", str(inp),
                                "--output_dir", str(tmp_path / "o"), "--on_bad_image", "fail")
    assert code == DataError.exit_code
    one_error_line(err, str(inp / "bomb.png"), "too large")
    assert no_half_written(tmp_path / "o") == []


def _mode_images() -> dict[str, Image.Image]:
    rgb = Image.fromarray(_rgb(64, 128))
    grey16 = Image.fromarray(np.arange(64 * 128, dtype=np.uint16).reshape(64, 128) * 7)
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.arange(128, dtype=np.uint8) * 2, (64, 1))))
    return {"sixteen.png": grey16, "grey.png": rgb.convert("L"), "rgba.png": rgba,
            "palette.png": rgb.convert("P", palette=Image.Palette.ADAPTIVE),
            "palette_alpha.png": _palette_with_transparency(rgb),
            "cmyk.jpg": rgb.convert("CMYK"), "la.png": rgb.convert("LA")}


def _palette_with_transparency(rgb: Image.Image) -> Image.Image:
    p = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    p.info["transparency"] = 0
    return p


MODES = sorted(_mode_images())


@pytest.mark.rel("bad_input")
@pytest.mark.parametrize("name", MODES)
def test_unusual_modes_work_as_rgb(tmp_path: Path, capsys, name):
    inp = tmp_path / "in"
    inp.mkdir()
    im = _mode_images()[name]
    im.save(inp / name, **({"transparency": 0} if name == "palette_alpha.png" else {}))
    with Image.open(inp / name) as check:  # the file really has the unusual mode
        assert check.mode == im.mode or (name == "sixteen.png" and check.mode.startswith("I"))
    out = tmp_path / "out"
    code, err = main_in_process(capsys, "process", "split", "--input_dir", str(inp),
                                "--output_dir", str(out), "--on_bad_image", "fail")
    assert code == 0, err
    for side in ("A", "B"):
        with Image.open(out / side / (Path(name).stem + ".png")) as res:
            assert res.mode == "RGB" and res.size == (64, 64)


@pytest.mark.slow  # one tiny training step in-process (~20 s with the model build)
@pytest.mark.rel("bad_input", len(MODES))
def test_train_and_generate_take_every_unusual_mode(tmp_path: Path, capsys):
    """A|B files in each unusual mode are usable training pairs and generate inputs."""
    inp = tmp_path / "pairs"
    inp.mkdir()
    for name, im in _mode_images().items():
        big = im.resize((256, 128))
        big.save(inp / name, **({"transparency": 0} if name == "palette_alpha.png" else {}))
    run = tmp_path / "run"
    code, err = main_in_process(capsys, "train", "--input_dir", str(inp), "--output_dir",
                                str(run), "--generator", "unet_128", "--ngf", "8", "--ndf", "8",
                                "--crop_size", "128", "--load_size", "128", "--summary_freq",
                                "0", "--max_steps", "1", "--batch_size", "7",
                                "--on_bad_image", "fail")
    assert code == 0, err
    assert f"{len(MODES)} pairs" in err
    out = tmp_path / "gen"
    code, err = main_in_process(capsys, "generate", "--checkpoint", str(run), "--input",
                                str(inp), "--output_dir", str(out), "--on_bad_image", "fail")
    assert code == 0, err
    written = no_half_written(out)
    assert sorted(p.stem for p in written) == sorted(Path(n).stem for n in MODES)
    for p in written:
        with Image.open(p) as res:
            assert res.mode == "RGB"


@pytest.mark.rel("bad_input", 3)
def test_train_bad_pairs_one_line_and_nothing_written(tmp_path: Path, capsys):
    """An odd-width A|B file, A/ and B/ folders whose names do not match, a truncated pair:
    training stops before it starts, naming the file; the output folder gets no checkpoint."""
    flags = ["--generator", "unet_128", "--ngf", "8", "--ndf", "8", "--crop_size", "128",
             "--load_size", "128", "--max_steps", "1", "--on_bad_image", "fail"]
    odd = tmp_path / "odd"
    odd.mkdir()
    Image.fromarray(_rgb(64, 129)).save(odd / "odd.png")
    code, err = main_in_process(capsys, "train", "--input_dir", str(odd), "--output_dir",
                                str(tmp_path / "r1"), *flags)
    assert code == DataError.exit_code
    one_error_line(err, str(odd / "odd.png"), "odd")

    ab = tmp_path / "ab"
    for side, name in (("A", "one.png"), ("B", "two.png")):
        (ab / side).mkdir(parents=True)
        Image.fromarray(_rgb()).save(ab / side / name)
    code, err = main_in_process(capsys, "train", "--input_dir", str(ab), "--output_dir",
                                str(tmp_path / "r2"), *flags)
    assert code == DataError.exit_code
    one_error_line(err, str(ab), "no file name in A/ matches one in B/")

    trunc = tmp_path / "trunc"
    trunc.mkdir()
    Image.fromarray(_rgb(64, 128)).save(trunc / "ok.png")
    (trunc / "cut.jpg").write_bytes(_encoded("JPEG", 64, 128)[:800])
    code, err = main_in_process(capsys, "train", "--input_dir", str(trunc), "--output_dir",
                                str(tmp_path / "r3"), *flags)
    assert code == DataError.exit_code
    one_error_line(err, str(trunc / "cut.jpg"))
    for r in ("r1", "r2", "r3"):
        assert not (tmp_path / r / "checkpoints").exists()


@pytest.mark.rel("bad_input", 2)
def test_generate_bad_file_and_zero_byte_stop_with_one_line(tmp_path: Path, capsys):
    from tests.data.conftest import build_export
    model = build_export(tmp_path / "model", size=64)
    inp = _good_folder(tmp_path / "in", n=2)
    for name in ("empty.jpg", "text.jpg"):
        one = tmp_path / f"in-{name}"
        one.mkdir()
        (one / "good.png").write_bytes((inp / "good0.png").read_bytes())
        (one / name).write_bytes(BAD_FILES[name][0])
        out = tmp_path / f"out-{name}"
        code, err = main_in_process(capsys, "generate", "--model", str(model), "--input",
                                    str(one), "--output_dir", str(out), "--on_bad_image", "fail")
        assert code == DataError.exit_code
        one_error_line(err, str(one / name), BAD_FILES[name][1])
        no_half_written(out)
