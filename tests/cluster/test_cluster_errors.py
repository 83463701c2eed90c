"""How `pix2pix cluster` reports a pachd that refuses it: one line per gRPC status, naming the
address and what to do; and `get` never writes outside its folder, whatever pachd answers."""
from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf import wrappers_pb2
from python_pachyderm.proto.v2.pfs import pfs_pb2, pfs_pb2_grpc

import pix2pix.cli
from pix2pix.errors import ClusterError, DataError


class _Refuse(grpc.GenericRpcHandler):
    """A pachd stand-in that answers every call with one status, as an auth-enabled pachd does."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details

    def service(self, handler_call_details):
        def handler(request, context):
            context.abort(self.code, self.details)
        return grpc.unary_unary_rpc_method_handler(handler)


def _start(*handlers, servicer=None) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    if servicer is not None:
        pfs_pb2_grpc.add_APIServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers(handlers)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def _invoke(port: int, *args: str):
    return CliRunner().invoke(pix2pix.cli.cli, ["cluster", "--pachd-address", f"grpc://localhost:{port}", *args])


@pytest.mark.parametrize("code, details, expected", [
    (grpc.StatusCode.UNAUTHENTICATED, "no authentication token", "pachctl auth login"),
    (grpc.StatusCode.PERMISSION_DENIED, "user robot:x is not authorized", "ask a cluster admin"),
    (grpc.StatusCode.NOT_FOUND, "repo training not found", "not found on pachd"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "deadline", "timed out"),
])
def test_refusals_are_one_clear_line(code, details, expected, tmp_path, refused):
    server, port = _start(_Refuse(code, details))
    try:
        for args in (["status"], ["get", "training", "-o", str(tmp_path / "o")]):
            msg = refused(_invoke(port, *args), ClusterError, f"localhost:{port}", expected, details)
            assert "\n" not in msg
    finally:
        server.stop(None)
    assert not (tmp_path / "o").exists()


class _Hostile(pfs_pb2_grpc.APIServicer):
    """A pachd that lists a file whose path climbs out of the target folder."""

    def InspectCommit(self, request, context):
        c = pfs_pb2.Commit(id="0" * 32, repo=pfs_pb2.Repo(name="out", type="user"),
                           branch=pfs_pb2.Branch(repo=pfs_pb2.Repo(name="out", type="user"), name="master"))
        return pfs_pb2.CommitInfo(commit=c)

    def WalkFile(self, request, context):
        for path in ("/ok.png", "/../../escape.png"):
            yield pfs_pb2.FileInfo(file=pfs_pb2.File(path=path), file_type=pfs_pb2.FileType.FILE, size_bytes=1)

    def GetFile(self, request, context):
        yield wrappers_pb2.BytesValue(value=b"x")


def test_get_refuses_paths_outside_the_folder(tmp_path, refused):
    server, port = _start(servicer=_Hostile())
    try:
        r = _invoke(port, "get", "out", "-o", str(tmp_path / "o"))
    finally:
        server.stop(None)
    msg = refused(r, DataError)
    assert "outside" in msg or "refusing" in msg
    assert not (tmp_path / "escape.png").exists() and not (tmp_path / "o" / "ok.png").exists()


def test_connect_time_calls_answer_like_pachd(local_server):
    import python_pachyderm

    client = python_pachyderm.Client(host="localhost", port=local_server[0])
    v = client.get_remote_version()
    assert (v.major, v.minor) == (2, 6) and v.additional.startswith("pix2pix-local")
    assert client.health_check().status == 1  # SERVING
    info = client.inspect_cluster()
    assert info.deployment_id and info.id == info.deployment_id
    with pytest.raises(grpc.RpcError) as e:
        client.who_am_i()
    assert e.value.details() == "the auth service is not activated"


def test_pachctl_config_context_is_used_and_its_deployment_id_checked(local_server, tmp_path, monkeypatch):
    import json

    import python_pachyderm

    from pix2pix.cluster.connection import connect

    port = local_server[0]
    real_id = python_pachyderm.Client(host="localhost", port=port).inspect_cluster().deployment_id
    cfg = tmp_path / "config.json"
    monkeypatch.setenv("PACH_CONFIG", str(cfg))
    monkeypatch.delenv("PACHD_ADDRESS", raising=False)
    context = {"pachd_address": f"grpc://localhost:{port}", "cluster_deployment_id": real_id}
    cfg.write_text(json.dumps({"v2": {"active_context": "local", "contexts": {"local": context}}}))
    r = CliRunner().invoke(pix2pix.cli.cli, ["cluster", "status"])
    assert r.exit_code == 0 and "no pipelines" in r.output
    context["cluster_deployment_id"] = "someothercluster"
    cfg.write_text(json.dumps({"v2": {"active_context": "local", "contexts": {"local": context}}}))
    with pytest.raises(ClusterError, match="wrong cluster"):
        connect(None)
