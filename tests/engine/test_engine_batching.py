"""Datum batching: the code starts once per job and steps through datums with python_pachyderm's
worker API (NextDatum on PPS_WORKER_GRPC_PORT), as generate_images does to load its model once."""
from __future__ import annotations

import textwrap
from pathlib import Path


from pix2pix.pachyderm.engine import Engine

from engine_testlib import pfs, put

BATCH_ALL = """
import os, sys
from python_pachyderm import batch_all_datums
pid = os.getpid()
print("expensive setup, once", flush=True)

@batch_all_datums
def one_datum():
    src, out = sys.argv[1], sys.argv[2]
    for name in os.listdir(src):
        n = int(open(os.path.join(src, name)).read())
        if n < 0:
            raise ValueError(f"negative input {name}")
        with open(os.path.join(out, name + ".sq"), "w") as f:
            f.write(f"{n * n} {pid}")
        print("did", name, flush=True)

one_datum()
"""

NEXT_DATUM = """
import os, sys
from python_pachyderm import Client
worker = Client().worker
seen = []
while True:
    resp = worker.next_datum()
    env = dict(e.split("=", 1) for e in resp.env)
    seen.append(env["PACH_DATUM_ID"])
    name = os.path.basename(env["nums"])  # this datum's file, e.g. <pfs root>/nums/a
    with open(os.path.join(env["out_dir"], name), "w") as f:
        f.write(env["PACH_DATUM_ID"] + " " + open(env["nums"]).read() + " " + str(len(seen)))
"""


def _spec(tmp_path: Path, code: str, name: str = "sq", **extra) -> dict:
    prog = tmp_path / f"{name}.py"
    prog.write_text(textwrap.dedent(code))
    transform = {"image": "python:3.11", "cmd": ["python3", str(prog), "/pfs/nums", "/pfs/out"],
                 "datumBatching": True}
    transform.update(extra.pop("transform", {}))
    return {"pipeline": {"name": name}, "input": pfs("nums"), "transform": transform, **extra}


def test_batch_all_datums_runs_the_code_once_per_job(eng: Engine, tmp_path: Path):
    eng.create_repo("nums")
    put(eng, "nums", {f"/n{i}": str(i) for i in range(5)})
    eng.create_pipeline(_spec(tmp_path, BATCH_ALL))
    job = eng.list_jobs("sq")[0]
    assert (job.state, job.processed, job.total) == ("success", 5, 5)
    outs = {f.path: eng.get_file("sq", "master", f.path).decode().split()
            for f in eng.walk_files("sq", "master")}
    assert {p: v[0] for p, v in outs.items()} == {f"/n{i}.sq": str(i * i) for i in range(5)}
    assert len({v[1] for v in outs.values()}) == 1  # one process served every datum
    logs = [line.message for line in eng.logs("sq")]
    assert logs.count("expensive setup, once") == 1 and "did n3" in logs
    # per-datum log attribution and outputs
    d3 = [d for d in eng.list_datums("sq", job.id) if d.inputs[0].files == ["/n3"]][0]
    assert "did n3" in d3.log and "did n2" not in d3.log and d3.outputs == ["/n3.sq"]
    # incremental: a new file is the only datum served next time
    put(eng, "nums", {"/n9": "9"})
    job2 = eng.list_jobs("sq")[0]
    assert (job2.processed, job2.skipped) == (1, 5)


def test_reported_error_is_retried_then_fails_the_job(eng: Engine, tmp_path: Path):
    eng.create_repo("nums")
    put(eng, "nums", {"/a": "2", "/b": "-1", "/c": "3"})
    eng.create_pipeline(_spec(tmp_path, BATCH_ALL, datumTries=2))
    job = eng.list_jobs("sq")[0]
    assert (job.state, job.processed, job.failed) == ("failure", 2, 1)
    bad = eng.inspect_datum("sq", job.id, job.failed_datum)
    assert bad.inputs[0].files == ["/b"] and bad.tries == 2 and "negative input b" in bad.reason
    out = eng.inspect_commit("sq", job.id)  # the output commit ends with the reason, empty
    assert out.error == job.reason and eng.walk_files("sq", job.id) == []
    put(eng, "nums", {"/b": "4"})
    job2 = eng.list_jobs("sq")[0]
    assert (job2.state, job2.processed, job2.skipped) == ("success", 1, 2)


def test_next_datum_answers_each_datums_env(eng: Engine, tmp_path: Path):
    eng.create_repo("nums")
    put(eng, "nums", {"/a": "1", "/b": "2"})
    eng.create_pipeline(_spec(tmp_path, NEXT_DATUM, name="nd",
                              transform={"env": {"out_dir": "/pfs/out"}}))
    job = eng.list_jobs("nd")[0]
    assert job.state == "success"
    for d in eng.list_datums("nd", job.id):
        name = d.inputs[0].files[0]
        assert d.outputs == [name]  # attributed to its datum though one process wrote both
        datum_id, content, served = eng.get_file("nd", "master", name).decode().split()
        assert datum_id == d.id and content == {"/a": "1", "/b": "2"}[name]
    assert sorted(eng.get_file("nd", "master", n).decode().split()[2] for n in ("/a", "/b")) == ["1", "2"]


def test_code_that_dies_mid_datum_is_restarted_for_the_retry(eng: Engine, tmp_path: Path):
    code = """
    import os, sys
    from python_pachyderm import batch_all_datums
    flag = os.path.join(sys.argv[3], "crashed-once")

    @batch_all_datums
    def one():
        for name in os.listdir(sys.argv[1]):
            if name == "boom" and not os.path.exists(flag):
                open(flag, "w").close()
                os._exit(9)   # a segfault, an OOM kill...
            open(os.path.join(sys.argv[2], name), "w").write("ok")

    one()
    """
    eng.create_repo("nums")
    put(eng, "nums", {"/a": "1", "/boom": "2", "/c": "3"})
    spec = _spec(tmp_path, code, name="crash")
    spec["transform"]["cmd"].append(str(tmp_path))
    eng.create_pipeline(spec)
    job = eng.list_jobs("crash")[0]
    assert (job.state, job.processed) == ("success", 3)
    boom = [d for d in eng.list_datums("crash", job.id) if d.inputs[0].files == ["/boom"]][0]
    assert boom.tries == 2 and "exited with code 9" in boom.log
    assert sorted(f.path for f in eng.walk_files("crash", "master")) == ["/a", "/boom", "/c"]


def test_code_that_never_asks_for_a_datum_fails_clearly(eng: Engine, tmp_path: Path):
    eng.create_repo("nums")
    put(eng, "nums", {"/a": "1"})
    eng.create_pipeline(_spec(tmp_path, "print('forgot the loop')", name="nobatch"))
    job = eng.list_jobs("nobatch")[0]
    assert job.state == "failure" and "without calling NextDatum" in job.reason
