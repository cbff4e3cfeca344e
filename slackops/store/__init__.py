"""The recording store: SQLite (via sqlite-utils) and JSONL, written off the hot path, read back in time order.

>>> from slackops.store import RecordWriter, iter_records
>>> with RecordWriter(db="slackops.db") as w:          # doctest: +SKIP
...     w.write(rec)                                    # returns at once; a background thread writes
>>> for rec in iter_records("slackops.db", kinds={"ack"}):   # doctest: +SKIP
...     ...

A SQLite recording has one ``records`` table (one column per record field, ``time`` in ISO 8601 beside epoch
``t``, unknown fields in ``extra``) and one readable view per kind (``envelopes``, ``acks``, ``reconnects`` …)
plus ``timeline``, so ``sqlite3 slackops.db 'select * from acks'`` and Datasette are pleasant. JSONL (plain or
gzip) round-trips losslessly with it through :func:`export_jsonl` and :func:`import_jsonl`.
"""

from __future__ import annotations

from slackops.store.jsonl import ImportResult, Skipped, export_jsonl, import_jsonl
from slackops.store.reader import count_records, detect_format, iter_records
from slackops.store.schema import SCHEMA_VERSION, NewerSchemaError
from slackops.store.writer import RecordWriter, WriterStats

__all__ = [
    "SCHEMA_VERSION",
    "ImportResult",
    "NewerSchemaError",
    "RecordWriter",
    "Skipped",
    "WriterStats",
    "count_records",
    "detect_format",
    "export_jsonl",
    "import_jsonl",
    "iter_records",
]
