"""pix2pix.fsutil: a target holds its old content or its new content, never half, and no
temporary is left behind, whatever fails (the writer, a full disk at write, fsync or rename, a
Ctrl-C) and however many writers race for one target."""
from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix import fsutil
from pix2pix.fsutil import atomic_dir, atomic_open, atomic_path, atomic_write


def _names(folder: Path) -> list[str]:
    """Every entry under ``folder``, hidden ones included, relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.fixture
def target(tmp_path: Path) -> Path:
    t = tmp_path / "out.json"
    t.write_text("old")
    return t


def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_the_target_gets_bytes_str_and_chunks(tmp_path: Path):
    atomic_write(tmp_path / "a.bin", b"\x00\x01")
    atomic_write(tmp_path / "b.txt", "h\u00e9")
    atomic_write(tmp_path / "c.bin", (bytes([i]) * 3 for i in range(3)))
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_bytes() == "h\u00e9".encode()
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\x00\x00\x01\x01\x01\x02\x02\x02"
    assert _names(tmp_path) == ["a.bin", "b.txt", "c.bin"]


def test_atomic_open_text_and_atomic_path_for_pillow(tmp_path: Path, target: Path):
    with atomic_open(target, text=True) as f:
        json.dump({"k": 1}, f)
    assert json.loads(target.read_text()) == {"k": 1}
    px = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    with atomic_path(tmp_path / "i.png") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".i.png.tmp-")
        Image.fromarray(px).save(tmp, format="PNG")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "i.png")), px)
    assert _names(tmp_path) == ["i.png", "out.json"]


def test_new_files_get_the_umask_permissions_or_the_mode_given(tmp_path: Path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a", b"x")
        atomic_write(tmp_path / "b", b"x", mode=0o444)
    finally:
        os.umask(old)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o444


class Boom(Exception):
    pass


@pytest.mark.parametrize("interrupt", [Boom, KeyboardInterrupt])
def test_a_writer_that_raises_leaves_the_old_content_and_no_temp(target: Path, interrupt):
    for cm in (atomic_open(target), atomic_path(target)):
        with pytest.raises(interrupt):
            with cm as f:
                if isinstance(f, Path):
                    f.write_bytes(b"half")
                else:
                    f.write(b"half")
                raise interrupt()
        assert target.read_text() == "old"
        assert _names(target.parent) == ["out.json"]


def test_an_iterable_that_raises_mid_stream_leaves_the_old_content(target: Path):
    def chunks():
        yield b"first"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, chunks())
    assert target.read_text() == "old"
    assert _names(target.parent) == ["out.json"]


@pytest.mark.parametrize("call", ["fsync", "replace"])
def test_disk_full_at_fsync_or_rename_leaves_the_old_content_and_names_the_target(
        target: Path, monkeypatch, call):
    monkeypatch.setattr(fsutil.os, call, _enospc)
    for write in (lambda: atomic_write(target, b"new"),
                  lambda: _save_png(target)):
        with pytest.raises(OSError) as e:
            write()
        assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)
        assert target.read_text() == "old"
        assert _names(target.parent) == ["out.json"]


def _save_png(target: Path) -> None:
    with atomic_path(target) as tmp:
        Image.new("RGB", (2, 2)).save(tmp, format="PNG")


def test_a_writer_error_without_a_file_name_names_the_target(target: Path):
    """Pillow reports a full disk with no file name: the error names the target."""
    with pytest.raises(OSError) as e:
        with atomic_open(target) as f:
            f.write(b"x")
            _enospc()
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)
    assert target.read_text() == "old"


def test_an_error_about_another_file_is_not_renamed(target: Path, tmp_path: Path):
    with pytest.raises(FileNotFoundError) as e:
        with atomic_open(target):
            (tmp_path / "missing").read_bytes()
    assert e.value.filename == str(tmp_path / "missing")
    assert _names(target.parent) == ["out.json"]


def test_a_missing_folder_is_an_error_naming_the_target(tmp_path: Path):
    with pytest.raises(FileNotFoundError) as e:
        atomic_write(tmp_path / "nope" / "a.txt", b"x")
    assert e.value.filename == str(tmp_path / "nope" / "a.txt")


def test_concurrent_writers_never_share_a_temp_name(target: Path, monkeypatch):
    """Eight threads write one target at once, each inside its block at the same moment: every
    one gets its own temporary, and the target ends as one complete content."""
    contents = [bytes([65 + i]) * 100_000 for i in range(8)]
    during: list[list[str]] = []  # the folder while every writer is mid-write
    barrier = threading.Barrier(len(contents), action=lambda: during.append(_names(target.parent)))
    errors = []

    def write(data: bytes) -> None:
        try:
            with atomic_open(target) as f:
                f.write(data[:50_000])
                barrier.wait(timeout=30)  # all temporaries exist at once here
                f.write(data[50_000:])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    # Every writer draws the same "random" part first, so a name collision is forced and must
    # be resolved by O_EXCL, not by luck.
    draws = iter(["feedface"] * len(contents) + [f"{i:08x}" for i in range(1000)])
    lock = threading.Lock()

    def token(_n):
        with lock:
            return next(draws)

    monkeypatch.setattr(fsutil.secrets, "token_hex", token)
    threads = [threading.Thread(target=write, args=(c,)) for c in contents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    temps = [n for n in during[0] if n.startswith(".out.json.tmp-")]
    assert len(temps) == len(contents) and ".out.json.tmp-feedface" in temps
    assert target.read_bytes() in contents
    assert _names(target.parent) == ["out.json"]


def test_a_very_long_name_still_gets_a_temporary(tmp_path: Path):
    name = "x" * 250 + ".png"
    atomic_write(tmp_path / name, b"ok")
    assert (tmp_path / name).read_bytes() == b"ok"


# -- folders --------------------------------------------------------------------------------------

def _fill(folder: Path, tag: str) -> None:
    (folder / "sub").mkdir()
    (folder / "a.txt").write_text(tag)
    (folder / "sub" / "b.txt").write_text(tag)


def test_atomic_dir_creates_and_replaces_a_folder(tmp_path: Path):
    out = tmp_path / "model"
    with atomic_dir(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.tmp-")
        _fill(tmp, "one")
    assert _names(tmp_path) == ["model", "model/a.txt", "model/sub", "model/sub/b.txt"]
    (out / "stale.txt").write_text("from before")
    with atomic_dir(out) as tmp:
        _fill(tmp, "two")
    assert (out / "sub" / "b.txt").read_text() == "two"
    assert _names(tmp_path) == ["model", "model/a.txt", "model/sub", "model/sub/b.txt"]


def test_atomic_dir_failure_keeps_the_old_folder_and_no_temp(tmp_path: Path, monkeypatch):
    out = tmp_path / "model"
    with atomic_dir(out) as tmp:
        _fill(tmp, "one")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out) as tmp:
            _fill(tmp, "two")
            raise KeyboardInterrupt
    real_replace = os.replace

    def second_rename_fails(src, dst):
        if Path(src).name.startswith(".model.tmp-"):
            _enospc()
        real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", second_rename_fails)
    with pytest.raises(OSError):
        with atomic_dir(out) as tmp:
            _fill(tmp, "three")
    assert (out / "a.txt").read_text() == "one"
    assert _names(tmp_path) == ["model", "model/a.txt", "model/sub", "model/sub/b.txt"]


def test_atomic_dir_in_place_fills_an_existing_empty_folder(tmp_path: Path):
    """A folder that cannot be renamed (a mount): built inside it, the marker moved last, and
    what a killed writer left under the in-place name is cleared first."""
    out = tmp_path / "pfs_out"
    (out / ".w.tmp" / "junk").mkdir(parents=True)  # left by a killed writer
    order = []
    real_replace = os.replace

    def record(src, dst):
        order.append(Path(dst).name)
        real_replace(src, dst)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fsutil.os, "replace", record)
        with atomic_dir(out, in_place=".w.tmp", last="done") as tmp:
            assert tmp == out / ".w.tmp" and _names(tmp) == []
            (tmp / "done").write_text("marker")
            (tmp / "zz.txt").write_text("data")
    assert order == ["zz.txt", "done"]
    assert _names(out) == ["done", "zz.txt"]


def test_atomic_dir_in_place_failure_leaves_the_folder_empty(tmp_path: Path, monkeypatch):
    out = tmp_path / "pfs_out"
    out.mkdir()
    real_replace = os.replace

    def marker_fails(src, dst):
        if Path(dst).name == "done":
            _enospc()
        real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", marker_fails)
    with pytest.raises(OSError):
        with atomic_dir(out, in_place=".w.tmp", last="done") as tmp:
            (tmp / "done").write_text("marker")
            (tmp / "data.txt").write_text("data")
    assert _names(out) == []
