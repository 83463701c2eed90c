"""The embedded engine's facade: a local, single-machine, Pachyderm-compatible data store and
pipeline runner over one state folder. The CLI (``pix2pix put file ...``), the pachd-compatible
gRPC server and ``pix2pix demo`` all go through this class; its method names and keyword
arguments are stable (extend, never rename).

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

The operations are the functions of the modules below, bound here as methods (the facade holds
no state of its own beyond :class:`~pix2pix.pachyderm.context.Context`)::

    repos.py branches.py commits.py files.py     PFS: repos, branches, commits, files
    pipelines.py                                 PPS: the pipeline registry
    jobs.py  (driver.py, batching.py, workspace.py, datums.py, executors.py)   running jobs
    queries.py provenance.py                     reading jobs, datums, logs; provenance
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional

from pix2pix.pachyderm import (branches, commits, files, jobs, pipelines, provenance, queries,
                               repos)
from pix2pix.pachyderm.context import Context, default_state_dir
from pix2pix.pachyderm.info import (
    BranchInfo, CommitInfo, DatumInfo, FileInfo, JobInfo, LogLine, PipelineInfo, Provenance,
    ProvenanceNode, RepoInfo,
)

__all__ = [
    "Engine", "OpenCommit", "default_state_dir",
    "RepoInfo", "BranchInfo", "CommitInfo", "FileInfo", "PipelineInfo", "JobInfo", "DatumInfo",
    "LogLine", "Provenance", "ProvenanceNode",
]


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


class Engine(Context):
    """One state folder's repos, commits, pipelines and jobs (see :class:`Context` for the
    arguments). Opening it forgets what killed processes left behind: their open commits
    (staged files were never visible) and their running jobs (marked killed; their trigger
    stays queued), and temporary blobs."""

    def __init__(self, state_dir: Path | str | None = None, *, executor: Optional[str] = None,
                 defer: Optional[bool] = None,
                 on_job: Optional[Callable[[JobInfo], None]] = None) -> None:
        super().__init__(state_dir, executor=executor, defer=defer, on_job=on_job)
        commits.forget_dead_commits(self)
        jobs.forget_dead_jobs(self)
        self.blobs.clean_tmp()

    # -- repos and branches --------------------------------------------------------------------
    create_repo = repos.create_repo
    inspect_repo = repos.inspect_repo
    list_repos = repos.list_repos
    delete_repo = repos.delete_repo
    list_branches = branches.list_branches
    create_branch = branches.create_branch

    # -- commits -------------------------------------------------------------------------------
    start_commit = commits.start_commit
    drop_commit = commits.drop_commit
    list_open_commits = commits.list_open_commits
    commit_children = commits.commit_children
    resolve = commits.resolve
    inspect_commit = commits.inspect_commit
    list_commits = commits.list_commits
    inspect_commit_set = commits.inspect_commit_set
    list_commit_sets = commits.list_commit_sets

    def finish_commit(self, repo: str, commit_id: str, *, run: Optional[bool] = None,
                      description: Optional[str] = None) -> CommitInfo:
        """Make an open commit visible (see :func:`commits.finish_commit`), then run the
        downstream pipelines unless deferred (``run=False`` or the engine's ``defer``)."""
        info = commits.finish_commit(self, repo, commit_id, description=description)
        if self.runs_now(run):
            self.run_pending()
        return info

    @contextlib.contextmanager
    def commit(self, repo: str, branch: str = "master", description: str = "", *,
               run: Optional[bool] = None) -> Iterator[OpenCommit]:
        """``with engine.commit("images") as c: c.put_file(...)``: finished on success (see
        :meth:`finish_commit`), dropped on any exception, so nothing partial is ever visible."""
        oc = OpenCommit(self, repo, self.start_commit(repo, branch, description=description))
        try:
            yield oc
        except BaseException:
            self.drop_commit(repo, oc.id)
            raise
        oc.info = self.finish_commit(repo, oc.id, run=run)

    def wait_commit(self, repo: str, ref: Optional[str] = None) -> CommitInfo:
        """Return once the commit and the downstream commits of its commit set are finished
        (here: once pending jobs have run; jobs run in-process, so there is nothing else to
        wait for)."""
        cid = self.resolve(repo, ref)
        self.run_pending()
        return self.inspect_commit(repo, cid)

    def wait_commit_set(self, commit_set_id: str) -> list[CommitInfo]:
        """Run whatever is pending, then return the commit set (every job it caused is over)."""
        self.run_pending()
        return self.inspect_commit_set(commit_set_id)

    # -- files ---------------------------------------------------------------------------------
    put_file = files.put_file
    put_local = files.put_local
    delete_file = files.delete_file
    inspect_file = files.inspect_file
    list_files = files.list_files
    walk_files = files.walk_files
    glob_files = files.glob_files
    get_file = files.get_file
    get_file_stream = files.get_file_stream
    blob_path = files.blob_path

    # -- pipelines -----------------------------------------------------------------------------
    inspect_pipeline = pipelines.inspect_pipeline
    list_pipelines = pipelines.list_pipelines
    delete_pipeline = pipelines.delete_pipeline

    def create_pipeline(self, spec: dict, update: bool = False, reprocess: bool = False, *,
                        source: str = "<spec>", run: Optional[bool] = None) -> PipelineInfo:
        """Validate a spec (Pachyderm's JSON schema v2.11.6 plus semantic checks), store it as a
        new version and run it on the data already in its inputs (unless deferred).

        ``update`` replaces an existing pipeline: datums already processed are skipped unless
        ``reprocess`` (as ``pachctl update pipeline --reprocess``).

        Raises:
            SpecError: the spec is invalid (the message names source, pipeline and field).
            StoreError: it exists and ``update`` is False.
        """
        return self.create_pipelines([(source, spec)], update=update, reprocess=reprocess,
                                     run=run)[0]

    def create_pipelines(self, specs: list[tuple[str, dict]], update: bool = False,
                         reprocess: bool = False, *, run: Optional[bool] = None) -> list[PipelineInfo]:
        """Create several pipelines at once (a multi-document file): the specs may name each
        other's output repos in any order. All are validated before any is stored."""
        infos = pipelines.create_pipelines(self, specs, update=update, reprocess=reprocess)
        if self.runs_now(run):
            self.run_pending()
        return [self.inspect_pipeline(i.name) for i in infos]

    # -- jobs, datums, logs, provenance --------------------------------------------------------
    run_pending = jobs.run_pending
    list_jobs = queries.list_jobs
    inspect_job = queries.inspect_job
    list_datums = queries.list_datums
    inspect_datum = queries.inspect_datum
    logs = queries.logs
    datum_of = queries.datum_of
    provenance = provenance.trace

    def list_pending(self) -> list[dict]:
        """Queued triggers: ``{"kind", "repo", "branch", "commit_id", "pipeline"}``."""
        return [{"kind": t.kind, "repo": t.repo, "branch": t.branch, "commit_id": t.commit_id,
                 "pipeline": t.pipeline} for t in self.store.list_pending()]
