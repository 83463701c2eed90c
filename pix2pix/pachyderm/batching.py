"""Datum batching (``transform.datumBatching``): the user code starts once and asks for each
datum over the worker's ``NextDatum`` call (see worker.py), as on Pachyderm.

    NextDatum(error)  ->  finish the datum being served (its log slice, outputs or failure),
                          then place the next one (or the same one again for another try)
    the code exits    ->  the datum being served failed that try; the code is started again
                          and served that datum again, or the next once datumTries are used up
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

from pix2pix.errors import JobError
from pix2pix.pachyderm.datums import Datum
from pix2pix.pachyderm.driver import Driver
from pix2pix.pachyderm.executors import stop
from pix2pix.pachyderm.worker import DatumServer

POLL_S = 0.05
STOP_CHECK_POLLS = 20  # look for a StopJob about once a second


@dataclass
class _Serving:
    """Where the batch stands: the datum being served, its try, and its log so far."""

    index: int = -1          # into the todo list; -1 before the first NextDatum
    attempt: int = 0
    log_offset: int = 0      # bytes of the shared log already given to earlier datums
    log: str = ""
    started: Optional[float] = None
    after_restart: Optional[str] = None  # "retry" | "advance": what the restarted code gets


class BatchingRun:
    """Serve ``todo`` to one run of the user code, restarting it when it dies mid-datum."""

    def __init__(self, driver: Driver, todo: list[Datum]) -> None:
        self.driver, self.todo = driver, todo
        self.at = _Serving()

    def run(self) -> None:
        drv = self.driver
        drv.open_workspaces(1)
        ws = drv.ws
        self.log_path = ws.dir / "log-batch"
        server = DatumServer(self.next_datum)
        port = server.start()
        try:
            base_env = drv.env(self.todo[0])
            base_env["PPS_WORKER_GRPC_PORT"] = str(port)
            (ws.root / "out").mkdir(parents=True, exist_ok=True)
            for _ in range(len(self.todo) * drv.tries + 1):
                proc = ws.start(ws.request(drv.transform, base_env, self.log_path))
                polls = 0
                while proc.poll() is None and not server.finished.is_set():
                    if drv.spec.job_timeout is not None and \
                            time.monotonic() - drv.started > drv.spec.job_timeout:
                        stop(proc)
                        raise JobError(f"jobTimeout {drv.spec.raw['jobTimeout']} exceeded")
                    polls += 1
                    if polls % STOP_CHECK_POLLS == 0:
                        try:
                            drv.check_stopped()
                        except JobError:
                            stop(proc)
                            raise
                    time.sleep(POLL_S)
                if server.finished.is_set():
                    stop(proc)
                    return
                if server.calls == 0:
                    raise JobError(f"transform.datumBatching is true but the code exited "
                                   f"(exit code {proc.returncode}) without calling NextDatum; "
                                   "use python_pachyderm's batch_all_datums or next_datum")
                with server.lock:
                    if self.at.index >= len(self.todo):
                        return
                    retry = self.finish_current(
                        f"the code exited with code {proc.returncode} during the datum")
                    if not retry and self.at.index + 1 >= len(self.todo):
                        return
                    self.at.after_restart = "retry" if retry else "advance"
            raise JobError("the batching code keeps exiting; see `pix2pix logs`")
        finally:
            server.stop()

    def finish_current(self, error: str) -> bool:
        """End the current try of the datum being served with its slice of the log; True if
        it must be served again (another try)."""
        drv, at = self.driver, self.at
        d = self.todo[at.index]
        size = self.log_path.stat().st_size if self.log_path.exists() else 0
        chunk = ""
        if size > at.log_offset:
            with open(self.log_path, "rb") as f:
                f.seek(at.log_offset)
                chunk = drv.ws.as_pfs(f.read(size - at.log_offset).decode(errors="replace"))
        at.log_offset = size
        at.log += (f"--- try {at.attempt} of {drv.tries} ---\n" if at.attempt > 1 else "") + chunk
        if not error:
            drv.succeed(d, at.log, at.attempt, at.started)
            return False
        if at.attempt < drv.tries:
            at.log += f"(try failed: {error})\n"
            return True
        if drv.transform.err_cmd and drv.recover(d, error, at.log, at.started):
            return False  # errCmd made it a recovered datum, as pachd counts it
        drv.fail_datum(d, error, at.log, at.attempt, at.started)
        return False

    def next_datum(self, error: str) -> Optional[dict[str, str]]:
        """NextDatum: finish the datum being served (if any), place the next; its env, or None
        when every datum is done."""
        at = self.at
        if at.after_restart is not None:
            retry, at.after_restart = at.after_restart == "retry", None
        elif at.index < 0:
            retry = False
        else:
            retry = self.finish_current(error)
        if not retry:
            at.index, at.attempt, at.log, at.started = at.index + 1, 0, "", time.time()
            if at.index >= len(self.todo):
                return None
        at.attempt += 1
        env = self.driver.prepare(self.todo[at.index])
        return self.driver.ws.as_code_sees(env)
