"""Where a transform runs: ``process`` (here, with this Python environment) or ``container``
(in ``transform.image`` with docker, podman or buildah).

The job's pfs folder on the host plays Pachyderm's ``/pfs``::

    <root>/<input name>/<repo path>   the datum's input files (copies of their blobs)
    <root>/out/                       empty before each datum; whatever is here afterwards is the
                                      datum's output
    <root>/.env                       the datum's env (what python_pachyderm's batch_datum loads)

``container`` mounts <root> at /pfs. ``process`` cannot (no root, no mount namespace), so it
rewrites the ``/pfs`` prefix in ``cmd``, ``stdin`` and env values to <root>; code that builds
``/pfs/...`` paths itself, without an argument or env var, only runs in a container.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pix2pix.errors import JobError, UsageError

_PFS = re.compile(r"(?<![\w.~-])/pfs(?![\w.~-])")


def rewrite_pfs(text: str, root: str) -> str:
    """``text`` with every ``/pfs`` path prefix replaced by ``root`` (the job's folder)."""
    return text if root == "/pfs" else _PFS.sub(root, text)
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./-]+$")


@dataclass
class RunRequest:
    """One start of the user code."""

    cmd: list[str]
    stdin: list[str] | None
    env: dict[str, str]          # Pachyderm's env and transform.env, paths under /pfs
    image: str | None
    pfs_root: Path               # host folder that is /pfs for the code
    work_dir: Path               # scratch working directory (process executor)
    log_path: Path               # stdout and stderr go here (appended)
    working_dir: str | None = None  # transform.workingDir
    extra: dict[str, str] = field(default_factory=dict)


class Executor:
    """Starts user code; subclasses say how."""

    name = "?"

    def visible_root(self, pfs_root: Path) -> str:
        """How the code sees /pfs (for env values and the .env file)."""
        return "/pfs"

    def start(self, req: RunRequest) -> subprocess.Popen:
        raise NotImplementedError

    def close(self) -> None:
        """Release per-job resources (containers, temp links)."""


def _feed_stdin(proc: subprocess.Popen, stdin: list[str] | None) -> None:
    if proc.stdin is None:
        return
    try:
        if stdin:
            proc.stdin.write(("\n".join(stdin) + "\n").encode())
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass  # the code exited without reading its stdin; its exit code tells what happened


class ProcessExecutor(Executor):
    """Runs the transform on this machine: ``/pfs`` rewritten to the job's folder, and this
    interpreter's bin folder first on PATH so ``pix2pix``/``python`` are this environment's."""

    name = "process"

    def __init__(self) -> None:
        self._links: list[Path] = []

    def visible_root(self, pfs_root: Path) -> str:
        root = str(pfs_root)
        if _SAFE_PATH.match(root):
            return root
        # A path with spaces or quotes would break shell stdin scripts: reach it through a
        # plain-named symlink instead.
        link = Path(tempfile.gettempdir()) / f"pix2pix-pfs-{uuid.uuid4().hex[:12]}"
        link.symlink_to(pfs_root, target_is_directory=True)
        self._links.append(link)
        return str(link)

    def start(self, req: RunRequest) -> subprocess.Popen:
        root = req.extra.get("root") or self.visible_root(req.pfs_root)
        req.extra["root"] = root
        env = dict(os.environ)
        bindir = os.path.dirname(sys.executable)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        env.pop("PYTHONHOME", None)
        for k, v in req.env.items():
            env[k] = rewrite_pfs(v, root)
        cmd = [rewrite_pfs(c, root) for c in req.cmd]
        stdin = [rewrite_pfs(s, root) for s in req.stdin] if req.stdin else None
        exe = shutil.which(cmd[0], path=env["PATH"]) if "/" not in cmd[0] else cmd[0]
        if exe is None:
            raise JobError(f"transform.cmd[0] {cmd[0]!r} is not installed on this machine "
                           "(process executor); install it or use --executor container")
        req.work_dir.mkdir(parents=True, exist_ok=True)
        cwd = req.work_dir
        if req.working_dir:
            # A folder of the image (/app) does not exist here: only /pfs/... or a host folder.
            wd = rewrite_pfs(req.working_dir, root)
            cwd = Path(wd) if os.path.isdir(wd) else req.work_dir
        log = open(req.log_path, "ab")
        try:
            proc = subprocess.Popen([exe] + cmd[1:], stdin=subprocess.PIPE, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                    start_new_session=True)
        finally:
            log.close()
        _feed_stdin(proc, stdin)
        return proc

    def close(self) -> None:
        for link in self._links:
            try:
                link.unlink()
            except OSError:
                pass
        self._links.clear()


def detect_runtime() -> str:
    """The first container tool that works here: $PIX2PIX_CONTAINER_RUNTIME, else docker,
    podman, buildah (docker/podman only if their daemon answers)."""
    return _detect(os.environ.get("PIX2PIX_CONTAINER_RUNTIME") or "")


@functools.lru_cache(maxsize=4)
def _detect(forced: str) -> str:
    candidates = [forced] if forced else ["docker", "podman", "buildah"]
    for tool in candidates:
        if not shutil.which(tool):
            continue
        probe = [tool, "--version"] if tool == "buildah" else [tool, "info"]
        try:
            ok = subprocess.run(probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                timeout=20).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return tool
    raise UsageError("--executor container needs docker, podman or buildah, and none works here; "
                     "use --executor process")


class ContainerExecutor(Executor):
    """Runs the transform in ``transform.image`` with the job folder mounted at /pfs.

    docker/podman: ``run --rm -i --network host -v ROOT:/pfs -e K=V IMAGE CMD``.
    buildah: ``from IMAGE`` once per job, ``config --env``, then
    ``run --isolation chroot -v ROOT:/pfs CONTAINER -- CMD`` with stdin piped in.
    """

    name = "container"

    def __init__(self, runtime: str | None = None) -> None:
        self.runtime = runtime or detect_runtime()
        self._containers: dict[str, str] = {}

    def start(self, req: RunRequest) -> subprocess.Popen:
        if not req.image:
            raise JobError("transform.image is not set; the container executor needs an image")
        root = str(req.pfs_root.resolve())
        if self.runtime == "buildah":
            cid = self._buildah_container(req.image)
            envs = [a for k, v in req.env.items() for a in ("--env", f"{k}={v}")]
            if req.working_dir:
                envs += ["--workingdir", req.working_dir]
            if envs:
                subprocess.run(["buildah", "config", *envs, cid], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            argv = ["buildah", "run", "--isolation", "chroot", "-v", f"{root}:/pfs", cid, "--",
                    *req.cmd]
        else:
            envs = [a for k, v in req.env.items() for a in ("-e", f"{k}={v}")]
            wd = ["-w", req.working_dir] if req.working_dir else []
            argv = [self.runtime, "run", "--rm", "-i", "--network", "host",
                    "-v", f"{root}:/pfs", *envs, *wd, req.image, *req.cmd]
        log = open(req.log_path, "ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        _feed_stdin(proc, req.stdin)
        return proc

    def _buildah_container(self, image: str) -> str:
        if image not in self._containers:
            out = subprocess.run(["buildah", "from", image], capture_output=True, text=True)
            if out.returncode != 0:
                raise JobError(f"buildah cannot use image {image!r}: "
                               f"{(out.stderr or out.stdout).strip().splitlines()[-1:]}")
            self._containers[image] = out.stdout.strip().splitlines()[-1]
        return self._containers[image]

    def close(self) -> None:
        for cid in self._containers.values():
            subprocess.run(["buildah", "rm", cid], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        self._containers.clear()


def make_executor(name: str) -> Executor:
    if name == "process":
        return ProcessExecutor()
    if name == "container":
        return ContainerExecutor()
    raise UsageError(f"executor {name!r}: expected process or container")


def stop(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """Terminate a started transform and everything it spawned (its process group)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def wait(proc: subprocess.Popen, timeout_s: float | None) -> tuple[int, bool]:
    """Wait for the code to end; (exit code, timed out). A timed-out code is killed."""
    try:
        return proc.wait(timeout=timeout_s), False
    except subprocess.TimeoutExpired:
        stop(proc, grace_s=2.0)
        return (proc.returncode if proc.returncode is not None else -9), True

