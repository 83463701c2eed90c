"""Cron inputs, as pachd runs them (``src/server/pps/server/monitor.go``), on the local clock.

A cron input ``{"name": "tick", "spec": "@every 60s"}`` of pipeline ``p`` reads repo
``p_tick`` (its ``repo``), branch master, glob ``/*``. Each tick is a commit to that repo holding
an empty file named after the tick's time in RFC 3339 (``2026-12-01T11:00:00Z``); with
``overwrite`` the commit first deletes the older tick files. The next tick follows the latest one
(the newest file name, or the input's ``start``, set when the pipeline is created), so ticks
missed while nothing ran are made at once, one commit each, as pachd makes them.

The ticks are made by the pipeline's supervisor (``pix2pix local supervise``, started by create
and start pipeline, stopped by stop and delete pipeline), which runs the jobs they cause.
``run cron`` (pachd's RunCron) makes one tick of every cron input now.

Schedules are robfig/cron's standard syntax, which pachd parses: five fields (minute hour
day-of-month month day-of-week), the descriptors @yearly @monthly @weekly @daily @hourly,
``@every <Go duration>`` (``@every 1h30m``) and Pachyderm's ``@never``.
"""
from __future__ import annotations

import datetime as dt
import signal
import time
from typing import Callable, Optional

from pix2pix.errors import SpecError
from pix2pix.pachyderm import files as pfsfiles
from pix2pix.pachyderm.context import Context
from pix2pix.pachyderm.info import PipelineInfo
from pix2pix.pachyderm.schedules import parse_go_duration, schedule  # noqa: F401 (re-exported)
from pix2pix.pachyderm.spec import CronInput, PipelineSpec

POLL_S = 0.5  # how often a waiting ticker checks that its pipeline still runs
def crons(spec: PipelineSpec) -> list[CronInput]:
    return [n.cron for n in spec.input.walk() if n.cron is not None]


def has_cron(p: PipelineInfo) -> bool:
    return bool(crons(p.parsed))


def tick_name(when: dt.datetime) -> str:
    """Go's RFC 3339 form of a tick time: ``2026-12-01T11:00:00Z`` (``+01:00`` off UTC)."""
    text = when.astimezone().replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _parse_tick(name: str) -> Optional[dt.datetime]:
    try:
        return dt.datetime.fromisoformat(name.replace("Z", "+00:00"))
    except ValueError:
        return None


def latest(ctx: Context, cron: CronInput) -> dt.datetime:
    """The time the next tick follows: the newest tick file's, or the input's start."""
    start = _parse_tick(cron.start) if cron.start else None
    start = start or dt.datetime.now().astimezone()
    branch = ctx.store.get_branch(cron.repo, "master")
    if branch is None or branch.head is None:
        return start
    ticks = [t for f in pfsfiles.list_files(ctx, cron.repo, "master", "/")
             if (t := _parse_tick(f.path.lstrip("/"))) is not None]
    return max([start] + ticks)


def tick(ctx, cron: CronInput, when: dt.datetime, *, run: Optional[bool] = None) -> None:
    """One tick of one cron input: a commit to its repo with the tick's file (after deleting the
    older ones when ``overwrite``). ``ctx`` is the Engine: the commit runs what it triggers
    unless deferred."""
    ops = []
    if cron.overwrite:
        branch = ctx.store.get_branch(cron.repo, "master")
        if branch is not None and branch.head is not None:
            ops += [pfsfiles.FileOp("delete", f.path)
                    for f in pfsfiles.list_files(ctx, cron.repo, "master", "/")]
    ops.append(pfsfiles.file_op(ctx, "/" + tick_name(when), b"", where="cron tick"))
    ctx.modify(cron.repo, "master", ops, description=f"cron tick {tick_name(when)}", run=run)


def run_cron(eng, name: str, *, run: Optional[bool] = None) -> list[str]:
    """pachd's RunCron: one tick of each of the pipeline's cron inputs, at the same time now.
    Returns the tick file names.

    Raises:
        SpecError: the pipeline has no cron input (pachd's FailedPrecondition).
    """
    p = eng.inspect_pipeline(name)
    inputs = crons(p.parsed)
    if not inputs:
        raise SpecError(f"pipeline {name} doesn't have a cron input")
    now = dt.datetime.now().astimezone()
    for c in inputs:
        tick(eng, c, now, run=run)
    return [tick_name(now)] * len(inputs)


class _Stop(Exception):
    pass


def run_ticker(eng, name: str, *, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now().astimezone(),
               sleep: Callable[[float], None] = time.sleep) -> None:
    """The supervisor's loop for a cron pipeline: tick each input on its schedule while the
    pipeline exists and runs (SIGTERM, stop or delete pipeline end it)."""
    def on_term(signum, frame):
        raise _Stop
    signal.signal(signal.SIGTERM, on_term)
    store = eng.store
    store.set_service(name, state="running", detail="")
    try:
        while True:
            p = store.get_pipeline(name)
            if p is None or p.state != "running":
                return
            due: list[tuple[dt.datetime, CronInput]] = []
            for c in crons(p.parsed):
                nxt = schedule(c.spec)(latest(eng, c))
                if nxt is not None:
                    due.append((nxt, c))
            if not due:
                return  # @never only: nothing will ever tick (run cron still does)
            when = min(t for t, _ in due)
            wait = (when - clock()).total_seconds()
            if wait > 0:
                sleep(min(wait, POLL_S))
                continue
            for t, c in due:
                if t <= when:
                    tick(eng, c, t)
    except _Stop:
        pass
    finally:
        if store.get_pipeline(name) is not None:
            store.set_service(name, state="stopped", pid=None, pid_start=None)
