"""The SQLite database of one state folder (WAL mode): connections, transactions, the schema and
its migrations, and SQLite's errors as the package's typed errors.

Every write runs in one ``BEGIN IMMEDIATE`` transaction, so a crash (even SIGKILL) leaves either
the old state or the new one. Nested use of :meth:`Database.tx` joins the outer transaction, so
the named methods of :mod:`.pfsdb` and :mod:`.ppsdb` compose into one atomic change::

    with store.tx():
        if store.get_repo(name) is None:
            store.insert_repo(name, ...)

    projects 1--* repos 1--* branches --head--> commits 1--* files (path -> blob sha256, size)
    branches 1--* branch_provenance (the branches a branch is computed from)
                  commits 1--* commit_provenance (the commits a commit was computed from)
    open commits (finished NULL) 1--* staged (put/append/delete ops, applied at finish)
    pipelines 1--* pipeline_versions;  jobs 1--* datums 1--* datum_outputs;  job_logs
    pending (jobs to run);  transactions (requests queued by StartTransaction)
    services (the supervised processes of spouts and service pipelines)

Repos and pipelines are keyed by their qualified name: ``images`` in the default project,
``proj/images`` in project ``proj`` (pachd's names cannot hold ``/``), with the project beside.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from pix2pix.errors import StoreBusyError, StoreError, StoreFullError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS projects(
    name TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '', created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS repos(
    name TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '', created REAL NOT NULL,
    type TEXT NOT NULL DEFAULT 'user', project TEXT NOT NULL DEFAULT 'default');
CREATE TABLE IF NOT EXISTS branches(
    repo TEXT NOT NULL, name TEXT NOT NULL, head TEXT, created REAL NOT NULL DEFAULT 0,
    trigger TEXT NOT NULL DEFAULT '', PRIMARY KEY(repo, name));
CREATE TABLE IF NOT EXISTS commits(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, repo TEXT NOT NULL,
    branch TEXT NOT NULL, parent TEXT, origin TEXT NOT NULL, started REAL, finished REAL,
    size INTEGER NOT NULL DEFAULT 0, description TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '', pid INTEGER, pid_start TEXT, UNIQUE(repo, id));
CREATE INDEX IF NOT EXISTS commits_by_id ON commits(id);
CREATE TABLE IF NOT EXISTS commit_provenance(
    repo TEXT NOT NULL, commit_id TEXT NOT NULL, prov_repo TEXT NOT NULL,
    prov_branch TEXT NOT NULL, prov_commit TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS prov_by_commit ON commit_provenance(repo, commit_id);
CREATE INDEX IF NOT EXISTS subvenance_by_commit ON commit_provenance(prov_repo, prov_commit);
CREATE TABLE IF NOT EXISTS files(
    repo TEXT NOT NULL, commit_id TEXT NOT NULL, path TEXT NOT NULL, hash TEXT NOT NULL,
    size INTEGER NOT NULL, PRIMARY KEY(repo, commit_id, path)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS staged(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, repo TEXT NOT NULL, commit_id TEXT NOT NULL,
    op TEXT NOT NULL, path TEXT NOT NULL, hash TEXT, size INTEGER);
CREATE TABLE IF NOT EXISTS pipelines(
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, version INTEGER NOT NULL, created REAL NOT NULL,
    updated REAL NOT NULL, salt TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'running',
    project TEXT NOT NULL DEFAULT 'default');
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
    recovered INTEGER NOT NULL DEFAULT 0, created REAL, UNIQUE(pipeline, id));
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
CREATE TABLE IF NOT EXISTS branch_provenance(
    repo TEXT NOT NULL, branch TEXT NOT NULL, prov_repo TEXT NOT NULL, prov_branch TEXT NOT NULL,
    PRIMARY KEY(repo, branch, prov_repo, prov_branch));
CREATE INDEX IF NOT EXISTS subvenance ON branch_provenance(prov_repo, prov_branch);
CREATE TABLE IF NOT EXISTS transactions(
    id TEXT PRIMARY KEY, started REAL NOT NULL, requests TEXT NOT NULL DEFAULT '[]');
CREATE TABLE IF NOT EXISTS services(
    pipeline TEXT PRIMARY KEY, pid INTEGER, pid_start TEXT, state TEXT NOT NULL,
    started REAL, url TEXT NOT NULL DEFAULT '', serving TEXT NOT NULL DEFAULT '',
    restarts INTEGER NOT NULL DEFAULT 0, detail TEXT NOT NULL DEFAULT '');
"""

def _add_recovered(c: sqlite3.Connection) -> None:
    """Schema 1 folders made before jobs counted errCmd recoveries (idempotent: some schema 1
    folders have the column already)."""
    _add_columns(c, "jobs", {"recovered": "INTEGER NOT NULL DEFAULT 0"})


def _fill_branch_provenance(c: sqlite3.Connection) -> None:
    """Schema 2: a pipeline's output branch is computed from its input branches (pachd's branch
    provenance); fill it in for the pipelines a schema 1 folder already has."""
    from pix2pix.pachyderm.spec import PipelineSpec
    for r in c.execute("SELECT spec FROM pipelines").fetchall():
        spec = PipelineSpec.from_json(r["spec"])
        c.executemany("INSERT OR IGNORE INTO branch_provenance(repo, branch, prov_repo, "
                      "prov_branch) VALUES (?,?,?,?)",
                      [(spec.name, spec.output_branch, repo, branch)
                       for repo, branch in spec.input_branches])


def _add_columns(c: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    have = {r["name"] for r in c.execute(f"PRAGMA table_info({table})").fetchall()}
    for name, decl in columns.items():
        if name not in have:
            c.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


def _pachd_model(c: sqlite3.Connection) -> None:
    """Schema 3, pachd's model: projects; a branch always has a head (a repo has no branch
    until its first commit), and an open commit is a commit its branch points at, so open
    commits move into ``commits`` (``finished`` NULL) with their owner, and commits may be
    finished with an error. The open commits of a schema 2 folder are dropped: their files were
    never visible, and the process that held them (an older pix2pix) cannot finish them."""
    _add_columns(c, "repos", {"project": "TEXT NOT NULL DEFAULT 'default'"})
    _add_columns(c, "pipelines", {"project": "TEXT NOT NULL DEFAULT 'default'"})
    _add_columns(c, "branches", {"created": "REAL NOT NULL DEFAULT 0",
                                 "trigger": "TEXT NOT NULL DEFAULT ''"})
    _add_columns(c, "commits", {"error": "TEXT NOT NULL DEFAULT ''", "pid": "INTEGER",
                                "pid_start": "TEXT"})
    _add_columns(c, "jobs", {"created": "REAL"})
    c.execute("UPDATE jobs SET created=started WHERE created IS NULL")
    c.execute("UPDATE branches SET created=COALESCE((SELECT MIN(started) FROM commits k WHERE "
              "k.repo=branches.repo AND k.branch=branches.name), 0) WHERE created=0")
    # A user repo's empty branch is no branch in pachd; pipeline branches keep theirs until
    # their first job.
    c.execute("DELETE FROM branches WHERE head IS NULL AND NOT EXISTS (SELECT 1 FROM "
              "branch_provenance p WHERE p.repo=branches.repo AND p.branch=branches.name)")
    if c.execute("SELECT name FROM sqlite_master WHERE name='open_commits'").fetchone():
        c.execute("DELETE FROM staged WHERE commit_id IN (SELECT id FROM open_commits)")
        c.execute("DROP TABLE open_commits")
    c.execute("INSERT OR IGNORE INTO projects(name, description, created) VALUES "
              "('default', '', COALESCE((SELECT MIN(created) FROM repos), "
              "CAST(strftime('%s', 'now') AS REAL)))")


# (version, step): the steps that take a folder to that version, in order; each runs once, in
# the transaction that creates the tables of :data:`SCHEMA` the folder lacks.
MIGRATIONS: list[tuple[int, Callable[[sqlite3.Connection], None]]] = [
    (2, _add_recovered),
    (2, _fill_branch_provenance),
    (3, _pachd_model),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


def db_error(e: sqlite3.Error, db: Path) -> StoreError:
    """SQLite's error as the typed error that says what to do about it."""
    msg = str(e)
    if "readonly" in msg or "unable to open" in msg:
        return StoreError(f"{db}: the state folder is not writable ({msg}); use --state DIR or "
                          "PIX2PIX_STATE to pick a writable one")
    if "full" in msg:
        # Whether anything was committed is for the caller to say, after re-reading the store.
        return StoreFullError(f"{db}: disk full (the metadata database cannot grow); free "
                              "space and retry")
    if "locked" in msg or "busy" in msg:
        return StoreBusyError(f"{db}: the store stayed busy ({msg}); another pix2pix command "
                              "holds it, retry when it ends")
    return StoreError(f"{db}: {msg}")


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class Database:
    """Connections (one per thread), transactions and the schema of ``engine.db``."""

    def __init__(self, db_path: Path, *, busy_timeout_s: float = 60.0):
        self.db_path = Path(db_path)
        self.busy_timeout_s = busy_timeout_s
        # Called in the thread with True after each outermost commit, False after a rollback
        # (the blob store settles the thread's pin: blobs.py).
        self.after_tx: Callable[[bool], None] | None = None
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
                raise db_error(e, self.db_path) from None
            self._local.conn = c
        return c

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    @contextlib.contextmanager
    def tx(self) -> Iterator[None]:
        """One write transaction (``BEGIN IMMEDIATE``: writers queue up instead of deadlocking).
        Nested use joins the outer transaction; an exception rolls the whole of it back."""
        c = self.conn()
        if c.in_transaction:
            yield
            return
        try:
            c.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise db_error(e, self.db_path) from None
        try:
            yield
            c.execute("COMMIT")
        except sqlite3.Error as e:
            _rollback(c)
            self._settled(False)
            raise db_error(e, self.db_path) from None
        except BaseException:
            _rollback(c)
            self._settled(False)
            raise
        self._settled(True)

    def _settled(self, committed: bool) -> None:
        if self.after_tx is not None:
            self.after_tx(committed)

    # -- statements (for the query modules of this package only) -------------------------------
    def _rows(self, sql: str, args: tuple | list = ()) -> list[sqlite3.Row]:
        try:
            return self.conn().execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise db_error(e, self.db_path) from None

    def _row(self, sql: str, args: tuple | list = ()) -> sqlite3.Row | None:
        rows = self._rows(sql, args)
        return rows[0] if rows else None

    def _exec(self, sql: str, args: tuple | list = ()) -> int:
        """Run one write inside a transaction; the number of rows it changed."""
        with self.tx():
            return self.conn().execute(sql, args).rowcount

    def _exec_many(self, sql: str, rows: list[tuple]) -> None:
        with self.tx():
            self.conn().executemany(sql, rows)

    # -- schema --------------------------------------------------------------------------------
    def schema_version(self) -> int:
        row = self._row("SELECT value FROM meta WHERE key='schema'")
        return int(row["value"]) if row else 0

    def columns(self, table: str) -> set[str]:
        return {r["name"] for r in self._rows(f"PRAGMA table_info({table})")}

    def _init_schema(self) -> None:
        # Only write when something is missing: reads then work without taking the write lock.
        try:
            if self.schema_version() >= SCHEMA_VERSION:
                return
        except StoreError:
            pass  # a new database: create it below
        with self.tx():
            c = self.conn()
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    c.execute(stmt)
            row = c.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            current = int(row["value"]) if row else 0
            for version, step in MIGRATIONS:
                if version > current:
                    step(c)
            c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', ?)",
                      (str(SCHEMA_VERSION),))


def _rollback(c: sqlite3.Connection) -> None:
    try:
        c.execute("ROLLBACK")
    except sqlite3.Error:
        pass
