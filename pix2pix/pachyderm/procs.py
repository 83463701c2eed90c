"""Processes the engine starts or finds: is the process that owns an open commit or a running
job still alive (pids are checked with their start time, so a recycled pid is not mistaken for
its predecessor), and stopping the user code a killed engine process left behind."""
from __future__ import annotations

import os
import signal
from pathlib import Path


def pid_start(pid: int) -> str:
    """The start time of a process (from /proc); "" where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_alive(pid: int | None, start: str | None) -> bool:
    """True while the process ``pid`` that started at ``start`` runs (a zombie, exited but not
    yet reaped by its parent, does not)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if _zombie(pid):
        return False  # exited, not yet reaped by its parent (e.g. a supervisor this process started)
    return not start or pid_start(pid) in ("", start)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


def me() -> tuple[int, str]:
    """This process's (pid, start time), as stored beside what it owns."""
    return os.getpid(), pid_start(os.getpid())


def stop_orphans(job_dir: Path) -> None:
    """Stop the user code a killed engine process left running, if it still runs in that job's
    folder (checked through /proc, so a recycled pid is never hit)."""
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
