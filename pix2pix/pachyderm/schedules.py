"""Cron schedules as pachd reads them (robfig/cron's ParseStandard, plus Pachyderm's @never):
five fields (minute hour day-of-month month day-of-week), @yearly/@monthly/@weekly/@daily/
@hourly, and ``@every <Go duration>``. The five-field syntax is croniter's (a well-kept parser,
imported only when a cron spec is read); ``@every`` and ``@never`` are pachd's own.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Callable, Optional

_GO_DURATION = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

Schedule = Callable[[dt.datetime], Optional[dt.datetime]]


def parse_go_duration(text: str) -> float:
    """``"1h30m"`` -> 5400.0 seconds (Go's time.ParseDuration syntax, without a sign)."""
    t = text.strip()
    parts = _GO_DURATION.findall(t)
    if not t or "".join(n + u for n, u in parts) != t:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m or 1h30m")
    return sum(float(n) * _GO_UNITS[u] for n, u in parts)


def schedule(spec: str) -> Schedule:
    """``next(after)``: the first tick strictly after ``after`` (None: never again).

    Raises:
        ValueError: not a schedule robfig/cron's ParseStandard (or @never) accepts.
    """
    s = spec.strip()
    if s == "@never":
        return lambda after: None
    if s.startswith("@every"):
        seconds = max(1.0, round(parse_go_duration(s[len("@every"):].strip())))
        # robfig's constant delay: whole seconds after the previous tick.
        return lambda after: after.replace(microsecond=0) + dt.timedelta(seconds=seconds)
    from croniter import croniter
    if len(s.split()) != 5 and not s.startswith("@"):
        raise ValueError(f"{spec!r}: expected five fields (minute hour day month weekday), "
                         "@hourly/@daily/..., @every <duration> or @never")
    if not croniter.is_valid(s):
        raise ValueError(f"{spec!r} is not a valid cron schedule")
    return lambda after: croniter(s, after).get_next(dt.datetime)


def check(spec: str) -> Optional[str]:
    """Why a cron schedule is invalid, or None."""
    try:
        schedule(spec)
    except ValueError as e:
        return str(e)
    return None
