"""What every operation of the embedded engine works on: one state folder's store, blob store,
lock and settings. The operations are module-level functions taking a :class:`Context` first
(``repos.create_repo(ctx, "images")``); :class:`~pix2pix.pachyderm.engine.Engine` is a Context
with those functions bound as its methods, so no module holds a reference back to the facade.

    state folder (default ./.pix2pix, env PIX2PIX_STATE)
    ├── engine.db      SQLite (WAL): repos, branches, commits, trees, provenance, jobs, datums
    ├── blobs/ab/cd..  file contents by sha256 (temp file + fsync + rename)
    ├── jobs/<pipeline>-<id>/w<k>/pfs   scratch /pfs of worker k of a running job (removed after)
    └── run.lock       one job runner at a time
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Optional

from pix2pix.errors import UsageError
from pix2pix.pachyderm.blobs import BlobStore, store_error
from pix2pix.pachyderm.info import CommitInfo, JobInfo
from pix2pix.pachyderm.locks import StateLock
from pix2pix.pachyderm.store import Store

EXECUTORS = ("process", "container")


def default_state_dir() -> Path:
    """``$PIX2PIX_STATE`` if set, else ``./.pix2pix`` in the working directory."""
    return Path(os.environ.get("PIX2PIX_STATE") or ".pix2pix")


def new_id() -> str:
    """A Pachyderm 2.x global ID: 32 lower-case hex digits."""
    return uuid.uuid4().hex


class Context:
    """One state folder and how its jobs run.

    Args:
        state_dir: the state folder (created if missing); None for :func:`default_state_dir`.
        executor: ``process`` (default; env PIX2PIX_EXECUTOR) runs transforms here with this
            Python environment; ``container`` runs them in ``transform.image`` (docker, podman
            or buildah).
        defer: queue pipeline runs instead of running them in the call that made the commit
            (default: env PIX2PIX_DEFER=1).
        on_job: called with each JobInfo when a job ends (the CLI prints progress with it).
    """

    def __init__(self, state_dir: Path | str | None = None, *, executor: str | None = None,
                 defer: bool | None = None, on_job: Optional[Callable[[JobInfo], None]] = None):
        self.state_dir = (Path(state_dir) if state_dir is not None else default_state_dir()).absolute()
        self.executor = executor or os.environ.get("PIX2PIX_EXECUTOR") or "process"
        if self.executor not in EXECUTORS:
            raise UsageError(f"executor {self.executor!r}: expected one of {', '.join(EXECUTORS)}")
        self.defer = (os.environ.get("PIX2PIX_DEFER", "") not in ("", "0")) if defer is None else defer
        self.on_job = on_job
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise store_error(e, f"state folder {self.state_dir}") from None
        self.blobs = BlobStore(self.state_dir / "blobs")
        self.store = Store(self.state_dir / "engine.db")
        self.store.after_tx = self.blobs.settle  # a transaction ended: its blobs are settled
        self.jobs_dir = self.state_dir / "jobs"
        self.lock = StateLock(self.state_dir / "run.lock")
        # PFS -> PPS hooks, as pachd's transaction context has them: called inside the write
        # transaction with the AUTO commits a propagation opened (PPS creates their jobs) and
        # the commits a drop or squash removed (PPS removes their jobs).
        self.on_commits: Optional[Callable[[list[CommitInfo]], None]] = None
        self.on_commits_removed: Optional[Callable[[list[CommitInfo]], None]] = None

    def runs_now(self, run: Optional[bool]) -> bool:
        """Whether a call that queued jobs runs them before it returns (``run`` overrides)."""
        return not self.defer if run is None else run
