"""pachctl 2.x habits, typed as a pachctl user types them, on the embedded engine (``pix2pix``
in place of ``pachctl``). Each row of HABITS says whether it works as typed, differs (and how),
or is missing (and why); the scenario runs them in order on one state folder and checks each
claim, and docs/engine.md's habit table is generated from the same rows, so the two cannot
drift: ``python tests/engine/test_engine_pachctl_habits.py`` rewrites that table.
"""
from __future__ import annotations

import json
import os
import re
import select
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional


from engine_testlib import REPO_ROOT, bash_spec, pfs

DOC = REPO_ROOT / "docs" / "engine.md"
BEGIN, END = "<!-- pachctl-habits:begin -->", "<!-- pachctl-habits:end -->"


@dataclass
class Habit:
    typed: str  # as a pachctl user types it; {job}, {datum}, {commitset} are filled in
    status: str  # works | differs | missing
    note: str = ""
    code: int = 0  # the exit code expected
    out: tuple[str, ...] = ()  # substrings expected on stdout
    err: tuple[str, ...] = ()  # substrings expected on stderr
    stdin: Optional[str] = None
    env: dict = field(default_factory=dict)
    check: Optional[Callable] = None  # check(result, scenario) for anything more
    inprocess: bool = True  # False: a command that runs until interrupted; only check runs it


def _open_commit_read(r, s) -> None:
    assert r.stdout == "alpha"


def _job_sets(r, s) -> None:
    assert r.stdout.split()[:5] == ["ID", "SUBJOBS", "PROGRESS", "CREATED", "MODIFIED"]


def _raw_commit(r, s) -> None:
    assert json.loads(r.stdout)["repo"] == "images"


def _yaml_repos(r, s) -> None:
    import yaml
    assert {d["name"] for d in yaml.safe_load(r.stdout)} >= {"images"}


def _paused(r, s) -> None:
    assert s.eng().inspect_pipeline("up").state == "paused"


def _running(r, s) -> None:
    assert s.eng().inspect_pipeline("up").state == "running"


def _edited(r, s) -> None:
    p = s.eng().inspect_pipeline("up")
    assert p.description == "edited" and p.version >= 3


def _ticked(r, s) -> None:
    eng = s.eng()
    (tick,) = eng.list_files("tick_clock", "master")
    assert [f.path for f in eng.list_files("tick", "master")] == [tick.path]


def _subscribe(r, s) -> None:
    """subscribe commit runs until interrupted: read its first lines from a real process."""
    proc = subprocess.Popen([sys.executable, "-m", "pix2pix", "subscribe", "commit", "images@master"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PIX2PIX_STATE=str(s.state)), cwd=REPO_ROOT)
    out, deadline = b"", time.monotonic() + 60
    try:
        while out.count(b"\n") < 2 and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 1.0)[0]:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                out += chunk
        assert proc.poll() is None, "subscribe commit exited instead of waiting for commits"
    finally:
        proc.kill()
        proc.wait()
    header, first = (out.decode().splitlines() + ["", ""])[:2]
    assert header.split()[:2] == ["PROJECT", "REPO"] and "images" in first, out


HABITS: list[Habit] = [
    Habit("pachctl version", "works", out=("COMPONENT", "pachd")),
    Habit("pachctl create project vision", "works"),
    Habit("pachctl list project", "works", out=("vision", "default")),
    Habit("pachctl inspect project vision", "works", out=("Name: vision",)),
    Habit("pachctl create repo images", "works"),
    Habit("pachctl create repo photos --project vision", "works"),
    Habit("pachctl list repo", "works", out=("images",)),
    Habit("pachctl list repo --all-projects", "works", out=("vision", "photos")),
    Habit("pachctl inspect repo images", "works", out=("Name: images",)),
    Habit("pachctl put file images@master:/a.txt -f a.txt", "works"),
    Habit("pachctl put file images@master -f b.txt", "works",
          note="lands at /b.txt, as pachctl puts it"),
    Habit("pachctl put file -r images@master:/dir -f dir", "works"),
    Habit("pachctl put file images@master:/stdin.txt", "works", stdin="from stdin",
          note="-f defaults to stdin"),
    Habit("pachctl put file -i list.txt images@master", "works"),
    Habit("pachctl put file images@master:/url.txt -f file://{tmp}/a.txt", "works",
          note="http(s):// and file:// URLs"),
    Habit("pachctl put file images@master:/a.txt -a -f a.txt", "works"),
    Habit("pachctl put file --untar images@master:/t -f t.tar", "works"),
    Habit("pachctl list file images@master", "works", out=("/a.txt", "/dir/")),
    Habit("pachctl list file images@master:/dir", "works", out=("/dir/c.txt",)),
    Habit("pachctl get file images@master:/a.txt", "works", out=("alphaalpha",)),
    Habit("pachctl get file images@master:/a.txt -o got.txt", "works"),
    Habit("pachctl get file -r images@master:/dir -o gotdir", "works"),
    Habit("pachctl inspect file images@master:/a.txt", "works", out=("Path: /a.txt",)),
    Habit('pachctl glob file "images@master:/*.txt"', "works", out=("/a.txt", "/b.txt")),
    Habit("pachctl diff file images@master images@master^1", "works", out=("/t",)),
    Habit("pachctl copy file images@master:/a.txt images@master:/copy.txt", "works",
          note="the content is shared, not copied"),
    Habit("pachctl delete file images@master:/copy.txt", "works"),
    Habit("pachctl list commit images@master", "works", out=("USER",)),
    Habit("pachctl list commit images", "works", out=("images",)),
    Habit("pachctl list commit", "works", out=("SUBCOMMITS",), note="commit sets"),
    Habit("pachctl inspect commit images@master", "works", out=("Origin: USER",)),
    Habit("pachctl inspect commit images@master --raw", "works", check=_raw_commit),
    Habit("pachctl list repo --raw -o yaml", "works", check=_yaml_repos),
    Habit("pachctl start commit images@master", "works", note="prints the commit's ID"),
    Habit("pachctl put file images@master:/open.txt -f a.txt", "works",
          note="into the open head; nothing downstream runs until it is finished"),
    Habit("pachctl get file images@master:/open.txt", "works", check=_open_commit_read,
          note="reads of an open commit see its files"),
    Habit("pachctl start commit images@master", "works", code=6,
          err=("has not been finished",), note="refused while the head is open, as pachd"),
    Habit("pachctl finish commit images@master", "works"),
    Habit("pachctl wait commit images@master", "works", out=("images",)),
    Habit("pachctl subscribe commit images@master", "works", check=_subscribe,
          inprocess=False, note="until Ctrl-C"),
    Habit("pachctl create branch images@dev --head master", "works"),
    Habit("pachctl list branch images", "works", out=("dev", "master")),
    Habit("pachctl inspect branch images@dev", "works", out=("Head Commit: images@",)),
    Habit("pachctl delete branch images@dev", "works"),
    Habit("pachctl create pipeline -f up.json", "works",
          note="its first job runs before the command returns (--no-run queues it)"),
    Habit("pachctl list pipeline", "works", out=("up", "running")),
    Habit("pachctl inspect pipeline up", "works", out=("Name: up",)),
    Habit("pachctl list job", "works", check=_job_sets, note="job sets; -x or -p for jobs"),
    Habit("pachctl list job -p up", "works", out=("success",)),
    Habit("pachctl inspect job up@{job}", "works", out=("State: success",)),
    Habit("pachctl wait job up@{job}", "works", out=("State: success",)),
    Habit("pachctl list datum up@{job}", "works", out=("success",)),
    Habit("pachctl inspect datum up@{job} {datum}", "works", out=("State: success",)),
    Habit("pachctl list datum -f up.json", "works", out=("/a.txt",),
          note="a dry run over the input's heads"),
    Habit("pachctl logs -p up", "works", out=("copying",)),
    Habit("pachctl logs -p up -j {job}", "works", out=("copying",)),
    Habit("pachctl logs -p up -j {job} -f", "works", out=("copying",),
          note="follows until the job ends"),
    Habit("pachctl stop pipeline up", "works", check=_paused),
    Habit("pachctl start pipeline up", "works", check=_running),
    Habit("pachctl update pipeline -f up.json --reprocess", "works"),
    Habit("pachctl edit pipeline up", "works", check=_edited,
          env={"EDITOR": "sed -i 's/\"description\": \"[^\"]*\"/\"description\": \"edited\"/'"},
          note="$EDITOR or --editor"),
    Habit("pachctl draw pipeline", "works", out=("images", "└─▶ up")),
    Habit("pachctl list pipeline --history all", "works", out=("up",)),
    Habit("pachctl stop job up@{job}", "works", err=("success",),
          note="a job that ended is left as it is"),
    Habit("pachctl restart datum up@{job} /a.txt", "works", code=6,
          err=("could not be found",), note="only a running job's datums restart, as pachd"),
    Habit("pachctl fsck", "works", err=("no problems",)),
    Habit("pachctl squash commit {commitset}", "works", err=("squashed",)),
    Habit("pachctl delete commit {commitset_last}", "works", err=("deleted",)),
    Habit("pachctl create pipeline -f tick.json", "works", note="a cron input: its tick repo "
          "is made, and a supervisor ticks on the local clock"),
    Habit("pachctl run cron tick", "works", err=("1 cron tick(s) made",), check=_ticked),
    Habit("pachctl delete pipeline tick", "works"),
    Habit("pachctl delete pipeline up", "works"),
    Habit("pachctl delete repo images", "works"),
    Habit("pachctl delete repo missing", "works", err=("does not exist",),
          note="a missing repo is no error, as pachd"),
    Habit("pachctl delete project vision --force", "works"),
    Habit("pachctl list pipeline --state running", "differs", code=2, err=("--state",),
          note="--state names the engine's state folder here; filter with --raw and jq"),
    Habit("pachctl list repo -o json", "differs",
          note="-o works without --raw; --raw output is one JSON document (an array for "
               "lists), not one object per line, with the engine's field names"),
    Habit("pachctl create secret -f secret.json", "missing", code=2,
          note="Kubernetes secrets need a cluster (`pix2pix cluster`); specs that use them "
               "are refused with one line"),
    Habit("pachctl mount ./pfs", "missing", code=2,
          note="no FUSE here; `get file -r` copies a folder out"),
    Habit("pachctl port-forward", "missing", code=2,
          note="`pix2pix local serve` is the pachd endpoint on localhost"),
    Habit("pachctl config get active-context", "missing", code=2,
          note="no contexts: --state / PIX2PIX_STATE picks the engine, --project the project"),
    Habit("pachctl auth whoami", "missing", code=2, note="no auth or enterprise features"),
]


class Scenario:
    """The state folder, files a user would have at hand, and IDs the rows refer to."""

    def __init__(self, tmp: Path, state: Path):
        self.tmp, self.state = tmp, state
        (tmp / "a.txt").write_text("alpha")
        (tmp / "b.txt").write_text("beta")
        (tmp / "dir").mkdir()
        (tmp / "dir" / "c.txt").write_text("gamma")
        (tmp / "list.txt").write_text(f"{tmp / 'b.txt'}\n")
        import tarfile
        with tarfile.open(tmp / "t.tar", "w") as t:
            t.add(tmp / "b.txt", arcname="in_tar.txt")
        spec = bash_spec("up", pfs("images", "/*"),
                         'for f in $(find /pfs/images -type f); do echo "copying $f"; '
                         'cp "$f" /pfs/out/; done', description="copies")
        (tmp / "up.json").write_text(json.dumps(spec, indent=2))
        (tmp / "secret.json").write_text("{}")
        tick = {"pipeline": {"name": "tick"}, "input": {"cron": {"name": "clock", "spec": "@never"}},
                "transform": {"cmd": ["bash"], "stdin": ["cp /pfs/clock/* /pfs/out/"]}}
        (tmp / "tick.json").write_text(json.dumps(tick))

    def eng(self):
        from pix2pix.pachyderm.engine import Engine
        return Engine(self.state)

    def fill(self, typed: str) -> list[str]:
        values = {"tmp": str(self.tmp)}
        if "{job" in typed or "{datum" in typed:
            job = self.eng().list_jobs("up")[0]
            values["job"] = job.id
            values["datum"] = self.eng().list_datums("up", job.id)[0].id
        if "{commitset" in typed:
            sets = self.eng().list_commit_sets()
            # A commit set whose commits all have children (squash keeps their data in them),
            # and the newest one (each of its commits is a branch head: it can be dropped).
            values["commitset"] = next(
                cs for cs in sets
                if all(self.eng().commit_children(c.repo, c.id)
                       for c in self.eng().inspect_commit_set(cs)))
            values["commitset_last"] = sets[0]
        args = shlex.split(typed.format(**values))
        assert args[0] == "pachctl"
        return args[1:]


def test_pachctl_habits(cli_run, tmp_path: Path, state: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = Scenario(tmp_path, state)
    failures = []
    for h in HABITS:
        if not h.inprocess:
            try:
                h.check(None, s)
            except AssertionError as e:
                failures.append(f"{h.typed}: {e}")
            continue
        r = cli_run(*s.fill(h.typed), input=h.stdin, env=h.env)
        try:
            assert r.exit_code == h.code, f"exit {r.exit_code}, expected {h.code}"
            assert "Traceback" not in r.output
            for w in h.out:
                assert w in r.stdout, f"{w!r} not on stdout"
            for w in h.err:
                assert w in r.stderr, f"{w!r} not on stderr"
            if h.status == "missing":
                assert "No such command" in r.stderr or "no such option" in r.stderr.lower() \
                    or h.code != 0
            if h.check:
                h.check(r, s)
        except AssertionError as e:
            failures.append(f"{h.typed}: {e}\n  stdout: {r.stdout[-300:]!r}\n"
                            f"  stderr: {r.stderr[-300:]!r}")
    assert not failures, "\n".join(failures)


def render() -> str:
    counts = {k: sum(h.status == k for h in HABITS) for k in ("works", "differs", "missing")}
    lines = [BEGIN, "",
             f"{len(HABITS)} habits: {counts['works']} work as typed, {counts['differs']} "
             f"differ, {counts['missing']} are missing (checked by "
             "`tests/engine/test_engine_pachctl_habits.py`, in this order, on one state "
             "folder; `pix2pix` in place of `pachctl`).", "",
             "| typed as for pachctl | here | note |", "|---|---|---|"]
    for h in HABITS:
        typed = h.typed.replace("|", "\\|")
        lines.append(f"| `{typed}` | {h.status} | {h.note.replace('|', '/')} |")
    return "\n".join(lines + ["", END])


def test_docs_table_is_the_checked_one() -> None:
    text = DOC.read_text()
    assert BEGIN in text and END in text, f"{DOC} has no habit table; run {__file__}"
    current = text[text.index(BEGIN):text.index(END) + len(END)]
    assert current == render(), f"docs/engine.md's habit table is stale: run python {__file__}"


def test_readme_counts_are_the_checked_ones() -> None:
    """The README's one-line summary carries the same counts as the table."""
    counts = {k: sum(h.status == k for h in HABITS) for k in ("works", "differs", "missing")}
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    want = (f"{counts['works']} of {len(HABITS)} pachctl habits work as typed, "
            f"{counts['differs']} differ and {counts['missing']} are missing")
    assert want in readme, f"README.md should say: {want!r}"


def test_every_status_is_known() -> None:
    assert {h.status for h in HABITS} <= {"works", "differs", "missing"}
    assert all(h.note for h in HABITS if h.status != "works")


if __name__ == "__main__":
    text = DOC.read_text()
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda m: render(), text,
                      flags=re.S)
    else:
        text = text.rstrip() + "\n\n## pachctl habits\n\n" + render() + "\n"
    DOC.write_text(text)
    print(f"wrote the habit table ({len(HABITS)} rows) into {DOC}")
