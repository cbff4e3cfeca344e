"""The durable work queue: persist an envelope before acking it, so an acked event is never lost.

Once an envelope is acked Slack will not send it again, so a bot that acks and then dies (deploy, OOM, kill -9)
has lost the event unless it wrote it down first. :meth:`WorkQueue.admit` does, on the receive path, in one
SQLite transaction: claim the dedup key (insert-if-absent) and insert the work row. Only after that commit does
the bot ack. Then a row moves ``pending -> claimed`` when a handler starts, and is deleted when the handler
finishes (``complete``), put back to ``pending`` (``requeue``) or parked as ``failed`` (a dead letter).

**Group commit.** :meth:`WorkQueue.stage` runs the same two statements inside an open transaction and leaves
the commit to :meth:`WorkQueue.commit`: the bot stages every envelope that arrived together (frames already
buffered on its socket), commits once, then acks them all. Each ack still comes after the commit that made its
envelope durable; the commit's cost is shared. (With ``synchronous="FULL"`` that is one fsync per batch.)

**Deferred claim and delete.** Off the ack path, :meth:`WorkQueue.claim` and :meth:`WorkQueue.complete` do not
commit on their own: their statements ride on the next commit (usually the next envelope's admission) or on a
flush at most :data:`DEFERRED_FLUSH_S` later. What a crash in that window costs: an unflushed delete leaves the
row ``claimed``, so the handler runs again on the next start as an orphan — the same outcome as a crash just
before the handler finished, which at-least-once processing already allows; an unflushed claim leaves the row
``pending``, so it runs again without the orphan flag (and without counting that attempt). Either way nothing is
lost, and side effects are not repeated: :meth:`WorkQueue.mark_effect` commits before it returns (taking any
deferred claim with it), so a re-run skips the replies already made. Every other write (requeue, fail,
mark_effect) commits before it returns.

**Checkpoints off the event loop.** SQLite normally copies the WAL back into the database inside whichever commit
pushes the WAL past 1,000 pages, syncing both files while the event loop waits (milliseconds of stalled acks,
every second or so under load). Here the bot's connection never checkpoints; a background thread with its own
connection runs a passive checkpoint every :data:`CHECKPOINT_S`, which never blocks a commit.

Durability trade-off: the database runs in WAL mode with ``synchronous=NORMAL``. A commit then survives a
process crash (kill -9, OOM) but the last few commits may be lost if the *machine* loses power before the next
WAL checkpoint. That is the right default for a bot (a commit costs tens of microseconds instead of an fsync);
pass ``synchronous="FULL"`` to survive power loss at the cost of one fsync per envelope.

Why dedup and enqueue are one transaction: if the process died between a committed dedup claim and the enqueue,
Slack's retry (the event was never acked) would be taken as a duplicate and the event lost.

On start, :meth:`recover` turns rows a previous process had claimed (it died or was killed mid-handler) back into
pending work, flagged as orphans, and returns every pending row for re-dispatch.

One process owns a queue file at a time (an advisory lock on ``<db>.lock``): two bots sharing one file would
re-dispatch each other's in-flight work as orphans.

Privacy: the queue holds envelope payloads (message text included) because it must be able to run the handler
again. Rows are deleted when their work completes; keep the file beside the bot, not with recordings.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from slackops.bot.dedup import DEFAULT_TTL_S, DedupStore, SqliteDedupStore
from slackops.errors import StoreError
from slackops.protocol import Envelope, parse_frame

_SCHEMA = """
CREATE TABLE IF NOT EXISTS work (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key   TEXT NOT NULL,
    envelope_id TEXT NOT NULL,
    type        TEXT NOT NULL,
    event_id    TEXT,
    channel     TEXT,
    frame       BLOB NOT NULL,
    received_at REAL NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'claimed', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    claimed_at  REAL,
    error       TEXT,
    effects     TEXT
);
CREATE INDEX IF NOT EXISTS work_state ON work (state, id);
"""

#: How often the background thread copies the WAL back into the database file.
CHECKPOINT_S = 0.5
#: A WAL grown past this (a burst) is truncated back to it after the next full checkpoint.
WAL_SIZE_LIMIT = 64 * 1024 * 1024

#: Longest a claim or a finished handler's row delete waits for a commit to ride on (see the module docstring).
DEFERRED_FLUSH_S = 0.05

_INSERT = (
    "INSERT INTO work (dedup_key, envelope_id, type, event_id, channel, frame, received_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@dataclass
class WorkItem:
    """One unit of handler work: an envelope that was persisted (and then acked)."""

    #: the row id (SQLite) or stream entry id (Redis)
    id: int | str
    dedup_key: str
    envelope: Envelope
    #: wall-clock time the envelope was received (epoch seconds)
    received_at: float
    #: handler runs already made (a failed run increments it)
    attempts: int = 0
    #: claimed by a process that died before finishing: the handler may have run partly
    orphaned: bool = False
    #: side effects already done for this item (``"reply"`` …), so a re-run can skip them
    effects: set[str] = field(default_factory=set)
    #: the instance that last started a handler for it (shared backends; ``None`` when unknown)
    owner: str | None = None


async def settle(result: Any) -> Any:
    """Await ``result`` if a backend returned an awaitable (Redis), else pass it through (SQLite)."""
    if inspect.isawaitable(result):
        return await result
    return result


@dataclass(frozen=True)
class Admission:
    """What :meth:`WorkQueue.admit` did: queued ``item``, or saw a ``duplicate`` (nothing queued)."""

    item: WorkItem | None
    duplicate: bool


def _frame_of(env: Envelope) -> bytes:
    frame: dict[str, Any] = {
        "envelope_id": env.envelope_id,
        "type": env.type,
        "payload": env.payload,
        "accepts_response_payload": env.accepts_response_payload,
    }
    if env.type == "events_api":
        frame["retry_attempt"] = env.retry_attempt
        frame["retry_reason"] = env.retry_reason
    return orjson.dumps(frame)


class WorkBackend(Protocol):
    """What the runtime needs of a work queue. Methods may return awaitables (the runtime :func:`settle` s them).

    :class:`WorkQueue` (SQLite, one process) and :class:`~slackops.bot.redis_backend.RedisWorkQueue` (shared
    by replicas) implement it. ``shared`` says where admitted work runs: ``False``, here (the bot submits what
    it admits); ``True``, on any replica (the bot pulls work with ``fetch``).
    """

    shared: bool

    def admit(self, env: Envelope, received_at: float | None = None) -> Admission | Awaitable[Admission]: ...
    def claim(self, item_id: Any) -> Any: ...
    def complete(self, item_id: Any) -> Any: ...
    def requeue(self, item_id: Any, error: str | None = None) -> Any: ...
    def fail(self, item_id: Any, error: str) -> Any: ...
    def mark_effect(self, item_id: Any, effect: str, effects: set[str]) -> Any: ...
    def recover(self) -> list[WorkItem] | Awaitable[list[WorkItem]]: ...
    def purge(self) -> int | Awaitable[int]: ...
    def close(self) -> Any: ...


class WorkQueue:
    """SQLite (WAL) work queue and, by default, dedup store, in one file owned by one process."""

    #: work admitted here runs here (see :class:`WorkBackend`)
    shared = False

    def __init__(
        self,
        path: str | Path,
        *,
        dedup: DedupStore | None = None,
        dedup_ttl_s: float = DEFAULT_TTL_S,
        synchronous: str = "NORMAL",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self._clock = clock
        self._lock_fd = _lock(self.path) if self.path != ":memory:" else None
        try:
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE in admit), so no statement ever
            # sits in an implicit transaction holding the write lock.
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
                raise StoreError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
            self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._conn.execute("PRAGMA busy_timeout=2000")
            self._conn.executescript(_SCHEMA)
            if self.path != ":memory:":
                # Checkpoints run in _Checkpointer's thread, never inside a commit on the receive path.
                self._conn.execute("PRAGMA wal_autocheckpoint=0")
                self._conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        except sqlite3.Error as exc:
            self._unlock()
            raise StoreError(
                f"cannot open the bot's work queue {self.path}: {exc}",
                hint="Check the file is writable and not on a network filesystem (SQLite WAL needs local disk).",
            ) from None
        if self.path != ":memory:":
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)  # it holds message payloads
        self.dedup: DedupStore = (
            dedup if dedup is not None else SqliteDedupStore(self._conn, ttl_s=dedup_ttl_s)
        )
        self._shared_tx = getattr(self.dedup, "connection", None) is self._conn
        # Sync handlers run in worker threads and may call mark_effect while the loop thread has a staged
        # batch open: one lock keeps "is a transaction open?" and the statements that act on it together.
        self._lock = threading.RLock()
        self._flush_handle: asyncio.TimerHandle | None = None
        self._checkpointer = _Checkpointer(self.path) if self.path != ":memory:" else None

    # -- the receive path -------------------------------------------------------------------------------------

    def admit(self, env: Envelope, received_at: float | None = None) -> Admission:
        """Dedup-claim and persist ``env`` in one transaction. Call this *before* acking; then ack.

        Returns a duplicate admission (nothing queued) when the key was seen within the dedup TTL.
        """
        with self._lock:
            admission = self.stage(env, received_at)
            self.commit()
            return admission

    def stage(self, env: Envelope, received_at: float | None = None) -> Admission:
        """:meth:`admit` without the commit: the claim and the insert join the open transaction.

        Nothing staged is durable until :meth:`commit` returns: ack only after it. On an error the whole open
        transaction (everything staged since the last commit) is rolled back and the error raised.
        """
        now = self._clock()
        received_at = now if received_at is None else received_at
        key = env.dedup_key
        if not self._shared_tx:
            # Another backend cannot join our transaction: claim first, and give the claim back if the insert
            # fails. The window between the two (a crash right there) is the price of a shared store.
            with self._lock:
                self.commit()
                if not self.dedup.claim(key, now):
                    return Admission(None, True)
                try:
                    row_id = self._insert(env, key, received_at)
                except BaseException:
                    self.dedup.release(key)
                    raise
                return Admission(WorkItem(row_id, key, env, received_at), False)
        with self._lock:
            self._begin()
            try:
                if not self.dedup.claim(key, now):
                    return Admission(None, True)
                row_id = self._insert(env, key, received_at)
            except BaseException:
                self.rollback()
                raise
        return Admission(WorkItem(row_id, key, env, received_at), False)

    def commit(self) -> None:
        """Make everything staged (and deferred) durable. A no-op when no transaction is open.

        Raises :class:`~slackops.errors.StoreError` after rolling back if the commit fails.
        """
        with self._lock:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
                self._flush_handle = None
            if not self._conn.in_transaction:
                return
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self.rollback()
                raise StoreError(f"work queue {self.path}: commit failed: {exc}") from None

    def rollback(self) -> None:
        """Drop everything staged since the last commit."""
        with self._lock:
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")

    def _begin(self) -> None:
        if self._conn.in_transaction:
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"work queue {self.path} is locked or unwritable: {exc}") from None

    def _insert(self, env: Envelope, key: str, received_at: float) -> int:
        info = env.event
        cur = self._conn.execute(
            _INSERT,
            (key, env.envelope_id, env.type, info.event_id, info.channel, _frame_of(env), received_at),
        )
        return int(cur.lastrowid or 0)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Run the body in the open transaction (or a new one) and commit it all."""
        with self._lock:
            self._begin()
            try:
                yield
            except BaseException:
                self.rollback()
                raise
            self.commit()

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        """One statement, committed before returning (with anything staged or deferred before it)."""
        with self._lock:
            self._conn.execute(sql, args)
            self.commit()

    # -- handler lifecycle ------------------------------------------------------------------------------------

    def claim(self, item_id: int) -> None:
        """A handler starts on this row: if the process dies now, the row is an orphan on the next start.

        In an event loop the update rides on the next commit, at most :data:`DEFERRED_FLUSH_S` later, and
        always before :meth:`mark_effect` returns (see the module docstring); without one it commits now.
        """
        self._defer(
            "UPDATE work SET state = 'claimed', claimed_at = ?, attempts = attempts + 1 WHERE id = ?",
            (self._clock(), item_id),
        )

    def complete(self, item_id: int) -> None:
        """The handler finished: forget the row (the dedup key stays until its TTL).

        In an event loop the delete rides on the next commit, at most :data:`DEFERRED_FLUSH_S` later (see the
        module docstring); without one it commits now.
        """
        self._defer("DELETE FROM work WHERE id = ?", (item_id,))

    def _defer(self, sql: str, args: tuple[Any, ...]) -> None:
        """One statement in the open transaction, committed with the next write or by a flush soon after."""
        with self._lock:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is None or not self._shared_tx:
                self._write(sql, args)
                return
            self._begin()
            self._conn.execute(sql, args)
            if self._flush_handle is None:
                self._flush_handle = loop.call_later(DEFERRED_FLUSH_S, self._flush_deferred)

    def _flush_deferred(self) -> None:
        self._flush_handle = None
        # A failure here surfaces on the next admission (its commit fails too); the rows stay claimed.
        with contextlib.suppress(StoreError):
            self.commit()

    def requeue(self, item_id: int, error: str | None = None) -> None:
        """Put the row back as pending work (drain deadline passed, or a retryable failure)."""
        self._write(
            "UPDATE work SET state = 'pending', claimed_at = NULL, error = ? WHERE id = ?", (error, item_id)
        )

    def fail(self, item_id: int, error: str) -> None:
        """Give up on the row: it stays as a ``failed`` dead letter for a person to inspect or replay."""
        self._write("UPDATE work SET state = 'failed', error = ? WHERE id = ?", (error[:500], item_id))

    def mark_effect(self, item_id: int, effect: str, effects: set[str]) -> None:
        """Record that a side effect (a reply) happened, so a re-run after a crash does not repeat it."""
        effects.add(effect)
        self._write("UPDATE work SET effects = ? WHERE id = ?", (",".join(sorted(effects)), item_id))

    # -- start-up and housekeeping ----------------------------------------------------------------------------

    def recover(self) -> list[WorkItem]:
        """Rows left by a previous process: claimed ones (orphans) become pending; return all pending, oldest first."""
        with self._transaction():
            orphan_ids = {
                row[0] for row in self._conn.execute("SELECT id FROM work WHERE state = 'claimed'").fetchall()
            }
            self._conn.execute("UPDATE work SET state = 'pending', claimed_at = NULL WHERE state = 'claimed'")
            rows = self._conn.execute(
                "SELECT id, dedup_key, frame, received_at, attempts, effects FROM work"
                " WHERE state = 'pending' ORDER BY id"
            ).fetchall()
        items = []
        for row_id, key, frame, received_at, attempts, effects in rows:
            env = parse_frame(bytes(frame).decode())
            if not isinstance(env, Envelope):  # cannot happen for rows we wrote; never crash start-up on one
                self.fail(row_id, f"stored frame no longer parses: {getattr(env, 'detail', env)}")
                continue
            items.append(
                WorkItem(
                    row_id,
                    key,
                    env,
                    received_at,
                    attempts=attempts,
                    orphaned=row_id in orphan_ids,
                    effects=set(filter(None, (effects or "").split(","))),
                )
            )
        return items

    def purge(self) -> int:
        """Delete expired dedup keys. Returns how many."""
        with self._lock:
            self.commit()
            return self.dedup.purge(self._clock())

    def counts(self) -> dict[str, int]:
        """Rows per state (``pending``, ``claimed``, ``failed``)."""
        out = {"pending": 0, "claimed": 0, "failed": 0}
        for state, n in self._conn.execute("SELECT state, count(*) FROM work GROUP BY state"):
            out[state] = n
        return out

    def close(self) -> None:
        """Commit deferred deletes, close the database (checkpointing the WAL) and release the file lock."""
        with contextlib.suppress(StoreError):
            self.commit()
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> WorkQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Checkpointer:
    """A daemon thread that runs ``wal_checkpoint(PASSIVE)`` on its own connection every :data:`CHECKPOINT_S`.

    A passive checkpoint copies what no reader still needs and never waits for the writer, so the receive path's
    commits only append to the WAL. The sqlite3 module releases the GIL while SQLite works, so the copying and
    syncing do not hold up the event loop either.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slackops-queue-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return
        try:
            conn.execute("PRAGMA busy_timeout=100")
            while not self._stopping.wait(CHECKPOINT_S):
                # Busy or locked: the next round catches up; the WAL only grows a little meanwhile.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop the thread (the closing bot connection does the final checkpoint)."""
        self._stopping.set()
        self._thread.join(timeout=5.0)


def _lock(path: str) -> int:
    """Take the advisory lock that makes one process the owner of ``path``."""
    import fcntl

    lock_path = path + ".lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreError(
            f"the work queue {path} is in use by another bot process",
            hint="Give each bot instance its own --db file (orphan recovery assumes one owner per file).",
        ) from None
    return fd
