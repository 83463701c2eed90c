"""The worker gRPC API a datum-batching transform talks to (Pachyderm's ``NextDatum`` protocol).

With ``transform.datumBatching: true`` the user code starts once per job and loops::

    code                                  engine (this server, PPS_WORKER_GRPC_PORT)
    NextDatum(error="")          ----->   (first call) prepare datum 1 in /pfs, answer its env
    ... process /pfs/<input> -> /pfs/out
    NextDatum(error="" | "why")  ----->   datum 1 done (outputs kept) or failed (retried up to
                                          datumTries); prepare the next, answer its env
    ...
    NextDatum(...)               ----->   last datum done: no answer; the engine terminates
                                          the code, as Pachyderm's worker does

python_pachyderm's ``batch_all_datums`` / ``Client().worker.next_datum()`` speak it.
"""
from __future__ import annotations

import threading
from concurrent import futures
from typing import Callable, Optional

import grpc
from python_pachyderm.proto.v2.worker import worker_pb2, worker_pb2_grpc


class _Servicer(worker_pb2_grpc.WorkerServicer):
    def __init__(self, server: "DatumServer"):
        self.server = server

    def NextDatum(self, request, context):  # noqa: N802 (gRPC method name)
        env = self.server.on_next(request.error)
        if env is None:
            # No more datums: keep the call open until the engine stops the code.
            self.server.finished.set()
            self.server.stopping.wait(timeout=600)
            context.abort(grpc.StatusCode.CANCELLED, "no more datums; the worker ends the code")
        return worker_pb2.NextDatumResponse(env=[f"{k}={v}" for k, v in env.items()])


class DatumServer:
    """A localhost gRPC server for one batching job.

    Args:
        on_next: called with the error the code reported for the previous datum ("" for
            none); returns the next datum's env, or None when there is no datum left.
    """

    def __init__(self, on_next: Callable[[str], Optional[dict[str, str]]]):
        self.on_next_cb = on_next
        self.finished = threading.Event()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self._server: grpc.Server | None = None
        self.calls = 0

    def on_next(self, error: str) -> Optional[dict[str, str]]:
        with self.lock:  # one datum at a time, whatever the client does
            self.calls += 1
            return self.on_next_cb(error)

    def start(self) -> int:
        """Start serving; returns the port."""
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        worker_pb2_grpc.add_WorkerServicer_to_server(_Servicer(self), self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        if not port:
            raise OSError("cannot bind a localhost port for the worker API")
        self._server.start()
        return port

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.stop(grace=1).wait(5)
            self._server = None
