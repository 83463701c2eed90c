"""pachd's debug API (``debug_v2.Debug``) for ``pix2pix local serve``: the same calls, answered
with what this single process really has.

- **DumpV2** (``client.dump()``) and pachd 2.6's **Dump**: a tar.gz of the engine's state in the
  layout of pachd's dump of one pachd, streamed as pachd streams it (a progress message after
  each item of each task, the archive in chunks). The JSON files hold the engine's own records
  (``pix2pix.pachyderm.info``), not pachd's protobuf JSON::

      source-repos/default/<repo>/repo.json, commits.json   a user repo, its branches, its commits
                                                            (open ones too: "finished": null)
      pipelines/default/<name>/spec.json                    the pipeline: spec, version, state
      pipelines/default/<name>/repo.json, commits.json      its output repo, as above
      pipelines/default/<name>/jobs.json, datums.json       its jobs; every datum of each
      pipelines/default/<name>/logs.txt                     "<job> <datum or -> <message>" lines
      pachd/local/pachd/version.txt                         the version, as pachctl prints it
      pachd/pods/local/pachd/threads.txt, binary.zip        every thread's stack; the code

  What pachd takes from Kubernetes or PostgreSQL (Helm, pod descriptions and logs, Loki, the
  database) is not here: asked for, each is an ``error.txt`` saying so, as pachd writes one for
  a part it could not collect; GetDumpV2Template never asks for them.
- **Profile** ``cpu``: every thread's stack sampled about 100 times a second for the requested
  duration (pachd's default: a minute), each sample weighted by the CPU time its thread used
  since the last one (Linux's /proc/self/task/<tid>/schedstat). Go's pprof cannot describe
  Python code, so the answer is a tar.gz (as pachd's) of ``cpu.folded``, Brendan Gregg's folded
  stacks (``thread;outer (file:line);...;inner (file:line) <microseconds>``, as flamegraph.pl,
  speedscope and inferno read them) and ``cpu-profile.json``. ``goroutine``, the nearest
  equivalent of Go's goroutine dump, is ``threads.txt``; other profiles answer UNIMPLEMENTED.
- **Binary**: pachd sends its executable, to read profiles against; this server's code is the
  installed ``pix2pix`` package's source, sent as a zip (``pix2pix/...``).
- **SetLogLevel**: the ``pix2pix`` (pachyderm) or ``grpc`` logger's level for ``duration``, then
  back, as pachd (a zero duration puts it back at once).

Only this process can be profiled or dumped: a worker or database filter answers UNIMPLEMENTED.
"""
from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
import os
import sys
import tarfile
import threading
import time
import traceback
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc
from google.protobuf import wrappers_pb2
from python_pachyderm.proto.v2.debug import debug_pb2, debug_pb2_grpc
from python_pachyderm.proto.v2.version.versionpb import version_pb2

from pix2pix.pachyderm.server_base import Abort, complete

PROJECT = "default"
APP = "pachd"  # pachd's app name; this server is its only pod
POD = "local"
CHUNK_BYTES = 1 << 20
DEFAULT_PROFILE_S = 60.0  # pachd's default CPU profile duration
DEFAULT_DUMP_TIMEOUT_S = 25 * 60.0  # pachd's default DumpV2 timeout
SAMPLE_INTERVAL_S = 0.01
LOGGERS = {"pachyderm": "pix2pix", "grpc": "grpc"}
_LEVELS = {debug_pb2.SetLogLevelRequest.DEBUG: logging.DEBUG,
           debug_pb2.SetLogLevelRequest.INFO: logging.INFO,
           debug_pb2.SetLogLevelRequest.ERROR: logging.ERROR}
NO_DATABASE = ("pix2pix local serve has no PostgreSQL database: the engine keeps its state in its "
               "state folder; its records are in source-repos/ and pipelines/ of this dump")
NOT_HERE = ("pix2pix local serve runs without Kubernetes: there are no pods, Helm releases or "
            "Loki here (the engine's own logs are under pipelines/)")


@complete(debug_pb2.DESCRIPTOR.services_by_name["Debug"])
class DebugServicer(debug_pb2_grpc.DebugServicer):
    """The debug service over one server's :class:`~pix2pix.pachyderm.server_engine.EngineAdapter`;
    ``version`` is the server's answer to GetVersion."""

    def __init__(self, adapter, version: version_pb2.Version) -> None:
        self.adapter = adapter
        # As pachctl prints a version (major.minor.micro, then ``additional``).
        self.version = f"{version.major}.{version.minor}.{version.micro}{version.additional}"
        self._levels = _LevelResetter()

    def GetDumpV2Template(self, request, context):
        pachd = [debug_pb2.App(name=APP)]
        pipelines = [debug_pb2.Pipeline(project=PROJECT, name=p.name)
                     for p in self.adapter.engine.list_pipelines()]
        return debug_pb2.GetDumpV2TemplateResponse(request=debug_pb2.DumpV2Request(
            system=debug_pb2.System(version=True, profiles=pachd, binaries=pachd),
            pipelines=pipelines, input_repos=True))

    def DumpV2(self, request, context):
        timeout = request.timeout.ToTimedelta().total_seconds() if request.HasField("timeout") else 0
        deadline = time.monotonic() + (timeout or DEFAULT_DUMP_TIMEOUT_S)
        dump = _Dump(self.adapter.engine, self.version, deadline, context.is_active)
        tasks = []
        if request.input_repos:
            tasks.append(("source-repos", dump.input_repos))
        if request.pipelines:
            names = [p.name for p in request.pipelines]
            tasks.append(("pipelines", lambda: dump.pipelines(names)))
        sys_ = request.system
        if sys_.helm:
            tasks.append(("helm", lambda: dump.note("helm", f"no Helm releases: {NOT_HERE}")))
        if sys_.database:
            tasks.append(("database", lambda: dump.note("database", NO_DATABASE)))
        if sys_.version:
            tasks.append(("version", dump.version))
        for kind, apps in (("describes", sys_.describes), ("logs", sys_.logs),
                           ("loki-logs", sys_.loki_logs)):
            if apps:
                tasks.append((kind, lambda apps=apps, kind=kind: dump.apps_not_here(kind, apps)))
        if sys_.profiles:
            tasks.append(("profiles", lambda: dump.for_apps(sys_.profiles, dump.threads)))
        if sys_.binaries:
            tasks.append(("binaries", lambda: dump.for_apps(sys_.binaries, dump.binary)))
        for chunk in dump.stream(tasks):
            if isinstance(chunk, bytes):
                yield debug_pb2.DumpChunk(content=debug_pb2.DumpContent(content=chunk))
            else:
                yield debug_pb2.DumpChunk(progress=chunk)

    def Dump(self, request, context):
        """pachd 2.6's dump (2.7 deprecated it for DumpV2): the same archive, no progress."""
        dump = _Dump(self.adapter.engine, self.version, time.monotonic() + DEFAULT_DUMP_TIMEOUT_S,
                     context.is_active, limit=request.limit or None)
        which = _this_process_only("Dump", request, also="pipeline")
        tasks = [("version", dump.version),
                 ("profiles", lambda: dump.for_apps([debug_pb2.App(name=APP)], dump.threads))]
        if which == "pipeline":
            tasks = [("pipelines", lambda: dump.pipelines([request.filter.pipeline.name]))]
        elif which is None:
            tasks += [("source-repos", dump.input_repos),
                      ("pipelines", lambda: dump.pipelines(
                          [p.name for p in self.adapter.engine.list_pipelines()]))]
        for chunk in dump.stream(tasks):
            if isinstance(chunk, bytes):
                yield wrappers_pb2.BytesValue(value=chunk)

    def Profile(self, request, context):
        _this_process_only("Profile", request)
        name = request.profile.name
        if name == "cpu":
            seconds = (request.profile.duration.ToTimedelta().total_seconds()
                       if request.profile.HasField("duration") else DEFAULT_PROFILE_S)
            folded, meta = cpu_profile(seconds, context.is_active)
            files = {"cpu.folded": folded.encode(), "cpu-profile.json": _json(meta)}
        elif name == "goroutine":
            files = {"threads.txt": thread_dump().encode()}
        else:
            raise Abort(grpc.StatusCode.UNIMPLEMENTED,
                        f"profile {name!r} is not served by `pix2pix local serve` (it serves "
                        "'cpu', as folded stacks, and 'goroutine', as a dump of every Python "
                        "thread's stack)")
        for chunk in _chunks(_targz(files)):
            yield wrappers_pb2.BytesValue(value=chunk)

    def Binary(self, request, context):
        _this_process_only("Binary", request)
        for chunk in _chunks(source_zip()):
            yield wrappers_pb2.BytesValue(value=chunk)

    def SetLogLevel(self, request, context):
        which = request.WhichOneof("level")
        if which is None:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "no level provided")
        value = getattr(request, which)
        level = _LEVELS.get(value)
        if which == "grpc" and value == debug_pb2.SetLogLevelRequest.OFF:
            level = logging.CRITICAL + 10  # above every record: off
        if level is None:
            name = debug_pb2.SetLogLevelRequest.LogLevel.Name(value)
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"cannot set {which} log level to {name}")
        self._levels.set_for(LOGGERS[which], level, request.duration.ToTimedelta().total_seconds())
        return debug_pb2.SetLogLevelResponse(affected_pods=[POD])


def _this_process_only(call: str, request, also: str = "") -> str | None:
    """The request's filter (None, "pachd" or ``also``); any other answers UNIMPLEMENTED."""
    which = request.filter.WhichOneof("filter") if request.HasField("filter") else None
    if which not in (None, "pachd", also):
        raise Abort(grpc.StatusCode.UNIMPLEMENTED,
                    f"{call} with a {which} filter is not served by `pix2pix local serve`: it has "
                    "no workers or database of its own (transforms run as short-lived local "
                    "processes); only the server itself (no filter, or pachd) can be asked")
    return which


# -- the dump -----------------------------------------------------------------------------------
class _Dump:
    """The files of a dump, task by task, into one streamed tar.gz."""

    def __init__(self, engine, version: str, deadline: float, is_active: Callable[[], bool],
                 limit: int | None = None) -> None:
        self.engine, self.server_version, self.deadline = engine, version, deadline
        self.is_active, self.limit = is_active, limit
        self._files: dict[str, bytes] = {}

    def stream(self, tasks: list[tuple[str, Callable[[], Iterator[int]]]]) -> Iterator[Any]:
        """Run each task; yield a DumpProgress after each item it finishes and the archive's
        bytes in CHUNK_BYTES pieces as they fill (the rest at the end)."""
        sink = _Sink()
        with tarfile.open(fileobj=sink, mode="w|gz") as tar:
            for task, run in tasks:
                try:
                    for done, total in run():
                        self._flush(tar)
                        yield debug_pb2.DumpProgress(task=task, progress=done, total=total)
                        yield from sink.take(CHUNK_BYTES)
                        if not self.is_active():
                            return  # the client went away
                except Exception as e:  # noqa: BLE001 - as pachd: the task's error goes in the dump
                    self._files[f"{task}/error.txt"] = f"{type(e).__name__}: {e}\n".encode()
                self._flush(tar)
        yield from sink.take(0)

    def _flush(self, tar: tarfile.TarFile) -> None:
        for name, data in self._files.items():
            _add(tar, name, data)
        self._files.clear()

    def _each(self, folder: str, names: list[str], collect: Callable[[str, str], None]):
        """``collect(prefix, name)`` for each name; a failure or the timeout is its error.txt."""
        for i, name in enumerate(names, 1):
            prefix = f"{folder}/{PROJECT}/{name}"
            try:
                if time.monotonic() > self.deadline:
                    raise TimeoutError("the dump's timeout passed before this was collected")
                collect(prefix, name)
            except Exception as e:  # noqa: BLE001 - one missing item must not end the dump
                self._files[f"{prefix}/error.txt"] = f"{type(e).__name__}: {e}\n".encode()
            yield i, len(names)

    # Tasks: each yields (items done, items in all) after each item.
    def input_repos(self) -> Iterator[tuple[int, int]]:
        users = [r.name for r in self.engine.list_repos() if r.type == "user"]
        return self._each("source-repos", users, self._repo)

    def pipelines(self, names: list[str]) -> Iterator[tuple[int, int]]:
        return self._each("pipelines", names, self._pipeline)

    def version(self) -> Iterator[tuple[int, int]]:
        self._files[f"{APP}/{POD}/{APP}/version.txt"] = f"{self.server_version}\n".encode()
        yield 1, 1

    def note(self, prefix: str, text: str) -> Iterator[tuple[int, int]]:
        """What pachd would collect there and this server has not: ``<prefix>/error.txt``."""
        self._files[f"{prefix}/error.txt"] = f"{text}\n".encode()
        yield 1, 1

    def apps_not_here(self, kind: str, apps) -> Iterator[tuple[int, int]]:
        for i, app in enumerate(apps, 1):
            self._files[f"{_app_dir(app)}/{kind}-error.txt"] = f"no pod {kind}: {NOT_HERE}\n".encode()
            yield i, len(apps)

    def for_apps(self, apps, collect: Callable[[str], None]) -> Iterator[tuple[int, int]]:
        """Profiles and binaries: of this server (app ``pachd``); other apps have none here."""
        for i, app in enumerate(apps, 1):
            if app.name == APP and not app.HasField("pipeline"):
                collect(f"{APP}/pods/{POD}")
            else:
                self._files[f"{_app_dir(app)}/error.txt"] = (
                    f"app {app.name!r} has no process to profile here: transforms run as "
                    "short-lived local processes of the engine\n").encode()
            yield i, len(apps)

    def threads(self, prefix: str) -> None:
        self._files[f"{prefix}/{APP}/threads.txt"] = thread_dump().encode()

    def binary(self, prefix: str) -> None:
        self._files[f"{prefix}/binary.zip"] = source_zip()

    # The engine's records.
    def _repo(self, prefix: str, repo: str) -> None:
        eng = self.engine
        info = next((r for r in eng.list_repos() if r.name == repo), None)
        self._files[f"{prefix}/repo.json"] = _json(
            {"repo": info, "branches": eng.list_branches(repo)})
        commits = eng.list_open_commits(repo) + eng.list_commits(repo)
        commits.sort(key=lambda c: c.started, reverse=True)
        self._files[f"{prefix}/commits.json"] = _json(commits[:self.limit])

    def _pipeline(self, prefix: str, name: str) -> None:
        eng = self.engine
        self._files[f"{prefix}/spec.json"] = _json(eng.inspect_pipeline(name))
        self._repo(prefix, name)
        jobs = eng.list_jobs(name)[:self.limit]
        self._files[f"{prefix}/jobs.json"] = _json(jobs)
        self._files[f"{prefix}/datums.json"] = _json(
            [d for j in jobs for d in eng.list_datums(name, j.id)])
        lines = [f"{ln.job_id} {ln.datum_id or '-'} {ln.message.rstrip()}"
                 for j in reversed(jobs) for ln in eng.logs(name, j.id)]
        self._files[f"{prefix}/logs.txt"] = "".join(f"{ln}\n" for ln in lines).encode()


def _app_dir(app) -> str:
    """Where pachd puts an app's files: ``pipelines/<project>/<name>`` or the app's name."""
    if app.HasField("pipeline"):
        return f"pipelines/{app.pipeline.project or PROJECT}/{app.pipeline.name}"
    return app.name or "unnamed-app"


def _json(value: Any) -> bytes:
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return dataclasses.asdict(v)
        return str(v)

    return (json.dumps(value, indent=2, default=plain) + "\n").encode()


class _Sink(io.RawIOBase):
    """A write-only file the tar.gz goes into; :meth:`take` hands its bytes on in chunks."""

    def __init__(self) -> None:
        super().__init__()
        self._buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self._buf += b
        return len(b)

    def take(self, at_least: int) -> Iterator[bytes]:
        """Chunks of CHUNK_BYTES while at least ``at_least`` bytes wait (0: everything)."""
        while self._buf and len(self._buf) >= max(at_least, 1):
            chunk, self._buf = bytes(self._buf[:CHUNK_BYTES]), self._buf[CHUNK_BYTES:]
            yield chunk


def _targz(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            _add(tar, name, data)
    return out.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(data))


def _chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), CHUNK_BYTES):
        yield data[i:i + CHUNK_BYTES]


# -- the binary: this server's code -------------------------------------------------------------
def source_zip() -> bytes:
    """The installed ``pix2pix`` package's files (no bytecode caches), as ``pix2pix/...``."""
    import pix2pix

    root = Path(pix2pix.__file__).resolve().parent
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                zf.write(path, Path("pix2pix", path.relative_to(root)).as_posix())
    return out.getvalue()


# -- stacks and the CPU profile -----------------------------------------------------------------
def thread_dump() -> str:
    """Every Python thread of this process, by name, with its stack (innermost call last)."""
    threads = {t.ident: t for t in threading.enumerate()}
    frames = sys._current_frames()
    out = [f"pix2pix local serve, pid {os.getpid()}, {len(frames)} threads, "
           f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"]
    for ident, frame in sorted(frames.items(), key=lambda kv: _thread_name(threads, kv[0])):
        t = threads.get(ident)
        daemon = " daemon" if t is not None and t.daemon else ""
        out.append(f"\nthread {_thread_name(threads, ident)} (ident {ident}{daemon}):\n")
        out.extend(traceback.format_stack(frame))
    return "".join(out)


def _thread_name(threads: dict, ident: int) -> str:
    t = threads.get(ident)
    return t.name if t is not None else f"thread-{ident}"


def cpu_profile(seconds: float, is_active: Callable[[], bool] = lambda: True,
                interval_s: float = SAMPLE_INTERVAL_S) -> tuple[str, dict]:
    """Sample every other thread's stack for ``seconds``; returns (folded stacks, metadata).

    Each sample adds to a thread's current stack the CPU time that thread used since the previous
    sample (microseconds), so idle threads (waiting on a lock or a socket) add nothing. Without
    per-thread CPU clocks (no schedstat) each sample adds 1 to every thread: a wall clock
    profile. (A stack through a running generator can come out cut short: CPython 3.11 may not
    link its frame to its caller's.)
    """
    me = threading.get_ident()
    clock = _thread_cpu_clock()
    weights: Counter[str] = Counter()
    last: dict[int, float] = {}
    samples = 0
    tick = time.monotonic()
    end = tick + max(0.0, seconds)
    while tick < end and is_active():
        threads = {t.ident: t for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            t = threads.get(ident)
            if clock is None:
                weight = 1
            else:
                cpu = clock(getattr(t, "native_id", None))
                prev, last[ident] = last.get(ident), cpu
                if cpu is None or prev is None or cpu <= prev:
                    continue  # first sight, no clock, or no CPU used since the last sample
                weight = round((cpu - prev) * 1e6)
            weights[_folded(_thread_name(threads, ident), frame)] += weight
        samples += 1
        # On a fixed schedule, so the time a sample takes does not lower the rate.
        tick = max(tick + interval_s, time.monotonic())
        time.sleep(max(0.0, tick - time.monotonic()))
    folded = "".join(f"{stack} {w}\n" for stack, w in sorted(weights.items()) if w > 0)
    meta = {"format": "folded stacks (flamegraph.pl): thread;outer;...;inner weight",
            "weight": "CPU microseconds" if clock else "samples (wall clock)",
            "duration_s": seconds, "interval_s": interval_s, "samples": samples,
            "pid": os.getpid()}
    return folded, meta


def _folded(thread: str, frame) -> str:
    names = []
    while frame is not None:
        code = frame.f_code
        names.append(f"{getattr(code, 'co_qualname', code.co_name)} "
                     f"({_short(code.co_filename)}:{code.co_firstlineno})")
        frame = frame.f_back
    return ";".join([thread.replace(";", ":"), *reversed(names)]).replace("\n", " ")


@functools.lru_cache(maxsize=4096)
def _short(filename: str) -> str:
    """A file as its import path (``pix2pix/pachyderm/engine.py``) where it is under sys.path."""
    for root in sorted((p.rstrip(os.sep) for p in sys.path if p), key=len, reverse=True):
        if filename.startswith(root + os.sep):
            return filename[len(root) + 1:].replace(";", ":")
    return filename.replace(";", ":")


def _thread_cpu_clock() -> Callable[[int | None], float | None] | None:
    """A function: native thread ID -> CPU seconds it used (Linux's per-thread schedstat, in
    nanoseconds); None where /proc has none."""
    task = Path("/proc/self/task")
    if not (task / str(threading.get_native_id()) / "schedstat").is_file():
        return None

    def schedstat(tid: int | None) -> float | None:
        try:
            return int((task / str(tid) / "schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            return None
    return schedstat


# -- log levels ---------------------------------------------------------------------------------
class _LevelResetter:
    """Set a logger's level for a while, then put back the level it had before the first change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._orig: dict[str, int] = {}
        self._timers: dict[str, threading.Timer] = {}

    def set_for(self, name: str, level: int, seconds: float) -> None:
        logger = logging.getLogger(name)
        with self._lock:
            self._orig.setdefault(name, logger.level)
            if name in self._timers:
                self._timers.pop(name).cancel()
            logger.setLevel(level)
            timer = threading.Timer(max(0.0, seconds), self._revert, args=(name,))
            timer.daemon = True
            self._timers[name] = timer
            timer.start()

    def _revert(self, name: str) -> None:
        with self._lock:
            self._timers.pop(name, None)
            if name in self._orig:
                logging.getLogger(name).setLevel(self._orig.pop(name))
