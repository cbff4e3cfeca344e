"""Reading recordings: SQLite or JSONL (plain or gzip), detected by content, yielded in time order.

``iter_records`` streams a SQLite recording straight from an ``ORDER BY t`` query. A JSONL file is first scanned
for order (cheaply: ``records.dumps`` puts ``t`` first, so the scan slices the number out of ``{"t":...,``); an
ordered file, the normal case since writers append in time order, is then streamed with bounded memory. An
unordered file (several producers concatenated, say) is loaded whole and sorted: fine for moderate sizes — for
very large unordered files, import them into SQLite (``slackops import``) and read that instead.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from pathlib import Path

import orjson

from slackops import records
from slackops.errors import InputError
from slackops.store import jsonl, schema

#: Format names returned by :func:`detect_format`.
SQLITE, JSONL, JSONL_GZ = "sqlite", "jsonl", "jsonl.gz"


def detect_format(path: str | Path) -> str:
    """``"sqlite"``, ``"jsonl.gz"`` or ``"jsonl"``, from the file's first bytes (never from its extension)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(schema.SQLITE_MAGIC))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if head == schema.SQLITE_MAGIC:
        return SQLITE
    if head[:2] == jsonl.GZIP_MAGIC:
        return JSONL_GZ
    return JSONL


def iter_records(
    path: str | Path,
    since: float | None = None,
    until: float | None = None,
    kinds: Collection[str] | None = None,
    *,
    skipped: jsonl.Skipped | None = None,
) -> Iterator[records.Record]:
    """Records of a recording ordered by ``t``, with ``since <= t < until`` and ``kind`` in ``kinds``.

    Types are restored (``records.coerce``) and unknown fields kept. For JSONL, malformed lines are skipped and
    counted in ``skipped`` when given.
    """
    if detect_format(path) == SQLITE:
        yield from _iter_sqlite(path, since, until, kinds)
        return
    wanted = frozenset(kinds) if kinds is not None else None

    def keep(rec: records.Record) -> bool:
        t = rec["t"]
        return (
            (since is None or t >= since)
            and (until is None or t < until)
            and (wanted is None or rec["kind"] in wanted)
        )

    if _jsonl_is_ordered(path):
        yield from (r for r in jsonl.iter_valid(path, skipped) if keep(r))
    else:
        yield from records.sort_by_time(r for r in jsonl.iter_valid(path, skipped) if keep(r))


def _iter_sqlite(
    path: str | Path, since: float | None, until: float | None, kinds: Collection[str] | None
) -> Iterator[records.Record]:
    where, params = [], []
    if since is not None:
        where.append("t >= ?")
        params.append(since)
    if until is not None:
        where.append("t < ?")
        params.append(until)
    if kinds is not None:
        kinds = list(kinds)
        where.append(f"kind IN ({', '.join('?' for _ in kinds)})")
        params.extend(kinds)
    sql = f"SELECT * FROM [{schema.TABLE}]"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY t, id"
    db = schema.open_for_reading(path)
    try:
        cursor = db.execute(sql, params)
        names = [d[0] for d in cursor.description]
        for row in cursor:
            yield schema.from_row(dict(zip(names, row, strict=True)))
    finally:
        db.close()


def _line_time(line: bytes) -> float | None:
    # Fast path for lines written by records.dumps: '{"t":1700000000.123,"kind":...'.
    if line.startswith(b'{"t":'):
        end = line.find(b",", 5)
        if end > 0:
            try:
                return float(line[5:end])
            except ValueError:
                pass
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    t = obj.get("t") if isinstance(obj, dict) else None
    if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t):
        return float(t)
    return None


def _jsonl_is_ordered(path: str | Path) -> bool:
    last = -math.inf
    for _, line in jsonl.iter_lines(path):
        t = _line_time(line)
        if t is None:
            continue  # malformed: the reading pass counts it
        if t < last:
            return False
        last = t
    return True


def count_records(path: str | Path) -> int:
    """How many records a recording holds (for JSONL: valid lines; malformed ones are not counted)."""
    if detect_format(path) == SQLITE:
        db = schema.open_for_reading(path)
        try:
            return int(db.execute(f"SELECT count(*) FROM [{schema.TABLE}]").fetchone()[0])
        finally:
            db.close()
    return sum(1 for _ in jsonl.iter_valid(path))
