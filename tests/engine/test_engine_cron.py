"""Cron inputs on the embedded engine, as pachd runs them: a tick repo per input, one commit
per tick holding an empty file named by the tick's RFC 3339 time, ticks following the latest
one (missed ticks made at once), `run cron` ticking now, and the ticker under the pipeline's
supervisor, stopped by stop and delete pipeline."""
from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from pix2pix.errors import SpecError
from pix2pix.pachyderm import cron

UTC = dt.timezone.utc


def cron_spec(name: str = "tick", schedule: str = "@never", *, overwrite: bool = False,
              script: str = 'for f in /pfs/clock/*; do cp "$f" /pfs/out/; done', **cron_extra) -> dict:
    return {"pipeline": {"name": name},
            "input": {"cron": {"name": "clock", "spec": schedule, "overwrite": overwrite,
                               **cron_extra}},
            "transform": {"cmd": ["bash"], "stdin": ["set -e", script]}}


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize("spec, after, expected", [
    ("@every 90s", "2026-12-01T10:00:00.500", "2026-12-01T10:01:30"),
    ("@every 1h30m", "2026-12-01T10:00:00", "2026-12-01T11:30:00"),
    ("*/15 * * * *", "2026-12-01T10:07:00", "2026-12-01T10:15:00"),
    ("0 3 * * 1", "2026-12-01T10:00:00", "2026-12-07T03:00:00"),  # a Monday
    ("@hourly", "2026-12-01T10:00:00", "2026-12-01T11:00:00"),
    ("@daily", "2026-12-01T10:00:00", "2026-12-02T00:00:00"),
])
def test_schedules_as_robfig_cron_reads_them(spec: str, after: str, expected: str):
    assert cron.schedule(spec)(at(after)) == at(expected)


def test_never_and_bad_schedules():
    assert cron.schedule("@never")(at("2026-12-01T10:00:00")) is None
    for bad in ("every 5s", "* * * *", "61 * * * *", "@every", "@every 5x", "@sometimes"):
        with pytest.raises(ValueError):
            cron.schedule(bad)
    assert cron.parse_go_duration("1h2m3.5s") == 3723.5


def test_tick_names_are_rfc3339_as_go_writes_them():
    import re
    assert re.fullmatch(r"2026-12-01T\d\d:\d\d:00(Z|[+-]\d\d:\d\d)",
                        cron.tick_name(at("2026-12-01T10:00:00")))
    name = cron.tick_name(dt.datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC))
    assert dt.datetime.fromisoformat(name.replace("Z", "+00:00")) == at("2026-12-01T10:00:00")


def test_a_bad_cron_input_is_refused_naming_the_field(eng):
    with pytest.raises(SpecError, match=r"input\.cron\.spec: .*not a valid cron schedule"):
        eng.create_pipeline(cron_spec(schedule="61 * * * *"))
    with pytest.raises(SpecError, match=r"input\.cron\.name"):
        eng.create_pipeline(cron_spec(name="p") | {"input": {"cron": {"spec": "@never"}}})
    assert eng.list_repos() == []  # nothing half-made


def test_create_makes_the_tick_repo_and_fills_the_defaults(eng):
    p = eng.create_pipeline(cron_spec())
    c = p.spec["input"]["cron"]
    assert c["repo"] == "tick_clock" and dt.datetime.fromisoformat(c["start"].replace("Z", "+00:00"))
    r = eng.inspect_repo("tick_clock")
    assert r.type == "user" and "Cron tick repo for pipeline tick" in r.description
    eng.delete_pipeline("tick")
    assert [r.name for r in eng.list_repos()] == []  # its tick repo goes with it, as in pachd


def test_run_cron_ticks_now_and_the_job_reads_the_tick(eng):
    eng.create_pipeline(cron_spec())
    before = dt.datetime.now(UTC).replace(microsecond=0)
    (name,) = eng.run_cron("tick")
    assert dt.datetime.fromisoformat(name.replace("Z", "+00:00")) >= before
    assert [f.path for f in eng.list_files("tick_clock", "master")] == [f"/{name}"]
    assert eng.get_file("tick_clock", "master", f"/{name}") == b""
    assert [f.path for f in eng.list_files("tick", "master")] == [f"/{name}"]
    job = eng.list_jobs("tick")[0]
    assert job.state == "success" and job.processed == 1
    time.sleep(1.1)
    eng.run_cron("tick")  # a second tick: a new datum; the first is skipped (already done)
    assert len(eng.list_files("tick_clock", "master")) == 2
    job = eng.list_jobs("tick")[0]
    assert (job.processed, job.skipped) == (1, 1)


def test_overwrite_keeps_only_the_latest_tick(eng):
    eng.create_pipeline(cron_spec(overwrite=True))
    eng.run_cron("tick")
    time.sleep(1.1)
    (name,) = eng.run_cron("tick")
    assert [f.path for f in eng.list_files("tick_clock", "master")] == [f"/{name}"]
    assert [f.path for f in eng.list_files("tick", "master")] == [f"/{name}"]


def test_run_cron_without_a_cron_input_is_refused(eng):
    eng.create_repo("images")
    eng.create_pipeline({"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "images", "glob": "/"}},
                         "transform": {"cmd": ["true"]}})
    with pytest.raises(SpecError, match="doesn't have a cron input"):
        eng.run_cron("p")


def test_the_ticker_follows_the_latest_tick_and_catches_up(eng):
    """With a fake clock: start 10:00:00, every 10 s, the clock at 10:00:35 -> the three missed
    ticks (10, 20, 30 s) are made at once, one commit each, then it waits for 10:00:40."""
    start = "2026-12-01T10:00:00Z"
    eng.create_pipeline(cron_spec(schedule="@every 10s", start=start), run=False)
    now = [at("2026-12-01T10:00:35")]
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        if len(waits) >= 3:  # it has been waiting for the next tick: stop it
            eng.store.set_pipeline_state("tick", "paused")
    cron.run_ticker(eng, "tick", clock=lambda: now[0], sleep=sleep)
    names = [f.path for f in eng.list_files("tick_clock", "master")]
    assert names == ["/2026-12-01T10:00:10Z", "/2026-12-01T10:00:20Z", "/2026-12-01T10:00:30Z"]
    assert len(eng.list_commits("tick_clock", origin="USER")) == 3  # one commit per tick
    assert 0 < waits[0] <= cron.POLL_S


@pytest.mark.slow
def test_the_supervisor_ticks_on_the_local_clock_until_stopped(pix, tmp_path: Path, eng):
    spec = tmp_path / "tick.json"
    spec.write_text(json.dumps(cron_spec(schedule="@every 1s")))
    r = pix("create", "pipeline", "-f", str(spec))
    assert r.returncode == 0, r.stderr
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(eng.list_files("tick", "master")) < 2:
            time.sleep(0.2)
        assert len(eng.list_files("tick", "master")) >= 2  # ticks made and their jobs run
        assert pix("stop", "pipeline", "tick").returncode == 0
        n = len(eng.list_files("tick_clock", "master"))
        time.sleep(2.5)
        assert len(eng.list_files("tick_clock", "master")) == n  # stopped: no more ticks
    finally:
        assert pix("delete", "pipeline", "tick").returncode == 0
    assert "tick_clock" not in [r.name for r in eng.list_repos()]
