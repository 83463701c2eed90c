"""The embedded engine as the gRPC servicers see it: one :class:`EngineAdapter` per server
(see server_convert.py for the messages).

Jobs run in a background thread, as on pachd: FinishCommit returns at once, every write kicks
the runner, and the waits (InspectCommit with wait=FINISHED, InspectCommitSet/InspectJobSet/
InspectJob with wait) block until what they wait for holds.

Each gRPC worker thread gets its own :class:`~pix2pix.pachyderm.engine.Engine` on the shared state
folder (SQLite serialises writers), so no engine object is shared between threads.
"""
from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Callable

from pix2pix.fsutil import atomic_write


# -- the engine, per thread, and the background runner ------------------------------------------
class EngineAdapter:
    """Thread-local engines over one state folder, plus the pipeline runner loop.

    Args:
        state_dir: the engine's state folder.
        executor: the engine's executor for transforms (None: its default, ``process``).
        engine: an Engine to use in the creating thread (tests); others get their own.
        background: run the runner loop in a daemon thread (in-process servers). ``local serve``
            runs it in its main thread instead (:meth:`run_loop`), so SIGINT/SIGTERM interrupt
            a running job the way Ctrl-C does in ``pix2pix`` commands: recorded as killed.
    """

    def __init__(self, state_dir: Path, *, executor: str | None = None, engine=None,
                 background: bool = True) -> None:
        from pix2pix.pachyderm.engine import Engine

        self.state_dir = Path(state_dir)
        self._make = lambda: Engine(self.state_dir, executor=executor, defer=True)
        self._local = threading.local()
        if engine is not None:
            self._local.engine = engine
        self.engine  # create the state folder now, so a bad --state fails before we listen
        self.cluster_id = self._cluster_id()
        self._cond = threading.Condition()
        self._dirty = True  # run whatever a previous session left queued
        self._busy = False
        self.running_job = False  # True only around run_pending(), for the signal handler
        self.stopped = False
        self.last_error: str = ""
        self._thread = None
        if background:
            self._thread = threading.Thread(target=self.run_loop, name="pachd-local-runner", daemon=True)
            self._thread.start()

    @property
    def engine(self):
        eng = getattr(self._local, "engine", None)
        if eng is None:
            eng = self._local.engine = self._make()
        return eng

    def _cluster_id(self) -> str:
        path = self.state_dir / "cluster_id"
        try:
            return path.read_text().strip()
        except OSError:
            cid = uuid.uuid4().hex
            try:
                atomic_write(path, cid + "\n")
            except OSError:
                pass  # a read-only state folder: a new ID per run
            return cid

    # The runner: pachd runs jobs asynchronously, so FinishCommit and CreatePipeline only kick it.
    def kick(self) -> None:
        with self._cond:
            self._dirty = True
            self._cond.notify_all()

    def run_loop(self) -> None:
        """Run queued triggers whenever kicked, until :meth:`stop` (or a KeyboardInterrupt from a
        signal handler while a job runs: the engine records that job as killed)."""
        while not self.stopped:
            with self._cond:
                if not self._dirty:
                    # A timed wait: a signal handler sets ``stopped`` without the lock.
                    self._cond.wait(timeout=0.5)
                if not self._dirty or self.stopped:
                    continue
                self._dirty, self._busy = False, True
            try:
                self.running_job = True
                self.engine.run_pending()
                self.running_job = False
                self.last_error = ""
            except KeyboardInterrupt:
                self.running_job = False
                self.stopped = True
            except Exception as e:  # noqa: BLE001 - a failed job is recorded by the engine; keep serving
                self.running_job = False
                self.last_error = f"{type(e).__name__}: {e}"
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def wait_idle(self, is_active: Callable[[], bool] = lambda: True) -> None:
        """Block until every job runnable so far has run (or the caller went away)."""
        self.kick()
        with self._cond:
            while (self._dirty or self._busy) and not self.stopped and is_active():
                self._cond.wait(timeout=0.5)

    def stop(self) -> None:
        """Stop the runner loop (after the job it runs, if any) and wake every waiter."""
        self.stopped = True
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wait_for(self, cond: Callable[[], bool], is_active: Callable[[], bool],
                 poll_s: float = 0.1) -> None:
        """Block until ``cond()`` holds (the runner keeps running jobs meanwhile), the caller
        goes away, or the server stops."""
        self.kick()
        while not self.stopped and is_active() and not cond():
            with self._cond:
                self._cond.wait(timeout=poll_s)
