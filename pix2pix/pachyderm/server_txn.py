"""transaction_v2.API, as pachd runs it: StartTransaction opens one; a transactional call
(CreateRepo, DeleteRepo, StartCommit, FinishCommit, SquashCommitSet, CreateBranch,
DeleteBranch, CreatePipeline, StopJob) that carries its ID in the ``pach-transaction`` metadata
is appended to it instead of run, after a dry run of the whole transaction (so a bad request
fails at once, and StartCommit answers with the commit it will make: its ID is the
transaction's); FinishTransaction runs them all in one engine transaction, or none.

    client.transaction() -> StartTransaction; calls with metadata pach-transaction=ID ...;
                            FinishTransaction (or DeleteTransaction on an exception)
"""
from __future__ import annotations

import functools
from typing import Callable, Optional

import grpc
from google.protobuf import empty_pb2
from python_pachyderm.proto.v2.transaction import transaction_pb2, transaction_pb2_grpc

from pix2pix.errors import NotFoundError
from pix2pix.pachyderm.context import new_id
from pix2pix.pachyderm.server_base import Abort, complete
from pix2pix.pachyderm.server_convert import ts
from pix2pix.pachyderm.server_engine import EngineAdapter
from pix2pix.pachyderm.server_ops import run_request
from pix2pix.pachyderm.store import Transaction

METADATA_KEY = "pach-transaction"


class _DryRun(Exception):
    """Raised to roll a dry run back."""


def transaction_of(context: grpc.ServicerContext) -> Optional[str]:
    """The transaction a call belongs to (its ``pach-transaction`` metadata), if any."""
    for key, value in context.invocation_metadata() or ():
        if key == METADATA_KEY and value:
            return value
    return None


def transactional(kind: str, empty: Callable[[], object] = empty_pb2.Empty) -> Callable:
    """Decorate a servicer method that pachd lets a transaction hold: inside a transaction it
    is appended (after a dry run), else it runs. ``kind`` names its TransactionRequest field."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def method(self, request, context):
            txn = transaction_of(context)
            if txn is None:
                return fn(self, request, context)
            response = append(self.a, txn, transaction_pb2.TransactionRequest(**{kind: request}))
            return response.commit if kind == "start_commit" else empty()
        return method

    return decorate


def _get(adapter: EngineAdapter, txn_id: str) -> Transaction:
    txn = adapter.engine.store.get_transaction(txn_id)
    if txn is None:
        raise NotFoundError(f"transaction {txn_id} not found")
    return txn


def _requests(txn: Transaction) -> list[transaction_pb2.TransactionRequest]:
    return [transaction_pb2.TransactionRequest.FromString(r) for r in txn.requests]


def _run(adapter: EngineAdapter, txn_id: str, requests, *,
         dry: bool) -> list[transaction_pb2.TransactionResponse]:
    """Run ``requests`` in one engine transaction; roll it back when ``dry``."""
    eng = adapter.engine
    responses = []
    try:
        with eng.store.tx():
            for i, req in enumerate(requests, 1):
                try:
                    responses.append(run_request(eng, req, commit_set=txn_id))
                except Abort:
                    raise
                except Exception as e:
                    e.args = (f"error running request {i} of {len(requests)}: {e}",)
                    raise
            if dry:
                raise _DryRun
    except _DryRun:
        pass
    return responses


def append(adapter: EngineAdapter, txn_id: str,
           request: transaction_pb2.TransactionRequest) -> transaction_pb2.TransactionResponse:
    """Add a request to a transaction after checking the whole transaction still runs."""
    txn = _get(adapter, txn_id)
    requests = _requests(txn) + [request]
    responses = _run(adapter, txn_id, requests, dry=True)
    adapter.engine.store.set_transaction_requests(txn_id, [r.SerializeToString() for r in requests])
    return responses[-1]


def _info(txn: Transaction, responses=()) -> transaction_pb2.TransactionInfo:
    return transaction_pb2.TransactionInfo(
        transaction=transaction_pb2.Transaction(id=txn.id), requests=_requests(txn),
        responses=list(responses), started=ts(txn.started))


@complete(transaction_pb2.DESCRIPTOR.services_by_name["API"])
class TransactionServicer(transaction_pb2_grpc.APIServicer):
    def __init__(self, adapter: EngineAdapter) -> None:
        self.a = adapter

    def StartTransaction(self, request, context):
        txn = self.a.engine.store.insert_transaction(new_id())
        return transaction_pb2.Transaction(id=txn.id)

    def InspectTransaction(self, request, context):
        return _info(_get(self.a, request.transaction.id))

    def ListTransaction(self, request, context):
        return transaction_pb2.TransactionInfos(
            transaction_info=[_info(t) for t in self.a.engine.store.list_transactions()])

    def DeleteTransaction(self, request, context):
        if not self.a.engine.store.delete_transaction(request.transaction.id):
            raise NotFoundError(f"transaction {request.transaction.id} not found")
        return empty_pb2.Empty()

    def DeleteAll(self, request, context):
        self.a.engine.store.delete_all_transactions()
        return empty_pb2.Empty()

    def FinishTransaction(self, request, context):
        store = self.a.engine.store
        with store.tx():
            txn = _get(self.a, request.transaction.id)
            responses = _run(self.a, txn.id, _requests(txn), dry=False)
            store.delete_transaction(txn.id)
        self.a.kick()
        return _info(txn, responses)

    def BatchTransaction(self, request, context):
        txn = Transaction(new_id(), 0.0, [r.SerializeToString() for r in request.requests])
        responses = _run(self.a, txn.id, list(request.requests), dry=False)
        self.a.kick()
        return _info(txn, responses)
