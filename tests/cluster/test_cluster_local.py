"""`pix2pix cluster` end to end against `local serve`, through the real python-pachyderm client:
deploy the four (stand-in) pipelines, put training data and images, wait, get the outputs and
trace one back to its input image, model, checkpoint and training commits."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pix2pix.cluster.connection import connect
from pix2pix.errors import ClusterError, JobError


def _images(d: Path, names: list[str]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (d / name).write_bytes(bytes([i]) * (10 + i))
    return d


def _nodes(tree: dict) -> set[tuple[str, str]]:
    return {(tree["repo"], tree["commit"])} | {n for c in tree["inputs"] for n in _nodes(c)}


def test_deploy_put_wait_get_provenance(pix, local_server, standin_pipelines, tmp_path, refused):
    r = pix("deploy", "--pipelines", str(standin_pipelines))
    assert r.output.splitlines() == [
        "created repo input_images", "created repo training",
        "created pipeline checkpoint", "created pipeline model",
        "created pipeline preprocess_images", "created pipeline generate_images"]
    r = pix("deploy", "--pipelines", str(standin_pipelines))  # idempotent: updates, no error
    assert "updated pipeline generate_images" in r.output and "updated repo training" in r.output
    client = connect(f"grpc://localhost:{local_server[0]}").client
    assert "params.yaml" in client.inspect_repo("training").description
    assert next(client.inspect_pipeline("model")).details.transform.cmd[0] == "python3"

    train = _images(tmp_path / "train", ["1.jpg", "2.jpg"])
    (tmp_path / "params.yaml").write_text("train: {max_steps: 1}\n")
    r = pix("put", "training@master", str(train), str(tmp_path / "params.yaml"))
    training_commit = r.output.split("commit ")[-1].strip()
    assert r.output.startswith("put 3 files into training@master")
    r = pix("wait", f"training@{training_commit}")
    assert "job checkpoint: success" in r.output and "job model: success" in r.output

    imgs = _images(tmp_path / "imgs", ["cat.jpg", "dog.jpg"])
    r = pix("put", "input_images", str(imgs))
    images_commit = r.output.split("commit ")[-1].strip()
    r = pix("wait", "input_images")
    assert f"commit set {images_commit} finished" in r.output
    assert "job generate_images: success (2/2 datums)" in r.output

    out = tmp_path / "out"
    r = pix("get", "generate_images", "-o", str(out))
    assert sorted(p.name for p in out.iterdir()) == ["cat.png", "dog.png"]
    body = (out / "cat.png").read_bytes()
    assert body.startswith(b"gen[model<ckpt:") and body.endswith(b"pre:" + (imgs / "cat.jpg").read_bytes())
    pix("get", "generate_images@master:/dog.png", "-o", str(tmp_path / "one"))
    # Creating the checkpoint pipeline gave training@master an empty first commit (as pachd's
    # fillNewBranches does); there is nothing before it.
    assert "wrote 0 files" in pix("get", "training@master^", "-o", str(tmp_path / "empty")).output
    r = pix("get", "training@master^2", "-o", str(tmp_path / "none"), ok=False)
    refused(r, ClusterError, "training@master^2")
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["dog.png"]

    r = pix("provenance", "generate_images@master:/cat.png", "--json")
    t = json.loads(r.output)
    assert t["commit_set"] == images_commit
    assert t["commits"]["input_images"] == images_commit
    assert t["commits"]["preprocess_images"] == images_commit
    assert t["commits"]["model"] == training_commit
    assert t["commits"]["checkpoint"] == training_commit
    assert t["commits"]["training"] == training_commit
    assert {"repo": "input_images", "commit": images_commit, "path": "/cat.jpg"} in t["sources"]
    assert {"repo": "training", "commit": training_commit, "path": "/"} in t["sources"]
    # Through pachd's API, the chain names the same commits as the engine's own records.
    from pix2pix.pachyderm.engine import Engine
    from pix2pix.pachyderm.provenance import to_dict
    local = to_dict(Engine(local_server[1]).provenance("generate_images", "master", "/cat.png"))
    assert _nodes(t["chain"]) == _nodes(local)
    r = pix("provenance", f"generate_images@{images_commit}:/cat.png")
    assert f"input_images@{images_commit}:/cat.jpg" in r.output
    assert f"training@{training_commit}:/" in r.output and f"model@{training_commit}:/" in r.output

    r = pix("status")
    lines = r.output.splitlines()
    assert lines[0].split() == ["PIPELINE", "VERSION", "STATE", "LAST", "JOB"]
    table = {line.split()[0]: line.split() for line in lines[1:5]}
    assert set(table) == {"checkpoint", "model", "preprocess_images", "generate_images"}
    assert all(row[2:] == ["running", "success"] for row in table.values())
    assert table["generate_images"][1] == "2"  # the second deploy made version 2
    assert any(line.startswith("generate_images") and images_commit in line for line in lines[6:])
    rows = {p["name"]: p for p in json.loads(pix("status", "--json", "--jobs", "1").output)}
    assert rows["generate_images"]["jobs"][0]["job"] == images_commit
    assert rows["generate_images"]["jobs"][0]["datums"] == "2/2"


def test_put_keeps_relative_paths_and_dest(pix, local_server, tmp_path):
    cluster = connect(f"grpc://localhost:{local_server[0]}")
    cluster.client.create_repo("training")
    d = tmp_path / "pairs"
    (d / "sub").mkdir(parents=True)
    (d / "a.png").write_bytes(b"a")
    (d / "sub" / "b.png").write_bytes(b"b" * 3_000_000)  # more than one 1 MiB chunk
    pix("put", "training", str(d), "--dest", "/train")
    files = sorted((f.file.path, f.size_bytes) for f in cluster.client.walk_file(("training", "master"), "/")
                   if f.file_type == 1)
    assert files == [("/train/a.png", 1), ("/train/sub/b.png", 3_000_000)]
    out = tmp_path / "back"
    pix("get", "training@master:/train", "-o", str(out))
    assert (out / "sub" / "b.png").read_bytes() == b"b" * 3_000_000
    # Nothing else: no temporary (hidden or not) left beside the files.
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == \
        ["a.png", "sub/b.png"]


def test_missing_repo_is_one_line(pix, local_server, tmp_path, refused):
    f = tmp_path / "x.png"
    f.write_bytes(b"x")
    r = pix("get", "nope", "-o", str(tmp_path / "o"), ok=False)
    refused(r, ClusterError, "not found")
    assert not (tmp_path / "o").exists()
    # As a user runs it: one line on stderr, exit code 8, no traceback.
    proc = subprocess.run([sys.executable, "-m", "pix2pix", "cluster", "--pachd-address",
                           f"grpc://localhost:{local_server[0]}", "put", "nope@master", str(f)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 8
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("Error: repo 'nope' not found on pachd at localhost:")


def test_unserved_call_is_unimplemented_naming_the_method(local_server):
    import grpc
    import python_pachyderm

    from google.protobuf import duration_pb2
    client = python_pachyderm.Client(host="localhost", port=local_server[0])
    with pytest.raises(grpc.RpcError) as e:
        list(client.get_kube_events(duration_pb2.Duration(seconds=1)))
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "/pps_v2.API/GetKubeEvents" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        list(client.query_loki("{app=\"pachd\"}"))
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED and "/pps_v2.API/QueryLoki" in e.value.details()


def test_failed_job_makes_wait_fail_naming_the_job(pix, local_server, tmp_path, refused):
    d = tmp_path / "p"
    d.mkdir()
    (d / "bad.json").write_text(json.dumps({
        "pipeline": {"name": "bad"}, "transform": {"cmd": ["python3", "-c", "raise SystemExit(3)"]},
        "input": {"pfs": {"repo": "training", "glob": "/"}}, "datumTries": 1}))
    pix("deploy", "--pipelines", str(d))
    f = tmp_path / "a.png"
    f.write_bytes(b"a")
    commit = pix("put", "training", str(f)).output.split("commit ")[-1].strip()
    r = pix("wait", "training", ok=False)
    msg = refused(r, JobError, f"pachctl logs --pipeline=bad --job={commit}")
    assert msg.startswith(f"job bad@{commit} failure")
    r = pix("status")
    assert "failure" in r.output.splitlines()[1]


def test_wait_timeout_gives_up_with_one_line(pix, tmp_path, refused):
    d = tmp_path / "p"
    d.mkdir()
    (d / "slow.json").write_text(json.dumps({
        "pipeline": {"name": "slow"}, "transform": {"cmd": ["python3", "-c", "import time; time.sleep(4)"]},
        "input": {"pfs": {"repo": "training", "glob": "/"}}}))
    pix("deploy", "--pipelines", str(d))
    f = tmp_path / "a.png"
    f.write_bytes(b"a")
    commit = pix("put", "training", str(f)).output.split("commit ")[-1].strip()
    r = pix("wait", "training", "--timeout", "0.5", ok=False)
    assert refused(r, ClusterError).startswith(f"commit set {commit} not finished after 0.5 s")
    r = pix("wait", f"training@{commit}")  # no limit: returns once the job is done
    assert "job slow: success" in r.output


def test_concurrent_clients_all_land_and_run(pix, local_server, standin_pipelines, tmp_path):
    import threading

    from pix2pix.cluster.data import put, wait
    from pix2pix.cluster.refs import Ref

    pix("deploy", "--pipelines", str(standin_pipelines))
    pix("put", "training", str(_images(tmp_path / "train", ["1.jpg"])))
    errors: list[str] = []

    def worker(i: int) -> None:
        try:
            cluster = connect(f"grpc://localhost:{local_server[0]}")
            for k in range(2):
                d = _images(tmp_path / f"w{i}{k}", [f"img{i}{k}.jpg"])
                r = put(cluster, target=Ref("input_images"), paths=[d])
                wait(cluster, ref=Ref("input_images", r.commit_id))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    client = connect(f"grpc://localhost:{local_server[0]}").client
    names = sorted(f.file.path for f in client.list_file(("generate_images", "master"), "/"))
    assert names == sorted(f"/img{i}{k}.png" for i in range(3) for k in range(2))
