"""``pix2pix local serve``: a pachd-compatible gRPC endpoint on 127.0.0.1, backed by the embedded
engine, so python-pachyderm 7.6 (and ``pix2pix cluster``) work against this machine unchanged.

It speaks pachd's own protocol with the messages python-pachyderm ships
(``python_pachyderm.proto.v2``), for the subset of the pfs and pps APIs that
``pix2pix cluster`` and a plain python-pachyderm script use (see :data:`SERVED`); every other
method answers UNIMPLEMENTED naming itself. Pipelines created here run on the embedded engine's
process executor, exactly like ``pix2pix create pipeline``.

Usage::

    server, port = serve(state_dir, port=0)      # in-process, a free port (tests)
    client = python_pachyderm.Client(host="localhost", port=port)
    ...
    server.stop(grace=None)
"""
from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from concurrent import futures
from pathlib import Path
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from python_pachyderm.proto.v2.admin import admin_pb2, admin_pb2_grpc
from python_pachyderm.proto.v2.auth import auth_pb2, auth_pb2_grpc
from python_pachyderm.proto.v2.debug import debug_pb2_grpc
from python_pachyderm.proto.v2.identity import identity_pb2, identity_pb2_grpc
from python_pachyderm.proto.v2.license import license_pb2, license_pb2_grpc
from python_pachyderm.proto.v2.pfs import pfs_pb2_grpc
from python_pachyderm.proto.v2.pps import pps_pb2_grpc
from python_pachyderm.proto.v2.transaction import transaction_pb2_grpc
from python_pachyderm.proto.v2.version.versionpb import version_pb2, version_pb2_grpc

from pix2pix import __version__
from pix2pix.errors import ClusterError
from pix2pix.pachyderm.info import PACHD_VERSION
from pix2pix.pachyderm.server_base import complete

HOST = "127.0.0.1"
MAX_MESSAGE_BYTES = 64 << 20  # above pachd's 20 MiB, so any client chunk size fits


@complete(version_pb2.DESCRIPTOR.services_by_name["API"])
class VersionServicer(version_pb2_grpc.APIServicer):
    def GetVersion(self, request, context):
        major, minor, micro = PACHD_VERSION
        return version_pb2.Version(major=major, minor=minor, micro=micro,
                                   additional=f"pix2pix-local-{__version__}", platform="local")


@complete(admin_pb2.DESCRIPTOR.services_by_name["API"])
class AdminServicer(admin_pb2_grpc.APIServicer):
    def __init__(self, cluster_id: str) -> None:
        self.cluster_id = cluster_id

    def InspectCluster(self, request, context):
        return admin_pb2.ClusterInfo(id=self.cluster_id, deployment_id=self.cluster_id,
                                     version_warnings_ok=True)


# Auth is off, as on a pachd without an enterprise licence: every auth, identity and license call
# answers with pachd's own message, which python-pachyderm turns into AuthServiceNotActivated
# (so `client.delete_all()` works as against such a pachd).
AUTH_OFF = "the auth service is not activated"


@complete(auth_pb2.DESCRIPTOR.services_by_name["API"], others=AUTH_OFF)
class AuthServicer(auth_pb2_grpc.APIServicer):
    pass


@complete(identity_pb2.DESCRIPTOR.services_by_name["API"], others=AUTH_OFF)
class IdentityServicer(identity_pb2_grpc.APIServicer):
    pass


@complete(license_pb2.DESCRIPTOR.services_by_name["API"], others=AUTH_OFF)
class LicenseServicer(license_pb2_grpc.APIServicer):
    pass


def _served_table() -> dict[str, tuple[str, ...]]:
    from pix2pix.pachyderm.server_debug import DebugServicer
    from pix2pix.pachyderm.server_pfs import PfsServicer
    from pix2pix.pachyderm.server_pps import PpsServicer
    from pix2pix.pachyderm.server_txn import TransactionServicer

    return {"pfs_v2.API": PfsServicer.SERVED,
            "pps_v2.API": PpsServicer.SERVED + ("CreatePipelineV2",),
            "versionpb_v2.API": VersionServicer.SERVED, "admin_v2.API": AdminServicer.SERVED,
            "auth_v2.API, identity_v2.API, license_v2.API": (f"every method answers: {AUTH_OFF}",),
            "transaction_v2.API": TransactionServicer.SERVED,
            "debug_v2.Debug": DebugServicer.SERVED,
            "grpc.health.v1.Health": ("Check",)}


def served() -> dict[str, tuple[str, ...]]:
    """{service: method names} this endpoint answers (everything else: UNIMPLEMENTED)."""
    return _served_table()


def serve(state_dir: Path, port: int = 0, *, host: str = HOST, max_workers: int = 16,
          executor: str | None = None, engine=None, background: bool = True) -> tuple[grpc.Server, int]:
    """Start the endpoint in this process on ``host:port`` (0: a free port) and return
    ``(server, port)``; stop it with ``server.stop(grace)`` and ``server.adapter.close()``.
    Pipelines run with ``executor`` (the engine's: ``process`` by default, or ``container``) in a
    background thread (``background``), or wherever the caller runs ``server.adapter.run_loop()``.

    Raises:
        ClusterError: the port cannot be bound (in use, or not allowed).
    """
    from pix2pix.pachyderm.server_debug import DebugServicer
    from pix2pix.pachyderm.server_engine import EngineAdapter
    from pix2pix.pachyderm.server_pfs import PfsServicer
    from pix2pix.pachyderm.server_pps import PpsServicer, v2_handler
    from pix2pix.pachyderm.server_txn import TransactionServicer

    _check_port(host, port)
    adapter = EngineAdapter(Path(state_dir), executor=executor, engine=engine, background=background)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="pachd-local"),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                 ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                 ("grpc.so_reuseport", 0)])
    pfs_pb2_grpc.add_APIServicer_to_server(PfsServicer(adapter), server)
    pps = PpsServicer(adapter)
    pps_pb2_grpc.add_APIServicer_to_server(pps, server)
    server.add_generic_rpc_handlers((v2_handler(pps),))
    version_pb2_grpc.add_APIServicer_to_server(VersionServicer(), server)
    admin_pb2_grpc.add_APIServicer_to_server(AdminServicer(adapter.cluster_id), server)
    auth_pb2_grpc.add_APIServicer_to_server(AuthServicer(), server)
    identity_pb2_grpc.add_APIServicer_to_server(IdentityServicer(), server)
    license_pb2_grpc.add_APIServicer_to_server(LicenseServicer(), server)
    transaction_pb2_grpc.add_APIServicer_to_server(TransactionServicer(adapter), server)
    debug_pb2_grpc.add_DebugServicer_to_server(
        DebugServicer(adapter, VersionServicer().GetVersion(None, None)), server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        bound = 0
    if not bound:
        adapter.close()
        raise ClusterError(f"cannot listen on {host}:{port} (in use?); stop what holds it or pass "
                           "another --port")
    server.start()
    server.adapter = adapter  # for tests and for a clean shutdown
    return server, bound


def _check_port(host: str, port: int) -> None:
    """Fail with one clear line before gRPC core logs its own bind error to stderr."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise ClusterError(f"cannot listen on {host}:{port} ({e.strerror or 'in use?'}); stop what "
                               "holds it or pass another --port") from None


def serve_forever(*, state_dir: Path, port: int = 30650, executor: str | None = None,
                  announce: Callable[[str], None] = print) -> None:
    """Serve until SIGINT or SIGTERM. Pipelines run in this (main) thread, so a signal during a
    job interrupts it as Ctrl-C interrupts ``pix2pix`` commands (the engine records it killed);
    then in-flight calls get up to 5 s to finish."""
    server, bound = serve(state_dir, port, executor=executor, background=False)
    adapter = server.adapter

    def on_signal(signum, frame):
        adapter.stopped = True
        if adapter.running_job:
            raise KeyboardInterrupt  # unwinds run_pending(), which records the job as killed

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        announce(f"pachd-compatible endpoint on grpc://{HOST}:{bound} (state {state_dir}); "
                 f"e.g. `pix2pix cluster --pachd-address grpc://localhost:{bound} status`. "
                 "Ctrl-C stops it.")
        try:
            adapter.run_loop()
        except KeyboardInterrupt:  # a signal between two checks of the loop
            pass
        announce("stopping: finishing in-flight calls")
        stop_own_transforms()
        adapter.stop()
        server.stop(grace=5).wait()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def stop_own_transforms(grace_s: float = 5.0) -> list[int]:
    """Terminate the process groups this process started for transforms (each leads its own
    session), so none runs on after the endpoint stops. Linux (/proc); elsewhere a no-op."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        if int(fields[1]) == me and int(fields[2]) == pid:  # our child, leading its own group
            found.append(pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in found:
            try:
                os.killpg(pid, sig)
                alive.append(pid)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace_s
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if _alive(p)]
            time.sleep(0.1)
        if not alive:
            break
    return found


def _alive(pid: int) -> bool:
    # Not waitpid(): reaping the engine's child here would hide its exit status from the engine.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def new_cluster_id() -> str:
    return uuid.uuid4().hex
