"""Typed results of the embedded engine, shaped after Pachyderm 2.x's pfs/pps *Info messages,
and the job and datum states as one enum each, with pachd's names.

These are plain dataclasses (``dataclasses.asdict`` gives the ``--json`` form) so the CLI, the
gRPC server and the demo read the same fields. Times are UNIX seconds (float); ``None`` means
"not yet" (an unfinished job) or "not applicable". Field names are stable: extend, never rename.
"""
from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from typing import Literal, Optional

from pix2pix.pachyderm.spec import PipelineSpec

Origin = Literal["USER", "AUTO"]
SERVICE_JOB = "service"  # the job ID a long-running pipeline's own log lines are kept under

# The pachd release whose API the engine speaks: python-pachyderm 7.6 was generated from it.
PACHD_VERSION = (2, 6, 0)


class _State(str, enum.Enum):
    """A state stored and printed by its value (``"success"``), with pachd's name beside it."""

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


class JobState(_State):
    """pps.JobState: a job is created with its output commit, runs once its input commits are
    finished, and ends in success, failure, killed, or unrunnable (an input commit finished with
    an error, e.g. because the upstream job failed)."""

    CREATED = "created"
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    KILLED = "killed"
    UNRUNNABLE = "unrunnable"

    @property
    def pachd(self) -> str:
        """pachd's name: ``JobState.SUCCESS.pachd == "JOB_SUCCESS"``."""
        return "JOB_" + self.name

    @property
    def done(self) -> bool:
        return self not in (JobState.CREATED, JobState.RUNNING)


class DatumState(_State):
    """pps.DatumState of one datum of a job."""

    STARTING = "starting"
    SUCCESS = "success"
    SKIPPED = "skipped"
    FAILED = "failed"
    RECOVERED = "recovered"

    @property
    def pachd(self) -> str:
        """pachd's name: ``DatumState.FAILED.pachd == "FAILED"``."""
        return self.name


class ServiceState(_State):
    """What the supervised code of a service (or spout) pipeline is doing (the embedded
    engine's view of its pod): ``waiting`` listens on the service's port with nothing to serve
    yet (an empty input), ``swapping`` brings in a new input commit, ``restarting`` waits out
    the back-off after the code exited, ``failed`` could not listen on its port."""

    STARTING = "starting"
    WAITING = "waiting"
    RUNNING = "running"
    SWAPPING = "swapping"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass
class ProjectInfo:
    """A project: a namespace of repos and pipelines (``default`` always exists)."""

    name: str
    description: str
    created: float


@dataclass
class RepoInfo:
    """A repo. ``type`` is ``user`` (you put files in it) or ``pipeline`` (a pipeline's output).
    ``name`` is qualified: ``images``, or ``proj/images`` outside the default project."""

    name: str
    description: str
    created: float
    size: int  # bytes in the head of master (0 when there is none)
    branches: list[str] = field(default_factory=list)
    type: Literal["user", "pipeline"] = "user"
    project: str = "default"


@dataclass
class BranchInfo:
    """A branch: a movable name for a commit (its head). ``provenance`` lists the branches it
    is computed from, as ``repo@branch``; a commit on any of them starts one on this branch.
    ``trigger`` (pachd's branch trigger) moves this branch to the head of another when a
    condition holds."""

    repo: str
    name: str
    head: Optional[str]
    provenance: list[str] = field(default_factory=list)
    created: Optional[float] = None
    trigger: Optional[dict] = None


@dataclass
class Provenance:
    """One input commit an AUTO commit was computed from."""

    repo: str
    branch: str
    commit: str


@dataclass
class CommitInfo:
    """A finished commit. ``id`` is a Pachyderm global ID (32 hex digits): the AUTO commits a
    pipeline made because of a user commit share that commit's ID (one commit set)."""

    id: str
    repo: str
    branch: str
    parent: Optional[str]
    origin: Origin
    started: float
    finished: Optional[float]
    size: int
    description: str = ""
    provenance: list[Provenance] = field(default_factory=list)
    error: str = ""  # set when the commit finished with an error (e.g. its job failed)


@dataclass
class FileInfo:
    """A file or directory in a commit. Directories are implied by the files under them;
    their size is the sum and their hash is ``""``."""

    path: str
    type: Literal["file", "dir"]
    size: int
    hash: str
    commit: str
    repo: str = ""


@dataclass
class PipelineInfo:
    """A pipeline: its current spec (camelCase, as validated), version (1 + number of updates).
    ``salt`` changes with ``update pipeline --reprocess``; it is part of every datum's hash."""

    name: str
    spec: dict
    state: str  # "running" (it reacts to input commits) or "paused"
    version: int
    created: float
    last_job_state: Optional[str] = None
    description: str = ""
    salt: str = ""
    project: str = "default"
    # A service or spout pipeline's supervised code (None/empty for other pipelines):
    service_state: Optional[str] = None  # a ServiceState value, or "stopped (...)" with why
    service_url: Optional[str] = None  # a service's http://127.0.0.1:<externalPort>/
    service_commits: list[Provenance] = field(default_factory=list)  # the input commits served
    service_job: Optional[str] = None  # the job whose datum the code serves
    service_restarts: int = 0  # times the code exited and was started again
    service_detail: str = ""  # the last exit code, or why it cannot run

    @functools.cached_property
    def parsed(self) -> PipelineSpec:
        """The spec, typed (built once per PipelineInfo)."""
        return PipelineSpec.from_raw(self.spec)


@dataclass
class JobInfo:
    """One run of a pipeline over the inputs of one commit set (``id`` is that commit set's ID).
    The job is created with its output commit (``output_commit``, same ID), which it finishes:
    with the datums' outputs on success, with the failure reason as its error otherwise."""

    id: str
    pipeline: str
    state: JobState
    started: Optional[float]
    finished: Optional[float]
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    total: int = 0
    output_commit: Optional[str] = None
    failed_datum: Optional[str] = None
    reason: str = ""
    spec_version: int = 1
    inputs: list[Provenance] = field(default_factory=list)
    recovered: int = 0  # datums that failed but whose errCmd succeeded
    created: Optional[float] = None
    salt: str = ""  # the pipeline's salt when the job was created (part of every datum hash)


@dataclass
class DatumInput:
    """The files of one input in one datum: ``name`` is the input's name (its /pfs folder)."""

    name: str
    repo: str
    branch: str
    commit: str
    glob_path: str  # the path the glob matched (a file, or a folder and everything under it)
    files: list[str] = field(default_factory=list)


@dataclass
class DatumInfo:
    """One datum of a job: its inputs, state, tries, output files and log."""

    id: str
    job_id: str
    pipeline: str
    state: DatumState
    inputs: list[DatumInput] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    tries: int = 0
    log: str = ""
    reason: str = ""
    started: Optional[float] = None
    finished: Optional[float] = None

    @property
    def input_paths(self) -> list[str]:
        """``repo@commit:/path`` of every input file, for messages and tables."""
        return [f"{i.repo}@{i.commit}:{p}" for i in self.inputs for p in i.files]


@dataclass
class LogLine:
    """One line a transform wrote to stdout/stderr (or the engine wrote about it)."""

    pipeline: str
    job_id: str
    datum_id: Optional[str]
    message: str


@dataclass
class ProvenanceNode:
    """One step of the chain behind a file: ``paths`` in ``repo@commit``; for an AUTO commit the
    ``pipeline``/``job_id``/``datum_id`` that wrote them and, in ``inputs``, where that datum's
    input files came from (recursively up to USER commits)."""

    repo: str
    commit: str
    branch: str
    origin: Origin
    paths: list[str]
    pipeline: Optional[str] = None
    job_id: Optional[str] = None
    datum_id: Optional[str] = None
    input_name: Optional[str] = None
    inputs: list["ProvenanceNode"] = field(default_factory=list)
