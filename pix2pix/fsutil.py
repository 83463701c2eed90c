"""Atomic writes: a reader of the target sees its old content or its new content, never half.

Every writer here works on a temporary name beside its target (the same folder, so the same
filesystem, where ``os.replace`` is atomic), flushes and fsyncs it, renames it onto the target
and fsyncs the folder, so that after a crash or a power loss the target holds the old or the new
content. On every failure (an OSError such as a full disk, a KeyboardInterrupt, any exception
raised by the caller's writer) the temporary is removed, the target is left as it was and the
exception propagates.

  atomic_write(path, data)           bytes, str or an iterable of byte chunks
  with atomic_open(path) as f:       a file object, for json.dump, tarfile, a stream copy
  with atomic_path(path) as tmp:     a path, for writers that open it themselves (Image.save)
  with atomic_dir(path) as tmp:      a whole folder, built and then put in place

Temporary names are ``.<name>.tmp-<random>``: hidden, beside the target, created with O_EXCL so
that two writers of one target (threads or processes) never share one, and with a suffix that
is no image extension, so listings of images never pick one up. The new file gets the
permissions a newly created file gets (0o666 less the umask) unless ``mode`` says otherwise.
A folder being built is held with ``flock``; the next :func:`atomic_dir` of the same target
removes the temporary folders nobody holds (a writer killed with SIGKILL), and puts back an old
folder that a killed swap had renamed aside.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator

# A temporary adds 14 bytes to the target's name; names are capped at 255 bytes on Linux.
_MAX_NAME_BYTES = 200


def _temp_prefix(path: Path, kind: str = "tmp") -> str:
    name = path.name
    while len(os.fsencode(name)) > _MAX_NAME_BYTES:
        name = name[:-1]
    return f".{name}.{kind}-"


def _temp_name(path: Path, kind: str = "tmp") -> Path:
    """``.<name>.<kind>-<8 hex>`` beside ``path`` (the name shortened if it is very long)."""
    return path.with_name(_temp_prefix(path, kind) + secrets.token_hex(4))


def _held(folder: Path) -> bool:
    """Whether a live writer holds (flock) this temporary folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return True  # gone or unreadable: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _clear_stale(path: Path) -> None:
    """What a killed :func:`atomic_dir` of ``path`` left: its temporary folders, and the old
    folder it had renamed aside (put back if ``path`` is missing, else removed). A live
    writer's temporary folder (it holds it) is left, and so are old folders while one lives."""
    tmp, old = _temp_prefix(path), _temp_prefix(path, "old")
    try:
        siblings = [p for p in path.parent.iterdir() if p.name.startswith((tmp, old))]
    except OSError:
        return
    live = False
    for p in siblings:
        if p.name.startswith(tmp):
            if _held(p):
                live = True
            else:
                shutil.rmtree(p, ignore_errors=True)
    if live:
        return  # an old folder may be that writer's, mid-swap
    for p in siblings:
        if p.name.startswith(old):
            if not path.exists():
                os.replace(p, path)
            else:
                shutil.rmtree(p, ignore_errors=True)


def _create_temp(path: Path) -> tuple[int, Path]:
    """Create a fresh temporary file beside ``path``: (write-only descriptor, its path)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:  # a name already taken (32 random bits) just draws another
        tmp = _temp_name(path)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as e:  # e.g. the folder is missing or not writable: name the target
            raise (_naming_target(e, tmp, path) or e) from None


def _discard(path: Path) -> None:
    """Remove a file or folder; quietly, as it runs while another error propagates."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _naming_target(e: BaseException, tmp: Path | str, path: Path) -> OSError | None:
    """The OSError to raise instead of ``e`` when ``e`` names the temporary or no file at all
    (Pillow and other writers that write through a file object report a full disk without a
    name): the same errno and class, naming the target the caller asked for. None: raise ``e``."""
    if (isinstance(e, OSError) and e.errno is not None
            and (e.filename is None or str(e.filename) == str(tmp))):
        return OSError(e.errno, e.strerror or str(e), str(path))
    return None


@contextmanager
def _discarded_on_failure(tmp: Path, path: Path) -> Iterator[None]:
    """Remove ``tmp`` when the block fails, and re-raise (an OSError naming ``path``)."""
    try:
        yield
    except BaseException as e:
        _discard(tmp)
        renamed = _naming_target(e, tmp, path)
        if renamed is None:
            raise
        raise renamed from e


def fsync_dir(path: Path) -> None:
    """fsync a folder so that a rename inside it survives a power loss. Best effort: some
    filesystems refuse to fsync a folder, and by then the rename itself has happened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_path(tmp: Path, mode: int | None) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
        if mode is not None:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: Path | str, *, text: bool = False, encoding: str = "utf-8",
                mode: int | None = None) -> Iterator[IO]:
    """A file object whose content replaces ``path`` when the block ends without an error.

    Args:
        path: the target; its folder must exist.
        text: a text file (``encoding``) instead of a binary one.
        mode: permission bits for the new file (as ``os.chmod``); default 0o666 less the umask.

    Raises:
        OSError: naming ``path`` (not the temporary) when the write, fsync or rename fails.
    """
    path = Path(path)
    fd, tmp = _create_temp(path)
    with _discarded_on_failure(tmp, path):
        # fdopen closes the descriptor itself should it fail (a bad encoding).
        with os.fdopen(fd, "w" if text else "wb", encoding=encoding if text else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            if mode is not None:
                os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    fsync_dir(path.parent)


@contextmanager
def atomic_path(path: Path | str, *, mode: int | None = None) -> Iterator[Path]:
    """A temporary path (an empty file) that replaces ``path`` when the block ends without an
    error, for writers that open a path themselves: ``with atomic_path(p) as tmp:
    image.save(tmp, format="PNG")``.

    The temporary's name does not end in the target's extension: give writers that pick a
    format from the name (Pillow without ``format=``, ``numpy.save``) the format explicitly, or
    use :func:`atomic_open`.

    Args and raises: as :func:`atomic_open`.
    """
    path = Path(path)
    fd, tmp = _create_temp(path)
    os.close(fd)
    with _discarded_on_failure(tmp, path):
        yield tmp
        _fsync_path(tmp, mode)
        os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write(path: Path | str, data: bytes | str | Iterable[bytes], *,
                 mode: int | None = None, encoding: str = "utf-8") -> Path:
    """Replace ``path`` with ``data`` (bytes, str encoded with ``encoding``, or an iterable of
    byte chunks, e.g. a download) in one step; returns ``path``.

    Args and raises: as :func:`atomic_open`. An exception raised by the iterable propagates
    too, with ``path`` unchanged.
    """
    with atomic_open(path, mode=mode) as f:
        if isinstance(data, str):
            data = data.encode(encoding)
        if isinstance(data, (bytes, bytearray, memoryview)):
            f.write(data)
        else:
            for chunk in data:
                f.write(chunk)
    return Path(path)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync_path(Path(folder) / name, None)
        fsync_dir(Path(folder))


@contextmanager
def atomic_dir(path: Path | str, *, in_place: str | None = None,
               last: str | None = None) -> Iterator[Path]:
    """A temporary folder that becomes ``path`` when the block ends without an error.

    Every file in it is fsynced first. Then:

    - ``path`` absent: the folder, built beside it, is renamed onto it (atomic).
    - ``path`` an existing folder: it is renamed aside, the new folder renamed onto it and the
      old one removed. Linux has no atomic swap of two folders, so a reader may find no folder
      for an instant; it never finds a mix of old and new files. A failed second rename puts
      the old folder back.
    - ``path`` an existing folder that is empty apart from an entry named ``in_place``, and
      ``in_place`` given: the new content is built in ``path/in_place`` and its entries are
      moved up one by one, ``last`` moved last so that its presence marks a complete folder.
      This is for folders that cannot be renamed (a mount point such as Pachyderm's /pfs/out).
      The name is fixed so that the next writer removes what a killed one left there, so
      callers should disregard an entry of that name when they judge whether ``path`` is empty,
      and should not run two such writers at once.

    On a failure the temporary folder (and, in place, whatever was moved up) is removed.
    """
    path = Path(path)
    if in_place and path.is_dir() and all(p.name == in_place for p in path.iterdir()):
        yield from _build_in_place(path, path / in_place, last)
        return
    _clear_stale(path)
    while True:
        tmp = _temp_name(path)
        try:
            tmp.mkdir()  # 0o777 less the umask, like any new folder (mkdtemp would give 0o700)
            break
        except FileExistsError:
            continue
    # Held while it is built, so a later writer can tell a killed writer's folder from ours.
    held = os.open(tmp, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    with contextlib.ExitStack() as stack, _discarded_on_failure(tmp, path):
        stack.callback(os.close, held)
        yield tmp
        _fsync_tree(tmp)
        if path.is_dir() and not path.is_symlink():
            old = _temp_name(path, "old")
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    fsync_dir(path.parent)


def _build_in_place(path: Path, tmp: Path, last: str | None) -> Iterator[Path]:
    shutil.rmtree(tmp, ignore_errors=True)  # what a killed writer left
    tmp.mkdir()
    moved: list[Path] = []
    try:
        yield tmp
        _fsync_tree(tmp)
        for child in sorted(tmp.iterdir(), key=lambda p: p.name == last):
            os.replace(child, path / child.name)
            moved.append(path / child.name)
        tmp.rmdir()
    except BaseException:
        for p in moved:  # the folder was empty before: nothing of anyone else's goes
            _discard(p)
        _discard(tmp)
        raise
    fsync_dir(path)
