"""Versioned metadata in SQLite (WAL mode): repos, branches, commits and their file trees,
provenance edges, open commits with their staged operations, pipelines, jobs, datums, logs and
the queue of pending triggers.

Write paths each run in one ``BEGIN IMMEDIATE`` transaction, so a crash (even SIGKILL) leaves
either the old state or the new one. Commits are immutable once written: a reader that resolved a
branch to a commit id reads that commit's complete tree, never a mix.

    repos 1--* branches --head--> commits 1--* files (path -> blob sha256, size)
                                  commits 1--* commit_provenance (input commits)
    open_commits 1--* staged (put/append/delete ops, applied at finish on the branch head)
    pipelines 1--* pipeline_versions;  jobs 1--* datums 1--* datum_outputs
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from pix2pix.errors import StoreError

SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS repos(
    name TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '', created REAL NOT NULL,
    type TEXT NOT NULL DEFAULT 'user');
CREATE TABLE IF NOT EXISTS branches(
    repo TEXT NOT NULL, name TEXT NOT NULL, head TEXT, PRIMARY KEY(repo, name));
CREATE TABLE IF NOT EXISTS commits(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, repo TEXT NOT NULL,
    branch TEXT NOT NULL, parent TEXT, origin TEXT NOT NULL, started REAL, finished REAL,
    size INTEGER NOT NULL DEFAULT 0, description TEXT NOT NULL DEFAULT '', UNIQUE(repo, id));
CREATE INDEX IF NOT EXISTS commits_by_id ON commits(id);
CREATE TABLE IF NOT EXISTS commit_provenance(
    repo TEXT NOT NULL, commit_id TEXT NOT NULL, prov_repo TEXT NOT NULL,
    prov_branch TEXT NOT NULL, prov_commit TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS prov_by_commit ON commit_provenance(repo, commit_id);
CREATE TABLE IF NOT EXISTS files(
    repo TEXT NOT NULL, commit_id TEXT NOT NULL, path TEXT NOT NULL, hash TEXT NOT NULL,
    size INTEGER NOT NULL, PRIMARY KEY(repo, commit_id, path)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS open_commits(
    id TEXT NOT NULL, repo TEXT NOT NULL, branch TEXT NOT NULL, parent TEXT,
    description TEXT NOT NULL DEFAULT '', started REAL NOT NULL, pid INTEGER, pid_start TEXT,
    PRIMARY KEY(repo, id));
CREATE TABLE IF NOT EXISTS staged(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, repo TEXT NOT NULL, commit_id TEXT NOT NULL,
    op TEXT NOT NULL, path TEXT NOT NULL, hash TEXT, size INTEGER);
CREATE TABLE IF NOT EXISTS pipelines(
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, version INTEGER NOT NULL, created REAL NOT NULL,
    updated REAL NOT NULL, salt TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'running');
CREATE TABLE IF NOT EXISTS pipeline_versions(
    name TEXT NOT NULL, version INTEGER NOT NULL, spec TEXT NOT NULL, created REAL NOT NULL,
    salt TEXT NOT NULL, PRIMARY KEY(name, version));
CREATE TABLE IF NOT EXISTS jobs(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, pipeline TEXT NOT NULL,
    state TEXT NOT NULL, started REAL, finished REAL, processed INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0, output_commit TEXT, failed_datum TEXT,
    reason TEXT NOT NULL DEFAULT '', spec_version INTEGER NOT NULL, salt TEXT NOT NULL,
    inputs TEXT NOT NULL DEFAULT '[]', pid INTEGER, pid_start TEXT,
    recovered INTEGER NOT NULL DEFAULT 0, UNIQUE(pipeline, id));
CREATE TABLE IF NOT EXISTS datums(
    pipeline TEXT NOT NULL, job_id TEXT NOT NULL, id TEXT NOT NULL, state TEXT NOT NULL,
    hash TEXT NOT NULL, inputs TEXT NOT NULL, tries INTEGER NOT NULL DEFAULT 0,
    log TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', started REAL, finished REAL,
    seq INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(pipeline, job_id, id));
CREATE TABLE IF NOT EXISTS datum_outputs(
    pipeline TEXT NOT NULL, job_id TEXT NOT NULL, datum_id TEXT NOT NULL, path TEXT NOT NULL,
    hash TEXT NOT NULL, size INTEGER NOT NULL, PRIMARY KEY(pipeline, job_id, datum_id, path));
CREATE INDEX IF NOT EXISTS outputs_by_path ON datum_outputs(pipeline, job_id, path);
CREATE TABLE IF NOT EXISTS job_logs(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, pipeline TEXT NOT NULL, job_id TEXT NOT NULL,
    datum_id TEXT, message TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, repo TEXT, branch TEXT,
    commit_id TEXT, pipeline TEXT, created REAL NOT NULL);
"""


def pid_start(pid: int) -> str:
    """The start time of a process (from /proc), so a recycled pid is not mistaken for its
    predecessor; "" where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_alive(pid: int | None, start: str | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not start or pid_start(pid) in ("", start)


def _db_error(e: sqlite3.Error, db: Path) -> StoreError:
    msg = str(e)
    if "readonly" in msg or "unable to open" in msg:
        return StoreError(f"{db}: the state folder is not writable ({msg}); use --state DIR or "
                          "PIX2PIX_STATE to pick a writable one")
    if "full" in msg:
        return StoreError(f"{db}: disk full ({msg}); free space and retry, nothing was committed")
    if "locked" in msg or "busy" in msg:
        return StoreError(f"{db}: the store stayed busy ({msg}); another pix2pix command holds "
                          "it, retry when it ends")
    return StoreError(f"{db}: {msg}")


class Store:
    """The SQLite database of one state folder. One connection per thread."""

    def __init__(self, db_path: Path, *, busy_timeout_s: float = 60.0):
        self.db_path = Path(db_path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._init_schema()

    # -- connections and transactions ---------------------------------------------------------
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            try:
                c = sqlite3.connect(self.db_path, timeout=self.busy_timeout_s, isolation_level=None,
                                    check_same_thread=False)
                c.row_factory = sqlite3.Row
                c.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
                c.execute("PRAGMA journal_mode=WAL")
                c.execute("PRAGMA synchronous=FULL")
                c.execute("PRAGMA foreign_keys=OFF")
            except sqlite3.Error as e:
                raise _db_error(e, self.db_path) from None
            self._local.conn = c
        return c

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: writers queue up instead of deadlocking).
        Nested use joins the outer transaction."""
        c = self.conn()
        if c.in_transaction:
            yield c
            return
        try:
            c.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise _db_error(e, self.db_path) from None
        try:
            yield c
            c.execute("COMMIT")
        except sqlite3.Error as e:
            _rollback(c)
            raise _db_error(e, self.db_path) from None
        except BaseException:
            _rollback(c)
            raise

    def q(self, sql: str, args: tuple | list = ()) -> list[sqlite3.Row]:
        try:
            return self.conn().execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise _db_error(e, self.db_path) from None

    def q1(self, sql: str, args: tuple | list = ()) -> sqlite3.Row | None:
        rows = self.q(sql, args)
        return rows[0] if rows else None

    def _init_schema(self) -> None:
        # Only write when something is missing: reads then work without taking the write lock.
        try:
            ready = self.conn().execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            cols = {r["name"] for r in self.conn().execute("PRAGMA table_info(jobs)").fetchall()}
            if ready and "recovered" in cols:
                return
        except sqlite3.Error:
            pass  # a new database: create it below
        with self.tx() as c:
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    c.execute(stmt)
            # Columns added after a state folder was first made: add them in place.
            cols = {r["name"] for r in c.execute("PRAGMA table_info(jobs)").fetchall()}
            if "recovered" not in cols:
                c.execute("ALTER TABLE jobs ADD COLUMN recovered INTEGER NOT NULL DEFAULT 0")
            c.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))

    # -- trees ---------------------------------------------------------------------------------
    def tree(self, repo: str, commit_id: str | None) -> dict[str, tuple[str, int]]:
        """``{path: (sha256, size)}`` of a finished commit (empty for None)."""
        if commit_id is None:
            return {}
        return {r["path"]: (r["hash"], r["size"]) for r in self.q(
            "SELECT path, hash, size FROM files WHERE repo=? AND commit_id=? ORDER BY path",
            (repo, commit_id))}

    def write_commit(self, c: sqlite3.Connection, *, repo: str, commit_id: str, branch: str,
                     parent: str | None, origin: str, started: float, description: str,
                     tree: dict[str, tuple[str, int]], provenance: list[tuple[str, str, str]] = ()
                     ) -> float:
        """Insert a finished commit with its tree and provenance and move the branch head to it.
        Must run inside :meth:`tx`. Returns the finish time."""
        finished = time.time()
        size = sum(s for _, s in tree.values())
        c.execute("INSERT INTO commits(id, repo, branch, parent, origin, started, finished, size, "
                  "description) VALUES (?,?,?,?,?,?,?,?,?)",
                  (commit_id, repo, branch, parent, origin, started, finished, size, description))
        c.executemany("INSERT INTO files(repo, commit_id, path, hash, size) VALUES (?,?,?,?,?)",
                      [(repo, commit_id, p, h, s) for p, (h, s) in tree.items()])
        c.executemany("INSERT INTO commit_provenance(repo, commit_id, prov_repo, prov_branch, "
                      "prov_commit) VALUES (?,?,?,?,?)",
                      [(repo, commit_id, r, b, i) for r, b, i in provenance])
        c.execute("INSERT INTO branches(repo, name, head) VALUES (?,?,?) "
                  "ON CONFLICT(repo, name) DO UPDATE SET head=excluded.head",
                  (repo, branch, commit_id))
        return finished


def _rollback(c: sqlite3.Connection) -> None:
    try:
        c.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
