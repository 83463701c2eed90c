"""The pps calls `local serve` answers, through python-pachyderm: pipelines created from a spec
as pachctl reads it, versions on update, jobs, job sets, datums, and pachd's error codes."""
from __future__ import annotations

import grpc
import pytest
import python_pachyderm
from python_pachyderm.proto.v2.pps import pps_pb2

SPEC = {
    "pipeline": {"name": "copy"},
    "description": "copies each file",
    "transform": {"cmd": ["python3", "-c",
                          "import pathlib, shutil\n"
                          "for p in pathlib.Path('/pfs/src').iterdir(): shutil.copy(p, '/pfs/out')"]},
    "input": {"pfs": {"repo": "src", "branch": "master", "glob": "/*"}},
    "parallelismSpec": {"constant": 1},
    "datumTries": 2,
    "resourceLimits": {"gpu": {"type": "nvidia.com/gpu", "number": 1}},
}


@pytest.fixture
def client(local_server):
    c = python_pachyderm.Client(host="localhost", port=local_server[0])
    c.create_repo("src")
    return c


def test_pipeline_lifecycle(client):
    client.create_pipeline_from_request(python_pachyderm.parse_dict_pipeline_spec(SPEC))
    p = next(client.inspect_pipeline("copy"))
    assert p.version == 1 and p.state == pps_pb2.PipelineState.PIPELINE_RUNNING
    assert p.details.description == "copies each file" and p.details.datum_tries == 2
    assert p.details.input.pfs.glob == "/*" and p.details.resource_limits.gpu.number == 1
    with pytest.raises(grpc.RpcError) as e:
        client.create_pipeline_from_request(python_pachyderm.parse_dict_pipeline_spec(SPEC))
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    req = python_pachyderm.parse_dict_pipeline_spec(SPEC | {"description": "v2"})
    req.update = True
    client.create_pipeline_from_request(req)
    assert next(client.inspect_pipeline("copy")).version == 2
    assert [x.pipeline.name for x in client.list_pipeline()] == ["copy"]
    assert "copy" in [r.repo.name for r in client.list_repo()]  # its output repo
    client.delete_pipeline("copy", keep_repo=True)
    assert list(client.list_pipeline()) == []
    with pytest.raises(grpc.RpcError) as e:
        next(client.inspect_pipeline("copy"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_invalid_spec_is_invalid_argument_naming_the_field(client):
    bad = python_pachyderm.parse_dict_pipeline_spec(
        SPEC | {"input": {"pfs": {"repo": "src", "glob": "no-leading-slash["}}})
    with pytest.raises(grpc.RpcError) as e:
        client.create_pipeline_from_request(bad)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input.pfs.glob" in e.value.details()
    missing = python_pachyderm.parse_dict_pipeline_spec(SPEC | {"input": {"pfs": {"repo": "nope", "glob": "/"}}})
    with pytest.raises(grpc.RpcError) as e:
        client.create_pipeline_from_request(missing)
    assert e.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    assert "nope" in e.value.details()


def test_jobs_job_sets_and_datums(client):
    client.create_pipeline_from_request(python_pachyderm.parse_dict_pipeline_spec(SPEC))
    with client.commit("src", "master") as c1:
        client.put_file_bytes(c1, "/a", b"a")
        client.put_file_bytes(c1, "/b", b"b")
    job = next(client.inspect_job(c1.id, "copy", wait=True))
    assert job.state == pps_pb2.JobState.JOB_SUCCESS and job.data_total == 2 and job.data_processed == 2
    assert job.output_commit.id == c1.id
    with client.commit("src", "master") as c2:
        client.put_file_bytes(c2, "/c", b"c")
    jobs = list(client.inspect_job(c2.id, wait=True))  # the job set of that commit
    assert [(j.job.pipeline.name, j.data_processed, j.data_skipped) for j in jobs] == [("copy", 1, 2)]
    # Newest first; the last is the pipeline's first job, made when it was created (as pachd).
    first = [j.job.id for j in client.list_job("copy")]
    assert first[:2] == [c2.id, c1.id] and len(first) == 3
    assert [j.job.id for j in client.list_job("copy", number=1)] == [c2.id]
    assert [s.job_set.id for s in client.list_job()] == first
    datums = list(client.list_datum("copy", c1.id))
    assert sorted(f.file.path for d in datums for f in d.data) == ["/a", "/b"]
    d = client.inspect_datum("copy", c1.id, datums[0].datum.id)
    assert d.state == pps_pb2.DatumState.SUCCESS and d.datum.id == datums[0].datum.id
    assert client.get_file(("copy", "master"), "/c").read() == b"c"
    with pytest.raises(grpc.RpcError) as e:
        list(client.list_job("nope"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
