"""The engine's one storage layer: every SQL statement of the package lives in this folder.

    db.py    connections, transactions, schema and migrations, SQLite errors as typed errors
    pfsdb.py repos, branches (and their provenance), commits, trees, open commits, staged ops
    ppsdb.py pipelines, jobs, datums, logs, the job queue (PPS on top of PFS, as in pachd)
    txndb.py transactions (requests queued until FinishTransaction)

The rest of the engine asks :class:`Store` questions through named methods and composes its
writes into one transaction with ``with store.tx():``.
"""
from pix2pix.pachyderm.store.db import SCHEMA_VERSION, Database, db_error, dumps
from pix2pix.pachyderm.store.pfsdb import Owner, PfsQueries, StagedOp, Tree
from pix2pix.pachyderm.store.ppsdb import (LOG_LIMIT, DatumRecord, PpsQueries, ServiceRecord,
                                           Trigger)
from pix2pix.pachyderm.store.txndb import Transaction, TxnQueries

__all__ = ["Store", "Database", "SCHEMA_VERSION", "db_error", "dumps", "Owner", "StagedOp", "Tree",
           "DatumRecord", "Trigger", "LOG_LIMIT", "Transaction", "ServiceRecord"]


class Store(TxnQueries, PpsQueries, PfsQueries):
    """The SQLite store of one state folder (``engine.db``). One connection per thread."""
