"""slackops SQLite recordings (``watch --db``, the reference bot's store).

Read through :func:`slackops.store.iter_records` (the store owns the schema and its migrations). When the store
package is not importable, fall back to the plain ``records`` table the store documents, so a recording can
still be diagnosed from a partial install.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from slackops.diagnose.readers.base import ParseStats
from slackops.errors import InputError
from slackops.records import Record, coerce

NAME = "slackops-sqlite"
BATCH = 5000


def read(path: str, stats: ParseStats, since: float | None, until: float | None) -> Iterator[list[Record]]:
    """Batches of records ordered by time."""
    if path == "-":
        raise InputError("a SQLite recording cannot be read from stdin; pass its path")
    try:
        from slackops.store import iter_records
    except ImportError:
        iter_records = None
    if iter_records is not None:
        batch: list[Record] = []
        for rec in iter_records(path, since=since, until=until):
            batch.append(rec)
            if len(batch) >= BATCH:
                stats.lines += len(batch)
                yield batch
                batch = []
        stats.lines += len(batch)
        yield batch
        return
    yield from _read_table(path, stats, since, until)


def _read_table(
    path: str, stats: ParseStats, since: float | None, until: float | None
) -> Iterator[list[Record]]:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise InputError(f"{path}: cannot open SQLite recording: {exc}") from None
    try:
        db.row_factory = sqlite3.Row
        where, args = [], []
        if since is not None:
            where.append("t >= ?")
            args.append(since)
        if until is not None:
            where.append("t <= ?")
            args.append(until)
        sql = "SELECT * FROM records" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY t"
        try:
            cur = db.execute(sql, args)
        except sqlite3.Error as exc:
            raise InputError(
                f"{path}: a SQLite file but not a slackops recording ({exc})",
                hint="diagnose reads the records table written by `slackops watch --db`.",
            ) from None
        while rows := cur.fetchmany(BATCH):
            stats.lines += len(rows)
            yield [coerce({k: row[k] for k in row if row[k] is not None and k != "iso"}) for row in rows]
    finally:
        db.close()
