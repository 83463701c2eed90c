"""Every engine command as a user types it: in-process with CliRunner for output, and as a real
``python -m pix2pix`` subprocess for exit codes and one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pix2pix.errors import JobError, SpecError, StoreError, UsageError

from engine_testlib import bash_spec, pfs


def ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("alpha")
    (d / "sub" / "b.txt").write_text("beta")
    return d


def spec_file(tmp_path: Path, *specs: dict, name: str = "p.json", sep: str = "json") -> Path:
    f = tmp_path / name
    if sep == "json":
        f.write_text("\n---\n".join(json.dumps(s, indent=2) for s in specs))
    else:
        import yaml
        f.write_text(yaml.safe_dump_all(specs))
    return f


def test_repo_commands(cli_run, refused):
    ok(cli_run("create", "repo", "images", "-d", "raw photos"))
    ok(cli_run("create", "repo", "other"))
    out = ok(cli_run("list", "repo")).output.splitlines()
    assert out[0].split() == ["PROJECT", "NAME", "CREATED", "SIZE", "(MASTER)", "DESCRIPTION"]
    assert {tuple(line.split()[:2]) for line in out[1:]} == {("default", "images"),
                                                           ("default", "other")}
    data = json.loads(ok(cli_run("list", "repo", "--json")).output)
    assert {r["name"]: r["description"] for r in data} == {"images": "raw photos", "other": ""}
    assert json.loads(ok(cli_run("inspect", "repo", "images", "-o", "json")).output)["type"] == "user"
    ok(cli_run("update", "repo", "other", "-d", "x"))
    ok(cli_run("delete", "repo", "other"))
    assert "other" not in ok(cli_run("list", "repo")).output
    refused(cli_run("create", "repo", "images"), StoreError, "repo 'images' already exists")


def test_put_get_list_inspect_files(cli_run, tree: Path, tmp_path: Path):
    ok(cli_run("create", "repo", "images"))
    ok(cli_run("put", "file", "images@master:/photos", "-r", "-f", str(tree)))
    ok(cli_run("put", "file", "images@master", "-f", str(tree / "a.txt"), "-f", str(tree / "sub" / "b.txt")))
    ok(cli_run("put", "file", "images@master:/single.txt", "-f", str(tree / "a.txt")))
    ok(cli_run("put", "file", "images@master:/stdin.txt", "-f", "-", input=b"from stdin"))
    listing = ok(cli_run("list", "file", "images@master")).output.splitlines()
    assert listing[0].split() == ["NAME", "TYPE", "SIZE"]
    assert [line.split()[0] for line in listing[1:]] == ["/a.txt", "/b.txt", "/photos/", "/single.txt", "/stdin.txt"]
    sub = json.loads(ok(cli_run("list", "file", "images@master:/photos", "--json")).output)
    assert [(f["path"], f["type"]) for f in sub] == [("/photos/a.txt", "file"), ("/photos/sub", "dir")]
    assert ok(cli_run("get", "file", "images@master:/photos/sub/b.txt")).output == "beta"
    assert ok(cli_run("get", "file", "images@master:/stdin.txt")).output == "from stdin"
    out = tmp_path / "got.txt"
    ok(cli_run("get", "file", "images@master:/single.txt", "-o", str(out)))
    assert out.read_text() == "alpha"
    dest = tmp_path / "restored"
    ok(cli_run("get", "file", "images@master:/photos", "-r", "-o", str(dest)))
    assert (dest / "a.txt").read_text() == "alpha" and (dest / "sub" / "b.txt").read_text() == "beta"
    info = json.loads(ok(cli_run("inspect", "file", "images@master:/photos/a.txt", "--json")).output)
    assert info["size"] == 5 and len(info["hash"]) == 64
    # append, overwrite and older commits
    ok(cli_run("put", "file", "images@master:/single.txt", "-a", "-f", str(tree / "a.txt")))
    assert ok(cli_run("get", "file", "images@master:/single.txt")).output == "alphaalpha"
    assert ok(cli_run("get", "file", "images@master^1:/single.txt")).output == "alpha"
    ok(cli_run("delete", "file", "images@master:/photos"))
    assert "/photos" not in ok(cli_run("list", "file", "images@master")).output


def test_folder_without_r_and_unsafe_destinations_are_refused(cli_run, refused, tree: Path):
    ok(cli_run("create", "repo", "images"))
    refused(cli_run("put", "file", "images@master:/x", "-f", str(tree)), UsageError, "use -r")
    for bad in ("images@master:/a/../../etc/passwd", "images@master:/a\\b"):
        r = cli_run("put", "file", bad, "-f", str(tree / "a.txt"))
        refused(r, UsageError)
    refused(cli_run("put", "file", "images@master", "-f", "-", input=b"x"), UsageError, "stdin")
    assert cli_run("list", "commit", "images").output.count("\n") == 1  # header only: nothing landed


def test_commit_commands(cli_run, tree: Path):
    ok(cli_run("create", "repo", "images"))
    ok(cli_run("put", "file", "images@master:/a", "-f", str(tree / "a.txt"), "-m", "first"))
    ok(cli_run("put", "file", "images@master:/b", "-f", str(tree / "a.txt")))
    lines = ok(cli_run("list", "commit", "images")).output.splitlines()
    assert lines[0].split() == ["PROJECT", "REPO", "BRANCH", "COMMIT", "FINISHED", "SIZE", "ORIGIN",
                                "DESCRIPTION"]
    assert len(lines) == 3 and "first" in lines[2]
    commits = json.loads(ok(cli_run("list", "commit", "images@master", "-n", "1", "--json")).output)
    assert len(commits) == 1
    text = ok(cli_run("inspect", "commit", "images@master^1")).output
    assert "Origin: USER" in text and "Parent: <none>" in text
    ok(cli_run("wait", "commit", f"images@{commits[0]['id']}"))
    assert commits[0]["id"] in ok(cli_run("inspect", "commitset", commits[0]["id"])).output


def test_pipeline_job_datum_logs_provenance_commands(cli_run, refused, tmp_path: Path, tree: Path):
    ok(cli_run("create", "repo", "images"))
    ok(cli_run("put", "file", "images@master:/", "-r", "-f", str(tree)))
    up = bash_spec("up", pfs("images", "/*"), 'for f in $(find /pfs/images -type f); do '
                   'echo "processing $f"; tr a-z A-Z < $f > /pfs/out/$(basename $f); done')
    count = bash_spec("count", pfs("up", "/"), "ls /pfs/up | wc -l > /pfs/out/count")
    ok(cli_run("create", "pipeline", "-f", str(spec_file(tmp_path, up, count, sep="yaml", name="dag.yaml"))))
    assert ok(cli_run("get", "file", "up@master:/b.txt")).output == "BETA"
    assert ok(cli_run("get", "file", "count@master:/count")).output.strip() == "2"
    lines = ok(cli_run("list", "pipeline")).output.splitlines()
    assert lines[0].split()[:4] == ["PROJECT", "NAME", "VERSION", "INPUT"]
    assert {line.split()[1] for line in lines[1:]} == {"up", "count"}
    assert json.loads(ok(cli_run("inspect", "pipeline", "up", "--json")).output)["version"] == 1
    jobs = json.loads(ok(cli_run("list", "job", "-p", "up", "--json")).output)
    assert len(jobs) == 1 and jobs[0]["state"] == "success"
    jid = jobs[0]["id"]
    table = ok(cli_run("list", "job", "-x")).output
    assert "PIPELINE" in table and "2 + 0 / 2" in table
    assert "Output commit: up@" + jid in ok(cli_run("inspect", "job", f"up@{jid}")).output
    datums = ok(cli_run("list", "datum", f"up@{jid}")).output.splitlines()
    assert datums[0].split() == ["ID", "FILES", "STATUS", "TIME"] and len(datums) == 3
    assert "processing" in ok(cli_run("logs", "-p", "up", "--job", jid)).output
    tree_text = ok(cli_run("provenance", "count@master:/count")).output
    assert "count@" in tree_text and "up@" in tree_text and "images@" in tree_text
    prov = json.loads(ok(cli_run("provenance", "up@master:/a.txt", "--json")).output)
    assert prov["inputs"][0]["repo"] == "images" and prov["inputs"][0]["paths"] == ["/a.txt"]
    # update with --reprocess makes a new version and reprocesses
    up2 = bash_spec("up", pfs("images", "/*"), "for f in $(find /pfs/images -type f); do "
                    "rev $f > /pfs/out/$(basename $f); done")
    ok(cli_run("update", "pipeline", "-f", str(spec_file(tmp_path, up2, name="up2.json")), "--reprocess"))
    assert ok(cli_run("get", "file", "up@master:/a.txt")).output.strip() == "ahpla"
    refused(cli_run("delete", "pipeline", "up"), StoreError, "feeds pipeline(s) count")
    ok(cli_run("delete", "pipeline", "count"))
    ok(cli_run("delete", "pipeline", "up"))


def test_no_run_then_run(cli_run, tmp_path: Path, tree: Path):
    ok(cli_run("create", "repo", "images"))
    f = spec_file(tmp_path, bash_spec("up", pfs("images"), "cp -r /pfs/images/* /pfs/out/"))
    ok(cli_run("create", "pipeline", "-f", str(f), "--no-run"))
    ok(cli_run("put", "file", "images@master:/a", "-f", str(tree / "a.txt"), "--no-run"))
    # As in pachd the jobs exist at once; --no-run leaves them created, not run.
    assert [j["state"] for j in json.loads(ok(cli_run("list", "job", "-x", "--json")).output)] == \
        ["created", "created"]
    ok(cli_run("run"))
    assert ok(cli_run("get", "file", "up@master:/a")).output == "alpha"
    assert "nothing to run" in ok(cli_run("run")).output


# -- exit codes and one-line errors (in-process: the click group maps them) ------------------------

def test_exit_codes_and_messages(cli_run, refused, tmp_path: Path, tree: Path):
    ok(cli_run("create", "repo", "images"))
    r = cli_run("create", "repo", "images")
    assert refused(r, StoreError) == "repo 'images' already exists; use `update repo` or pick another name"
    assert r.stderr.count("\n") == 1
    refused(cli_run("get", "file", "nope@master:/x"), StoreError, "repo 'nope' not found")
    refused(cli_run("put", "file", "images@master:/../x", "-f", str(tree / "a.txt")), UsageError, "'..'")
    bad = spec_file(tmp_path, bash_spec("g", pfs("images", "["), "true"), name="bad.json")
    refused(cli_run("create", "pipeline", "-f", str(bad)), SpecError,
            f'{bad}: pipeline "g": input.pfs.glob: "[" is not a valid glob')
    fails = spec_file(tmp_path, bash_spec("f", pfs("images"), "exit 4", datumTries=1), name="f.json")
    ok(cli_run("create", "pipeline", "-f", str(fails)))  # no data yet: a job with no datums
    # As pachctl: the commit landed, so exit 0, and the job's failure is said on stderr ...
    r = ok(cli_run("put", "file", "images@master:/a", "-f", str(tree / "a.txt")))
    assert "warning: job f@" in r.stderr and "ended failure" in r.stderr and "logs -p f" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("images@")
    assert ok(cli_run("get", "file", "images@master:/a")).stdout == "alpha"
    # ... and --strict makes the job's failure the command's.
    r = cli_run("put", "file", "images@master:/b", "-f", str(tree / "a.txt"), "--strict")
    refused(r, JobError, "job f@", "failed", "pix2pix logs -p f")
    assert ok(cli_run("get", "file", "images@master:/b")).stdout == "alpha"


def test_the_console_script_exits_with_the_error_code(pix):
    """The real entry point (``python -m pix2pix``): exit code and one line, no traceback."""
    assert pix("create", "repo", "images").returncode == 0
    r = pix("create", "repo", "images")
    assert r.returncode == StoreError.exit_code
    assert r.stderr.decode() == "Error: repo 'images' already exists; use `update repo` or pick another name\n"
    assert pix("create", "repo", "bad name").returncode == UsageError.exit_code


def test_state_flag_and_env(cli_run, tmp_path: Path):
    other = tmp_path / "elsewhere"
    ok(cli_run("create", "repo", "x", "--state", str(other)))
    assert (other / "engine.db").exists()
    assert "x" not in ok(cli_run("list", "repo")).stdout.split("\n", 1)[1]
    assert ok(cli_run("list", "repo", "--state", str(other))).stdout.split("\n")[1].split()[:2] == ["default", "x"]


def test_get_tree_refuses_to_write_outside_its_folder(tmp_path: Path):
    """Repo paths are clean by construction; the writer checks again anyway."""
    from pix2pix.cli.files import get_tree
    from pix2pix.pachyderm.info import FileInfo

    class Evil:
        def walk_files(self, repo, ref, path):
            return [FileInfo(path="/d/../../escape", type="file", size=1, hash="h", commit="c")]

        def get_file_stream(self, *a):
            return iter([b"x"])

    with pytest.raises(UsageError, match="outside"):
        get_tree(Evil(), "r", "master", "/d", tmp_path / "out")
    assert not (tmp_path / "escape").exists()


def test_sigkill_during_put_file_of_a_folder(pix, state: Path, tmp_path: Path):
    """`put file -r` of a big folder killed half-way: no partial commit, history intact, and
    the next command works without repair."""
    import signal
    import subprocess
    import sys
    import time
    from engine_testlib import REPO_ROOT
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(3000):
        (folder / f"{i:05d}.txt").write_text(str(i))
    assert pix("create", "repo", "d").returncode == 0
    assert pix("put", "file", "d@master:/first", "-f", str(folder / "00001.txt")).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "pix2pix", "put", "file", "d@master:/many", "-r",
                             "-f", str(folder)], cwd=REPO_ROOT, env={**__import__("os").environ,
                                                                    "PIX2PIX_STATE": str(state)})
    # Killed while it stores the folder's files (put file lands them in one transaction at
    # the end, so that is where a kill can land).
    deadline = time.time() + 60
    while time.time() < deadline:
        if sum(1 for _ in (state / "blobs").rglob("*")) > 40:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    listing = pix("list", "file", "d@master")
    assert listing.returncode == 0 and b"/many" not in listing.stdout and b"/first" in listing.stdout
    commits = json.loads(pix("list", "commit", "d", "--json").stdout)
    assert len(commits) == 1
    assert pix("put", "file", "d@master:/after", "-f", str(folder / "00002.txt")).returncode == 0
    assert pix("get", "file", "d@master:/after").stdout == b"2"


def test_branch_and_commitset_commands_and_defer_env(cli_run, tmp_path: Path, tree: Path):
    ok(cli_run("create", "repo", "images"))
    ok(cli_run("put", "file", "images@master:/a", "-f", str(tree / "a.txt")))
    ok(cli_run("create", "branch", "images@dev", "--head", "master"))
    branches = json.loads(ok(cli_run("list", "branch", "images", "--json")).output)
    assert {b["name"] for b in branches} == {"master", "dev"}
    assert branches[0]["head"] == branches[1]["head"]
    ok(cli_run("put", "file", "images@dev:/b", "-f", str(tree / "a.txt")))
    assert "/b" not in ok(cli_run("list", "file", "images@master")).output
    assert "/b" in ok(cli_run("list", "file", "images@dev")).output
    f = spec_file(tmp_path, bash_spec("up", pfs("images"), "cp -r /pfs/images/* /pfs/out/"))
    ok(cli_run("create", "pipeline", "-f", str(f)))
    r = ok(cli_run("put", "file", "images@master:/c", "-f", str(tree / "a.txt"),
                   env={"PIX2PIX_DEFER": "1"}))
    cid = r.stderr.strip().splitlines()[-1].split("@")[1]
    assert "/c" not in ok(cli_run("list", "file", "up@master")).stdout  # deferred
    out = ok(cli_run("wait", "commitset", cid))
    assert [line.split()[1] for line in out.stdout.splitlines()[1:]] == ["images", "up"]
    assert ok(cli_run("get", "file", "up@master:/c")).stdout == "alpha"
