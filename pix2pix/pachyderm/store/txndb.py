"""Transactions (pachd's ``transaction`` API): requests queued by StartTransaction until
FinishTransaction runs them together. Requests are kept as serialized protobuf messages."""
from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Optional

from pix2pix.pachyderm.store.db import Database


@dataclass
class Transaction:
    id: str
    started: float
    requests: list[bytes] = field(default_factory=list)  # TransactionRequest, serialized


class TxnQueries(Database):
    def insert_transaction(self, txn_id: str) -> Transaction:
        now = time.time()
        self._exec("INSERT INTO transactions(id, started, requests) VALUES (?,?,'[]')", (txn_id, now))
        return Transaction(txn_id, now)

    def get_transaction(self, txn_id: str) -> Optional[Transaction]:
        row = self._row("SELECT * FROM transactions WHERE id=?", (txn_id,))
        return _txn(row) if row else None

    def list_transactions(self) -> list[Transaction]:
        return [_txn(r) for r in self._rows("SELECT * FROM transactions ORDER BY started")]

    def set_transaction_requests(self, txn_id: str, requests: list[bytes]) -> None:
        self._exec("UPDATE transactions SET requests=? WHERE id=?",
                   (json.dumps([base64.b64encode(r).decode() for r in requests]), txn_id))

    def delete_transaction(self, txn_id: str) -> bool:
        return self._exec("DELETE FROM transactions WHERE id=?", (txn_id,)) > 0

    def delete_all_transactions(self) -> None:
        self._exec("DELETE FROM transactions")


def _txn(row) -> Transaction:
    return Transaction(row["id"], row["started"],
                       [base64.b64decode(r) for r in json.loads(row["requests"])])
