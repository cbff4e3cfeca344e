"""The SQLite layout of a recording: the ``records`` table, its migrations and the readable per-kind views.

One row per record. Every field of :data:`slackops.records.ALL_FIELDS` is a column of its own type; ``time`` (ISO
8601 UTC) sits beside epoch ``t`` for people and Datasette; ``extra`` holds, as a JSON object, any field this
slackops does not know (a record from a newer slackops, or a known name carrying an unexpected type), so a
recording round-trips losslessly whatever wrote it.

The schema is versioned: :data:`MIGRATIONS` is an ordered list, each applied once and noted in ``_migrations``.
A file whose ``_migrations`` names a version above :data:`SCHEMA_VERSION` came from a newer slackops and is refused
rather than written in a layout we do not understand. Columns for fields added to ``records.KINDS`` later and the
views are *derived* from the record model and re-synced on every writable open, so adding a field needs no
migration.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import sqlite_utils

from slackops import records
from slackops.errors import InputError, StoreError

#: The newest schema this slackops understands.
SCHEMA_VERSION = 1

#: The first bytes of every SQLite 3 database file.
SQLITE_MAGIC = b"SQLite format 3\x00"

TABLE = "records"

#: Columns that are not record fields: the row id, the ISO time and the JSON object of unknown fields.
ROW_ONLY = ("id", "time", "extra")

_SQL_TYPES: dict[type, str] = {float: "REAL", int: "INTEGER", bool: "INTEGER", str: "TEXT"}

#: View name per kind, where the plain plural would read badly.
_VIEW_NAMES = {
    "llm": "llm_calls",
    "process": "processes",
    "queue": "queue_events",
    "dedup": "dedups",
    "error": "errors",
}

#: Columns every per-kind view shows after the kind's own fields.
_VIEW_TAIL = ("conn", "source", "instance", "t", "id")

_INDEXED = ("t", "kind", "event_id", "envelope_id", "conn")


def view_name(kind: str) -> str:
    """The readable view over one kind: ``ack`` -> ``acks``, ``llm`` -> ``llm_calls``."""
    return _VIEW_NAMES.get(kind, kind + "s")


def field_columns() -> dict[str, str]:
    """Record-field columns and their SQL types, in the order of :data:`records.ALL_FIELDS`."""
    return {name: _SQL_TYPES[typ] for name, typ in records.ALL_FIELDS.items()}


def _create_records(db: sqlite_utils.Database) -> None:
    fields = field_columns()
    cols = ["id INTEGER PRIMARY KEY", "t REAL NOT NULL", "time TEXT", "kind TEXT NOT NULL"]
    cols += [f"[{name}] {typ}" for name, typ in fields.items() if name not in ("t", "kind")]
    cols.append("extra TEXT")
    db.execute(f"CREATE TABLE [{TABLE}] (\n  " + ",\n  ".join(cols) + "\n)")
    for col in _INDEXED:
        db.execute(f"CREATE INDEX [idx_{TABLE}_{col}] ON [{TABLE}] ([{col}])")


#: Ordered, append-only: ``(version, description, apply)``. Never edit a released migration; add a new one.
MIGRATIONS: list[tuple[int, str, Callable[[sqlite_utils.Database], None]]] = [
    (1, "records table with indexes on t, kind, event_id, envelope_id, conn", _create_records),
]
assert [m[0] for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


class NewerSchemaError(StoreError):
    """The file was written by a newer slackops whose layout this one does not know."""


class DatabaseLocked(StoreError):
    """Another connection holds the write lock past our busy timeout. Retrying later may succeed."""


def newer_schema_error(path: str | Path, found: int) -> NewerSchemaError:
    """The one message for a recording from the future."""
    return NewerSchemaError(
        f"{path} was written by a newer slackops (schema version {found}; this slackops knows up to "
        f"{SCHEMA_VERSION})",
        hint="Upgrade slackops (pip install -U slackops), or record into a new file with --db.",
    )


def is_sqlite(path: str | Path) -> bool:
    """True when ``path`` starts with the SQLite magic (detected by content, never by extension)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def connect(
    path: str | Path, *, readonly: bool = False, busy_timeout_ms: int = 5000
) -> sqlite_utils.Database:
    """Open a recording database. Writable opens set WAL mode; neither form migrates (see :func:`migrate`).

    ``check_same_thread`` is off because a writer opens its connection on the caller's thread and then hands it
    to its background thread; each connection is still used by one thread at a time.
    """
    if readonly:
        uri = Path(path).absolute().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False)
    db = sqlite_utils.Database(conn, execute_plugins=False)
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    return db


def schema_version(db: sqlite_utils.Database) -> int:
    """The newest migration applied to ``db`` (0 for an empty file)."""
    if "_migrations" not in db.table_names():
        return 0
    row = db.execute("SELECT max(version) FROM _migrations").fetchone()
    return int(row[0] or 0)


@contextlib.contextmanager
def _immediate(db: sqlite_utils.Database) -> Iterator[None]:
    # BEGIN IMMEDIATE takes the write lock up front, so two processes opening the same new file cannot both
    # decide to run migration 1.
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.rollback()
        raise
    db.execute("COMMIT")


def migrate(db: sqlite_utils.Database, path: str | Path = "database") -> int:
    """Bring ``db`` to :data:`SCHEMA_VERSION`, sync derived columns and views; return the version.

    Idempotent: a second call applies nothing. Raises :class:`NewerSchemaError` for a file from a newer slackops.
    Runs inside one ``BEGIN IMMEDIATE`` transaction so a crash leaves the file as it was.
    """
    if db.journal_mode != "wal":
        # WAL lets readers (slackops diagnose, Datasette, sqlite3) read while the probe writes.
        db.enable_wal()
    db.execute("PRAGMA synchronous = NORMAL")  # durable against a crash of slackops; the WAL default
    with _immediate(db):
        db.execute(
            "CREATE TABLE IF NOT EXISTS _migrations (version INTEGER PRIMARY KEY, name TEXT, applied TEXT)"
        )
        current = schema_version(db)
        if current > SCHEMA_VERSION:
            raise newer_schema_error(path, current)
        for version, name, apply in MIGRATIONS:
            if version <= current:
                continue
            apply(db)
            db.execute(
                "INSERT INTO _migrations (version, name, applied) VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ'))",
                [version, name],
            )
        _sync_columns(db)
        _sync_views(db)
    return SCHEMA_VERSION


def _sync_columns(db: sqlite_utils.Database) -> None:
    have = {row[1] for row in db.execute(f"PRAGMA table_info([{TABLE}])").fetchall()}
    for name, typ in field_columns().items():
        if name not in have:
            # A field added to records.KINDS after this file was created: additive, so no version bump.
            db.execute(f"ALTER TABLE [{TABLE}] ADD COLUMN [{name}] {typ}")


def view_sql(kind: str) -> str:
    """The ``SELECT`` behind a kind's view: ``time`` first, the kind's fields, then where and when."""
    cols = ["time", *records.KINDS[kind], *_VIEW_TAIL]
    seen: list[str] = []
    for col in cols:
        if col not in seen:
            seen.append(col)
    select = ", ".join(f"[{c}]" for c in seen)
    return f"SELECT {select} FROM [{TABLE}] WHERE kind = '{kind}' ORDER BY t, id"


#: A view over every record with the columns that tie a story together.
TIMELINE_SQL = (
    f"SELECT time, kind, conn, event_id, envelope_id, type, event_type, channel, source, instance, t, id "
    f"FROM [{TABLE}] ORDER BY t, id"
)


def views() -> dict[str, str]:
    """Every view name and its ``SELECT``."""
    out = {view_name(kind): view_sql(kind) for kind in records.KINDS}
    out["timeline"] = TIMELINE_SQL
    return out


def _sync_views(db: sqlite_utils.Database) -> None:
    for name, sql in views().items():
        db.create_view(name, sql, replace=True)


def open_for_writing(path: str | Path, *, busy_timeout_ms: int = 5000) -> sqlite_utils.Database:
    """Open (creating if needed) and migrate a recording for writing. Errors become :class:`StoreError`."""
    if Path(path).exists() and Path(path).stat().st_size > 0 and not is_sqlite(path):
        raise StoreError(
            f"{path} exists and is not a SQLite database",
            hint="Pass a new file to --db, or convert a JSONL recording with: slackops import FILE --db NEW.db",
        )
    try:
        db = connect(path, busy_timeout_ms=busy_timeout_ms)
    except sqlite3.Error as exc:
        raise StoreError(
            f"cannot open {path}: {exc}", hint="Check the directory exists and is writable."
        ) from exc
    try:
        migrate(db, path)
    except StoreError:
        db.close()
        raise
    except sqlite3.Error as exc:
        db.close()
        if is_locked(exc):
            raise DatabaseLocked(f"{path} is locked by another writer") from exc
        raise store_error(path, exc) from exc
    return db


def open_for_reading(path: str | Path) -> sqlite_utils.Database:
    """Open a recording read-only (never migrates or creates anything).

    A file that is not a readable recording is an :class:`InputError`; one from a newer slackops a
    :class:`NewerSchemaError`.
    """
    try:
        db = connect(path, readonly=True)
        version = schema_version(db)
    except sqlite3.Error as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    if version > SCHEMA_VERSION:
        db.close()
        raise newer_schema_error(path, version)
    if TABLE not in db.table_names():
        db.close()
        raise InputError(
            f"{path} is a SQLite database but not a slackops recording (no {TABLE} table)",
            hint="Recordings are written by `slackops watch --db` or `slackops import`.",
        )
    return db


def is_locked(exc: BaseException) -> bool:
    """True for SQLITE_BUSY / SQLITE_LOCKED: another connection holds the write lock; retrying may work."""
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc).lower()


def store_error(path: str | Path, exc: BaseException) -> StoreError:
    """A :class:`StoreError` with a hint for the common SQLite failures (full disk, read-only, locked)."""
    text = str(exc)
    low = text.lower()
    if "full" in low:
        hint = "The disk is full: free space, or record to another disk with --db."
    elif "readonly" in low or "read-only" in low:
        hint = "The file or its directory is read-only: record to a writable path with --db."
    elif "locked" in low:
        hint = "Another process is writing this file: stop it, or record to another file with --db."
    else:
        hint = None
    return StoreError(f"{path}: {text}", hint=hint)


# -- rows <-> records ---------------------------------------------------------------------------------------

_COLUMN_ORDER: tuple[str, ...] = ("t", "time", *(n for n in records.ALL_FIELDS if n != "t"), "extra")
_INDEX = {name: i for i, name in enumerate(_COLUMN_ORDER)}
_T, _TIME, _EXTRA = _INDEX["t"], _INDEX["time"], _INDEX["extra"]
#: Per kind, the fields that get a column of their own: the common fields and the kind's fields.
_OWN_FIELDS = {kind: {**records.COMMON, **fields} for kind, fields in records.KINDS.items()}


def columns() -> tuple[str, ...]:
    """The insert column order (every column but ``id``)."""
    return _COLUMN_ORDER


def _fits(value: Any, typ: type) -> bool:
    if typ is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ is int:
        # SQLite integers are signed 64-bit; anything larger would not round-trip through a column.
        return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
    return isinstance(value, typ)


def to_row(rec: Mapping[str, Any]) -> tuple[Any, ...]:
    """The row for ``rec`` in :func:`columns` order.

    A field goes to its own column only if it belongs to the record's kind (or is common) and its value has
    the column's type; anything else (unknown names, other kinds' fields, names that collide with
    ``id``/``time``/``extra``) goes into ``extra`` as JSON, which keeps its exact type, so nothing is lost.
    """
    row: list[Any] = [None] * len(_COLUMN_ORDER)
    extra: dict[str, Any] = {}
    kind = rec.get("kind")
    own = _OWN_FIELDS.get(kind, records.COMMON) if isinstance(kind, str) else records.COMMON
    for name, value in rec.items():
        if value is None:
            continue
        typ = own.get(name)
        if typ is not None and _fits(value, typ):
            if typ is float:
                value = float(value)
                if value == 0 and math.copysign(1.0, value) < 0:
                    # SQLite stores REAL -0.0 as 0.0; keep the sign in extra, which wins when read back.
                    extra[name] = value
            row[_INDEX[name]] = value
        else:
            extra[name] = value
    row[_TIME] = _iso_or_none(row[_T])
    if extra:
        row[_EXTRA] = orjson.dumps(extra).decode()
    return tuple(row)


def _iso_or_none(t: float | None) -> str | None:
    if t is None:
        return None
    try:
        return records.iso(t)
    except (OverflowError, ValueError, OSError):
        return None  # far outside the calendar: t itself is still stored


def from_row(row: Mapping[str, Any]) -> records.Record:
    """The record a row holds: derived columns dropped, ``extra`` merged back, types restored."""
    rec = records.coerce({k: v for k, v in row.items() if k not in ROW_ONLY and v is not None})
    extra = row.get("extra")
    if extra:
        # Not coerced: JSON already kept these values' exact types.
        rec.update(orjson.loads(extra))
    return rec


def insert_sql() -> str:
    """The parameterised ``INSERT`` for rows from :func:`to_row`."""
    cols = ", ".join(f"[{c}]" for c in _COLUMN_ORDER)
    marks = ", ".join("?" for _ in _COLUMN_ORDER)
    return f"INSERT INTO [{TABLE}] ({cols}) VALUES ({marks})"


def insert_rows(db: sqlite_utils.Database, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` in one transaction: all of them land, or (on any error) none do."""
    with _immediate(db):
        db.conn.executemany(insert_sql(), rows)
