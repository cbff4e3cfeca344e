"""slackops SQLite recordings (``watch --db``, the reference bot's store).

Read through :func:`slackops.store.iter_records`: the store owns the schema, its migrations and its readers.
"""

from __future__ import annotations

from collections.abc import Iterator

from slackops.diagnose.readers.base import ParseStats
from slackops.errors import InputError
from slackops.records import Record
from slackops.store import iter_records

NAME = "slackops-sqlite"
BATCH = 5000


def read(path: str, stats: ParseStats, since: float | None, until: float | None) -> Iterator[list[Record]]:
    """Batches of records ordered by time (``until`` exclusive, as everywhere in the store)."""
    if path == "-":
        raise InputError("a SQLite recording cannot be read from stdin; pass its path")
    batch: list[Record] = []
    for rec in iter_records(path, since=since, until=until):
        batch.append(rec)
        if len(batch) >= BATCH:
            stats.lines += len(batch)
            yield batch
            batch = []
    stats.lines += len(batch)
    yield batch
