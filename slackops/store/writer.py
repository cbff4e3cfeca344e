"""``RecordWriter``: records to SQLite and/or JSONL, batched on a background thread, off the hot path.

Slack redelivers an envelope that is not acked within 3 seconds, so the code that acks must never wait on a
disk. ``write()`` only appends to an in-memory buffer under a lock held for a few instructions; a background
thread redacts, validates and writes batches, one transaction each.

Failure policy, in order of preference:

- Another process holds the database write lock: keep the records buffered and retry with backoff. When the
  buffer passes ``max_buffer`` records, or the lock has been held for ``lock_timeout`` seconds, or ``close()``
  runs out of time, the waiting records are *spilled* to a JSONL file beside the database (named in a warning),
  from which ``slackops import SPILL --db DB`` restores them. Nothing is dropped silently.
- The database cannot be written at all (disk full, read-only file, not a database): the error is reported once
  through ``errors``/``on_error`` and every later record is spilled. A failed batch is rolled back whole, so the
  database is never left half-written.
- A record that is not valid (``records.validate``), or that no sink would take, is counted in
  ``stats.dropped`` and reported.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from slackops import records
from slackops.errors import StoreError, UsageError
from slackops.redact import redact_record
from slackops.store import jsonl as jsonl_io
from slackops.store import schema

log = logging.getLogger("slackops.store")

#: How many errors ``RecordWriter.errors`` keeps (``stats.errors`` counts them all).
ERROR_LIMIT = 100

_BACKOFF_START, _BACKOFF_MAX = 0.05, 1.0


@dataclasses.dataclass
class WriterStats:
    """Counters of a :class:`RecordWriter` (a snapshot; read ``writer.stats`` again for fresh numbers).

    ``written`` counts records stored in the database (or in the JSONL file when that is the only sink);
    ``spilled`` records saved to the spill file instead; ``dropped`` records lost, each one reported.
    """

    received: int = 0
    written: int = 0
    spilled: int = 0
    dropped: int = 0
    batches: int = 0
    lock_retries: int = 0
    errors: int = 0


class RecordWriter:
    """Write records to a SQLite recording (``db``) and/or a JSONL file (``jsonl``) without blocking the caller.

    >>> with RecordWriter(db="slackops.db") as w:            # doctest: +SKIP
    ...     w.write(records.make("ack", t=time.time(), source="bot", envelope_id="e1", ack_ms=1.2, ok=True))

    Every record goes through :func:`slackops.redact.redact_record` (``text`` dropped unless ``record_text``).
    ``instance`` fills the field on records that lack one. ``on_error`` is called (on the writer's thread) with
    each :class:`StoreError`; the same errors collect in :attr:`errors`.
    """

    def __init__(
        self,
        db: str | Path | None = None,
        jsonl: str | Path | None = None,
        *,
        record_text: bool = False,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        instance: str | None = None,
        max_buffer: int = 100_000,
        lock_timeout: float = 30.0,
        busy_timeout_ms: int = 250,
        on_error: Callable[[StoreError], None] | None = None,
    ) -> None:
        if db is None and jsonl is None:
            raise UsageError("RecordWriter needs a database path, a JSONL path, or both")
        self.db_path = Path(db) if db is not None else None
        self.jsonl_path = Path(jsonl) if jsonl is not None else None
        self.record_text = record_text
        self.instance = instance
        self.errors: list[StoreError] = []
        #: The JSONL file records were spilled to, once there was a reason to spill.
        self.spill_path: Path | None = None
        self._batch_size = max(1, batch_size)
        self._flush_interval = flush_interval
        self._max_buffer = max_buffer
        self._lock_timeout = lock_timeout
        self._busy_timeout_ms = busy_timeout_ms
        self._on_error = on_error

        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._buffer: deque[records.Record] = deque()
        self._accepted = 0  # records handed to write()
        self._done = 0  # records written, spilled or dropped, in FIFO order
        self._closing = False
        self._close_deadline: float | None = None
        self._dead = False
        self._stats = WriterStats()

        # Owned by the background thread once it starts.
        self._pending: list[records.Record | None] = []  # prepared records; None = rejected, counted dropped
        self._locked_since: float | None = None
        self._db_failed = False
        self._db = None
        self._jsonl_fh: BinaryIO | None = None
        self._spill_fh: BinaryIO | None = None

        # Open on the caller's thread so a file from a newer slackops, or an unwritable path, fails loudly here.
        # A database locked by another writer is not fatal: the background thread keeps trying.
        if self.db_path is not None:
            try:
                self._db = schema.open_for_writing(self.db_path, busy_timeout_ms=busy_timeout_ms)
            except schema.DatabaseLocked:
                self._db = None
        if self.jsonl_path is not None:
            try:
                self._jsonl_fh = jsonl_io.open_append(self.jsonl_path)
            except OSError as exc:
                if self._db is not None:
                    self._db.close()
                raise StoreError(f"cannot open {self.jsonl_path}: {exc.strerror or exc}") from exc

        self._thread = threading.Thread(target=self._run, name="slackops-record-writer", daemon=True)
        self._thread.start()

    # -- the caller's side: never touches disk -------------------------------------------------------------

    def write(self, rec: Mapping[str, Any]) -> None:
        """Queue ``rec`` for writing and return at once. Thread-safe. The record is copied (shallowly)."""
        item = dict(rec)
        with self._lock:
            if self._closing:
                raise StoreError("RecordWriter.write() after close()")
            self._buffer.append(item)
            self._accepted += 1
            self._stats.received += 1
            size = len(self._buffer)
        if size >= self._batch_size:
            self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every record written before this call is stored (or spilled/dropped and reported).

        Returns ``False`` if ``timeout`` seconds passed first. "Stored" means committed (SQLite, WAL with
        ``synchronous=NORMAL``) or flushed to the OS (JSONL): it survives a crash of this process.
        """
        with self._cond:
            target = self._accepted
            self._wake.set()
            return self._cond.wait_for(lambda: self._done >= target or self._dead, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush and stop; idempotent. Records still waiting on a lock after ``timeout`` seconds (without one:
        after ``lock_timeout``) are spilled, never dropped."""
        with self._lock:
            if not self._closing:
                self._closing = True
                if timeout is not None:
                    self._close_deadline = time.monotonic() + timeout
        self._wake.set()
        self._thread.join()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> WriterStats:
        """A snapshot of the counters."""
        with self._lock:
            return dataclasses.replace(self._stats)

    @property
    def backlog(self) -> int:
        """Records accepted but not yet stored."""
        with self._lock:
            return self._accepted - self._done

    # -- the background thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a bug: report it rather than leave flush() waiting forever
            self._report(StoreError(f"record writer stopped: {type(exc).__name__}: {exc}"))
            log.exception("record writer stopped")
        finally:
            with self._cond:
                self._dead = True
                self._cond.notify_all()
            self._close_files()

    def _loop(self) -> None:
        backoff = 0.0
        while True:
            self._wake.wait(backoff or self._flush_interval)
            self._wake.clear()
            with self._lock:
                taken = list(self._buffer)
                self._buffer.clear()
                closing = self._closing
            self._pending.extend(self._prepare(rec) for rec in taken)
            blocked = False
            while self._pending:
                batch = self._pending[: self._batch_size]
                if not self._store(batch):
                    blocked = True
                    break
                del self._pending[: len(batch)]
                self._finish(len(batch))
            if blocked:
                reason = self._spill_reason()
                if reason is not None:
                    self._spill_pending(reason)
                    backoff = 0.0
                else:
                    backoff = min(max(backoff * 2, _BACKOFF_START), _BACKOFF_MAX)
                    if self._close_deadline is not None:
                        backoff = min(backoff, max(0.0, self._close_deadline - time.monotonic()))
                    continue
            else:
                backoff = 0.0
            if closing and not self._pending:
                with self._lock:
                    if not self._buffer:
                        return

    def _prepare(self, rec: records.Record) -> records.Record | None:
        if self.instance is not None and rec.get("instance") is None:
            rec["instance"] = self.instance
        rec = redact_record(rec, record_text=self.record_text)
        problems = records.validate(rec)
        if problems:
            self._report(StoreError(f"record not stored: {'; '.join(problems)}"))
            return None
        return rec

    def _finish(self, n: int) -> None:
        with self._cond:
            self._done += n
            self._cond.notify_all()

    def _count(self, **delta: int) -> None:
        with self._lock:
            for name, n in delta.items():
                setattr(self._stats, name, getattr(self._stats, name) + n)

    def _store(self, batch: list[records.Record | None]) -> bool:
        """Store one batch in every sink. False when the database was locked (the batch stays pending)."""
        good = [r for r in batch if r is not None]
        rejected = len(batch) - len(good)
        if rejected:
            self._count(dropped=rejected)
        if not good:
            return True
        in_db = False
        if self.db_path is not None and not self._db_failed:
            try:
                self._insert(good)
                in_db = True
                self._locked_since = None
            except schema.DatabaseLocked:
                if self._locked_since is None:
                    self._locked_since = time.monotonic()
                self._count(lock_retries=1)
                return False
            except StoreError as exc:
                self._db_failed = True
                self._report(exc)
        in_jsonl = self._append_jsonl(good)
        if in_db or (self.db_path is None and in_jsonl):
            self._count(written=len(good), batches=1)
        elif self.db_path is not None:
            self._spill(good)
        else:
            self._count(dropped=len(good))
        return True

    def _insert(self, good: list[records.Record]) -> None:
        assert self.db_path is not None
        try:
            if self._db is None:
                self._db = schema.open_for_writing(self.db_path, busy_timeout_ms=self._busy_timeout_ms)
            schema.insert_rows(self._db, [schema.to_row(r) for r in good])
        except schema.DatabaseLocked:
            raise
        except sqlite3.Error as exc:
            if schema.is_locked(exc):
                raise schema.DatabaseLocked(f"{self.db_path} is locked by another writer") from exc
            raise schema.store_error(self.db_path, exc) from exc
        except (OverflowError, TypeError, ValueError) as exc:  # a value SQLite/JSON cannot hold
            raise StoreError(f"{self.db_path}: cannot store record: {exc}") from exc

    def _append_jsonl(self, good: list[records.Record]) -> bool:
        if self._jsonl_fh is None:
            return False
        try:
            self._jsonl_fh.write(jsonl_io.encode(good))
            self._jsonl_fh.flush()
            return True
        except (OSError, TypeError, ValueError) as exc:
            self._report(StoreError(f"cannot write {self.jsonl_path}: {exc}"))
            self._close_quietly(self._jsonl_fh)
            self._jsonl_fh = None
            return False

    def _spill_reason(self) -> str | None:
        waiting = len(self._pending)
        if waiting > self._max_buffer:
            return f"{waiting} records waiting for the lock (more than max_buffer={self._max_buffer})"
        now = time.monotonic()
        if self._locked_since is not None and now - self._locked_since >= self._lock_timeout:
            return f"locked by another writer for {now - self._locked_since:.0f}s"
        if self._close_deadline is not None and now >= self._close_deadline:
            return "closing while another writer holds the lock"
        return None

    def _spill_pending(self, reason: str) -> None:
        batch, self._pending = self._pending, []
        good = [r for r in batch if r is not None]
        if len(good) < len(batch):
            self._count(dropped=len(batch) - len(good))
        log.warning("%s: %s", self.db_path, reason)
        self._append_jsonl(good)
        self._spill(good)
        self._finish(len(batch))

    def _spill(self, good: list[records.Record]) -> None:
        if self._spill_fh is None:
            self._spill_fh = self._open_spill()
        if self._spill_fh is not None:
            try:
                self._spill_fh.write(jsonl_io.encode(good))
                self._spill_fh.flush()
                self._count(spilled=len(good))
                return
            except (OSError, TypeError, ValueError) as exc:
                self._report(StoreError(f"cannot write spill file {self.spill_path}: {exc}"))
                self._close_quietly(self._spill_fh)
                self._spill_fh = None
        self._count(dropped=len(good))
        self._report(
            StoreError(f"{len(good)} records lost: neither {self.db_path} nor a spill file took them")
        )

    def _open_spill(self) -> BinaryIO | None:
        assert self.db_path is not None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        path = self.db_path.with_name(f"{self.db_path.name}.spill-{stamp}-{os.getpid()}.jsonl")
        try:
            fh = jsonl_io.open_append(path)
        except OSError as exc:
            self._report(StoreError(f"cannot create spill file {path}: {exc.strerror or exc}"))
            return None
        self.spill_path = path
        self._report(
            StoreError(
                f"records are being saved to {path} instead of {self.db_path}",
                hint=f"Load them later with: slackops import {path} --db {self.db_path}",
            ),
            level=logging.WARNING,
        )
        return fh

    def _report(self, err: StoreError, level: int = logging.ERROR) -> None:
        with self._lock:
            self._stats.errors += 1
            if len(self.errors) < ERROR_LIMIT:
                self.errors.append(err)
        log.log(level, "%s%s", err.message, f" ({err.hint})" if err.hint else "")
        if self._on_error is not None:
            try:
                self._on_error(err)
            except Exception:
                log.exception("on_error callback failed")

    def _close_files(self) -> None:
        for fh in (self._jsonl_fh, self._spill_fh):
            if fh is not None:
                self._close_quietly(fh)
        self._jsonl_fh = self._spill_fh = None
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None

    @staticmethod
    def _close_quietly(fh: BinaryIO) -> None:
        try:
            fh.close()
        except (OSError, ValueError):
            pass
