"""JSONL recordings: one :func:`slackops.records.dumps` object a line, plain or gzip, and the SQLite round trip.

A JSONL recording is the portable twin of the SQLite store: ``export_jsonl`` writes one from any recording,
``import_jsonl`` loads one into a database, and record -> JSONL -> SQLite -> JSONL gives identical records.
Gzip is detected by its magic bytes when reading and chosen by a ``.gz`` suffix when writing.
"""

from __future__ import annotations

import gzip
import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from slackops import records
from slackops.errors import InputError
from slackops.redact import redact_record
from slackops.store import schema

GZIP_MAGIC = b"\x1f\x8b"

#: How many skipped-line reasons an import or read keeps (the count is always exact).
SAMPLE_LIMIT = 10


def is_gzip(path: str | Path) -> bool:
    """True when ``path`` starts with the gzip magic bytes."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def open_append(path: str | Path) -> BinaryIO:
    """Open ``path`` for appending JSONL; a ``.gz`` path is written gzip (one member per open, which gzip
    readers concatenate transparently)."""
    if str(path).endswith(".gz"):
        return gzip.open(path, "ab")  # type: ignore[return-value]
    return open(path, "ab")


def encode(batch: Iterable[records.Record]) -> bytes:
    """JSONL bytes for ``batch``: one line per record, each ending in a newline."""
    return b"".join(records.dumps(rec) + b"\n" for rec in batch)


@dataclass
class Skipped:
    """Lines that could not be used: the exact count and a sample of ``line N: reason`` texts."""

    count: int = 0
    samples: list[str] = field(default_factory=list)

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        if len(self.samples) < SAMPLE_LIMIT:
            self.samples.append(f"{where}: {reason}")


def open_read(path: str | Path) -> IO[bytes]:
    """Open a plain or gzip (by magic bytes) file for binary reading; :class:`InputError` if it cannot be read."""
    try:
        if is_gzip(path):
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc


def iter_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """``(line_number, line)`` for every non-blank line of a plain or gzip JSONL file.

    A gzip file still being written (a live ``RecordWriter`` sink) has no end-of-stream marker yet; reading
    stops cleanly after the last flushed batch. Corrupt gzip data is an :class:`InputError`.
    """
    with open_read(path) as raw:
        lineno = 0
        try:
            for line in raw:
                lineno += 1
                line = line.strip()
                if line:
                    yield lineno, line
        except EOFError:
            return
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise InputError(f"{path}: corrupt gzip data after line {lineno}: {exc}") from exc


def iter_valid(path: str | Path, skipped: Skipped | None = None) -> Iterator[records.Record]:
    """Valid records of a JSONL file in file order; malformed lines are counted in ``skipped``, never fatal."""
    for lineno, line in iter_lines(path):
        try:
            yield records.loads(line)
        except records.RecordError as exc:
            if skipped is not None:
                skipped.add(f"{path}:{lineno}", str(exc))


@dataclass
class ImportResult:
    """What ``import_jsonl`` did: records imported, lines skipped (with sampled reasons), per source."""

    imported: int = 0
    skipped: Skipped = field(default_factory=Skipped)
    sources: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "skipped": self.skipped.count,
            "skipped_samples": list(self.skipped.samples),
            "sources": list(self.sources),
        }


def import_jsonl(
    src: str | Path | Iterable[str | Path], db_path: str | Path, *, batch_size: int = 5000
) -> ImportResult:
    """Load one or more JSONL (plain or gzip) recordings into the SQLite recording at ``db_path``.

    Every record passes :func:`slackops.redact.redact_record` (tokens scrubbed; ``text`` kept, since a file that
    has it was recorded with ``--record-text``). Each batch is one transaction. Malformed lines are counted and
    sampled in the result, never fatal. Importing the same file twice stores its records twice.
    """
    paths = [src] if isinstance(src, (str, Path)) else list(src)
    for path in paths:
        if not Path(path).is_file():
            raise InputError(f"{path}: no such file")
        if schema.is_sqlite(path):
            raise InputError(
                f"{path} is a SQLite recording, not JSONL",
                hint=f"Export it first: slackops export {path} -o OUT.jsonl",
            )
    result = ImportResult(sources=[str(p) for p in paths])
    db = schema.open_for_writing(db_path)
    try:
        batch: list[tuple[Any, ...]] = []
        for path in paths:
            for rec in iter_valid(path, result.skipped):
                batch.append(schema.to_row(redact_record(rec, record_text=True)))
                if len(batch) >= batch_size:
                    _insert(db, db_path, batch)
                    result.imported += len(batch)
                    batch = []
        if batch:
            _insert(db, db_path, batch)
            result.imported += len(batch)
    finally:
        db.close()
    return result


def _insert(db: Any, db_path: str | Path, rows: list[tuple[Any, ...]]) -> None:
    try:
        schema.insert_rows(db, rows)
    except sqlite3.Error as exc:
        raise schema.store_error(db_path, exc) from exc


def export_jsonl(recording: str | Path, out: str | Path | BinaryIO, **filters: Any) -> int:
    """Write every record of ``recording`` (SQLite or JSONL) to ``out`` as JSONL ordered by ``t``; return the count.

    ``out`` is a path (``.gz`` -> gzip; an existing file is replaced) or a binary file object such as
    ``sys.stdout.buffer``. ``filters`` are passed to :func:`slackops.store.iter_records` (since, until, kinds).
    """
    from slackops.store.reader import iter_records

    if isinstance(out, (str, Path)):
        opener = gzip.open if str(out).endswith(".gz") else open
        with opener(out, "wb") as fh:
            return _write_all(iter_records(recording, **filters), fh)
    return _write_all(iter_records(recording, **filters), out)


def _write_all(recs: Iterable[records.Record], fh: IO[bytes]) -> int:
    count = 0
    chunk: list[records.Record] = []
    for rec in recs:
        chunk.append(rec)
        if len(chunk) >= 1000:
            fh.write(encode(chunk))
            count += len(chunk)
            chunk = []
    if chunk:
        fh.write(encode(chunk))
        count += len(chunk)
    fh.flush()
    return count


__all__ = [
    "GZIP_MAGIC",
    "ImportResult",
    "Skipped",
    "encode",
    "export_jsonl",
    "import_jsonl",
    "is_gzip",
    "iter_lines",
    "iter_valid",
    "open_append",
]
