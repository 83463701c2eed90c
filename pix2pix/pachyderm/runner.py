"""Pipelines, jobs and datums: what happens after a commit lands.

    finish_commit(images) ──queues──> pending ──run_pending──> propagate(commit set X)
        for each pipeline in DAG order whose input branch changed in X:
            job X = datums(inputs at X, or the branch heads) ─┬─ unchanged hash: skip, carry output
                                                              └─ else run (datumTries), collect /pfs/out
            success: output commit <pipeline>@X (AUTO) ─> its readers run next, same X
            failure: no output commit; downstream does not run

A datum is skipped when the last successful job (or a later failed one) had a datum with the
same id and hash (input names, paths, contents and the pipeline's salt), unless
``reprocessSpec: every_job``. ``update pipeline --reprocess`` changes the salt.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

from pix2pix.errors import JobError, Pix2PixError, SpecError, StoreError, UsageError
from pix2pix.pachyderm import datums as dm
from pix2pix.pachyderm.executors import RunRequest, make_executor, stop, wait
from pix2pix.pachyderm.info import DatumInfo, DatumInput, JobInfo, LogLine, PipelineInfo, Provenance
from pix2pix.pachyderm.refs import clean_path
from pix2pix.pachyderm.spec import input_names, pfs_inputs, spec_name, validate_spec
from pix2pix.pachyderm.store import dumps, pid_start

if TYPE_CHECKING:
    from pix2pix.pachyderm.engine import Engine

LOG_LIMIT = 256 * 1024  # bytes of log kept per datum (the tail)
DEFAULT_DATUM_TRIES = 3  # Pachyderm's default


def parse_duration(text: str | None) -> Optional[float]:
    """``"600s"`` -> 600.0 (the only form Pachyderm's schema allows)."""
    if not text:
        return None
    return float(str(text).rstrip("s"))


class Runner:
    """Pipeline and job operations of one Engine (see the module docstring)."""

    def __init__(self, engine: "Engine"):
        self.engine = engine
        self.store = engine.store
        self._thread_lock = threading.RLock()

    # -- pipelines -----------------------------------------------------------------------------
    def create_pipelines(self, specs: list[tuple[str, dict]], *, update: bool,
                         reprocess: bool) -> list[PipelineInfo]:
        checked = [(src, validate_spec(spec, source=src)) for src, spec in specs]
        names = [spec_name(s) for _, s in checked]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise SpecError(f"pipeline(s) {', '.join(sorted(dup))} defined more than once")
        existing = {p.name: p for p in self.list_pipelines()}
        repos = {r.name: r for r in self.engine.list_repos()}
        for src, spec in checked:
            name = spec_name(spec)
            where = f"{src}: pipeline {json.dumps(name)}"
            if name in existing and not update:
                raise StoreError(f"{where}: pipeline already exists; use `pix2pix update pipeline "
                                 f"-f {src.split('#')[0]}` to change it")
            if name in repos and repos[name].type == "user":
                raise StoreError(f"{where}: a user repo named {name!r} exists and the pipeline's "
                                 "output repo would take its name; rename one of them")
            self._check_runnable(spec, where)
            for i, pfs in enumerate(pfs_inputs(spec["input"])):
                if pfs["repo"] not in repos and pfs["repo"] not in names:
                    raise SpecError(f"{where}: {_pfs_field(spec['input'], i)}.repo: repo "
                                    f"{pfs['repo']!r} does not exist; create it with "
                                    f"`pix2pix create repo {pfs['repo']}` or create its pipeline")
        graph = {n: {p["repo"] for p in pfs_inputs(p_.spec["input"])} for n, p_ in existing.items()}
        graph.update({spec_name(s): {p["repo"] for p in pfs_inputs(s["input"])} for _, s in checked})
        cycle = find_cycle(graph)
        if cycle:
            srcs = ", ".join(src for src, s in checked if spec_name(s) in cycle) or "pipelines"
            raise SpecError(f"{srcs}: pipelines form a cycle: {' -> '.join(cycle)}; a pipeline cannot "
                            "read its own output, directly or through others")
        now = time.time()
        with self.store.tx() as c:
            for src, spec in checked:
                name = spec_name(spec)
                old = c.execute("SELECT * FROM pipelines WHERE name=?", (name,)).fetchone()
                if old is None:
                    salt, version, created = uuid.uuid4().hex, 1, now
                    c.execute("INSERT INTO pipelines(name, spec, version, created, updated, salt) "
                              "VALUES (?,?,?,?,?,?)", (name, dumps(spec), 1, now, now, salt))
                else:
                    salt = uuid.uuid4().hex if reprocess else old["salt"]
                    version, created = old["version"] + 1, old["created"]
                    c.execute("UPDATE pipelines SET spec=?, version=?, updated=?, salt=? "
                              "WHERE name=?", (dumps(spec), version, now, salt, name))
                c.execute("INSERT INTO pipeline_versions(name, version, spec, created, salt) "
                          "VALUES (?,?,?,?,?)", (name, version, dumps(spec), now, salt))
                if not c.execute("SELECT 1 FROM repos WHERE name=?", (name,)).fetchone():
                    self.engine._insert_repo(c, name, spec.get("description", ""), "pipeline")
                branch = spec.get("outputBranch") or "master"
                c.execute("INSERT OR IGNORE INTO branches(repo, name, head) VALUES (?,?,NULL)",
                          (name, branch))
                c.execute("INSERT INTO pending(kind, pipeline, created) VALUES ('pipeline', ?, ?)",
                          (name, now))
        return [self.inspect_pipeline(spec_name(s)) for _, s in checked]

    def _check_runnable(self, spec: dict, where: str) -> None:
        for i, pfs in enumerate(pfs_inputs(spec["input"])):
            project = pfs.get("project") or "default"
            if project != "default":
                raise SpecError(f"{where}: {_pfs_field(spec['input'], i)}.project: project "
                                f"{project!r}: the embedded engine has only the default project")
        if _has_kind(spec["input"], "cron"):
            raise SpecError(f"{where}: input.cron: cron inputs need a real Pachyderm")
        for key in ("spout", "service"):
            if spec.get(key):
                raise SpecError(f"{where}: {key}: not supported by the embedded engine")

    def _pipeline_row(self, name: str):
        row = self.store.q1("SELECT * FROM pipelines WHERE name=?", (name,))
        if row is None:
            raise StoreError(f"pipeline {name!r} not found; `pix2pix list pipeline` shows them")
        return row

    def inspect_pipeline(self, name: str) -> PipelineInfo:
        return self._pipeline_info(self._pipeline_row(name))

    def _pipeline_info(self, row) -> PipelineInfo:
        last = self.store.q1("SELECT state FROM jobs WHERE pipeline=? ORDER BY seq DESC LIMIT 1",
                             (row["name"],))
        spec = json.loads(row["spec"])
        return PipelineInfo(name=row["name"], spec=spec, state=row["state"], version=row["version"],
                            created=row["created"], last_job_state=last["state"] if last else None,
                            description=spec.get("description", ""))

    def list_pipelines(self) -> list[PipelineInfo]:
        return [self._pipeline_info(r) for r in self.store.q(
            "SELECT * FROM pipelines ORDER BY created DESC, name")]

    def delete_pipeline(self, name: str, *, keep_repo: bool, force: bool) -> None:
        self._pipeline_row(name)
        readers = [p.name for p in self.list_pipelines()
                   if p.name != name and name in {x["repo"] for x in pfs_inputs(p.spec["input"])}]
        if readers and not force:
            raise StoreError(f"pipeline {name!r} feeds pipeline(s) {', '.join(readers)}; delete "
                             "them first or use --force")
        with self.store.tx() as c:
            for table in ("jobs", "datums", "datum_outputs", "job_logs"):
                c.execute(f"DELETE FROM {table} WHERE pipeline=?", (name,))
            c.execute("DELETE FROM pipelines WHERE name=?", (name,))
            c.execute("DELETE FROM pipeline_versions WHERE name=?", (name,))
            c.execute("DELETE FROM pending WHERE pipeline=?", (name,))
            if keep_repo:
                c.execute("UPDATE repos SET type='user' WHERE name=?", (name,))
            else:
                for table, col in (("files", "repo"), ("commit_provenance", "repo"),
                                   ("commits", "repo"), ("branches", "repo"), ("repos", "name")):
                    c.execute(f"DELETE FROM {table} WHERE {col}=?", (name,))

    # -- triggers ------------------------------------------------------------------------------
    @contextmanager
    def _run_lock(self) -> Iterator[None]:
        """One job runner per state folder (processes) and per Engine (threads)."""
        with self._thread_lock:
            if getattr(self, "_lock_depth", 0):
                # Re-entered from an on_job callback: this thread already holds the file lock
                # (a second flock on a new descriptor would wait for ourselves forever).
                self._lock_depth += 1
                try:
                    yield
                finally:
                    self._lock_depth -= 1
                return
            path = self.engine.state_dir / "run.lock"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise StoreError(f"{path}: cannot open the run lock ({e})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._lock_depth = 1
                yield
            finally:
                self._lock_depth = 0
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def run_pending(self) -> list[JobInfo]:
        ran: list[JobInfo] = []
        with self._run_lock():
            if self._lock_depth > 1:
                return ran  # called from inside a run (a callback): the outer loop drains the queue
            while True:
                rows = self.store.q("SELECT * FROM pending ORDER BY seq")
                if not rows:
                    return ran
                first = rows[0]
                if first["kind"] == "pipeline":
                    # Pipelines created together run in one commit set.
                    batch = []
                    for r in rows:
                        if r["kind"] != "pipeline":
                            break
                        batch.append(r)
                    force = {r["pipeline"] for r in batch}
                    ran += self.propagate(uuid.uuid4().hex, changed=set(), force=force)
                else:
                    batch = [first]
                    ran += self.propagate(first["commit_id"],
                                          changed={(first["repo"], first["branch"])}, force=set())
                with self.store.tx() as c:
                    c.executemany("DELETE FROM pending WHERE seq=?", [(r["seq"],) for r in batch])

    def propagate(self, commit_set: str, *, changed: set[tuple[str, str]],
                  force: set[str]) -> list[JobInfo]:
        """Run, in DAG order, every pipeline whose input branch changed in this commit set
        (and the ``force``d ones); each success changes its output branch in turn."""
        pipelines = {p.name: p for p in self.list_pipelines()}
        order = topo_order({n: {x["repo"] for x in pfs_inputs(p.spec["input"])}
                            for n, p in pipelines.items()})
        changed = set(changed)
        ran: list[JobInfo] = []
        for name in order:
            p = pipelines[name]
            if p.state != "running":
                continue
            ins = {(x["repo"], x["branch"]) for x in pfs_inputs(p.spec["input"])}
            if name not in force and not (ins & changed):
                continue
            done = self.store.q1("SELECT state, output_commit FROM jobs WHERE pipeline=? AND id=?",
                                 (name, commit_set))
            if done and done["state"] == "success":
                job = self.inspect_job(name, commit_set)  # already ran before a crash
            else:
                job = self.run_job(name, commit_set)
            if job is None:
                continue
            ran.append(job)
            if self.engine.on_job:
                self.engine.on_job(job)
            if job.state == "success":
                changed.add((name, p.spec.get("outputBranch") or "master"))
        return ran

    # -- one job -------------------------------------------------------------------------------
    def _input_commits(self, spec: dict, commit_set: str) -> dict[tuple[str, str], dm.InputCommit]:
        out = {}
        for pfs in pfs_inputs(spec["input"]):
            key = (pfs["repo"], pfs["branch"])
            if key in out:
                continue
            row = self.store.q1("SELECT id FROM commits WHERE repo=? AND id=? AND branch=?",
                                (pfs["repo"], pfs.get("commit") or commit_set, pfs["branch"]))
            if row is None and pfs.get("commit"):
                raise JobError(f"input {pfs['name']}: commit {pfs['repo']}@{pfs['commit']} "
                               "(pfs.commit) not found on branch " + pfs["branch"])
            if row is None:
                row = self.store.q1("SELECT head AS id FROM branches WHERE repo=? AND name=?", key)
            cid = row["id"] if row else None
            out[key] = dm.InputCommit(repo=pfs["repo"], branch=pfs["branch"], commit=cid,
                                      tree=self.store.tree(pfs["repo"], cid))
        return out

    def _previous_datums(self, pipeline: str, job_id: str) -> dict[str, tuple[str, str]]:
        """datum id -> (hash, job id holding its outputs): the successful datums of the last
        successful job and of the failed jobs after it (newer ones win)."""
        jobs = []
        for r in self.store.q("SELECT id, state FROM jobs WHERE pipeline=? AND id!=? "
                              "ORDER BY seq DESC", (pipeline, job_id)):
            jobs.append(r["id"])
            if r["state"] == "success":
                break
        out: dict[str, tuple[str, str]] = {}
        for jid in reversed(jobs):
            for r in self.store.q("SELECT id, hash FROM datums WHERE pipeline=? AND job_id=? AND "
                                  "state IN ('success', 'skipped')", (pipeline, jid)):
                out[r["id"]] = (r["hash"], jid)
        return out

    def run_job(self, name: str, commit_set: str) -> Optional[JobInfo]:
        """Run pipeline ``name`` for commit set ``commit_set``; None when its inputs have no
        commits at all yet (nothing to run on)."""
        row = self._pipeline_row(name)
        spec = json.loads(row["spec"])
        commits = self._input_commits(spec, commit_set)
        if all(ic.commit is None for ic in commits.values()):
            return None
        inputs = [Provenance(repo=r, branch=b, commit=ic.commit)
                  for (r, b), ic in commits.items() if ic.commit is not None]
        now = time.time()
        with self.store.tx() as c:
            for table in ("datums", "datum_outputs", "job_logs"):
                c.execute(f"DELETE FROM {table} WHERE pipeline=? AND job_id=?", (name, commit_set))
            c.execute("DELETE FROM jobs WHERE pipeline=? AND id=?", (name, commit_set))
            c.execute("INSERT INTO jobs(id, pipeline, state, started, spec_version, salt, inputs, "
                      "pid, pid_start) VALUES (?,?,?,?,?,?,?,?,?)",
                      (commit_set, name, "running", now, row["version"], row["salt"],
                       dumps([p.__dict__ for p in inputs]), os.getpid(), pid_start(os.getpid())))
        job = _Job(self, name=name, job_id=commit_set, spec=spec, version=row["version"],
                   salt=row["salt"], commits=commits, inputs=inputs)
        try:
            job.run()
        except Pix2PixError as e:  # a datum failed, no container tool, disk full...
            job.fail(str(e))
        except BaseException as e:
            if isinstance(e, Exception):
                job.fail(f"engine error: {e}")
            else:  # Ctrl-C: record it, then let it stop the command
                job.fail("interrupted", state="killed")
                raise
        finally:
            job.cleanup()
        return self.inspect_job(name, commit_set)

    # -- queries -------------------------------------------------------------------------------
    def _job_info(self, r) -> JobInfo:
        return JobInfo(id=r["id"], pipeline=r["pipeline"], state=r["state"], started=r["started"],
                       finished=r["finished"], processed=r["processed"], skipped=r["skipped"],
                       failed=r["failed"], total=r["total"], output_commit=r["output_commit"],
                       recovered=r["recovered"],
                       failed_datum=r["failed_datum"], reason=r["reason"],
                       spec_version=r["spec_version"],
                       inputs=[Provenance(**p) for p in json.loads(r["inputs"])])

    def list_jobs(self, pipeline: str | None) -> list[JobInfo]:
        if pipeline:
            self._pipeline_row(pipeline)
            rows = self.store.q("SELECT * FROM jobs WHERE pipeline=? ORDER BY seq DESC", (pipeline,))
        else:
            rows = self.store.q("SELECT * FROM jobs ORDER BY seq DESC")
        return [self._job_info(r) for r in rows]

    def inspect_job(self, pipeline: str, job_id: str) -> JobInfo:
        rows = self.store.q("SELECT * FROM jobs WHERE pipeline=? AND (id=? OR id LIKE ?) "
                            "ORDER BY seq DESC", (pipeline, job_id, job_id + "%"))
        if not rows:
            raise StoreError(f"job {pipeline}@{job_id} not found; `pix2pix list job -p {pipeline}` "
                             "lists them")
        if len(rows) > 1 and rows[0]["id"] != job_id:
            raise StoreError(f"job id prefix {job_id!r} is ambiguous in pipeline {pipeline!r}")
        return self._job_info(rows[0])

    def _datum_info(self, r) -> DatumInfo:
        outs = [o["path"] for o in self.store.q(
            "SELECT path FROM datum_outputs WHERE pipeline=? AND job_id=? AND datum_id=? "
            "ORDER BY path", (r["pipeline"], r["job_id"], r["id"]))]
        return DatumInfo(id=r["id"], job_id=r["job_id"], pipeline=r["pipeline"], state=r["state"],
                         inputs=[DatumInput(**i) for i in json.loads(r["inputs"])], outputs=outs,
                         tries=r["tries"], log=r["log"], reason=r["reason"], started=r["started"],
                         finished=r["finished"])

    def list_datums(self, pipeline: str, job_id: str) -> list[DatumInfo]:
        job = self.inspect_job(pipeline, job_id)
        return [self._datum_info(r) for r in self.store.q(
            "SELECT * FROM datums WHERE pipeline=? AND job_id=? ORDER BY seq", (pipeline, job.id))]

    def inspect_datum(self, pipeline: str, job_id: str, datum_id: str) -> DatumInfo:
        job = self.inspect_job(pipeline, job_id)
        rows = self.store.q("SELECT * FROM datums WHERE pipeline=? AND job_id=? AND "
                            "(id=? OR id LIKE ?)", (pipeline, job.id, datum_id, datum_id + "%"))
        if len(rows) != 1:
            raise StoreError(f"datum {datum_id!r} " + ("is ambiguous" if rows else "not found")
                             + f" in job {pipeline}@{job.id}")
        return self._datum_info(rows[0])

    def logs(self, pipeline: str, *, job_id: str | None, datum_id: str | None) -> list[LogLine]:
        self._pipeline_row(pipeline)
        if job_id is None:
            last = self.store.q1("SELECT id FROM jobs WHERE pipeline=? ORDER BY seq DESC LIMIT 1",
                                 (pipeline,))
            if last is None:
                return []
            job_id = last["id"]
        job = self.inspect_job(pipeline, job_id)
        out: list[LogLine] = []
        datums = ([self.inspect_datum(pipeline, job.id, datum_id)] if datum_id
                  else self.list_datums(pipeline, job.id))
        for d in datums:
            out += [LogLine(pipeline, job.id, d.id, line) for line in d.log.splitlines()]
        if datum_id is None:
            out += [LogLine(pipeline, job.id, r["datum_id"], r["message"]) for r in self.store.q(
                "SELECT datum_id, message FROM job_logs WHERE pipeline=? AND job_id=? ORDER BY seq",
                (pipeline, job.id))]
        return out


class _Slot:
    """One worker's scratch space: its /pfs folder, executor and running code."""

    def __init__(self, job_dir: Path, index: int, executor) -> None:
        self.dir = job_dir / f"w{index}"
        self.root = self.dir / "pfs"
        self.executor = executor
        self.placed: dict[str, dict[str, str]] = {}  # input name -> {rel path: sha256}
        self.proot: str | None = None  # how the process executor names root
        self.proc = None


class _Job:
    """The running state of one job: its datums, scratch folder and executor."""

    def __init__(self, runner: Runner, *, name: str, job_id: str, spec: dict, version: int,
                 salt: str, commits: dict, inputs: list[Provenance]):
        self.runner, self.store, self.engine = runner, runner.store, runner.engine
        self.name, self.id, self.spec, self.version, self.salt = name, job_id, spec, version, salt
        self.commits, self.inputs = commits, inputs
        self.transform = spec["transform"]
        self.tries = int(spec.get("datumTries") or DEFAULT_DATUM_TRIES)
        self.datum_timeout = parse_duration(spec.get("datumTimeout"))
        self.job_timeout = parse_duration(spec.get("jobTimeout"))
        self.every_job = (spec.get("reprocessSpec") or "until_success") == "every_job"
        self.dir = self.engine.jobs_dir / f"{name}-{job_id}"
        self.started = time.monotonic()
        self.slots: list[_Slot] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        par = spec.get("parallelismSpec") or {}
        # A small local pool: parallelismSpec.constant workers, at most one per CPU (8 max).
        self.parallelism = 1 if self.transform.get("datumBatching") else \
            max(1, min(int(par.get("constant") or 1), os.cpu_count() or 1, 8))
        self.outputs: dict[str, list[tuple[str, str, int]]] = {}  # datum id -> outputs
        self.failed: list[tuple[str, str]] = []  # (datum id, reason)
        self.counts = {"processed": 0, "skipped": 0, "failed": 0, "recovered": 0}
        self.seq = 0

    # -- the job ---------------------------------------------------------------------------
    def run(self) -> None:
        datums = dm.compute(self.spec["input"], self.commits, salt=self.salt)
        prev = {} if self.every_job else self.runner._previous_datums(self.name, self.id)
        todo = []
        for d in datums:
            old = prev.get(d.id)
            if old and old[0] == d.hash:
                self._skip(d, old[1])
            else:
                todo.append(d)
        self._update(total=len(datums))
        if todo:
            shutil.rmtree(self.dir, ignore_errors=True)
            n = min(self.parallelism, len(todo))
            for i in range(n):
                slot = _Slot(self.dir, i, make_executor(self.engine.executor))
                slot.root.mkdir(parents=True)
                self.slots.append(slot)
            if self.transform.get("datumBatching"):
                self._run_batched(todo)
            elif n == 1:
                for d in todo:
                    self._run_one(d)
            else:
                self._run_pool(todo)
        if self.failed:
            d, reason = self.failed[0]
            more = f" (and {len(self.failed) - 1} more datum(s))" if len(self.failed) > 1 else ""
            raise JobError(f"datum {d[:12]} failed: {reason}{more}")
        self._publish()

    # -- the worker slot of the current thread ---------------------------------------------
    @property
    def slot(self) -> _Slot:
        return getattr(self._local, "slot", None) or self.slots[0]

    @property
    def root(self) -> Path:
        return self.slot.root

    @property
    def executor(self):
        return self.slot.executor if self.slots else None

    def _run_pool(self, todo: list[dm.Datum]) -> None:
        """Datums on ``len(self.slots)`` threads, each with its own /pfs folder."""
        import queue
        from concurrent.futures import ThreadPoolExecutor
        free: "queue.Queue[_Slot]" = queue.Queue()
        for slot in self.slots:
            free.put(slot)

        def work(d: dm.Datum) -> None:
            slot = free.get()
            self._local.slot = slot
            try:
                self._run_one(d)
            finally:
                self._local.slot = None
                free.put(slot)

        with ThreadPoolExecutor(max_workers=len(self.slots)) as pool:
            for f in [pool.submit(work, d) for d in todo]:
                f.result()

    def _skip(self, d: dm.Datum, from_job: str) -> None:
        outs = [(r["path"], r["hash"], r["size"]) for r in self.store.q(
            "SELECT path, hash, size FROM datum_outputs WHERE pipeline=? AND job_id=? AND datum_id=?",
            (self.name, from_job, d.id))]
        self._record(d, "skipped", outs, tries=0, log="", reason="")

    def _record(self, d: dm.Datum, state: str, outputs: list[tuple[str, str, int]], *,
                tries: int, log: str, reason: str, started: float | None = None) -> None:
        with self._lock:
            self._record_locked(d, state, outputs, tries=tries, log=log, reason=reason,
                                started=started)

    def _record_locked(self, d: dm.Datum, state: str, outputs: list[tuple[str, str, int]], *,
                       tries: int, log: str, reason: str, started: float | None) -> None:
        self.seq += 1
        if state in ("success", "skipped"):
            self.outputs[d.id] = outputs
        key = {"success": "processed"}.get(state, state)
        self.counts[key] += 1
        with self.store.tx() as c:  # the datum and the job's counts in one transaction
            c.execute(f"UPDATE jobs SET {key}=? WHERE pipeline=? AND id=?",
                      (self.counts[key], self.name, self.id))
            c.execute("INSERT OR REPLACE INTO datums(pipeline, job_id, id, state, hash, inputs, "
                      "tries, log, reason, started, finished, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                      (self.name, self.id, d.id, state, d.hash,
                       dumps([m.as_input().__dict__ for m in d.matches]), tries,
                       log[-LOG_LIMIT:], reason, started, time.time(), self.seq))
            c.execute("DELETE FROM datum_outputs WHERE pipeline=? AND job_id=? AND datum_id=?",
                      (self.name, self.id, d.id))
            c.executemany("INSERT INTO datum_outputs(pipeline, job_id, datum_id, path, hash, size) "
                          "VALUES (?,?,?,?,?,?)", [(self.name, self.id, d.id, p, h, s)
                                                   for p, h, s in outputs])

    def _update(self, **fields) -> None:
        sets = ", ".join(f"{k}=?" for k in fields)
        with self.store.tx() as c:
            c.execute(f"UPDATE jobs SET {sets} WHERE pipeline=? AND id=?",
                      (*fields.values(), self.name, self.id))

    def _timeout_for_datum(self) -> Optional[float]:
        limits = [t for t in (self.datum_timeout, self._job_left()) if t is not None]
        return min(limits) if limits else None

    def _job_left(self) -> Optional[float]:
        if self.job_timeout is None:
            return None
        left = self.job_timeout - (time.monotonic() - self.started)
        if left <= 0:
            raise JobError(f"jobTimeout {self.spec['jobTimeout']} exceeded")
        return left

    # -- placing inputs, collecting outputs --------------------------------------------------
    def _env(self, d: dm.Datum) -> dict[str, str]:
        """Pachyderm's worker env for one datum (paths as the code sees /pfs)."""
        env = {k: str(v) for k, v in (self.transform.get("env") or {}).items()}
        env.update({
            "PACH_JOB_ID": self.id, "PACH_DATUM_ID": d.id, "PACH_OUTPUT_COMMIT_ID": self.id,
            "PPS_PIPELINE_NAME": self.name, "PPS_PROJECT_NAME": "default",
            # Pachyderm ties it to the pipeline version: same version, same spec commit.
            "PPS_SPEC_COMMIT": hashlib.sha256(f"{self.name}:{self.version}:{self.salt}".encode()
                                              ).hexdigest()[:32],
            "PPS_NAMESPACE": "default",
            "PPS_POD_NAME": f"pipeline-{self.name}-v{self.version}-local", "PPS_WORKER_IP": "127.0.0.1",
            "PACH_ENGINE": "pix2pix-embedded",
        })
        for m in d.matches:
            env[m.name] = "/pfs/" + m.name + ("" if m.glob_path == "/" else m.glob_path)
            env[f"{m.name}_COMMIT"] = m.commit
        env.update(d.extra_env)
        return env

    def _prepare(self, d: dm.Datum, env: dict[str, str]) -> None:
        """Point /pfs/<input> at this datum's files and give it an empty /pfs/out.

        Files already in place with the same content stay (the model of a cross is placed once
        per job, not once per datum); anything else in an input folder is removed, so the code
        sees exactly this datum. Inputs are copies, never hard links into the blob store: the
        code runs as the store's owner (who may chmod a read-only link and write through it)
        or as root in a container, and either would change every commit holding that content."""
        shutil.rmtree(self.root / "out", ignore_errors=True)
        (self.root / "out").mkdir(parents=True)
        # An image may run its code as a non-root user: let it write its output.
        os.chmod(self.root / "out", 0o777)
        want: dict[str, dict[str, tuple[str, int]]] = {n: {} for n in input_names(self.spec["input"])}
        for m in d.matches:
            want.setdefault(m.name, {}).update({p.lstrip("/"): (h, s) for p, h, s in m.files})
        placed = self.slot.placed
        link = False
        for name, files in want.items():
            base = self.root / name
            if not files:
                shutil.rmtree(base, ignore_errors=True)
                continue
            base.mkdir(parents=True, exist_ok=True)
            have = placed.get(name, {})
            for dirpath, dirnames, filenames in os.walk(base, topdown=False):
                for f in filenames:
                    host = Path(dirpath) / f
                    rel = host.relative_to(base).as_posix()
                    keep = rel in files and have.get(rel) == files[rel][0] and \
                        not host.is_symlink() and host.stat().st_size == files[rel][1]
                    if not keep:
                        host.unlink()
                        have.pop(rel, None)
                for dn in dirnames:
                    try:
                        (Path(dirpath) / dn).rmdir()  # only if empty
                    except OSError:
                        pass
            for rel, (digest, _) in files.items():
                if have.get(rel) != digest:
                    self.engine.blobs.materialize(digest, base / rel, link=link)
                    have[rel] = digest
            placed[name] = have
        self.slot.placed = placed
        view = self._process_root() if self.executor.name == "process" else "/pfs"
        lines = [f"{k}={_pfs(v, view)}" for k, v in env.items()]
        (self.root / ".env").write_text("\n".join(lines) + "\n")

    def _as_pfs(self, text: str) -> str:
        """Logs show paths as the code was told them: the job folder reads as /pfs again."""
        if self.executor.name != "process":
            return text
        for root in {self._process_root(), str(self.root)}:
            text = text.replace(root, "/pfs")
        return text

    def _process_root(self) -> str:
        if self.slot.proot is None:
            self.slot.proot = self.executor.visible_root(self.root)
        return self.slot.proot

    def _collect(self) -> list[tuple[str, str, int]]:
        """The datum's outputs: the files under /pfs/out. A symlink is followed only to a file
        inside this job's /pfs (an input, another output), never to a host file: the engine
        reads with its own rights, which a container's code does not have.

        Raises:
            JobError: an output name a repo path cannot hold, or a symlink leading outside /pfs.
        """
        out_dir = self.root / "out"
        pfs_root = self.root.resolve()
        outs = []
        for dirpath, _, files in os.walk(out_dir):
            for f in sorted(files):
                host = Path(dirpath) / f
                rel = host.relative_to(out_dir).as_posix()
                try:
                    path = clean_path("/" + rel, what="output path")
                except UsageError as e:
                    raise JobError(f"/pfs/out/{rel}: {e}") from None
                if host.is_symlink():
                    target = os.readlink(host)
                    if target.startswith("/pfs/"):
                        # `ln -s /pfs/<input>/x /pfs/out/x` (a common Pachyderm idiom) names the
                        # code's view of /pfs, which only a container has: read it from our root.
                        host = self.root / target[len("/pfs/"):]
                    host = host.resolve()
                    if pfs_root not in host.parents:
                        raise JobError(f"/pfs/out/{rel} is a symlink to {target}, outside /pfs; "
                                       "refused (copy the file into /pfs/out instead)")
                if not host.is_file():
                    continue  # sockets, broken links: nothing to version
                digest, size = self.engine.blobs.put_file(host)
                outs.append((path, digest, size))
        return sorted(outs)

    def _request(self, env: dict[str, str], log: Path, *, err: bool = False) -> RunRequest:
        """The user code's start (``errCmd``/``errStdin`` with ``err``)."""
        t = self.transform
        req = RunRequest(cmd=list(t["errCmd"] if err else t["cmd"]),
                         stdin=t.get("errStdin") if err else t.get("stdin"),
                         env=env, image=t.get("image"), pfs_root=self.root,
                         work_dir=self.slot.dir / "work", log_path=log,
                         working_dir=t.get("workingDir") or None)
        if self.executor.name == "process":
            req.extra["root"] = self._process_root()
        return req

    def _start(self, req: RunRequest):
        proc = self.executor.start(req)
        self.slot.proc = proc
        # Remembered so that, if this engine process is killed, the next one can stop the code.
        (self.slot.dir / "child.pid").write_text(str(proc.pid))
        return proc

    # -- one datum at a time -------------------------------------------------------------------
    def _run_one(self, d: dm.Datum) -> None:
        log_text, reason, started = "", "", time.time()
        accept = {0, *(self.transform.get("acceptReturnCode") or [])}
        for attempt in range(1, self.tries + 1):
            env = self._env(d)
            self._prepare(d, env)
            log = self.slot.dir / f"log-{d.id[:12]}-{attempt}"
            timeout = self._timeout_for_datum()
            proc = self._start(self._request(env, log))
            rc, timed_out = wait(proc, timeout)
            text = self._as_pfs(log.read_text(errors="replace") if log.exists() else "")
            log_text += (f"--- try {attempt} of {self.tries} ---\n" if attempt > 1 else "") + text
            if rc in accept and not timed_out:
                try:
                    outs = self._collect()
                except JobError as e:  # an unsafe output: another try would make it again
                    self._fail_datum(d, str(e), log_text, attempt, started)
                    return
                self._record(d, "success", outs, tries=attempt, log=log_text, reason="",
                             started=started)
                return
            reason = (f"timed out after {timeout:g}s (datumTimeout/jobTimeout)" if timed_out
                      else f"exit code {rc}")
            self._job_left()  # a job past its jobTimeout stops retrying
        if self.transform.get("errCmd") and self._recover(d, reason, log_text, started):
            return
        self._fail_datum(d, reason, log_text, self.tries, started)

    def _recover(self, d: dm.Datum, reason: str, log_text: str, started: float) -> bool:
        """Pachyderm's errCmd: run it on a datum that failed every try; if it exits 0 the datum
        is ``recovered`` (no output, the job does not fail)."""
        env = self._env(d)
        self._prepare(d, env)
        log = self.slot.dir / f"log-{d.id[:12]}-err"
        rc, timed_out = wait(self._start(self._request(env, log, err=True)), self._timeout_for_datum())
        log_text += "--- errCmd ---\n" + self._as_pfs(log.read_text(errors="replace") if log.exists() else "")
        if rc != 0 or timed_out:
            return False
        self._record(d, "recovered", [], tries=self.tries, log=log_text, started=started,
                     reason=f"{reason}; recovered by errCmd")
        return True

    def _fail_datum(self, d: dm.Datum, reason: str, log_text: str, tries: int,
                    started: float | None) -> None:
        reason = f"{reason} after {tries} tr{'y' if tries == 1 else 'ies'}; inputs: " + \
            ", ".join(f"{m.repo}@{m.commit}:{m.glob_path}" for m in d.matches)
        self._record(d, "failed", [], tries=tries, log=log_text, reason=reason, started=started)
        with self._lock:
            self.failed.append((d.id, reason))

    # -- datum batching ------------------------------------------------------------------------
    def _run_batched(self, todo: list[dm.Datum]) -> None:
        """Start the code once; serve NextDatum until every datum is done (see worker.py).
        If the code dies mid-datum, that try failed: it is restarted and served the same datum
        again (or the next one once datumTries are used up)."""
        from pix2pix.pachyderm.worker import DatumServer
        log = self.slot.dir / "log-batch"
        root_view = self._process_root() if self.executor.name == "process" else "/pfs"
        st = {"i": -1, "try": 0, "offset": 0, "text": "", "started": None, "after_restart": None}

        def finish_current(error: str) -> bool:
            """Complete datum i with its log slice; True if it must be served again."""
            d = todo[st["i"]]
            size = log.stat().st_size if log.exists() else 0
            chunk = ""
            if size > st["offset"]:
                with open(log, "rb") as f:
                    f.seek(st["offset"])
                    chunk = self._as_pfs(f.read(size - st["offset"]).decode(errors="replace"))
            st["offset"] = size
            st["text"] += (f"--- try {st['try']} of {self.tries} ---\n" if st["try"] > 1 else "") + chunk
            if not error:
                try:
                    outs = self._collect()
                except JobError as e:  # an unsafe output: another try would make it again
                    self._fail_datum(d, str(e), st["text"], st["try"], st["started"])
                    return False
                self._record(d, "success", outs, tries=st["try"], log=st["text"],
                             started=st["started"], reason="")
                return False
            if st["try"] < self.tries:
                st["text"] += f"(try failed: {error})\n"
                return True
            self._fail_datum(d, error, st["text"], st["try"], st["started"])
            return False

        def on_next(error: str) -> Optional[dict[str, str]]:
            if st["after_restart"] is not None:
                retry, st["after_restart"] = st["after_restart"] == "retry", None
            elif st["i"] < 0:
                retry = False
            else:
                retry = finish_current(error)
            if not retry:
                st.update(i=st["i"] + 1, text="", started=time.time())
                st["try"] = 0
                if st["i"] >= len(todo):
                    return None
            st["try"] += 1
            d = todo[st["i"]]
            env = self._env(d)
            self._prepare(d, env)
            return {k: _pfs(v, root_view) for k, v in env.items()}

        server = DatumServer(on_next)
        port = server.start()
        try:
            base_env = self._env(todo[0])
            base_env["PPS_WORKER_GRPC_PORT"] = str(port)
            (self.root / "out").mkdir(parents=True, exist_ok=True)
            for start in range(len(todo) * self.tries + 1):
                proc = self._start(self._request(base_env, log))
                while proc.poll() is None and not server.finished.is_set():
                    if self.job_timeout is not None and \
                            time.monotonic() - self.started > self.job_timeout:
                        stop(proc)
                        raise JobError(f"jobTimeout {self.spec['jobTimeout']} exceeded")
                    time.sleep(0.05)
                if server.finished.is_set():
                    stop(proc)
                    return
                rc = proc.returncode
                if server.calls == 0:
                    raise JobError(f"transform.datumBatching is true but the code exited "
                                   f"(exit code {rc}) without calling NextDatum; use "
                                   "python_pachyderm's batch_all_datums or next_datum")
                with server._lock:
                    if st["i"] >= len(todo):
                        return
                    retry = finish_current(f"the code exited with code {rc} during the datum")
                    if not retry and st["i"] + 1 >= len(todo):
                        return
                    st["after_restart"] = "retry" if retry else "advance"
            raise JobError("the batching code keeps exiting; see `pix2pix logs`")
        finally:
            server.stop()

    # -- the end -------------------------------------------------------------------------------
    def _publish(self) -> None:
        """Merge every datum's output into the output commit (same ID as the job)."""
        owner: dict[str, str] = {}
        tree: dict[str, tuple[str, int]] = {}
        for did, outs in self.outputs.items():
            for path, digest, size in outs:
                if path in owner:
                    raise JobError(f"datums {owner[path][:12]} and {did[:12]} both wrote {path}; "
                                   "each output path must come from one datum (write to a "
                                   "per-datum name such as the input file's name)")
                owner[path] = did
                tree[path] = (digest, size)
        branch = self.spec.get("outputBranch") or "master"
        with self.store.tx() as c:
            head = c.execute("SELECT head FROM branches WHERE repo=? AND name=?",
                             (self.name, branch)).fetchone()
            parent = head["head"] if head else None
            self.store.write_commit(c, repo=self.name, commit_id=self.id, branch=branch,
                                    parent=parent, origin="AUTO", started=time.time(),
                                    description=f"job {self.id} of pipeline {self.name}", tree=tree,
                                    provenance=[(p.repo, p.branch, p.commit) for p in self.inputs])
            c.execute("UPDATE jobs SET state='success', finished=?, output_commit=?, processed=?, "
                      "skipped=?, failed=? WHERE pipeline=? AND id=?",
                      (time.time(), self.id, self.counts["processed"], self.counts["skipped"],
                       self.counts["failed"], self.name, self.id))

    def fail(self, reason: str, state: str = "failure") -> None:
        failed_datum = self.failed[0][0] if self.failed else None
        with self.store.tx() as c:
            c.execute("UPDATE jobs SET state=?, finished=?, reason=?, failed_datum=?, processed=?, "
                      "skipped=?, failed=? WHERE pipeline=? AND id=?",
                      (state, time.time(), reason, failed_datum, self.counts["processed"],
                       self.counts["skipped"], self.counts["failed"], self.name, self.id))
            c.execute("INSERT INTO job_logs(pipeline, job_id, datum_id, message) VALUES (?,?,?,?)",
                      (self.name, self.id, failed_datum, f"job failed: {reason}"))

    def cleanup(self) -> None:
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                stop(slot.proc, grace_s=2.0)  # e.g. Ctrl-C: the code runs in its own session
            slot.executor.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pfs(value: str, root: str) -> str:
    if root == "/pfs":
        return value
    from pix2pix.pachyderm.executors import _PFS
    return _PFS.sub(root, value)


def _pfs_field(inp: dict, index: int, path: str = "input") -> str:
    """The field path of the index-th pfs input (depth first), e.g. ``input.cross[0].pfs``."""
    found: list[str] = []

    def walk(node: dict, p: str) -> None:
        if node.get("pfs"):
            found.append(p + ".pfs")
            return
        for kind in ("cross", "union", "join", "group"):
            for i, child in enumerate(node.get(kind) or []):
                walk(child, f"{p}.{kind}[{i}]")

    walk(inp, path)
    return found[index] if index < len(found) else path


def _has_kind(inp: dict, kind: str) -> bool:
    if inp.get(kind):
        return True
    return any(_has_kind(c, kind) for k in ("cross", "union", "join", "group")
               for c in inp.get(k) or [])


def topo_order(graph: dict[str, set[str]]) -> list[str]:
    """Pipelines in an order where every pipeline comes after the pipelines it reads.

    ``graph`` maps a pipeline to the repos it reads (user repos are ignored)::

        {"model": {"checkpoint"}, "checkpoint": {"training"}} -> ["checkpoint", "model"]
    """
    order: list[str] = []
    seen: set[str] = set()

    def visit(n: str, stack: tuple[str, ...]) -> None:
        if n in seen or n in stack:
            return
        for dep in sorted(graph.get(n, ())):
            if dep in graph:
                visit(dep, stack + (n,))
        seen.add(n)
        order.append(n)

    for n in sorted(graph):
        visit(n, ())
    return order


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle among pipelines as ``[a, b, a]``, or None."""
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> list[str] | None:
        state[n] = 1
        for dep in sorted(graph.get(n, ())):
            if dep not in graph:
                continue
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep] if dep in path else [n, dep, n]
            if dep not in state:
                found = visit(dep, path + [dep])
                if found:
                    return found
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n, [n])
            if found:
                return found
    return None
