"""The state folder's one lock: whoever runs jobs holds it, so one state folder has one job runner
at a time across processes (``flock`` on ``run.lock``) and across the threads of one process.

It is re-entrant in the thread that holds it, because a job's ``on_job`` callback may call back
into the engine (e.g. ``run_pending`` from inside a run): the inner holder learns it is not the
outermost one and leaves the queue to the outer loop.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path
from typing import Iterator

from pix2pix.errors import StoreError


class StateLock:
    """``with lock.hold() as outermost:`` - exclusive, re-entrant in its thread."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._mutex = threading.RLock()
        self._depth = 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[bool]:
        """Hold the lock (waiting for other holders); yields True for the outermost holder."""
        with self._mutex:
            if self._depth:
                # Re-entered in this thread: a second flock on a new descriptor would wait for
                # ourselves forever.
                self._depth += 1
                try:
                    yield False
                finally:
                    self._depth -= 1
                return
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise StoreError(f"{self.path}: cannot open the state folder's lock ({e})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._depth = 1
                yield True
            finally:
                self._depth = 0
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
