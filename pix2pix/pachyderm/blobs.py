"""Content-addressed file store: ``blobs/ab/cdef...`` named by the sha256 of the content.

A blob is written to a temp file in ``blobs/tmp``, fsynced, then renamed into place, so a crash
leaves at most a stray temp file (removed by :meth:`BlobStore.clean_tmp`), never a half blob under
a real name. Equal content is stored once. Blobs are made read-only against accidental writes;
jobs get copies, never links to them.
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Iterator

from pix2pix.errors import NotFoundError, StoreError, StoreFullError
from pix2pix.fsutil import fsync_dir

CHUNK = 1 << 20
EMPTY = hashlib.sha256(b"").hexdigest()


def store_error(e: OSError, what: str) -> StoreError:
    """Turn an OSError into a StoreError that says what to do about it."""
    if e.errno == errno.ENOSPC:
        # Whether anything was committed is for the caller to say, after re-reading the store.
        where = f" ({e.filename})" if e.filename else ""
        return StoreFullError(f"{what}: disk full{where}; free space and retry")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreError(f"{what}: state folder is not writable ({e.filename or e}); "
                          "use --state DIR or PIX2PIX_STATE to pick a writable one")
    return StoreError(f"{what}: {e}")


class BlobStore:
    """sha256-addressed blobs under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.tmp = self.root / "tmp"

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:]

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def put(self, data: bytes | BinaryIO) -> tuple[str, int]:
        """Store ``data`` (bytes or a readable binary stream); return (sha256 hex, size)."""
        try:
            self.tmp.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix=f"{os.getpid()}-")
        except OSError as e:
            raise store_error(e, "cannot write a file into the store") from None
        h = hashlib.sha256()
        size = 0
        if isinstance(data, str):
            data = data.encode()
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, (bytes, bytearray, memoryview)):
                    h.update(data)
                    out.write(data)
                    size = len(data)
                else:
                    while chunk := data.read(CHUNK):
                        h.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = h.hexdigest()
            final = self.path(digest)
            if final.exists():
                os.unlink(tmp_name)  # unchanged content: stored once
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp_name, 0o444)
                os.replace(tmp_name, final)
                fsync_dir(final.parent)
            return digest, size
        except OSError as e:
            _unlink_quietly(tmp_name)
            raise store_error(e, "cannot write a file into the store") from None
        except BaseException:
            _unlink_quietly(tmp_name)
            raise

    def put_file(self, path: Path) -> tuple[str, int]:
        """Store the content of a host file."""
        try:
            with open(path, "rb") as f:
                return self.put(f)
        except OSError as e:
            if isinstance(e, FileNotFoundError) or e.errno == errno.EISDIR:
                raise NotFoundError(f"{path}: cannot read ({e.strerror})") from None
            raise

    def _missing(self, digest: str) -> StoreError:
        return StoreError(f"blob {digest[:12]} is missing from the store ({self.root}); the "
                          "state folder is damaged")

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes() if digest != EMPTY else b""
        except FileNotFoundError:
            raise self._missing(digest) from None

    def stream(self, digest: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        if digest == EMPTY:
            return
        try:
            f = open(self.path(digest), "rb")
        except FileNotFoundError:
            raise self._missing(digest) from None
        with f:
            while chunk := f.read(chunk_size):
                yield chunk

    def copy_to(self, digest: str, dest: Path) -> None:
        """Place a copy of a blob's content at ``dest`` (never a link: the reader may write)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        if digest == EMPTY:
            dest.write_bytes(b"")
            return
        shutil.copyfile(self.path(digest), dest)

    def clean_tmp(self, older_than_s: float = 3600.0) -> None:
        """Remove temp files left by killed writers (only those of dead processes or old ones)."""
        if not self.tmp.is_dir():
            return
        now = time.time()
        for p in self.tmp.iterdir():
            pid = p.name.split("-", 1)[0]
            try:
                dead = pid.isdigit() and not _pid_alive(int(pid))
                if dead or now - p.stat().st_mtime > older_than_s:
                    p.unlink()
            except OSError:
                pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unlink_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass
