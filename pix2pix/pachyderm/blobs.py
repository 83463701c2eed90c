"""Content-addressed file store: ``blobs/ab/cdef...`` named by the sha256 of the content.

A blob is written to a temp file in ``blobs/tmp``, fsynced, then renamed into place, so a crash
leaves at most a stray temp file (removed by :meth:`BlobStore.clean_tmp`), never a half blob under
a real name. Equal content is stored once. Blobs are made read-only against accidental writes;
jobs get copies, never links to them.

Garbage collection (``fsck.collect_garbage``) removes blobs nothing in ``engine.db`` refers to.
A blob is unreferenced between its write and the transaction that stages or records it, so a
thread that writes one (or is about to copy a reference) is *pinned* until its next
transaction ends; while any thread of a process is pinned, the process holds ``gc.lock`` (in
the state folder) shared, and the collector takes it exclusively, so it never runs while a
reference is on its way. A pinned process also holds (``flock``) a marker file in
``writers/``: a marker
nobody holds was left by a writer that was killed or failed, which is what makes the next
writer collect first (a full disk of a failed put's blobs frees itself at the next command).

    gc.lock                shared: writers with references on the way; exclusive: the collector
    writers/<pid>-<uuid>   a pinned process (flocked); unheld: a write that did not finish
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional

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
        # Beside the blobs, not among them: the blob folder holds content only.
        self.writers = self.root.parent / "writers"
        self.gc_lock = self.root.parent / "gc.lock"
        # Called (if set) before a process's first write when a writer left garbage behind.
        self.collector: Optional[Callable[[], object]] = None
        self._mutex = threading.Lock()
        self._local = threading.local()
        self._pinned_threads = 0
        self._failed = False
        self._gc_fd: Optional[int] = None
        self._marker: Optional[tuple[int, Path]] = None

    # -- pins: references on their way (see the module docstring) --------------------------------
    def pin(self) -> None:
        """This thread is about to make a reference to a blob (its transaction settles it)."""
        if getattr(self._local, "pinned", False):
            return
        with self._mutex:
            if self._pinned_threads == 0:
                self._start_writing()
            self._pinned_threads += 1
        self._local.pinned = True

    def settle(self, committed: bool) -> None:
        """This thread's transaction ended: its blobs are referenced (``committed``) or garbage."""
        if not getattr(self._local, "pinned", False):
            return
        self._local.pinned = False
        with self._mutex:
            self._pinned_threads -= 1
            self._failed = self._failed or not committed
            if self._pinned_threads == 0:
                self._stop_writing()

    def _start_writing(self) -> None:
        if self.collector is not None and self.stale_writers():
            self.collector()  # a killed or failed writer's blobs: reclaim them before adding
        try:
            self.writers.mkdir(parents=True, exist_ok=True)
            path = self.writers / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._marker = (fd, path)
            self._gc_fd = os.open(self.gc_lock, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._gc_fd, fcntl.LOCK_SH)  # waits while a collection runs
        except OSError as e:
            self._stop_writing()
            raise store_error(e, "cannot write a file into the store") from None

    def _stop_writing(self) -> None:
        if self._gc_fd is not None:
            os.close(self._gc_fd)
            self._gc_fd = None
        if self._marker is not None:
            fd, path = self._marker
            if not self._failed:
                _unlink_quietly(str(path))  # else left, unheld: the next writer collects
            os.close(fd)
            self._marker = None
        self._failed = False

    def stale_writers(self) -> list[Path]:
        """Markers no live process holds: writers that were killed or failed."""
        if not self.writers.is_dir():
            return []
        stale = []
        for p in self.writers.iterdir():
            try:
                fd = os.open(p, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                stale.append(p)
            except OSError:
                pass  # held: a live writer
            finally:
                os.close(fd)
        return stale

    @contextlib.contextmanager
    def exclusive(self, wait_s: float = 0.0) -> Iterator[bool]:
        """Hold ``gc.lock`` exclusively (no reference on its way anywhere); yields False if
        writers kept it for ``wait_s`` seconds, or if this process itself is pinned."""
        if self._pinned_threads:
            yield False
            return
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.gc_lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.05)
            yield True
        finally:
            os.close(fd)

    def digests(self) -> Iterator[tuple[str, Path]]:
        """Every stored blob: (sha256 its name says, its path)."""
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for p in sorted(sub.iterdir()):
                yield sub.name + p.name, p

    @staticmethod
    def hash_of(path: Path) -> str:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        return h.hexdigest()

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:]

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def put(self, data: bytes | BinaryIO) -> tuple[str, int]:
        """Store ``data`` (bytes or a readable binary stream); return (sha256 hex, size).
        Pins this thread until its next transaction ends (see :meth:`pin`); a failure here
        settles it as failed (what it wrote is garbage for the next collection)."""
        self.pin()
        try:
            self.tmp.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix=f"{os.getpid()}-")
        except OSError as e:
            self.settle(False)
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
            self.settle(False)
            raise store_error(e, "cannot write a file into the store") from None
        except BaseException:
            _unlink_quietly(tmp_name)
            self.settle(False)
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
