"""Pipeline semantics with tiny bash transforms: datums, skipping, removal, cross/union/join/
group, glob forms, collisions, failure and retry, reprocessing, commit sets, the env a transform
sees, deferral, and provenance through a DAG shaped like the product's."""
from __future__ import annotations

from pathlib import Path

import pytest

from pix2pix.errors import SpecError, StoreError
from pix2pix.pachyderm.engine import Engine

from engine_testlib import bash_spec, pfs, put

# Copies each datum's files to /pfs/out under the same name, upper-cased.
UPPER = 'for f in $(find /pfs/in -type f); do n=${f#/pfs/in/}; mkdir -p /pfs/out/$(dirname $n); ' \
        'tr a-z A-Z < $f > /pfs/out/$n; done'


def files(eng: Engine, repo: str, ref: str = "master") -> dict[str, bytes]:
    return {f.path: eng.get_file(repo, f.commit, f.path) for f in eng.walk_files(repo, ref)}


def test_pipeline_runs_on_existing_data_and_new_commits(eng: Engine):
    eng.create_repo("in")
    put(eng, "in", {"/a": "x", "/b": "y"})
    eng.create_pipeline(bash_spec("up", pfs("in"), UPPER))
    assert files(eng, "up") == {"/a": b"X", "/b": b"Y"}
    job = eng.list_jobs("up")[0]
    assert (job.state, job.processed, job.skipped, job.total) == ("success", 2, 0, 2)
    out = eng.inspect_commit("up", "master")
    assert out.origin == "AUTO" and out.id == job.id == job.output_commit
    c = put(eng, "in", {"/c": "z"})
    assert files(eng, "up") == {"/a": b"X", "/b": b"Y", "/c": b"Z"}
    assert eng.inspect_commit("up", "master").provenance[0].commit == c.id


def test_adding_one_file_to_200_processes_one_datum(eng: Engine):
    eng.create_repo("in")
    put(eng, "in", {f"/{i:03d}": str(i) for i in range(200)})
    eng.create_pipeline(bash_spec("up", pfs("in"), UPPER))
    assert eng.list_jobs("up")[0].processed == 200
    put(eng, "in", {"/new": "n"})
    job = eng.list_jobs("up")[0]
    assert (job.processed, job.skipped, job.total) == (1, 200, 201)
    assert len(eng.walk_files("up", "master")) == 201
    states = [d.state for d in eng.list_datums("up", job.id)]
    assert states.count("success") == 1 and states.count("skipped") == 200


def test_changed_file_reprocesses_only_its_datum(eng: Engine):
    eng.create_repo("in")
    put(eng, "in", {"/a": "x", "/b": "y"})
    eng.create_pipeline(bash_spec("up", pfs("in"), UPPER))
    put(eng, "in", {"/a": "changed"})
    job = eng.list_jobs("up")[0]
    assert (job.processed, job.skipped) == (1, 1)
    assert files(eng, "up")["/a"] == b"CHANGED"


def test_removed_input_removes_its_output(eng: Engine):
    eng.create_repo("in")
    put(eng, "in", {"/a": "x", "/b": "y"})
    eng.create_pipeline(bash_spec("up", pfs("in"), UPPER))
    with eng.commit("in") as c:
        c.delete_file("/a")
    assert files(eng, "up") == {"/b": b"Y"}
    job = eng.list_jobs("up")[0]
    assert (job.processed, job.skipped, job.total) == (0, 1, 1)


@pytest.mark.parametrize("glob,expected", [
    ("/", [["/d1/x", "/d1/y", "/d2/z", "/top"]]),
    ("/*", [["/d1/x", "/d1/y"], ["/d2/z"], ["/top"]]),
    ("/*/*", [["/d1/x"], ["/d1/y"], ["/d2/z"]]),
    ("/d1/*", [["/d1/x"], ["/d1/y"]]),
    ("/**", [["/d1/x", "/d1/y"], ["/d1/x"], ["/d1/y"], ["/d2/z"], ["/d2/z"], ["/top"]]),
    ("/{d2,top}", [["/d2/z"], ["/top"]]),
    ("/d?", [["/d1/x", "/d1/y"], ["/d2/z"]]),
])
def test_glob_forms_make_the_datums_pachyderm_makes(eng: Engine, glob: str, expected):
    eng.create_repo("in")
    put(eng, "in", {"/d1/x": "1", "/d1/y": "2", "/d2/z": "3", "/top": "4"})
    eng.create_pipeline(bash_spec("p", pfs("in", glob), "true"))
    job = eng.list_jobs("p")[0]
    got = sorted(d.inputs[0].files for d in eng.list_datums("p", job.id))
    assert got == sorted(expected)


def test_cross_and_union(eng: Engine):
    eng.create_repo("a")
    eng.create_repo("b")
    put(eng, "a", {"/1": "a1", "/2": "a2"})
    put(eng, "b", {"/x": "bx", "/y": "by", "/z": "bz"})
    cross = bash_spec("cr", {"cross": [pfs("a"), pfs("b")]},
                      'cat /pfs/a/* /pfs/b/* > /pfs/out/$(ls /pfs/a)$(ls /pfs/b)')
    union = bash_spec("un", {"union": [pfs("a"), pfs("b")]},
                      'for d in /pfs/a /pfs/b; do [ -d $d ] && cp $d/* /pfs/out/ || true; done')
    eng.create_pipelines([("t", cross), ("t", union)])
    assert files(eng, "cr") == {f"/{i}{j}": f"a{i}b{j}".encode() for i in "12" for j in "xyz"}
    assert eng.list_jobs("cr")[0].total == 6
    assert files(eng, "un") == {"/1": b"a1", "/2": b"a2", "/x": b"bx", "/y": b"by", "/z": b"bz"}
    assert eng.list_jobs("un")[0].total == 5


def test_cross_new_side_file_runs_one_datum_new_other_side_reruns_all(eng: Engine):
    """Like generate_images: a new image runs one datum, a new model re-runs them all."""
    eng.create_repo("images")
    eng.create_repo("model")
    put(eng, "images", {"/1": "i1", "/2": "i2"})
    put(eng, "model", {"/w": "m1"})
    eng.create_pipeline(bash_spec("gen", {"cross": [pfs("images"), pfs("model", "/")]},
                                  'n=$(ls /pfs/images); cat /pfs/images/$n /pfs/model/w > /pfs/out/$n'))
    put(eng, "images", {"/3": "i3"})
    assert eng.list_jobs("gen")[0].processed == 1
    put(eng, "model", {"/w": "m2"})
    job = eng.list_jobs("gen")[0]
    assert (job.processed, job.skipped) == (3, 0)
    assert files(eng, "gen") == {f"/{i}": f"i{i}m2".encode() for i in "123"}


def test_join_and_group(eng: Engine):
    eng.create_repo("stores")
    eng.create_repo("sales")
    put(eng, "stores", {"/STOREID1.txt": "s1", "/STOREID2.txt": "s2", "/STOREID3.txt": "s3"})
    put(eng, "sales", {"/a_STOREID1.txt": "x", "/b_STOREID1.txt": "y", "/c_STOREID2.txt": "z"})
    join = bash_spec("j", {"join": [pfs("stores", "/STOREID(*).txt", joinOn="$1"),
                                    pfs("sales", "/*_STOREID(*).txt", joinOn="$1")]},
                     'echo $PACH_DATUM_stores_JOIN_ON > /pfs/out/$(ls /pfs/sales)')
    group = bash_spec("g", {"group": [pfs("stores", "/STOREID(*).txt", groupBy="$1"),
                                      pfs("sales", "/*_STOREID(*).txt", groupBy="$1")]},
                      'ls /pfs/sales 2>/dev/null | wc -l > /pfs/out/$(ls /pfs/stores)')
    eng.create_pipelines([("t", join), ("t", group)])
    assert files(eng, "j") == {"/a_STOREID1.txt": b"1\n", "/b_STOREID1.txt": b"1\n",
                               "/c_STOREID2.txt": b"2\n"}
    assert {k: v.strip() for k, v in files(eng, "g").items()} == {
        "/STOREID1.txt": b"2", "/STOREID2.txt": b"1", "/STOREID3.txt": b"0"}


def test_overlapping_outputs_fail_the_job_naming_both_datums(eng: Engine):
    eng.create_repo("in")
    put(eng, "in", {"/a": "1", "/b": "2"})
    eng.create_pipeline(bash_spec("p", pfs("in"), "echo hi > /pfs/out/same"))
    job = eng.list_jobs("p")[0]
    ids = [d.id[:12] for d in eng.list_datums("p", job.id)]
    assert job.state == "failure"
    assert "both wrote /same" in job.reason and all(i in job.reason for i in ids)
    out = eng.inspect_commit("p", "master")  # pachd: the output commit ends with the reason
    assert (out.id, out.error, out.origin) == (job.id, job.reason, "AUTO")
    assert eng.walk_files("p", "master") == []  # and publishes nothing


def test_failure_retries_publishes_nothing_and_fix_skips_done_datums(eng: Engine):
    eng.create_repo("in")
    put(eng, "in", {"/good": "ok", "/bad": "FAIL"})
    script = ('for f in /pfs/in/*; do echo "try on $(basename $f) at $f"; '
              'grep -q FAIL $f && { echo "bad content" >&2; exit 3; }; cp $f /pfs/out/; done')
    eng.create_pipeline(bash_spec("p", pfs("in"), script, datumTries=2))
    job = eng.list_jobs("p")[0]
    assert (job.state, job.processed, job.failed) == ("failure", 1, 1)
    out = eng.inspect_commit("p", job.output_commit)
    assert out.id == job.id and out.error == job.reason and "exit code 3" in out.error
    assert files(eng, "p") == {}  # the failed job published nothing
    bad = eng.inspect_datum("p", job.id, job.failed_datum)
    assert bad.state == "failed" and bad.tries == 2
    assert bad.inputs[0].files == ["/bad"] and "exit code 3" in bad.reason
    assert bad.log.count("try on bad") == 2 and "bad content" in bad.log
    assert "try on bad at /pfs/in/bad" in bad.log  # logs name paths as the code sees them
    assert any("bad content" in line.message for line in eng.logs("p", job.id))
    put(eng, "in", {"/bad": "fixed"})
    job2 = eng.list_jobs("p")[0]
    assert (job2.state, job2.processed, job2.skipped) == ("success", 1, 1)
    assert files(eng, "p") == {"/good": b"ok", "/bad": b"fixed"}


def test_downstream_does_not_run_after_a_failure(eng: Engine):
    eng.create_repo("in")
    eng.create_pipeline(bash_spec("first", pfs("in"), "exit 1", datumTries=1))
    eng.create_pipeline(bash_spec("second", pfs("first"), "true"))
    c = put(eng, "in", {"/a": "1"})
    assert eng.list_jobs("first")[0].state == "failure"
    job = eng.list_jobs("second")[0]  # as pachd: unrunnable, and it says why
    assert (job.id, job.state, job.processed) == (c.id, "unrunnable", 0)
    assert job.reason == "unrunnable because the following upstream pipelines failed: first"
    assert eng.inspect_commit("second", c.id).error == job.reason


def test_datum_timeout_fails_the_datum(eng: Engine):
    eng.create_repo("in")
    put(eng, "in", {"/a": "1"})
    eng.create_pipeline(bash_spec("p", pfs("in"), "sleep 30", datumTries=1, datumTimeout="0.5s"))
    job = eng.list_jobs("p")[0]
    assert job.state == "failure" and "timed out" in job.reason


def test_reprocess_spec_every_job(eng: Engine):
    eng.create_repo("in")
    put(eng, "in", {"/a": "1", "/b": "2"})
    eng.create_pipeline(bash_spec("p", pfs("in"), UPPER, reprocessSpec="every_job"))
    put(eng, "in", {"/c": "3"})
    job = eng.list_jobs("p")[0]
    assert (job.processed, job.skipped) == (3, 0)


def test_update_pipeline_skips_done_datums_unless_reprocess(eng: Engine):
    eng.create_repo("in")
    put(eng, "in", {"/a": "x"})
    eng.create_pipeline(bash_spec("p", pfs("in"), "cp /pfs/in/* /pfs/out/"))
    v2 = bash_spec("p", pfs("in"), UPPER)
    with pytest.raises(StoreError, match="already exists"):
        eng.create_pipeline(v2)
    info = eng.create_pipeline(v2, update=True)
    assert info.version == 2
    job = eng.list_jobs("p")[0]
    assert (job.processed, job.skipped, job.spec_version) == (0, 1, 2)
    assert files(eng, "p") == {"/a": b"x"}  # old output kept, as pachctl update pipeline does
    eng.create_pipeline(v2, update=True, reprocess=True)
    assert eng.list_jobs("p")[0].processed == 1
    assert files(eng, "p") == {"/a": b"X"}


def test_global_ids_shared_by_a_commit_set(eng: Engine):
    eng.create_repo("in")
    eng.create_pipeline(bash_spec("one", pfs("in"), "cp -r /pfs/in/* /pfs/out/"))
    eng.create_pipeline(bash_spec("two", pfs("one"), "cp -r /pfs/one/* /pfs/out/"))
    c = put(eng, "in", {"/a": "1"})
    commit_set = eng.inspect_commit_set(c.id)
    assert [(x.repo, x.origin) for x in commit_set] == [("in", "USER"), ("one", "AUTO"), ("two", "AUTO")]
    assert {x.id for x in commit_set} == {c.id}
    assert eng.inspect_job("one", c.id).output_commit == c.id
    assert eng.inspect_job("two", c.id[:8]).id == c.id  # a prefix is enough
    assert eng.inspect_commit("two", c.id).provenance[0].repo == "one"
    [datum] = eng.list_datums("one", c.id)
    assert eng.datum_of("one", c.id, "/a") == datum.id and eng.datum_of("one", c.id, "/x") is None


def test_transform_sees_pachyderm_env(eng: Engine):
    eng.create_repo("in")
    c = put(eng, "in", {"/f.txt": "x"})
    script = ('env | grep -E "^(PACH_|PPS_|in=|in_COMMIT=|MY_VAR=)" | sort > /pfs/out/env; '
              'test -f "$in" && echo ok > /pfs/out/exists')
    eng.create_pipeline(bash_spec("p", pfs("in"), script,
                                  transform={"cmd": ["bash"], "stdin": [script],
                                             "env": {"MY_VAR": "/pfs/in/f.txt"}}))
    job = eng.list_jobs("p")[0]
    env = dict(line.split("=", 1) for line in files(eng, "p")["/env"].decode().splitlines())
    assert env["PACH_JOB_ID"] == job.id == env["PACH_OUTPUT_COMMIT_ID"]
    assert env["PPS_PIPELINE_NAME"] == "p" and env["in_COMMIT"] == c.id
    assert len(env["PACH_DATUM_ID"]) == 64
    assert env["in"].endswith("/in/f.txt") and env["MY_VAR"] == env["in"]  # /pfs mapped
    assert files(eng, "p")["/exists"] == b"ok\n"


def test_python_and_pix2pix_resolve_to_this_environment(eng: Engine):
    import sys
    eng.create_repo("in")
    put(eng, "in", {"/a": "1"})
    eng.create_pipeline(bash_spec("p", pfs("in"),
                                  'python -c "import sys; print(sys.prefix)" > /pfs/out/py; '
                                  'command -v pix2pix > /pfs/out/cli'))
    assert files(eng, "p")["/py"].decode().strip() == sys.prefix
    assert Path(files(eng, "p")["/cli"].decode().strip()).parent == Path(sys.executable).parent


def test_deferred_runs_wait_for_run_pending(state: Path):
    eng = Engine(state, defer=True)
    eng.create_repo("in")
    eng.create_pipeline(bash_spec("p", pfs("in"), UPPER))
    c = put(eng, "in", {"/a": "x"})
    # As in pachd, the jobs exist at once (created), and run later.
    assert [j.state for j in eng.list_jobs("p")] == ["created", "created"] and eng.list_pending()
    commits = eng.wait_commit_set(c.id)
    assert [x.repo for x in commits] == ["in", "p"]
    assert eng.list_pending() == []
    assert files(eng, "p") == {"/a": b"X"}


def test_spec_errors_name_file_pipeline_and_field(eng: Engine):
    eng.create_repo("in")
    bad = bash_spec("gen", {"cross": [pfs("in", "["), pfs("in", "/", name="m")]}, "true")
    with pytest.raises(SpecError, match=r'x\.json: pipeline .gen.: input\.cross\[0\]\.pfs\.glob: .\[. is not a valid glob'):
        eng.create_pipeline(bad, source="x.json")
    with pytest.raises(SpecError, match=r"input\.pfs\.repo: repo 'nope' does not exist"):
        eng.create_pipeline(bash_spec("p", pfs("nope"), "true"))
    with pytest.raises(SpecError, match="cycle"):
        eng.create_pipeline(bash_spec("p", pfs("p"), "true"))
    eng.create_pipeline(bash_spec("a", pfs("in"), "true"))
    eng.create_pipeline(bash_spec("b", pfs("a"), "true"))
    with pytest.raises(SpecError, match="cycle: a -> b -> a"):
        eng.create_pipeline(bash_spec("a", pfs("b"), "true"), update=True)
    with pytest.raises(SpecError, match=r"input name 'in' is also used"):
        eng.create_pipeline(bash_spec("d", {"cross": [pfs("in"), pfs("in", "/")]}, "true"))
    with pytest.raises(SpecError, match="transform.cmd: missing"):
        eng.create_pipeline({"pipeline": {"name": "q"}, "input": pfs("in"), "transform": {"image": "x"}})
    with pytest.raises(SpecError, match="pipeline.name"):
        eng.create_pipeline(bash_spec("bad name", pfs("in"), "true"))


def test_delete_pipeline_and_input_repo_guards(eng: Engine):
    eng.create_repo("in")
    eng.create_pipeline(bash_spec("a", pfs("in"), "true"))
    eng.create_pipeline(bash_spec("b", pfs("a"), "true"))
    with pytest.raises(StoreError, match="input of pipeline"):
        eng.delete_repo("in")
    with pytest.raises(StoreError, match="feeds pipeline"):
        eng.delete_pipeline("a")
    eng.delete_pipeline("b")
    assert "b" not in [r.name for r in eng.list_repos()]
    eng.delete_pipeline("a")
    eng.delete_repo("in")
    assert eng.list_repos() == [] and eng.list_pipelines() == []


def test_provenance_through_a_four_stage_dag(eng: Engine):
    """training -> checkpoint -> model, input_images -> preprocess -> generate (cross of
    preprocess /* and model /), all bash: the chain behind one generated image."""
    for r in ("training", "input_images"):
        eng.create_repo(r)
    put(eng, "training", {"/params.yaml": "steps: 1\n", "/train/1.png": "p1", "/train/2.png": "p2"})
    specs = [
        bash_spec("checkpoint", pfs("training", "/"), "cat /pfs/training/train/* > /pfs/out/ckpt"),
        bash_spec("model", pfs("checkpoint", "/"), "cp /pfs/checkpoint/ckpt /pfs/out/saved_model"),
        bash_spec("preprocess", pfs("input_images"), "for f in /pfs/input_images/*; do "
                  "rev $f > /pfs/out/$(basename $f); done"),
        bash_spec("generate", {"cross": [pfs("preprocess"), pfs("model", "/")]},
                  "for f in /pfs/preprocess/*; do cat $f /pfs/model/saved_model > "
                  "/pfs/out/$(basename $f); done"),
    ]
    eng.create_pipelines([("dag.json", s) for s in specs])
    img = put(eng, "input_images", {"/cat.png": "meow"})
    out = eng.inspect_commit("generate", "master")
    assert out.id == img.id
    node = eng.provenance("generate", "master", "/cat.png")
    assert (node.repo, node.pipeline, node.paths) == ("generate", "generate", ["/cat.png"])
    by_repo = {n.repo: n for n in node.inputs}
    pre, model = by_repo["preprocess"], by_repo["model"]
    assert pre.paths == ["/cat.png"] and pre.datum_id
    assert [(n.repo, n.commit, n.origin, n.paths) for n in pre.inputs] == [
        ("input_images", img.id, "USER", ["/cat.png"])]
    ckpt = model.inputs[0]
    assert (model.paths, ckpt.repo, ckpt.paths) == (["/saved_model"], "checkpoint", ["/ckpt"])
    training = ckpt.inputs[0]
    assert training.origin == "USER" and training.repo == "training"
    assert training.paths == ["/params.yaml", "/train/1.png", "/train/2.png"]
    assert training.commit == eng.inspect_commit("training", "master").id
    from pix2pix.pachyderm.provenance import render
    text = render(node)
    assert "input_images@" in text and "training@" in text and "└──" in text


def test_transform_writing_into_its_input_cannot_change_the_store(eng: Engine):
    eng.create_repo("in")
    put(eng, "in", {"/a": "original", "/b": "other"})
    eng.create_pipeline(bash_spec("vandal", pfs("in"),
                                  "for f in /pfs/in/*; do echo evil > $f || true; done; "
                                  "cat /pfs/in/* > /pfs/out/$(ls /pfs/in)"))
    assert eng.get_file("in", "master", "/a") == b"original"
    assert eng.get_file("in", "master", "/b") == b"other"
    assert eng.list_jobs("vandal")[0].state == "success"


def test_each_datum_sees_only_its_own_files(eng: Engine):
    """Inputs are re-pointed between datums: nothing of the previous datum is left behind."""
    eng.create_repo("in")
    eng.create_repo("m")
    put(eng, "in", {"/x/1": "a", "/y/2": "b", "/z/3": "c"})
    put(eng, "m", {"/w": "model"})
    eng.create_pipeline(bash_spec("see", {"cross": [pfs("in"), pfs("m", "/")]},
                                  "n=$(ls /pfs/in); (cd /pfs && find in m -type f | sort) "
                                  "> /pfs/out/$n"))
    assert files(eng, "see") == {f"/{d}": f"in/{d}/{i}\nm/w\n".encode()
                                 for d, i in (("x", 1), ("y", 2), ("z", 3))}


def test_on_job_callback_may_use_the_engine(state: Path):
    """A callback that reads (or runs) the engine while a job is being reported does not hang."""
    seen = []
    eng = Engine(state, on_job=lambda job: seen.append((job.pipeline, eng.run_pending(),
                                                        eng.inspect_job(job.pipeline, job.id).state)))
    eng.create_repo("in")
    eng.create_pipeline(bash_spec("p", pfs("in"), "true"))
    put(eng, "in", {"/a": "1"})
    assert seen == [("p", [], "success")] * 2  # the pipeline's first job, then the commit's


def test_accept_return_code_err_cmd_and_working_dir(eng: Engine):
    eng.create_repo("in")
    put(eng, "in", {"/ok": "1", "/bad": "2"})
    accept = bash_spec("acc", pfs("in"), "cp /pfs/in/* /pfs/out/; exit 3")
    accept["transform"]["acceptReturnCode"] = [3]
    eng.create_pipeline(accept)
    assert eng.list_jobs("acc")[0].state == "success"
    recover = bash_spec("rec", pfs("in"), 'test -f /pfs/in/bad && exit 1; cp /pfs/in/* /pfs/out/',
                        datumTries=1)
    recover["transform"].update(errCmd=["bash"], errStdin=["echo recovering $PACH_DATUM_ID"])
    eng.create_pipeline(recover)
    job = eng.list_jobs("rec")[0]
    assert (job.state, job.processed, job.recovered, job.failed) == ("success", 1, 1, 0)
    assert files(eng, "rec") == {"/ok": b"1"}  # a recovered datum writes nothing
    [rec] = [d for d in eng.list_datums("rec", job.id) if d.state == "recovered"]
    assert "recovering" in rec.log and rec.inputs[0].files == ["/bad"]
    wd = bash_spec("wd", pfs("in"), "pwd > /pfs/out/$(ls /pfs/in)")
    wd["transform"]["workingDir"] = "/pfs/in"
    eng.create_pipeline(wd)
    assert files(eng, "wd")["/ok"].decode().strip().endswith("/in")


def test_pfs_commit_pins_an_input(eng: Engine):
    eng.create_repo("in")
    first = put(eng, "in", {"/a": "old"})
    put(eng, "in", {"/a": "new"})
    eng.create_pipeline(bash_spec("pin", pfs("in", commit=first.id), "cp /pfs/in/a /pfs/out/a"))
    assert files(eng, "pin") == {"/a": b"old"}


def test_outputs_symlinked_to_inputs_are_stored(eng: Engine):
    """`ln -s /pfs/in/x /pfs/out/x`, Pachyderm's zero-copy idiom, works with /pfs mapped, even
    when the code builds the /pfs link target itself (here "/$(echo pfs)" escapes rewriting)."""
    eng.create_repo("in")
    put(eng, "in", {"/x": "linked", "/y": "also"})
    eng.create_pipeline(bash_spec("ln", pfs("in"), 'for f in /pfs/in/*; do n=$(basename $f); '
                                  'ln -s "/$(echo pfs)/in/$n" /pfs/out/$n; done'))
    assert files(eng, "ln") == {"/x": b"linked", "/y": b"also"}


def test_parallelism_spec_runs_datums_in_a_small_pool(eng: Engine, tmp_path: Path):
    """parallelismSpec.constant 2: two datums run at the same time, each in its own /pfs."""
    import os
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 CPUs")
    meet = tmp_path / "meet"
    meet.mkdir()
    eng.create_repo("in")
    put(eng, "in", {f"/{i}": str(i) for i in range(4)})
    # Each datum checks in, then waits (up to 20 s) until another datum has checked in too.
    script = (f'n=$(ls /pfs/in); touch {meet}/$n; for i in $(seq 200); do '
              f'[ $(ls {meet} | wc -l) -ge 2 ] && break; sleep 0.1; done; '
              f'ls {meet} | wc -l > /pfs/out/$n.seen; echo "$in" > /pfs/out/$n.root')
    eng.create_pipeline(bash_spec("par", pfs("in"), script, parallelismSpec={"constant": 2}))
    job = eng.list_jobs("par")[0]
    assert (job.state, job.processed) == ("success", 4)
    out = files(eng, "par")
    assert all(int(out[f"/{i}.seen"]) >= 2 for i in range(4))
    roots = {Path(out[f"/{i}.root"].decode().strip()).parents[2].name for i in range(4)}
    assert roots == {"w0", "w1"}
