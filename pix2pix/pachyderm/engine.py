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

A commit on a branch that pipelines read opens their output commits and jobs at once (one
commit set, as in Pachyderm 2.x: they share its ID); once it is finished the jobs run,
transitively down the DAG, in the same call (``defer=True`` or ``PIX2PIX_DEFER=1`` leaves them
queued for :meth:`run_pending`).

The operations are the functions of the modules below, bound here as methods (the facade holds
no state of its own beyond :class:`~pix2pix.pachyderm.context.Context`)::

    projects.py repos.py branches.py commits.py files.py   PFS
    pipelines.py                                 PPS: the pipeline registry
    jobs.py  (driver.py, batching.py, workspace.py, datums.py, executors.py)   running jobs
    queries.py provenance.py                     reading jobs, datums, logs; provenance
"""
from __future__ import annotations

import contextlib
import functools
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Optional

from pix2pix.errors import StoreBusyError
from pix2pix.pachyderm import (branches, commits, cron, dag, files, fsck, jobs, pipelines,
                               projects, provenance, queries, repos, services)
from pix2pix.pachyderm.context import Context, default_state_dir
from pix2pix.pachyderm.info import (
    BranchInfo, CommitInfo, DatumInfo, FileInfo, JobInfo, LogLine, PipelineInfo, Provenance,
    ProvenanceNode, RepoInfo,
)

WAIT_POLL_S = 0.2  # how often wait_commit looks at a commit another process holds open

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
    """One state folder's projects, repos, commits, pipelines and jobs (see :class:`Context`
    for the arguments). Opening it forgets what killed processes left behind: their open
    commits (staged files were never finished) and their running jobs (marked killed, still
    queued), and temporary blobs."""

    def __init__(self, state_dir: Path | str | None = None, *, executor: Optional[str] = None,
                 defer: Optional[bool] = None,
                 on_job: Optional[Callable[[JobInfo], None]] = None) -> None:
        super().__init__(state_dir, executor=executor, defer=defer, on_job=on_job)
        self.on_commits = functools.partial(jobs.create_jobs, self)
        self.on_commits_removed = functools.partial(jobs.remove_jobs, self)
        commits.forget_dead_commits(self)
        jobs.forget_dead_jobs(self)
        self.blobs.clean_tmp()
        # Before this process's first write, if a killed or failed write left garbage.
        self.blobs.collector = functools.partial(fsck.collect_garbage, self)

    def garbage_collect(self, *, wait_s: float = 0.0) -> Optional[fsck.Garbage]:
        """Remove what killed or failed writes left (see :func:`fsck.collect_garbage`)."""
        return fsck.collect_garbage(self, wait_s=wait_s)

    def _ran(self, run: Optional[bool]) -> None:
        """Run the queued jobs now, unless deferred (``run=False`` or the engine's ``defer``)."""
        if self.runs_now(run):
            self.run_pending()

    # -- projects, repos and branches ----------------------------------------------------------
    create_project = projects.create_project
    inspect_project = projects.inspect_project
    list_projects = projects.list_projects
    create_repo = repos.create_repo
    inspect_repo = repos.inspect_repo
    list_repos = repos.list_repos
    delete_repo = repos.delete_repo
    list_branches = branches.list_branches
    inspect_branch = branches.inspect_branch
    delete_branch = branches.delete_branch

    def create_branch(self, repo: str, branch: str, head: Optional[str] = None, *,
                      provenance: Iterable[str] = (), trigger: Optional[dict] = None,
                      new_commit: bool = False, run: Optional[bool] = None) -> BranchInfo:
        """Create or move a branch (see :func:`branches.create_branch`); what reads it runs."""
        info = branches.create_branch(self, repo, branch, head, provenance=provenance,
                                      trigger=trigger, new_commit=new_commit)
        self._ran(run)
        return info

    def delete_project(self, name: str, force: bool = False) -> None:
        """Delete a project; with ``force``, its pipelines (downstream first) and repos too."""
        if force:
            names = {p.name: p.parsed.input_repos for p in self.list_pipelines(project=name)}
            for pipeline in reversed(dag.ordered(names)):
                self.delete_pipeline(pipeline, force=True)
        projects.delete_project(self, name, force=force)

    # -- commits -------------------------------------------------------------------------------
    start_commit = commits.start_commit
    list_open_commits = commits.list_open_commits
    commit_children = commits.commit_children
    resolve = commits.resolve
    inspect_commit = commits.inspect_commit
    list_commits = commits.list_commits
    inspect_commit_set = commits.inspect_commit_set
    list_commit_sets = commits.list_commit_sets
    drop_commit = commits.drop_commit
    drop_commit_set = commits.drop_commit_set
    squash_commit_set = commits.squash_commit_set

    def finish_commit(self, repo: str, commit_id: str, *, run: Optional[bool] = None,
                      description: Optional[str] = None, error: str = "") -> CommitInfo:
        """Finish an open commit (see :func:`commits.finish_commit`), then run the jobs it
        lets run, unless deferred (``run=False`` or the engine's ``defer``)."""
        info = commits.finish_commit(self, repo, commit_id, description=description, error=error)
        self._ran(run)
        return info

    @contextlib.contextmanager
    def commit(self, repo: str, branch: str = "master", description: str = "", *,
               run: Optional[bool] = None) -> Iterator[OpenCommit]:
        """``with engine.commit("images") as c: c.put_file(...)``: finished on success (see
        :meth:`finish_commit`), dropped on any exception (with its commit set)."""
        oc = OpenCommit(self, repo, self.start_commit(repo, branch, description=description))
        try:
            yield oc
        except BaseException:
            self.drop_commit(repo, oc.id)
            raise
        oc.info = self.finish_commit(repo, oc.id, run=run)

    def modify(self, repo: str, ref: str, ops: list[files.FileOp], *, description: str = "",
               run: Optional[bool] = None) -> tuple[CommitInfo, bool]:
        """pachctl's put/delete file (see :func:`files.modify`), then the jobs that can run."""
        info, finished = files.modify(self, repo, ref, ops, description=description)
        if finished:
            self._ran(run)
        return self.inspect_commit(repo, info.id), finished

    def wait_commit(self, repo: str, ref: Optional[str] = None, *,
                    timeout_s: Optional[float] = None) -> CommitInfo:
        """Return once the commit is finished and the jobs it caused have run (queued jobs run
        here; an open commit another process holds is waited for)."""
        cid = self.resolve(repo, ref)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            self.run_pending()
            info = self.inspect_commit(repo, cid)
            if info.finished is not None:
                return info
            if deadline is not None and time.monotonic() > deadline:
                raise StoreBusyError(f"commit {repo}@{cid} is still open after {timeout_s:g} s")
            time.sleep(WAIT_POLL_S)

    def wait_commit_set(self, commit_set_id: str) -> list[CommitInfo]:
        """Run whatever is queued, then return the commit set."""
        self.run_pending()
        return self.inspect_commit_set(commit_set_id)

    # -- files ---------------------------------------------------------------------------------
    put_file = files.put_file
    put_local = files.put_local
    delete_file = files.delete_file
    copy_file = files.copy_file
    diff_file = files.diff_file
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
    pipeline_history = pipelines.pipeline_history

    def create_pipeline(self, spec: dict, update: bool = False, reprocess: bool = False, *,
                        source: str = "<spec>", run: Optional[bool] = None) -> PipelineInfo:
        """Validate a spec (Pachyderm's JSON schema v2.11.6 plus semantic checks), store it as a
        new version and run its first job on the data already in its inputs (unless deferred).

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
        for info in infos:
            if _supervised(info) and info.state == "running":
                services.stop_supervisor(self, info.name)  # an update restarts its code
                services.ensure_running(self, info.name)
        self._ran(run)
        return [self.inspect_pipeline(i.name) for i in infos]

    def delete_pipeline(self, name: str, keep_repo: bool = False, force: bool = False) -> None:
        """Delete a pipeline, its jobs and (unless ``keep_repo``) its output repo; a spout's or
        service's code is stopped first."""
        pipelines.inspect_pipeline(self, name)
        services.stop_supervisor(self, name)
        pipelines.delete_pipeline(self, name, keep_repo=keep_repo, force=force)

    def stop_pipeline(self, name: str) -> PipelineInfo:
        """Stop a pipeline: its jobs wait (created) until it is started again; a spout's or
        service's code stops."""
        info = pipelines.set_pipeline_running(self, name, False)
        services.stop_supervisor(self, name)
        return info

    def start_pipeline(self, name: str, *, run: Optional[bool] = None) -> PipelineInfo:
        """Start a stopped pipeline; its waiting jobs run (unless deferred), a spout's or
        service's code starts."""
        info = pipelines.set_pipeline_running(self, name, True)
        if _supervised(info):
            services.ensure_running(self, name)
        self._ran(run)
        return self.inspect_pipeline(info.name)

    # -- jobs, datums, logs, provenance --------------------------------------------------------
    run_pending = jobs.run_pending
    stop_job = jobs.stop_job
    delete_job = jobs.delete_job
    restart_datum = jobs.restart_datum
    list_jobs = queries.list_jobs
    inspect_job = queries.inspect_job
    list_datums = queries.list_datums
    inspect_datum = queries.inspect_datum
    logs = queries.logs
    datum_of = queries.datum_of
    dry_run_datums = queries.dry_run_datums
    provenance = provenance.trace

    def run_cron(self, name: str, *, run: Optional[bool] = None) -> list[str]:
        """pachd's RunCron: a tick of each of the pipeline's cron inputs now (see
        :func:`cron.run_cron`), then the jobs they cause, unless deferred."""
        return cron.run_cron(self, name, run=run)

    def list_pending(self) -> list[dict]:
        """Queued jobs: ``{"kind": "job", "pipeline", "commit_id"}`` (``repo`` and ``branch``
        are None)."""
        return [{"kind": t.kind, "repo": t.repo, "branch": t.branch, "commit_id": t.commit_id,
                 "pipeline": t.pipeline} for t in self.store.list_pending()]


def _supervised(info: PipelineInfo) -> bool:
    """Whether a pipeline runs under a supervisor: a spout's or service's code, or the ticks of
    its cron inputs."""
    return services.is_long_running(info) or cron.has_cron(info)
