"""What the pachctl verbs mean on the embedded engine, beyond "it runs as typed" (that is
test_engine_pachctl_habits.py): failed and unrunnable jobs as the CLI shows them, open commits
across processes, projects, edits that do not validate, and the store check."""
from __future__ import annotations

import json
from pathlib import Path

from pix2pix.errors import DataError, JobError, NotFoundError, SpecError, UsageError

from engine_testlib import bash_spec, pfs


def ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def _spec(tmp_path: Path, spec: dict, name: str) -> str:
    f = tmp_path / f"{name}.json"
    f.write_text(json.dumps(spec, indent=2))
    return str(f)


def _failing_chain(cli_run, tmp_path: Path) -> None:
    """images -> bad (exits 1) -> after (never runs: unrunnable)."""
    ok(cli_run("create", "repo", "images"))
    ok(cli_run("create", "pipeline", "-f", _spec(tmp_path, bash_spec("bad", pfs("images"), "exit 1"),
                                                 "bad")))
    ok(cli_run("create", "pipeline", "-f", _spec(
        tmp_path, bash_spec("after", pfs("bad"), "cp -r /pfs/bad/* /pfs/out/ || true"), "after")))


def test_a_failed_job_is_reported_not_hidden(cli_run, refused, tmp_path: Path):
    _failing_chain(cli_run, tmp_path)
    (tmp_path / "x").write_text("x")
    # put file: exit 0 once the commit landed, the job's failure on stderr (as pachctl).
    r = ok(cli_run("put", "file", "images@master:/x", "-f", str(tmp_path / "x")))
    assert "warning: job bad@" in r.stderr and "failure" in r.stderr
    assert "warning: job after@" in r.stderr and "unrunnable" in r.stderr
    assert ok(cli_run("get", "file", "images@master:/x")).stdout == "x"
    # --strict: the same commit lands, and the exit code says a job failed.
    refused(cli_run("put", "file", "images@master:/y", "-f", str(tmp_path / "x"), "--strict"),
            JobError, "bad@")
    assert ok(cli_run("get", "file", "images@master:/y")).stdout == "x"
    # wait commit shows the errored output commits, and says so on stderr.
    r = ok(cli_run("wait", "commit", "images@master"))
    rows = {line.split()[1]: line for line in r.stdout.splitlines()[1:]}
    assert set(rows) == {"images", "bad", "after"}
    assert "ERROR" in rows["bad"] and "ERROR" in rows["after"] and "ERROR" not in rows["images"]
    assert r.stderr.count("finished with an error") == 2
    refused(cli_run("wait", "commit", "images@master", "--strict"), JobError, "2 commit(s)")
    jobs = json.loads(ok(cli_run("list", "job", "-p", "after", "-o", "json")).stdout)
    assert [j["state"] for j in jobs][:2] == ["unrunnable", "unrunnable"]  # newest first
    assert "ERROR" in ok(cli_run("list", "commit", "bad@master")).stdout
    assert "Error: " in ok(cli_run("inspect", "commit", "bad@master")).stdout
    assert "finished with an error" in ok(cli_run("list", "file", "bad@master")).stderr


def test_an_open_commit_outlives_the_command_that_started_it(pix, tmp_path: Path):
    """start, put and finish commit are three processes, as with pachctl: the commit stays
    open between them (it is not taken for a killed writer's) and its files are readable."""
    assert pix("create", "repo", "images").returncode == 0
    r = pix("start", "commit", "images@master")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.decode().strip()
    (tmp_path / "a").write_text("alpha")
    assert pix("put", "file", "images@master:/a", "-f", str(tmp_path / "a")).returncode == 0
    assert pix("get", "file", f"images@{cid}:/a").stdout == b"alpha"
    listed = json.loads(pix("list", "commit", "images", "--raw").stdout)
    assert [(c["id"], c["finished"]) for c in listed] == [(cid, None)]
    r = pix("finish", "commit", "images@master")
    assert r.returncode == 0, r.stderr
    assert json.loads(pix("inspect", "commit", f"images@{cid}", "--raw").stdout)["finished"]


def test_project_option_and_qualified_names(cli_run, tmp_path: Path):
    ok(cli_run("create", "project", "vision", "-d", "cv"))
    ok(cli_run("create", "repo", "images", "--project", "vision"))
    (tmp_path / "a").write_text("alpha")
    ok(cli_run("put", "file", "vision/images@master:/a", "-f", str(tmp_path / "a")))
    assert ok(cli_run("get", "file", "images@master:/a", "--project", "vision")).stdout == "alpha"
    ok(cli_run("create", "pipeline", "--project", "vision", "-f", _spec(
        tmp_path, bash_spec("up", pfs("images"), "cp /pfs/images/* /pfs/out/"), "up")))
    assert ok(cli_run("get", "file", "vision/up@master:/a")).stdout == "alpha"
    listed = ok(cli_run("list", "pipeline", "--project", "vision")).stdout.splitlines()[1:]
    assert [line.split()[:2] for line in listed] == [["vision", "up"]]
    assert ok(cli_run("list", "pipeline")).stdout.splitlines()[1:] == []  # default project
    assert "vision/images" in ok(cli_run("list", "repo", "-A", "--raw")).stdout
    assert "vision" in ok(cli_run("list", "project")).stdout


def test_edit_pipeline_that_does_not_validate_updates_nothing(cli_run, refused, tmp_path: Path):
    ok(cli_run("create", "repo", "images"))
    ok(cli_run("create", "pipeline", "-f", _spec(tmp_path, bash_spec("up", pfs("images"), "true"),
                                                 "up")))
    msg = refused(cli_run("edit", "pipeline", "up", "--editor", "sed -i 's/\"glob\"/\"globb\"/'"),
                  SpecError, "nothing updated", "your edit is kept in")
    kept = Path(msg.rsplit("kept in ", 1)[1].rstrip(")"))
    assert '"globb"' in kept.read_text()
    kept.unlink()
    assert ok(cli_run("inspect", "pipeline", "up", "--raw")).stdout.count('"version": 1') == 1
    r = ok(cli_run("edit", "pipeline", "up", "--editor", "true"))
    assert "unchanged; nothing updated" in r.stderr


def test_commit_sets_listed_and_expanded(cli_run, tmp_path: Path):
    ok(cli_run("create", "repo", "images"))
    ok(cli_run("create", "pipeline", "-f", _spec(
        tmp_path, bash_spec("up", pfs("images"), "cp /pfs/images/* /pfs/out/"), "up")))
    (tmp_path / "a").write_text("alpha")
    r = ok(cli_run("put", "file", "images@master:/a", "-f", str(tmp_path / "a")))
    cid = r.stderr.strip().splitlines()[-1].split("@")[1]
    sets = json.loads(ok(cli_run("list", "commit", "--raw")).stdout)
    assert sets[0]["id"] == cid and {c["repo"] for c in sets[0]["commits"]} == {"images", "up"}
    rows = ok(cli_run("list", "commit", cid)).stdout.splitlines()[1:]
    assert sorted(line.split()[1] for line in rows) == ["images", "up"]
    assert cid in ok(cli_run("list", "commit", "-x")).stdout


def test_delete_all_and_branch_provenance_and_trigger(cli_run, refused, tmp_path: Path):
    ok(cli_run("create", "repo", "images"))
    (tmp_path / "a").write_text("alpha")
    ok(cli_run("put", "file", "images@master:/a", "-f", str(tmp_path / "a")))
    ok(cli_run("create", "branch", "images@staged", "--trigger", "master", "--trigger-commits", "2"))
    b = json.loads(ok(cli_run("inspect", "branch", "images@staged", "--raw")).stdout)
    assert b["trigger"] == {"branch": "master", "commits": 2}
    refused(cli_run("create", "branch", "images@x", "--trigger-size", "1MB"), UsageError,
            "--trigger BRANCH")
    ok(cli_run("create", "repo", "derived"))
    ok(cli_run("create", "branch", "derived@master", "-p", "images@master"))
    assert json.loads(ok(cli_run("inspect", "branch", "derived@master", "--raw")).stdout
                      )["provenance"] == ["images@master"]
    ok(cli_run("create", "pipeline", "-f", _spec(tmp_path, bash_spec("p1", pfs("images"), "true"), "p1")))
    ok(cli_run("create", "pipeline", "-f", _spec(tmp_path, bash_spec("p2", pfs("p1"), "true"), "p2")))
    ok(cli_run("delete", "pipeline", "--all"))  # downstream first: p2, then p1
    assert json.loads(ok(cli_run("list", "pipeline", "--raw")).stdout) == []
    refused(cli_run("delete", "repo"), UsageError, "--all")
    ok(cli_run("delete", "repo", "--all", "--force"))
    assert json.loads(ok(cli_run("list", "repo", "--raw")).stdout) == []


def test_file_names_with_newlines_keep_the_table_whole(cli_run, tmp_path: Path):
    ok(cli_run("create", "repo", "images"))
    ok(cli_run("put", "file", "images@master:/a\nb", "-f", "-", input=b"x"))
    lines = ok(cli_run("list", "file", "images@master")).stdout.splitlines()
    assert len(lines) == 2 and "/a\\nb" in lines[1]


def test_fsck_finds_a_missing_blob(cli_run, refused, eng, tmp_path: Path):
    ok(cli_run("create", "repo", "images"))
    ok(cli_run("put", "file", "images@master:/a", "-f", "-", input=b"alpha"))
    assert "no problems" in ok(cli_run("fsck")).stderr
    digest = eng.inspect_file("images", "master", "/a").hash
    eng.blob_path(digest).unlink()
    msg = refused(cli_run("fsck"), DataError, "1 problem(s) found")
    r = cli_run("fsck")
    assert "images@" in r.stdout and "/a" in r.stdout and "missing" in r.stdout, msg


def test_version_and_missing_things(cli_run, refused):
    out = ok(cli_run("version", "--client-only")).stdout
    assert "pix2pix" in out and "pachd" not in out
    versions = json.loads(ok(cli_run("version", "-o", "json")).stdout)
    assert versions["pachd"].startswith("2.")
    refused(cli_run("inspect", "branch", "nope@master"), NotFoundError, "nope")
    refused(cli_run("list", "datum"), UsageError, "-f SPEC")
