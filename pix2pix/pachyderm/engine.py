"""The embedded engine's facade: a local, single-machine, Pachyderm-compatible data store and
pipeline runner over one state folder. The CLI (``pix2pix put file ...``), the pachd-compatible
gRPC server and ``pix2pix demo`` all go through this class; its method names and keyword
arguments are stable (extend, never rename).

    state folder (default ./.pix2pix, env PIX2PIX_STATE)
    ├── engine.db      SQLite (WAL): repos, branches, commits, trees, provenance, jobs, datums
    ├── blobs/ab/cd..  file contents by sha256 (temp file + fsync + rename)
    ├── jobs/<pipeline>-<id>/w<k>/pfs   scratch /pfs of worker k of a running job (removed after)
    └── run.lock       one job runner at a time

Typical use::

    eng = Engine(Path(".pix2pix"))
    eng.create_repo("images")
    with eng.commit("images") as c:           # finished on success, dropped on an exception
        c.put_file("/a.png", png_bytes)
    eng.create_pipeline(spec)                 # validated, then run on the data already there
    eng.get_file("edges", "master", "/a.png")
    eng.provenance("edges", "master", "/a.png")

A finished commit on a branch that pipelines read runs them at once, transitively down the DAG,
in the same call (``defer=True`` or ``PIX2PIX_DEFER=1`` queues them for :meth:`run_pending`).
The AUTO commits and jobs caused by one commit share its ID (a commit set, as in Pachyderm 2.x).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional

from pix2pix.errors import StoreError, UsageError
from pix2pix.pachyderm.blobs import BlobStore, store_error
from pix2pix.pachyderm.info import (
    BranchInfo, CommitInfo, DatumInfo, FileInfo, JobInfo, LogLine, PipelineInfo, Provenance,
    ProvenanceNode, RepoInfo,
)
from pix2pix.pachyderm.refs import COMMIT_ID, NAME, clean_path, split_ancestry
from pix2pix.pachyderm.store import Store, pid_start, process_alive

__all__ = [
    "Engine", "OpenCommit", "default_state_dir",
    "RepoInfo", "BranchInfo", "CommitInfo", "FileInfo", "PipelineInfo", "JobInfo", "DatumInfo",
    "LogLine", "Provenance", "ProvenanceNode",
]

EXECUTORS = ("process", "container")


def default_state_dir() -> Path:
    """``$PIX2PIX_STATE`` if set, else ``./.pix2pix`` in the working directory."""
    return Path(os.environ.get("PIX2PIX_STATE") or ".pix2pix")


def new_id() -> str:
    """A Pachyderm 2.x global ID: 32 lower-case hex digits."""
    return uuid.uuid4().hex


class OpenCommit:
    """An open commit from :meth:`Engine.commit`: stage files, then leave the ``with`` block."""

    def __init__(self, engine: "Engine", repo: str, commit_id: str):
        self.engine, self.repo, self.id = engine, repo, commit_id
        self.info: Optional[CommitInfo] = None  # set when the commit is finished

    def put_file(self, path: str, data: bytes | BinaryIO, *, append: bool = False) -> None:
        self.engine.put_file(self.repo, self.id, path, data, append=append)

    def put_local(self, src: Path, dest: str = "/", *, recursive: bool = True) -> list[str]:
        return self.engine.put_local(self.repo, self.id, src, dest, recursive=recursive)

    def delete_file(self, path: str) -> None:
        self.engine.delete_file(self.repo, self.id, path)


class Engine:
    """One state folder's repos, commits, pipelines and jobs.

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
                 defer: bool | None = None, on_job: Callable[[JobInfo], None] | None = None):
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
        self.jobs_dir = self.state_dir / "jobs"
        self._recover()

    # -- recovery ------------------------------------------------------------------------------
    def _recover(self) -> None:
        """Forget what killed processes left behind: their open commits (staged files were never
        visible), their running jobs (marked killed; their trigger stays queued), temp blobs."""
        s = self.store
        stale = [r for r in s.q("SELECT repo, id, pid, pid_start FROM open_commits")
                 if not process_alive(r["pid"], r["pid_start"])]
        dead_jobs = [r for r in s.q("SELECT pipeline, id, pid, pid_start FROM jobs "
                                    "WHERE state IN ('created', 'running')")
                     if not process_alive(r["pid"], r["pid_start"])]
        if stale or dead_jobs:
            with s.tx() as c:
                for r in stale:
                    c.execute("DELETE FROM staged WHERE repo=? AND commit_id=?", (r["repo"], r["id"]))
                    c.execute("DELETE FROM open_commits WHERE repo=? AND id=?", (r["repo"], r["id"]))
                for r in dead_jobs:
                    c.execute("UPDATE jobs SET state='killed', finished=?, reason=? "
                              "WHERE pipeline=? AND id=?",
                              (time.time(), "the process running this job was killed; "
                               "`pix2pix run` runs it again", r["pipeline"], r["id"]))
            for r in dead_jobs:
                job_dir = self.jobs_dir / f"{r['pipeline']}-{r['id']}"
                _stop_orphan(job_dir)
                shutil.rmtree(job_dir, ignore_errors=True)
        self.blobs.clean_tmp()

    # -- repos ---------------------------------------------------------------------------------
    def create_repo(self, name: str, description: str = "", update: bool = False) -> RepoInfo:
        """Create a user repo (with an empty ``master`` branch).

        Raises:
            UsageError: an invalid name. StoreError: it exists and ``update`` is False.
        """
        _check_name(name, "repo")
        with self.store.tx() as c:
            row = c.execute("SELECT type FROM repos WHERE name=?", (name,)).fetchone()
            if row and not update:
                raise StoreError(f"repo {name!r} already exists; use `update repo` or pick "
                                 "another name")
            if row:
                c.execute("UPDATE repos SET description=? WHERE name=?", (description, name))
            else:
                self._insert_repo(c, name, description, "user")
        return self.inspect_repo(name)

    def _insert_repo(self, c, name: str, description: str, type_: str) -> None:
        c.execute("INSERT INTO repos(name, description, created, type) VALUES (?,?,?,?)",
                  (name, description, time.time(), type_))
        c.execute("INSERT OR IGNORE INTO branches(repo, name, head) VALUES (?, 'master', NULL)",
                  (name,))

    def inspect_repo(self, name: str) -> RepoInfo:
        row = self.store.q1("SELECT * FROM repos WHERE name=?", (name,))
        if row is None:
            raise StoreError(f"repo {name!r} not found; `pix2pix list repo` shows the repos")
        return self._repo_info(row)

    def _repo_info(self, row) -> RepoInfo:
        branches = [r["name"] for r in self.store.q(
            "SELECT name FROM branches WHERE repo=? ORDER BY name", (row["name"],))]
        head = self.store.q1("SELECT c.size FROM branches b JOIN commits c ON c.repo=b.repo "
                             "AND c.id=b.head WHERE b.repo=? AND b.name='master'", (row["name"],))
        return RepoInfo(name=row["name"], description=row["description"], created=row["created"],
                        size=head["size"] if head else 0, branches=branches, type=row["type"])

    def list_repos(self) -> list[RepoInfo]:
        """All repos, newest first (as pachctl lists them)."""
        return [self._repo_info(r) for r in self.store.q("SELECT * FROM repos ORDER BY created DESC")]

    def delete_repo(self, name: str, force: bool = False) -> None:
        """Delete a repo with all its commits.

        Raises:
            StoreError: it does not exist; it is a pipeline's output (delete the pipeline); or
                pipelines read it and ``force`` is False.
        """
        info = self.inspect_repo(name)
        if info.type == "pipeline" and not force:
            raise StoreError(f"repo {name!r} is the output of pipeline {name!r}; "
                             f"use `pix2pix delete pipeline {name}`")
        readers = [p.name for p in self.list_pipelines() if name in _input_repos(p.spec)]
        if readers and not force:
            raise StoreError(f"repo {name!r} is an input of pipeline(s) {', '.join(readers)}; "
                             "delete them first or use --force")
        with self.store.tx() as c:
            for table, col in (("files", "repo"), ("commit_provenance", "repo"),
                               ("commits", "repo"), ("branches", "repo"), ("staged", "repo"),
                               ("open_commits", "repo"), ("repos", "name")):
                c.execute(f"DELETE FROM {table} WHERE {col}=?", (name,))
            c.execute("DELETE FROM pending WHERE repo=?", (name,))

    def list_branches(self, repo: str) -> list[BranchInfo]:
        self.inspect_repo(repo)
        return [BranchInfo(repo=repo, name=r["name"], head=r["head"]) for r in self.store.q(
            "SELECT name, head FROM branches WHERE repo=? ORDER BY name", (repo,))]

    def create_branch(self, repo: str, branch: str, head: str | None = None) -> BranchInfo:
        """Create (or move) a branch; ``head`` is a ref in the same repo or None (empty)."""
        self.inspect_repo(repo)
        _check_name(branch, "branch")
        commit = self.inspect_commit(repo, head).id if head else None
        with self.store.tx() as c:
            c.execute("INSERT INTO branches(repo, name, head) VALUES (?,?,?) "
                      "ON CONFLICT(repo, name) DO UPDATE SET head=excluded.head",
                      (repo, branch, commit))
        return BranchInfo(repo=repo, name=branch, head=commit)

    # -- commits -------------------------------------------------------------------------------
    def start_commit(self, repo: str, branch: str = "master", parent: str | None = None,
                     description: str = "") -> str:
        """Open a commit on ``branch`` and return its ID. Files put into it stay invisible until
        :meth:`finish_commit`; its parent is the branch head at finish time (or ``parent``)."""
        info = self.inspect_repo(repo)
        if info.type == "pipeline":
            raise StoreError(f"repo {repo!r} is the output of a pipeline; only the pipeline "
                             "commits to it")
        _check_name(branch, "branch")
        parent_id = self.inspect_commit(repo, parent).id if parent else None
        cid = new_id()
        with self.store.tx() as c:
            c.execute("INSERT INTO open_commits(id, repo, branch, parent, description, started, "
                      "pid, pid_start) VALUES (?,?,?,?,?,?,?,?)",
                      (cid, repo, branch, parent_id, description, time.time(), os.getpid(),
                       pid_start(os.getpid())))
        return cid

    def _open(self, repo: str, commit_id: str):
        row = self.store.q1("SELECT * FROM open_commits WHERE repo=? AND id=?", (repo, commit_id))
        if row is None:
            if self.store.q1("SELECT 1 FROM commits WHERE repo=? AND id=?", (repo, commit_id)):
                raise StoreError(f"commit {repo}@{commit_id} is already finished; start a new one")
            raise StoreError(f"no open commit {repo}@{commit_id}; `start_commit` opens one")
        return row

    def put_file(self, repo: str, commit_id: str, path: str, data: bytes | BinaryIO,
                 append: bool = False) -> None:
        """Stage ``data`` at repo path ``path`` in an open commit (overwrite, or ``append``)."""
        dest = clean_path(path, what="destination path")
        if dest == "/":
            raise UsageError(f"{repo}@{commit_id}: cannot put a file at '/'; name a file path")
        self._open(repo, commit_id)
        digest, size = self.blobs.put(data)
        with self.store.tx() as c:
            c.execute("INSERT INTO staged(repo, commit_id, op, path, hash, size) VALUES (?,?,?,?,?,?)",
                      (repo, commit_id, "append" if append else "put", dest, digest, size))

    def put_local(self, repo: str, commit_id: str, src: Path, dest: str = "/", *,
                  recursive: bool = True) -> list[str]:
        """Stage a host file, or a folder's files under ``dest`` keeping their relative paths.
        Returns the repo paths staged.

        Raises:
            StoreError: ``src`` does not exist. UsageError: a folder without ``recursive``.
        """
        src = Path(src)
        if src.is_dir():
            if not recursive:
                raise UsageError(f"{src} is a folder; use -r to put its files")
            staged = []
            for f in sorted(p for p in src.rglob("*") if p.is_file()):
                rel = f.relative_to(src).as_posix()
                target = clean_path(dest.rstrip("/") + "/" + rel, what="destination path")
                with open(f, "rb") as fh:
                    self.put_file(repo, commit_id, target, fh)
                staged.append(target)
            return staged
        if not src.is_file():
            raise StoreError(f"{src}: no such file or folder")
        target = clean_path(dest, what="destination path")
        if dest.endswith("/") or target == "/":
            target = clean_path(target + "/" + src.name)
        with open(src, "rb") as fh:
            self.put_file(repo, commit_id, target, fh)
        return [target]

    def delete_file(self, repo: str, commit_id: str, path: str) -> None:
        """Stage the deletion of a file or a folder (everything under it) in an open commit."""
        target = clean_path(path, what="path")
        self._open(repo, commit_id)
        with self.store.tx() as c:
            c.execute("INSERT INTO staged(repo, commit_id, op, path) VALUES (?,?,?,?)",
                      (repo, commit_id, "delete", target))

    def finish_commit(self, repo: str, commit_id: str, *, run: bool | None = None,
                      description: str | None = None) -> CommitInfo:
        """Make an open commit visible: its staged ops are applied to the branch head *now*
        (so two writers racing on a branch both land, in order) in one transaction. Then the
        downstream pipelines run, unless deferred (``run=False`` or the engine's ``defer``).
        ``description`` replaces the one given at start (as pachd's FinishCommit allows)."""
        with self.store.tx() as c:
            row = dict(self._open(repo, commit_id))
            if description is not None:
                row["description"] = description
            branch = row["branch"]
            head = c.execute("SELECT head FROM branches WHERE repo=? AND name=?",
                             (repo, branch)).fetchone()
            parent = row["parent"] or (head["head"] if head else None)
            tree = self.store.tree(repo, parent)
            ops = c.execute("SELECT op, path, hash, size FROM staged WHERE repo=? AND commit_id=? "
                            "ORDER BY seq", (repo, commit_id)).fetchall()
            for op in ops:
                _apply(tree, op, self.blobs, f"{repo}@{commit_id}")
            _check_tree(tree, f"{repo}@{commit_id}")
            self.store.write_commit(c, repo=repo, commit_id=commit_id, branch=branch, parent=parent,
                                    origin="USER", started=row["started"],
                                    description=row["description"], tree=tree)
            c.execute("DELETE FROM staged WHERE repo=? AND commit_id=?", (repo, commit_id))
            c.execute("DELETE FROM open_commits WHERE repo=? AND id=?", (repo, commit_id))
            # Queued in the same transaction: a crash right after the commit still runs it later.
            if self._has_readers(repo, branch):
                c.execute("INSERT INTO pending(kind, repo, branch, commit_id, created) "
                          "VALUES ('commit', ?, ?, ?, ?)", (repo, branch, commit_id, time.time()))
        if not (self.defer if run is None else not run):
            self.run_pending()
        return self.inspect_commit(repo, commit_id)

    def list_open_commits(self, repo: str | None = None,
                          branch: str | None = None) -> list[CommitInfo]:
        """Open (unfinished) commits, newest first: ``finished`` is None, ``size`` counts the
        bytes staged so far. Their files are invisible to reads until finished."""
        sql, args = "SELECT * FROM open_commits WHERE 1=1", []
        if repo is not None:
            sql, args = sql + " AND repo=?", args + [repo]
        if branch is not None:
            sql, args = sql + " AND branch=?", args + [branch]
        out = []
        for r in self.store.q(sql + " ORDER BY started DESC", args):
            staged = self.store.q1("SELECT COALESCE(SUM(size), 0) AS n FROM staged WHERE repo=? "
                                   "AND commit_id=?", (r["repo"], r["id"]))
            out.append(CommitInfo(id=r["id"], repo=r["repo"], branch=r["branch"], parent=r["parent"],
                                  origin="USER", started=r["started"], finished=None,
                                  size=staged["n"], description=r["description"]))
        return out

    def commit_children(self, repo: str, commit_id: str) -> list[str]:
        """IDs of the finished commits whose parent is ``commit_id``, oldest first."""
        return [r["id"] for r in self.store.q(
            "SELECT id FROM commits WHERE repo=? AND parent=? ORDER BY seq", (repo, commit_id))]

    def datum_of(self, pipeline: str, job_id: str, path: str) -> str | None:
        """The datum of job ``pipeline@job_id`` that wrote output ``path`` (None if none)."""
        row = self.store.q1("SELECT datum_id FROM datum_outputs WHERE pipeline=? AND job_id=? "
                            "AND path=? LIMIT 1", (pipeline, job_id, clean_path(path)))
        return row["datum_id"] if row else None

    def drop_commit(self, repo: str, commit_id: str) -> None:
        """Forget an open commit and everything staged in it."""
        with self.store.tx() as c:
            c.execute("DELETE FROM staged WHERE repo=? AND commit_id=?", (repo, commit_id))
            c.execute("DELETE FROM open_commits WHERE repo=? AND id=?", (repo, commit_id))

    @contextlib.contextmanager
    def commit(self, repo: str, branch: str = "master", description: str = "", *,
               run: bool | None = None) -> Iterator[OpenCommit]:
        """``with engine.commit("images") as c: c.put_file(...)``: finished on success (see
        :meth:`finish_commit`), dropped on any exception, so nothing partial is ever visible."""
        oc = OpenCommit(self, repo, self.start_commit(repo, branch, description=description))
        try:
            yield oc
        except BaseException:
            self.drop_commit(repo, oc.id)
            raise
        oc.info = self.finish_commit(repo, oc.id, run=run)

    def _has_readers(self, repo: str, branch: str) -> bool:
        from pix2pix.pachyderm.spec import pfs_inputs
        return any((p["repo"], p.get("branch") or "master") == (repo, branch)
                   for pl in self.list_pipelines() for p in pfs_inputs(pl.spec.get("input") or {}))

    def resolve(self, repo: str, ref: str | None) -> str:
        """A commit id for ``ref``: a commit id, a branch (its head) or ``branch^N``/``~N``.

        Raises:
            StoreError: the repo, branch or commit does not exist, or the branch is empty.
        """
        self.inspect_repo(repo)
        ref = ref or "master"
        if COMMIT_ID.match(ref):
            if self.store.q1("SELECT 1 FROM commits WHERE repo=? AND id=?", (repo, ref)):
                return ref
            if self.store.q1("SELECT 1 FROM open_commits WHERE repo=? AND id=?", (repo, ref)):
                raise StoreError(f"commit {repo}@{ref} is still open; finish it first")
            raise StoreError(f"commit {repo}@{ref} not found; `pix2pix list commit {repo}` "
                             "lists them")
        base, n = split_ancestry(ref)
        if COMMIT_ID.match(base):
            cid: str | None = self.resolve(repo, base)
        else:
            row = self.store.q1("SELECT head FROM branches WHERE repo=? AND name=?", (repo, base))
            if row is None:
                raise StoreError(f"branch {repo}@{base} not found; branches: "
                                 f"{', '.join(b.name for b in self.list_branches(repo)) or 'none'}")
            cid = row["head"]
            if cid is None:
                raise StoreError(f"branch {repo}@{base} has no commits yet; "
                                 f"`pix2pix put file {repo}@{base}:/path -f FILE` makes one")
        for i in range(n):
            row = self.store.q1("SELECT parent FROM commits WHERE repo=? AND id=?", (repo, cid))
            cid = row["parent"] if row else None
            if cid is None:
                raise StoreError(f"{repo}@{ref}: the branch has only {i + 1} commit(s)")
        return cid

    def inspect_commit(self, repo: str, ref: str | None = None) -> CommitInfo:
        """A finished commit, with its provenance (the input commits of an AUTO commit)."""
        cid = self.resolve(repo, ref)
        return self._commit_info(self.store.q1(
            "SELECT * FROM commits WHERE repo=? AND id=?", (repo, cid)))

    def _commit_info(self, row) -> CommitInfo:
        prov = [Provenance(repo=r["prov_repo"], branch=r["prov_branch"], commit=r["prov_commit"])
                for r in self.store.q("SELECT * FROM commit_provenance WHERE repo=? AND commit_id=? "
                                      "ORDER BY prov_repo", (row["repo"], row["id"]))]
        return CommitInfo(id=row["id"], repo=row["repo"], branch=row["branch"], parent=row["parent"],
                          origin=row["origin"], started=row["started"], finished=row["finished"],
                          size=row["size"], description=row["description"], provenance=prov)

    def list_commits(self, repo: str, branch: str | None = None,
                     limit: int | None = None) -> list[CommitInfo]:
        """Finished commits, newest first; with ``branch``, that branch's ancestry from its head."""
        self.inspect_repo(repo)
        if branch is None:
            rows = self.store.q("SELECT * FROM commits WHERE repo=? ORDER BY seq DESC"
                                + (" LIMIT ?" if limit else ""), (repo, limit) if limit else (repo,))
            return [self._commit_info(r) for r in rows]
        out: list[CommitInfo] = []
        try:
            cid: str | None = self.resolve(repo, branch)
        except StoreError:
            if self.store.q1("SELECT 1 FROM branches WHERE repo=? AND name=? AND head IS NULL",
                             (repo, branch)):
                return []
            raise
        while cid and (limit is None or len(out) < limit):
            info = self.inspect_commit(repo, cid)
            out.append(info)
            cid = info.parent
        return out

    def inspect_commit_set(self, commit_set_id: str) -> list[CommitInfo]:
        """The commits of one commit set (one global ID): the user commit and the AUTO commits
        the pipelines made from it, in the order they were made."""
        rows = self.store.q("SELECT * FROM commits WHERE id=? ORDER BY seq", (commit_set_id,))
        if not rows:
            raise StoreError(f"commit set {commit_set_id} not found")
        return [self._commit_info(r) for r in rows]

    def list_commit_sets(self, limit: int | None = None) -> list[str]:
        """Global IDs, newest first."""
        rows = self.store.q("SELECT id, MAX(seq) AS s FROM commits GROUP BY id ORDER BY s DESC"
                            + (" LIMIT ?" if limit else ""), (limit,) if limit else ())
        return [r["id"] for r in rows]

    def wait_commit_set(self, commit_set_id: str) -> list[CommitInfo]:
        """Run whatever is pending, then return the commit set (every job it caused is over)."""
        self.run_pending()
        return self.inspect_commit_set(commit_set_id)

    def wait_commit(self, repo: str, ref: str | None = None) -> CommitInfo:
        """Return once the commit and the downstream commits of its commit set are finished
        (here: once pending jobs have run; jobs run in-process, so there is nothing else to
        wait for)."""
        cid = self.resolve(repo, ref)
        self.run_pending()
        return self.inspect_commit(repo, cid)

    # -- files ---------------------------------------------------------------------------------
    def _tree(self, repo: str, ref: str | None) -> tuple[str, dict[str, tuple[str, int]]]:
        cid = self.resolve(repo, ref)
        return cid, self.store.tree(repo, cid)

    def inspect_file(self, repo: str, ref: str | None, path: str) -> FileInfo:
        cid, tree = self._tree(repo, ref)
        return _file_info(repo, cid, tree, clean_path(path))

    def list_files(self, repo: str, ref: str | None, path: str = "/") -> list[FileInfo]:
        """The children of a folder (or the file itself), sorted by path."""
        cid, tree = self._tree(repo, ref)
        path = clean_path(path)
        if path in tree:
            return [_file_info(repo, cid, tree, path)]
        prefix = path.rstrip("/") + "/"
        children: dict[str, bool] = {}
        for p in tree:
            if p.startswith(prefix):
                rest = p[len(prefix):]
                name, sep, _ = rest.partition("/")
                children[prefix + name] = children.get(prefix + name, False) or bool(sep)
        if not children and path != "/":
            raise StoreError(f"{repo}@{ref or 'master'}:{path}: no such file or folder")
        return [_file_info(repo, cid, tree, p) for p in sorted(children)]

    def walk_files(self, repo: str, ref: str | None, path: str = "/") -> list[FileInfo]:
        """Every file (not folder) at or under ``path``, sorted."""
        cid, tree = self._tree(repo, ref)
        path = clean_path(path)
        prefix = path.rstrip("/") + "/"
        out = [FileInfo(path=p, type="file", size=s, hash=h, commit=cid, repo=repo)
               for p, (h, s) in tree.items() if p == path or p.startswith(prefix)]
        if not out and path != "/":
            raise StoreError(f"{repo}@{ref or 'master'}:{path}: no such file or folder")
        return out

    def glob_files(self, repo: str, ref: str | None, pattern: str) -> list[FileInfo]:
        """Files and folders matching a Pachyderm glob (``/*``, ``/**/*.png``, ``/{a,b}``)."""
        from pix2pix.pachyderm.globs import compile_glob, expand_paths
        cid, tree = self._tree(repo, ref)
        rx = compile_glob(pattern)
        return [_file_info(repo, cid, tree, p) for p in expand_paths(tree) if rx.fullmatch(p)]

    def get_file(self, repo: str, ref: str | None, path: str) -> bytes:
        """A file's content. Raises StoreError for a folder or a missing path."""
        return b"".join(self.get_file_stream(repo, ref, path))

    def get_file_stream(self, repo: str, ref: str | None, path: str) -> Iterator[bytes]:
        """A file's content in chunks (for large files and the gRPC server)."""
        cid, tree = self._tree(repo, ref)
        path = clean_path(path)
        if path not in tree:
            info = _file_info(repo, cid, tree, path)  # raises for a missing path
            raise StoreError(f"{repo}@{ref or 'master'}:{path} is a {info.type}, not a file; "
                             "use -r to get a folder")
        return self.blobs.stream(tree[path][0])

    def blob_path(self, digest: str) -> Path:
        """Where a blob lives (read-only): for zero-copy readers such as the gRPC server."""
        return self.blobs.path(digest)

    # -- pipelines, jobs, datums (implemented in runner.py) ------------------------------------
    @property
    def runner(self):
        from pix2pix.pachyderm.runner import Runner
        if getattr(self, "_runner", None) is None:
            self._runner = Runner(self)
        return self._runner

    def create_pipeline(self, spec: dict, update: bool = False, reprocess: bool = False, *,
                        source: str = "<spec>", run: bool | None = None) -> PipelineInfo:
        """Validate a spec (Pachyderm's JSON schema v2.11.6 plus semantic checks), store it as a
        new version and run it on the data already in its inputs (unless deferred).

        ``update`` replaces an existing pipeline: datums already processed are skipped unless
        ``reprocess`` (as ``pachctl update pipeline --reprocess``).

        Raises:
            SpecError: the spec is invalid (the message names source, pipeline and field).
            StoreError: it exists and ``update`` is False, or ``update`` and it does not exist.
        """
        return self.create_pipelines([(source, spec)], update=update, reprocess=reprocess,
                                     run=run)[0]

    def create_pipelines(self, specs: list[tuple[str, dict]], update: bool = False,
                         reprocess: bool = False, *, run: bool | None = None) -> list[PipelineInfo]:
        """Create several pipelines at once (a multi-document file): the specs may name each
        other's output repos in any order. All are validated before any is stored."""
        infos = self.runner.create_pipelines(specs, update=update, reprocess=reprocess)
        if not (self.defer if run is None else not run):
            self.run_pending()
        return [self.inspect_pipeline(i.name) for i in infos]

    def inspect_pipeline(self, name: str) -> PipelineInfo:
        return self.runner.inspect_pipeline(name)

    def list_pipelines(self) -> list[PipelineInfo]:
        return self.runner.list_pipelines()

    def delete_pipeline(self, name: str, keep_repo: bool = False, force: bool = False) -> None:
        """Delete a pipeline, its jobs and (unless ``keep_repo``) its output repo.

        Raises:
            StoreError: it does not exist, or other pipelines read its output (unless ``force``).
        """
        self.runner.delete_pipeline(name, keep_repo=keep_repo, force=force)

    def list_jobs(self, pipeline: str | None = None) -> list[JobInfo]:
        """Jobs, newest first; all pipelines' or one's."""
        return self.runner.list_jobs(pipeline)

    def inspect_job(self, pipeline: str, job_id: str) -> JobInfo:
        return self.runner.inspect_job(pipeline, job_id)

    def list_datums(self, pipeline: str, job_id: str) -> list[DatumInfo]:
        return self.runner.list_datums(pipeline, job_id)

    def inspect_datum(self, pipeline: str, job_id: str, datum_id: str) -> DatumInfo:
        return self.runner.inspect_datum(pipeline, job_id, datum_id)

    def logs(self, pipeline: str, job_id: str | None = None,
             datum_id: str | None = None) -> list[LogLine]:
        """Log lines of a pipeline's jobs (the latest job when ``job_id`` is None)."""
        return self.runner.logs(pipeline, job_id=job_id, datum_id=datum_id)

    def run_pending(self) -> list[JobInfo]:
        """Run every queued trigger (commits made with deferral, pipelines just created, jobs a
        killed process left), transitively down the DAG. Returns the jobs that ran."""
        return self.runner.run_pending()

    def list_pending(self) -> list[dict]:
        """Queued triggers: ``{"kind", "repo", "branch", "commit_id", "pipeline"}``."""
        return [dict(r) for r in self.store.q("SELECT kind, repo, branch, commit_id, pipeline "
                                              "FROM pending ORDER BY seq")]

    def provenance(self, repo: str, ref: str | None, path: str) -> ProvenanceNode:
        """The chain behind a file: the datum that wrote it, that datum's input files and
        commits, recursively up through upstream pipelines to USER commits."""
        from pix2pix.pachyderm.provenance import trace
        return trace(self, repo, ref, path)


# -- helpers -----------------------------------------------------------------------------------
def _stop_orphan(job_dir: Path) -> None:
    """Stop the user code a killed engine process left running, if it still runs in that job's
    folder (checked through /proc, so a recycled pid is never hit)."""
    import signal
    for pid_file in job_dir.glob("*/child.pid"):  # one per worker slot
        try:
            pid = int(pid_file.read_text())
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except (OSError, ValueError):
            continue
        if cwd.startswith(str(job_dir)):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


def _check_name(name: str, what: str) -> None:
    if not NAME.match(name or ""):
        raise UsageError(f"{what} name {name!r}: use 1-63 letters, digits, '_' or '-'")


def _input_repos(spec: dict) -> set[str]:
    from pix2pix.pachyderm.spec import pfs_inputs
    return {p["repo"] for p in pfs_inputs(spec.get("input") or {})}


def _apply(tree: dict[str, tuple[str, int]], op, blobs: BlobStore, where: str) -> None:
    path = op["path"]
    if op["op"] == "delete":
        if path == "/":
            tree.clear()
            return
        prefix = path + "/"
        for p in [p for p in tree if p == path or p.startswith(prefix)]:
            del tree[p]
    elif op["op"] == "append" and path in tree:
        old = tree[path][0]
        digest, size = blobs.put(_Concat([blobs.stream(old), blobs.stream(op["hash"])]))
        tree[path] = (digest, size)
    else:
        tree[path] = (op["hash"], op["size"])


def _check_tree(tree: dict[str, tuple[str, int]], where: str) -> None:
    """A path cannot be both a file and a folder."""
    files = set(tree)
    for p in files:
        parent = p.rsplit("/", 1)[0]
        while parent:
            if parent in files:
                raise StoreError(f"{where}: {parent} is a file but {p} needs it to be a folder; "
                                 "delete one of them")
            parent = parent.rsplit("/", 1)[0]


class _Concat:
    """A read()-able stream over chunk iterators (for appends)."""

    def __init__(self, iters):
        self._chunks = (c for it in iters for c in it)

    def read(self, n: int = -1) -> bytes:
        return next(self._chunks, b"")


def _file_info(repo: str, cid: str, tree: dict[str, tuple[str, int]], path: str) -> FileInfo:
    if path in tree:
        h, s = tree[path]
        return FileInfo(path=path, type="file", size=s, hash=h, commit=cid, repo=repo)
    prefix = "/" if path == "/" else path + "/"
    sizes = [s for p, (_, s) in tree.items() if p.startswith(prefix)]
    if not sizes and path != "/":
        raise StoreError(f"{repo}@{cid}:{path}: no such file or folder")
    return FileInfo(path=path, type="dir", size=sum(sizes), hash="", commit=cid, repo=repo)
