"""PPS records: pipelines and their versions, jobs, datums with their outputs, log lines, and the
queue of pending jobs (created with their output commit, not run yet)."""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Iterable, Optional

from pix2pix.pachyderm.info import (DatumInfo, DatumInput, DatumState, JobInfo, JobState, LogLine,
                                    PipelineInfo, Provenance)
from pix2pix.pachyderm.refs import split_name
from pix2pix.pachyderm.store.db import dumps
from pix2pix.pachyderm.store.pfsdb import Owner, PfsQueries

LOG_LIMIT = 256 * 1024  # bytes of log kept per datum (the tail)
# Job columns a job's driver updates as it goes.
_JOB_FIELDS = {"state", "finished", "reason", "failed_datum", "output_commit", "processed",
               "skipped", "failed", "recovered", "total"}
_COUNT_OF = {DatumState.SUCCESS: "processed", DatumState.SKIPPED: "skipped",
             DatumState.FAILED: "failed", DatumState.RECOVERED: "recovered"}


@dataclass(frozen=True)
class Trigger:
    """A queued job (``kind`` "job": ``pipeline`` and ``commit_id``, the job's ID). Schema 2
    folders may still hold "commit" and "pipeline" triggers, which the engine turns into jobs."""

    seq: int
    kind: str  # "job" | legacy "commit" | legacy "pipeline"
    repo: Optional[str] = None
    branch: Optional[str] = None
    commit_id: Optional[str] = None
    pipeline: Optional[str] = None


@dataclass(frozen=True)
class ServiceRecord:
    """The supervised process of a spout or service pipeline."""

    pipeline: str
    pid: Optional[int]
    pid_start: Optional[str]
    state: str  # a ServiceState value
    started: Optional[float]
    url: str
    serving: str  # JSON {"job": id, "inputs": [{repo, branch, commit}]}: what a service serves
    restarts: int
    detail: str


_SERVICE_FIELDS = {"pid", "pid_start", "state", "started", "url", "serving", "restarts", "detail"}


@dataclass(frozen=True)
class DatumRecord:
    """What a job's driver records for one datum."""

    id: str
    state: DatumState
    hash: str
    inputs: list[DatumInput]
    outputs: list[tuple[str, str, int]]  # (path, sha256, size)
    tries: int = 0
    log: str = ""
    reason: str = ""
    started: Optional[float] = None


class PpsQueries(PfsQueries):
    """PPS on top of PFS, as in pachd: a pipeline's output repo is a PFS repo."""

    # -- pipelines -----------------------------------------------------------------------------
    def get_pipeline(self, name: str) -> Optional[PipelineInfo]:
        row = self._row(_PIPELINE_SQL + " WHERE p.name=?", (name,))
        return _pipeline_info(row) if row else None

    def list_pipelines(self, project: Optional[str] = None) -> list[PipelineInfo]:
        """Newest first (of one project, or all)."""
        sql, args = _PIPELINE_SQL, []
        if project is not None:
            sql, args = sql + " WHERE p.project=?", [project]
        return [_pipeline_info(r) for r in self._rows(sql + " ORDER BY p.created DESC, p.name", args)]

    def pipeline_history(self, name: str) -> list[PipelineInfo]:
        """Every version of a pipeline, newest first (the current one too)."""
        current = self.get_pipeline(name)
        if current is None:
            return []
        out = []
        for r in self._rows("SELECT * FROM pipeline_versions WHERE name=? ORDER BY version DESC",
                            (name,)):
            spec = json.loads(r["spec"])
            out.append(PipelineInfo(name=name, spec=spec, state=current.state, version=r["version"],
                                    created=current.created, description=spec.get("description", ""),
                                    salt=r["salt"], project=current.project,
                                    last_job_state=current.last_job_state))
        return out

    def pipeline_version(self, name: str, version: int) -> Optional[PipelineInfo]:
        """One stored version of a pipeline (what its jobs of that version run)."""
        return next((p for p in self.pipeline_history(name) if p.version == version), None)

    def set_pipeline_state(self, name: str, state: str) -> None:
        self._exec("UPDATE pipelines SET state=? WHERE name=?", (state, name))

    def save_pipeline(self, name: str, spec_json: str, *, reprocess: bool) -> int:
        """Store a new version of a pipeline's spec (version 1 for a new one); a new salt for a
        new pipeline or with ``reprocess``. Returns the version."""
        now = time.time()
        with self.tx():
            old = self._row("SELECT version, created, salt FROM pipelines WHERE name=?", (name,))
            if old is None:
                salt, version = uuid.uuid4().hex, 1
                self._exec("INSERT INTO pipelines(name, spec, version, created, updated, salt, "
                           "project) VALUES (?,?,?,?,?,?,?)",
                           (name, spec_json, 1, now, now, salt, split_name(name)[0]))
            else:
                salt = uuid.uuid4().hex if reprocess else old["salt"]
                version = old["version"] + 1
                self._exec("UPDATE pipelines SET spec=?, version=?, updated=?, salt=? WHERE name=?",
                           (spec_json, version, now, salt, name))
            self._exec("INSERT INTO pipeline_versions(name, version, spec, created, salt) "
                       "VALUES (?,?,?,?,?)", (name, version, spec_json, now, salt))
        return version

    def delete_pipeline(self, name: str, *, keep_repo: bool) -> None:
        """A pipeline with its versions, jobs, datums, logs and queued triggers; its output repo
        too unless ``keep_repo`` (then it becomes a user repo)."""
        with self.tx():
            for table in ("jobs", "datums", "datum_outputs", "job_logs"):
                self._exec(f"DELETE FROM {table} WHERE pipeline=?", (name,))
            self._exec("DELETE FROM pipelines WHERE name=?", (name,))
            self._exec("DELETE FROM pipeline_versions WHERE name=?", (name,))
            self._exec("DELETE FROM services WHERE pipeline=?", (name,))
            self._exec("DELETE FROM pending WHERE pipeline=?", (name,))
            self._exec("DELETE FROM branch_provenance WHERE repo=?", (name,))
            self._exec("DELETE FROM pipeline_versions WHERE name=?", (name,))
            self._exec("DELETE FROM services WHERE pipeline=?", (name,))
            if keep_repo:
                self.set_repo_type(name, "user")
            else:
                self.delete_repo(name)

    # -- jobs ----------------------------------------------------------------------------------
    def get_job(self, pipeline: str, job_id: str) -> Optional[JobInfo]:
        row = self._row("SELECT * FROM jobs WHERE pipeline=? AND id=?", (pipeline, job_id))
        return _job_info(row) if row else None

    def find_jobs(self, pipeline: str, prefix: str) -> list[JobInfo]:
        """The jobs of a pipeline whose ID is ``prefix`` or starts with it, newest first."""
        return [_job_info(r) for r in self._rows(
            "SELECT * FROM jobs WHERE pipeline=? AND (id=? OR id LIKE ?) ORDER BY seq DESC",
            (pipeline, prefix, prefix + "%"))]

    def list_jobs(self, pipeline: Optional[str] = None) -> list[JobInfo]:
        """Jobs, newest first; all pipelines' or one's."""
        if pipeline:
            rows = self._rows("SELECT * FROM jobs WHERE pipeline=? ORDER BY seq DESC", (pipeline,))
        else:
            rows = self._rows("SELECT * FROM jobs ORDER BY seq DESC")
        return [_job_info(r) for r in rows]

    def latest_job(self, pipeline: str) -> Optional[JobInfo]:
        row = self._row("SELECT * FROM jobs WHERE pipeline=? ORDER BY seq DESC LIMIT 1", (pipeline,))
        return _job_info(row) if row else None

    def create_job(self, *, pipeline: str, job_id: str, version: int, salt: str,
                   inputs: Iterable[Provenance]) -> None:
        """A new job (created, queued to run) on the input commits of its output commit."""
        with self.tx():
            self._exec("INSERT INTO jobs(id, pipeline, state, created, spec_version, salt, inputs, "
                       "output_commit) VALUES (?,?,?,?,?,?,?,?)",
                       (job_id, pipeline, JobState.CREATED.value, time.time(), version, salt,
                        dumps([p.__dict__ for p in inputs]), job_id))
            self._exec("INSERT INTO pending(kind, pipeline, commit_id, created) VALUES "
                       "('job', ?, ?, ?)", (pipeline, job_id, time.time()))

    def start_job(self, pipeline: str, job_id: str, *, owner: Owner) -> None:
        """The job is running, in this process; what an earlier (killed) run left is cleared."""
        with self.tx():
            for table in ("datums", "datum_outputs", "job_logs"):
                self._exec(f"DELETE FROM {table} WHERE pipeline=? AND job_id=?", (pipeline, job_id))
            self._exec("UPDATE jobs SET state=?, started=?, finished=NULL, reason='', "
                       "failed_datum=NULL, processed=0, skipped=0, failed=0, recovered=0, total=0, "
                       "pid=?, pid_start=? WHERE pipeline=? AND id=?",
                       (JobState.RUNNING.value, time.time(), owner.pid, owner.start, pipeline,
                        job_id))

    def delete_job(self, pipeline: str, job_id: str) -> None:
        """A job with its datums, outputs, logs and queue entry (its output commit stays)."""
        with self.tx():
            for table in ("datums", "datum_outputs", "job_logs"):
                self._exec(f"DELETE FROM {table} WHERE pipeline=? AND job_id=?", (pipeline, job_id))
            self._exec("DELETE FROM jobs WHERE pipeline=? AND id=?", (pipeline, job_id))
            self.dequeue_job(pipeline, job_id)

    def update_job(self, pipeline: str, job_id: str, **fields) -> None:
        """Set some of a job's columns (state, counts, finished, reason, ...)."""
        bad = set(fields) - _JOB_FIELDS
        if bad:
            raise ValueError(f"not job fields: {sorted(bad)}")
        values = [v.value if isinstance(v, JobState) else v for v in fields.values()]
        self._exec(f"UPDATE jobs SET {', '.join(f'{k}=?' for k in fields)} WHERE pipeline=? AND id=?",
                   (*values, pipeline, job_id))

    def live_job_owners(self) -> list[tuple[str, str, Owner]]:
        """(pipeline, job id, owner) of every job recorded as running."""
        return [(r["pipeline"], r["id"], Owner(r["pid"], r["pid_start"])) for r in self._rows(
            "SELECT pipeline, id, pid, pid_start FROM jobs WHERE state=?", (JobState.RUNNING.value,))]

    # -- datums --------------------------------------------------------------------------------
    def previous_datums(self, pipeline: str, job_id: str) -> dict[str, tuple[str, str]]:
        """datum id -> (hash, job id holding its outputs): the successful datums of the last
        successful job and of the failed jobs after it (newer ones win)."""
        jobs = []
        for r in self._rows("SELECT id, state FROM jobs WHERE pipeline=? AND id!=? ORDER BY seq "
                            "DESC", (pipeline, job_id)):
            jobs.append(r["id"])
            if r["state"] == JobState.SUCCESS.value:
                break
        out: dict[str, tuple[str, str]] = {}
        for jid in reversed(jobs):
            for r in self._rows("SELECT id, hash FROM datums WHERE pipeline=? AND job_id=? AND "
                                "state IN (?, ?)", (pipeline, jid, DatumState.SUCCESS.value,
                                                    DatumState.SKIPPED.value)):
                out[r["id"]] = (r["hash"], jid)
        return out

    def record_datum(self, pipeline: str, job_id: str, d: DatumRecord, *, seq: int,
                     count: int) -> None:
        """A datum's outcome and outputs, with the job's count for its state (``count``), in
        one transaction."""
        with self.tx():
            self.update_job(pipeline, job_id, **{_COUNT_OF[d.state]: count})
            self._exec("INSERT OR REPLACE INTO datums(pipeline, job_id, id, state, hash, inputs, "
                       "tries, log, reason, started, finished, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                       (pipeline, job_id, d.id, d.state.value, d.hash,
                        dumps([i.__dict__ for i in d.inputs]), d.tries, d.log[-LOG_LIMIT:],
                        d.reason, d.started, time.time(), seq))
            self._exec("DELETE FROM datum_outputs WHERE pipeline=? AND job_id=? AND datum_id=?",
                       (pipeline, job_id, d.id))
            self._exec_many("INSERT INTO datum_outputs(pipeline, job_id, datum_id, path, hash, "
                            "size) VALUES (?,?,?,?,?,?)",
                            [(pipeline, job_id, d.id, p, h, s) for p, h, s in d.outputs])

    def datum_outputs(self, pipeline: str, job_id: str, datum_id: str) -> list[tuple[str, str, int]]:
        return [(r["path"], r["hash"], r["size"]) for r in self._rows(
            "SELECT path, hash, size FROM datum_outputs WHERE pipeline=? AND job_id=? AND "
            "datum_id=?", (pipeline, job_id, datum_id))]

    def list_datums(self, pipeline: str, job_id: str, prefix: Optional[str] = None) -> list[DatumInfo]:
        """A job's datums in the order they ended (those whose ID starts with ``prefix``)."""
        sql, args = "SELECT * FROM datums WHERE pipeline=? AND job_id=?", [pipeline, job_id]
        if prefix is not None:
            sql, args = sql + " AND (id=? OR id LIKE ?)", args + [prefix, prefix + "%"]
        outputs: dict[str, list[str]] = {}
        for r in self._rows("SELECT datum_id, path FROM datum_outputs WHERE pipeline=? AND "
                            "job_id=? ORDER BY path", (pipeline, job_id)):
            outputs.setdefault(r["datum_id"], []).append(r["path"])
        return [_datum_info(r, outputs.get(r["id"], [])) for r in self._rows(sql + " ORDER BY seq", args)]

    def datums_writing(self, pipeline: str, job_id: str, path: str) -> list[str]:
        """The datums of a job whose outputs hold ``path``."""
        return [r["datum_id"] for r in self._rows(
            "SELECT datum_id FROM datum_outputs WHERE pipeline=? AND job_id=? AND path=? "
            "ORDER BY datum_id", (pipeline, job_id, path))]

    def datum_inputs(self, pipeline: str, job_id: str, datum_id: str) -> list[DatumInput]:
        row = self._row("SELECT inputs FROM datums WHERE pipeline=? AND job_id=? AND id=?",
                        (pipeline, job_id, datum_id))
        return [DatumInput(**i) for i in json.loads(row["inputs"])] if row else []

    # -- logs ----------------------------------------------------------------------------------
    def add_job_log(self, pipeline: str, job_id: str, datum_id: Optional[str], message: str) -> None:
        self._exec("INSERT INTO job_logs(pipeline, job_id, datum_id, message) VALUES (?,?,?,?)",
                   (pipeline, job_id, datum_id, message))

    def job_log_lines(self, pipeline: str, job_id: str) -> list[LogLine]:
        """What the engine wrote about a job (not the datums' own logs)."""
        return [LogLine(pipeline, job_id, r["datum_id"], r["message"]) for r in self._rows(
            "SELECT datum_id, message FROM job_logs WHERE pipeline=? AND job_id=? ORDER BY seq",
            (pipeline, job_id))]

    # -- long-running pipelines (spouts, services) -----------------------------------------------
    def get_service(self, pipeline: str) -> Optional[ServiceRecord]:
        row = self._row("SELECT * FROM services WHERE pipeline=?", (pipeline,))
        return ServiceRecord(**dict(row)) if row else None

    def set_service(self, pipeline: str, **fields) -> None:
        """Create or update a pipeline's service record (state, pid, url, serving, ...)."""
        bad = set(fields) - _SERVICE_FIELDS
        if bad:
            raise ValueError(f"not service fields: {sorted(bad)}")
        with self.tx():
            self._exec("INSERT OR IGNORE INTO services(pipeline, state) VALUES (?, 'starting')",
                       (pipeline,))
            if fields:
                self._exec(f"UPDATE services SET {', '.join(f'{k}=?' for k in fields)} "
                           "WHERE pipeline=?", (*fields.values(), pipeline))

    def delete_service(self, pipeline: str) -> None:
        self._exec("DELETE FROM services WHERE pipeline=?", (pipeline,))

    # -- the trigger queue ---------------------------------------------------------------------

    def list_pending(self) -> list[Trigger]:
        return [Trigger(seq=r["seq"], kind=r["kind"], repo=r["repo"], branch=r["branch"],
                        commit_id=r["commit_id"], pipeline=r["pipeline"])
                for r in self._rows("SELECT * FROM pending ORDER BY seq")]

    def dequeue(self, triggers: Iterable[Trigger]) -> None:
        self._exec_many("DELETE FROM pending WHERE seq=?", [(t.seq,) for t in triggers])

    def job_queued(self, pipeline: str, job_id: str) -> bool:
        return self._row("SELECT 1 FROM pending WHERE kind='job' AND pipeline=? AND commit_id=?",
                         (pipeline, job_id)) is not None

    def dequeue_job(self, pipeline: str, job_id: str) -> None:
        self._exec("DELETE FROM pending WHERE kind='job' AND pipeline=? AND commit_id=?",
                   (pipeline, job_id))


_PIPELINE_SQL = ("SELECT p.*, (SELECT state FROM jobs j WHERE j.pipeline=p.name ORDER BY j.seq "
                 "DESC LIMIT 1) AS last_job_state, s.state AS service_state, s.url AS service_url, "
                 "s.serving AS service_serving, s.restarts AS service_restarts, "
                 "s.detail AS service_detail FROM pipelines p "
                 "LEFT JOIN services s ON s.pipeline = p.name")


def _pipeline_info(row) -> PipelineInfo:
    spec = json.loads(row["spec"])
    serving = json.loads(row["service_serving"]) if row["service_serving"] else {}
    return PipelineInfo(name=row["name"], spec=spec, state=row["state"], version=row["version"],
                        created=row["created"], last_job_state=row["last_job_state"],
                        description=spec.get("description", ""), salt=row["salt"],
                        project=row["project"], service_state=row["service_state"],
                        service_url=row["service_url"] or None,
                        service_commits=[Provenance(**p) for p in serving.get("inputs", [])],
                        service_job=serving.get("job"),
                        service_restarts=row["service_restarts"] or 0,
                        service_detail=row["service_detail"] or "")


def _job_info(r) -> JobInfo:
    return JobInfo(id=r["id"], pipeline=r["pipeline"], state=JobState(r["state"]),
                   started=r["started"], finished=r["finished"], processed=r["processed"],
                   skipped=r["skipped"], failed=r["failed"], total=r["total"],
                   output_commit=r["output_commit"], recovered=r["recovered"],
                   failed_datum=r["failed_datum"], reason=r["reason"],
                   spec_version=r["spec_version"], created=r["created"], salt=r["salt"],
                   inputs=[Provenance(**p) for p in json.loads(r["inputs"])])


def _datum_info(r, outputs: list[str]) -> DatumInfo:
    return DatumInfo(id=r["id"], job_id=r["job_id"], pipeline=r["pipeline"],
                     state=DatumState(r["state"]),
                     inputs=[DatumInput(**i) for i in json.loads(r["inputs"])], outputs=outputs,
                     tries=r["tries"], log=r["log"], reason=r["reason"], started=r["started"],
                     finished=r["finished"])
