"""The SQLite store: schema and migrations, views, and RecordWriter's buffering, locking and failure policy."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from slackops import records
from slackops.errors import StoreError
from slackops.store import (
    SCHEMA_VERSION,
    NewerSchemaError,
    RecordWriter,
    count_records,
    iter_records,
    schema,
)
from slackops.store.jsonl import iter_valid
from tests.util import scaled, wait_until

T0 = 1_763_800_000.0


def ack(i: int, **fields: object) -> records.Record:
    return records.make(
        "ack", t=T0 + i, source="bot", conn="c1", envelope_id=f"env-{i}", ack_ms=0.5, ok=True, **fields
    )


def one_of_each_kind() -> list[records.Record]:
    """One record per kind with every field set to a value of its type (enums from their allowed values)."""
    samples = {str: "x", int: 7, float: 1.5, bool: True}
    out = []
    for i, (kind, fields) in enumerate(records.KINDS.items()):
        values = {}
        for name, typ in fields.items():
            allowed = records.ENUMS.get((kind, name))
            values[name] = sorted(allowed)[0] if allowed else samples[typ]
        values.pop("text", None)  # dropped by the writer unless record_text
        out.append(records.make(kind, t=T0 + i, source="probe", conn="c1", **values))
    return out


def write_all(db: Path, recs: list[records.Record], **kwargs: object) -> RecordWriter:
    with RecordWriter(db=db, **kwargs) as w:
        for rec in recs:
            w.write(rec)
    return w


def raw_bytes(path: Path) -> bytes:
    """Every byte a recording left on disk, WAL and spill files included."""
    return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.is_file())


# -- schema ---------------------------------------------------------------------------------------------


def test_schema_has_every_field_as_typed_column_plus_time_and_extra(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    write_all(db, [])
    conn = sqlite3.connect(db)
    cols = {row[1]: row[2] for row in conn.execute("PRAGMA table_info(records)")}
    assert cols["t"] == "REAL" and cols["time"] == "TEXT" and cols["extra"] == "TEXT"
    for name, typ in records.ALL_FIELDS.items():
        assert cols[name] == {float: "REAL", int: "INTEGER", bool: "INTEGER", str: "TEXT"}[typ], name
    indexed = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    for col in ("t", "kind", "event_id", "envelope_id", "conn"):
        assert f"idx_records_{col}" in indexed
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrations_apply_once_and_reopening_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    write_all(db, [ack(1)])
    write_all(db, [ack(2)])
    conn = sqlite3.connect(db)
    versions = [row[0] for row in conn.execute("SELECT version FROM _migrations ORDER BY version")]
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    assert count_records(db) == 2


def test_a_field_missing_from_an_older_file_is_added_and_views_restored(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    write_all(db, [ack(1)])
    conn = sqlite3.connect(db)
    for name in schema.views():
        conn.execute(f"DROP VIEW [{name}]")
    conn.execute("ALTER TABLE records DROP COLUMN guard")  # as if written before `guard` existed
    conn.commit()
    conn.close()
    write_all(db, [records.make("guard", t=T0 + 5, source="bot", guard="self_loop", action="drop")])
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT guard, action FROM guards").fetchall() == [("self_loop", "drop")]
    assert {r["kind"] for r in iter_records(db)} == {"ack", "guard"}


def test_a_database_from_a_newer_slackops_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    write_all(db, [ack(1)])
    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO _migrations (version, name) VALUES (?, 'from the future')", [SCHEMA_VERSION + 1]
    )
    conn.commit()
    conn.close()
    with pytest.raises(NewerSchemaError, match="newer slackops") as info:
        RecordWriter(db=db)
    assert "Upgrade slackops" in (info.value.hint or "")
    with pytest.raises(NewerSchemaError):
        list(iter_records(db))


def test_a_file_that_is_not_sqlite_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("my notes\n")
    with pytest.raises(StoreError, match="not a SQLite database"):
        RecordWriter(db=path)
    assert path.read_text() == "my notes\n"


def test_views_select_only_their_kind_with_time_first(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    recs = one_of_each_kind()
    write_all(db, recs)
    conn = sqlite3.connect(db)
    for kind, fields in records.KINDS.items():
        cursor = conn.execute(f"SELECT * FROM [{schema.view_name(kind)}]")
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        assert len(rows) == 1, kind
        assert names[0] == "time"
        row = dict(zip(names, rows[0], strict=True))
        assert row["time"] == records.iso(row["t"])
        for name in fields:
            if name != "text":
                assert row[name] is not None, (kind, name)
    assert conn.execute("SELECT count(*) FROM timeline").fetchone()[0] == len(recs)
    assert {"envelopes", "acks", "reconnects", "hellos", "closes", "pings", "llm_calls", "processes"} <= set(
        schema.views()
    )


# -- writer -------------------------------------------------------------------------------------------


def test_records_land_in_order_with_types_restored(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    recs = one_of_each_kind()
    w = write_all(db, list(reversed(recs)), batch_size=3)
    assert w.stats.written == len(recs) and w.stats.dropped == 0 and w.stats.spilled == 0
    assert list(iter_records(db)) == recs


def test_flush_makes_earlier_writes_durable_and_close_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    # A long flush interval: without flush() nothing would be written for an hour.
    w = RecordWriter(db=db, flush_interval=3600)
    for i in range(10):
        w.write(ack(i))
    assert w.flush(timeout=scaled(10))
    assert count_records(db) == 10 and w.backlog == 0
    w.write(ack(10))
    w.close()
    w.close()
    assert count_records(db) == 11
    with pytest.raises(StoreError, match="after close"):
        w.write(ack(11))


def test_write_never_waits_for_a_locked_database(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    w = RecordWriter(db=db, lock_timeout=3600, busy_timeout_ms=10)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    for i in range(50):
        w.write(ack(i))  # returns although nothing can be written
    assert not w.flush(timeout=0)
    # The background thread has tried, and failed, at least once: the records are buffered, not on disk.
    wait_until(lambda: w.stats.lock_retries > 0, what="a locked attempt")
    assert w.backlog == 50 and count_records(db) == 0
    blocker.execute("COMMIT")
    assert w.flush(timeout=scaled(10))
    w.close()
    assert count_records(db) == 50
    assert (w.stats.written, w.stats.spilled, w.stats.dropped) == (50, 0, 0)


def test_a_writer_opened_while_the_database_is_locked_catches_up(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    write_all(db, [])
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    w = RecordWriter(db=db, lock_timeout=3600, busy_timeout_ms=10)
    w.write(ack(1))
    wait_until(lambda: w.stats.lock_retries > 0, what="a locked attempt")
    blocker.execute("COMMIT")
    w.close()
    assert count_records(db) == 1


def test_a_lock_held_too_long_spills_to_jsonl_beside_the_db(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    seen: list[StoreError] = []
    w = RecordWriter(db=db, lock_timeout=0, busy_timeout_ms=10, on_error=seen.append)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    for i in range(5):
        w.write(ack(i))
    assert w.flush(timeout=scaled(10))
    blocker.execute("COMMIT")
    w.close()
    assert w.spill_path is not None and w.spill_path.parent == tmp_path
    assert [r["envelope_id"] for r in iter_valid(w.spill_path)] == [f"env-{i}" for i in range(5)]
    assert (w.stats.spilled, w.stats.dropped) == (5, 0)
    assert any(str(w.spill_path) in e.message for e in seen)
    assert w.errors == seen


def test_the_buffer_bound_spills_instead_of_growing(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    w = RecordWriter(db=db, lock_timeout=3600, max_buffer=3, busy_timeout_ms=10)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    for i in range(10):
        w.write(ack(i))
    assert w.flush(timeout=scaled(10))
    blocker.execute("COMMIT")
    w.close()
    assert w.stats.spilled == 10 and w.stats.dropped == 0


def test_close_with_a_timeout_spills_what_the_lock_still_holds(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    w = RecordWriter(db=db, lock_timeout=3600, busy_timeout_ms=10)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    w.write(ack(1))
    w.close(timeout=0)
    blocker.execute("COMMIT")
    assert (w.stats.spilled, w.stats.dropped) == (1, 0)


def test_a_disk_full_error_is_reported_and_records_spilled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "r.db"
    write_all(db, [ack(0)])

    def full(*args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(schema, "insert_rows", full)
    w = write_all(db, [ack(1), ack(2)])
    assert (w.stats.written, w.stats.spilled, w.stats.dropped) == (0, 2, 0)
    assert "disk is full" in w.errors[0].message and "free space" in (w.errors[0].hint or "")
    monkeypatch.undo()
    assert count_records(db) == 1  # the database is untouched
    assert [r["envelope_id"] for r in iter_valid(w.spill_path)] == ["env-1", "env-2"]


def test_when_no_sink_takes_a_record_it_is_counted_as_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "r.db"
    monkeypatch.setattr(
        schema, "insert_rows", lambda *a: (_ for _ in ()).throw(sqlite3.OperationalError("disk I/O error"))
    )
    monkeypatch.setattr(RecordWriter, "_open_spill", lambda self: None)
    w = write_all(db, [ack(1)])
    assert (w.stats.written, w.stats.spilled, w.stats.dropped) == (0, 0, 1)
    assert any("records lost" in e.message for e in w.errors)


def test_invalid_records_are_dropped_and_reported(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    w = write_all(db, [ack(1), {"t": "yesterday", "kind": "ack", "source": "bot"}, ack(2)])
    assert (w.stats.written, w.stats.dropped) == (2, 1)
    assert "ack.t should be float" in w.errors[0].message


def test_instance_is_filled_only_where_missing(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    write_all(db, [ack(1), ack(2, instance="pod-b")], instance="pod-a")
    assert [r["instance"] for r in iter_records(db)] == ["pod-a", "pod-b"]


def test_tokens_and_text_never_reach_disk(tmp_path: Path) -> None:
    db = tmp_path / "rec" / "r.db"
    db.parent.mkdir()
    env = records.make(
        "envelope",
        t=T0,
        source="probe",
        conn="c1",
        envelope_id="e1",
        channel="C1",
        retry_reason="xoxb-12345-secret",  # a token where no token should ever be
        text="the message body xapp-1-A1-1-s3cr3t",
    )
    err = records.make(
        "error", t=T0 + 1, source="probe", detail="GET wss://h/link/?ticket=tkt-9f8e&app_id=A1"
    )
    with RecordWriter(db=db, jsonl=db.parent / "r.jsonl") as w:
        w.write(env)
        w.write(err)
        w.flush()
        on_disk = raw_bytes(db)  # before close: the WAL still holds the rows
    on_disk += raw_bytes(db)
    for secret in (b"12345-secret", b"s3cr3t", b"tkt-9f8e", b"the message body"):
        assert secret not in on_disk
    got = list(iter_records(db))
    assert "text" not in got[0] and got[0]["retry_reason"] == "xoxb-[redacted]"
    assert got[1]["detail"] == "GET wss://h/link/?ticket=[redacted]&app_id=A1"


def test_text_is_kept_when_opted_in_but_tokens_still_scrubbed(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    rec = records.make("envelope", t=T0, source="probe", envelope_id="e1", text="hi xoxp-9-9-9-secret")
    write_all(db, [rec], record_text=True)
    assert next(iter_records(db))["text"] == "hi xoxp-[redacted]"


def test_the_callers_dict_is_not_changed(tmp_path: Path) -> None:
    rec = records.make("envelope", t=T0, source="probe", envelope_id="e1", text="hello")
    write_all(tmp_path / "r.db", [rec], instance="i1")
    assert rec == {"t": T0, "kind": "envelope", "source": "probe", "envelope_id": "e1", "text": "hello"}


def test_two_writers_share_one_database(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    a = RecordWriter(db=db, batch_size=50, instance="a")
    b = RecordWriter(db=db, batch_size=50, instance="b")
    for i in range(1000):
        a.write(ack(i))
        b.write(ack(i))
    a.close()
    b.close()
    assert [r["instance"] for r in iter_records(db)].count("b") == 1000
    assert count_records(db) == 2000
    assert a.stats.spilled == b.stats.spilled == 0
