"""The debug API of `local serve` (debug_v2.Debug) through the real python-pachyderm client: the
dump holds the engine's state, the CPU profile shows where this process spent its CPU, the
binary is the server's code."""
from __future__ import annotations

import io
import json
import logging
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import grpc
import pytest
import python_pachyderm
from google.protobuf import duration_pb2
from python_pachyderm.proto.v2.debug import debug_pb2, debug_pb2_grpc
from python_pachyderm.service import pps_proto

import pix2pix

COPY = "import pathlib, shutil\nfor p in pathlib.Path('/pfs/images').glob('*'): shutil.copy(p, '/pfs/out')"


@pytest.fixture
def client(local_server) -> python_pachyderm.Client:
    port, _ = local_server
    return python_pachyderm.Client(host="localhost", port=port)


@pytest.fixture
def stub(local_server) -> debug_pb2_grpc.DebugStub:
    """The raw stub, for calls python-pachyderm's mixin cannot make (set_log_level with a single
    level sets the other one to None, which protobuf refuses)."""
    port, _ = local_server
    with grpc.insecure_channel(f"localhost:{port}") as channel:
        yield debug_pb2_grpc.DebugStub(channel)


def _untar(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_dump_holds_repos_commits_pipelines_jobs_and_logs(client):
    client.create_repo("images")
    with client.commit("images", "master") as done:
        client.put_file_bytes(done, "/a.txt", b"hello")
    client.create_pipeline("copy", transform=pps_proto.Transform(
        cmd=["python3", "-c", COPY], image="python:3.11-slim"),
        input=pps_proto.Input(pfs=pps_proto.PFSInput(
            repo="images", branch="master", glob="/*")))
    # The pipeline's first job (made when it was created, as pachd) runs on the commit.
    first_job = next(client.list_job("copy")).job.id
    next(client.inspect_job(first_job, "copy", wait=True))
    still_open = client.start_commit("images", "dev")

    chunks = list(client.dump())  # the template, then DumpV2, as python-pachyderm does it
    first = chunks[0]
    # What python-pachyderm's own test_dump_v2 reads from the first message.
    assert first.WhichOneof("chunk") == "progress" and first.progress.progress > 0
    tasks = {c.progress.task for c in chunks if c.WhichOneof("chunk") == "progress"}
    assert {"source-repos", "pipelines", "version", "profiles", "binaries"} <= tasks
    files = _untar(b"".join(c.content.content for c in chunks if c.WhichOneof("chunk") == "content"))

    repo = json.loads(files["source-repos/default/images/repo.json"])
    assert repo["repo"]["name"] == "images"
    assert {b["name"] for b in repo["branches"]} >= {"master"}
    commits = {c["id"]: c for c in json.loads(files["source-repos/default/images/commits.json"])}
    assert commits[done.id]["finished"] is not None and commits[done.id]["size"] == 5
    assert commits[still_open.id]["finished"] is None and commits[still_open.id]["branch"] == "dev"
    assert not any(name.startswith("source-repos/default/copy/") for name in files)  # output repo

    pipe = "pipelines/default/copy/"
    assert json.loads(files[pipe + "spec.json"])["spec"]["transform"]["cmd"][0] == "python3"
    jobs = json.loads(files[pipe + "jobs.json"])
    assert [j["state"] for j in jobs] == ["success"]
    datums = json.loads(files[pipe + "datums.json"])
    assert [d["inputs"][0]["files"] for d in datums] == [["/a.txt"]]
    out_commits = json.loads(files[pipe + "commits.json"])
    assert jobs[0]["output_commit"] in [c["id"] for c in out_commits]
    assert pipe + "logs.txt" in files

    version = client.get_remote_version()
    assert files["pachd/local/pachd/version.txt"].decode().strip() == (
        f"{version.major}.{version.minor}.{version.micro}{version.additional}")
    threads = files["pachd/pods/local/pachd/threads.txt"].decode()
    assert "pachd-local-runner" in threads and "DumpV2" in threads  # this very call, mid-dump
    assert "pix2pix/pachyderm/engine.py" in zipfile.ZipFile(
        io.BytesIO(files["pachd/pods/local/binary.zip"])).namelist()


def test_dump_template_and_a_dump_of_one_pipeline(client, stub):
    client.create_repo("images")
    template = client.get_dump_template()
    assert template.input_repos and template.system.version
    assert not template.system.helm and not template.system.database  # nothing of those here
    request = debug_pb2.DumpV2Request(system=debug_pb2.System(helm=True),
                                      pipelines=[debug_pb2.Pipeline(project="default", name="nope")])
    files = _untar(b"".join(c.content.content for c in stub.DumpV2(request)
                            if c.WhichOneof("chunk") == "content"))
    # Asked for what is not here: each part says why, as pachd's error.txt files do.
    assert "Kubernetes" in files["helm/error.txt"].decode()
    assert "nope" in files["pipelines/default/nope/error.txt"].decode()
    assert not any(name.startswith("source-repos/") for name in files)
    # pachd 2.6's Dump: the same archive, without progress messages.
    files = _untar(b"".join(c.value for c in stub.Dump(debug_pb2.DumpRequest())))
    assert {"source-repos/default/images/repo.json", "pachd/local/pachd/version.txt"} <= set(files)
    only = debug_pb2.Filter(pipeline=pps_proto.Pipeline(name="nope"))
    files = _untar(b"".join(c.value for c in stub.Dump(debug_pb2.DumpRequest(filter=only))))
    assert list(files) == ["pipelines/default/nope/error.txt"]


def _spin_for_the_profile(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(i * i for i in range(2000))


def test_cpu_profile_shows_the_busy_function_and_not_the_idle_thread(client):
    stop, idle = threading.Event(), threading.Event()
    busy = threading.Thread(target=_spin_for_the_profile, args=(stop,), name="spinner")
    waiter = threading.Thread(target=idle.wait, name="idle-waiter")
    busy.start(), waiter.start()
    try:
        data = b"".join(client.profile_cpu(duration_pb2.Duration(seconds=1)))
    finally:
        stop.set(), idle.set()
        busy.join(), waiter.join()
    files = _untar(data)
    weights: dict[str, int] = {}
    for line in files["cpu.folded"].decode().splitlines():
        stack, weight = line.rsplit(" ", 1)
        weights[stack] = int(weight)
    spin = sum(w for s, w in weights.items() if "_spin_for_the_profile" in s)
    assert spin > 0.5 * sum(weights.values())  # most of the CPU this process used in that second
    assert spin > 100_000  # microseconds of CPU in one second of profile: it did spin
    assert not any(s.startswith("idle-waiter;") for s in weights)  # waiting uses no CPU
    meta = json.loads(files["cpu-profile.json"])
    assert meta["weight"] == "CPU microseconds" and meta["samples"] >= 20


def test_goroutine_profile_is_a_thread_dump_and_other_profiles_are_refused(stub):
    files = _untar(b"".join(c.value for c in stub.Profile(
        debug_pb2.ProfileRequest(profile=debug_pb2.Profile(name="goroutine")))))
    assert "pachd-local-runner" in files["threads.txt"].decode()
    with pytest.raises(grpc.RpcError) as e:
        list(stub.Profile(debug_pb2.ProfileRequest(profile=debug_pb2.Profile(name="heap"))))
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED and "'heap'" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        worker = debug_pb2.Filter(worker=debug_pb2.Worker(pod="w"))
        list(stub.Profile(debug_pb2.ProfileRequest(profile=debug_pb2.Profile(name="cpu"), filter=worker)))
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED and "worker filter" in e.value.details()


def test_binary_is_the_servers_own_source(client):
    archive = zipfile.ZipFile(io.BytesIO(b"".join(client.binary())))
    engine_py = Path(pix2pix.__file__).parent / "pachyderm" / "engine.py"
    assert archive.read("pix2pix/pachyderm/engine.py") == engine_py.read_bytes()
    assert not any("__pycache__" in n for n in archive.namelist())


def test_set_log_level_for_a_while_then_back(stub):
    logger = logging.getLogger("pix2pix")
    before = logger.level
    level = debug_pb2.SetLogLevelRequest
    reply = stub.SetLogLevel(level(pachyderm=level.DEBUG, duration=duration_pb2.Duration(nanos=300_000_000)))
    assert list(reply.affected_pods) == ["local"] and logger.level == logging.DEBUG
    deadline = time.monotonic() + 5
    while logger.level != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logger.level == before
    with pytest.raises(grpc.RpcError) as e:
        stub.SetLogLevel(level(pachyderm=level.OFF))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "OFF" in e.value.details()
