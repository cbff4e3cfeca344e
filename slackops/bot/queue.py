"""The durable work queue: persist an envelope before acking it, so an acked event is never lost.

Once an envelope is acked Slack will not send it again, so a bot that acks and then dies (deploy, OOM, kill -9)
has lost the event unless it wrote it down first. :meth:`WorkQueue.admit` does, on the receive path, in one
SQLite transaction: claim the dedup key (insert-if-absent) and insert the work row. Only after that commit does
the bot ack. Then a row moves ``pending -> claimed`` when a handler starts, and is deleted when the handler
finishes (``complete``), put back to ``pending`` (``requeue``) or parked as ``failed`` (a dead letter).

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

import contextlib
import inspect
import os
import sqlite3
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

    # -- the receive path -------------------------------------------------------------------------------------

    def admit(self, env: Envelope, received_at: float | None = None) -> Admission:
        """Dedup-claim and persist ``env`` in one transaction. Call this *before* acking; then ack.

        Returns a duplicate admission (nothing queued) when the key was seen within the dedup TTL.
        """
        now = self._clock()
        received_at = now if received_at is None else received_at
        key = env.dedup_key
        if not self._shared_tx:
            # Another backend cannot join our transaction: claim first, and give the claim back if the insert
            # fails. The window between the two (a crash right there) is the price of a shared store.
            if not self.dedup.claim(key, now):
                return Admission(None, True)
            try:
                row_id = self._insert(env, key, received_at)
            except BaseException:
                self.dedup.release(key)
                raise
            return Admission(WorkItem(row_id, key, env, received_at), False)
        with self._transaction():
            if not self.dedup.claim(key, now):
                return Admission(None, True)
            row_id = self._insert(env, key, received_at)
        return Admission(WorkItem(row_id, key, env, received_at), False)

    def _insert(self, env: Envelope, key: str, received_at: float) -> int:
        cur = self._conn.execute(
            "INSERT INTO work (dedup_key, envelope_id, type, event_id, channel, frame, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                env.envelope_id,
                env.type,
                env.event.event_id,
                env.event.channel,
                _frame_of(env),
                received_at,
            ),
        )
        return int(cur.lastrowid or 0)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"work queue {self.path} is locked or unwritable: {exc}") from None
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

    # -- handler lifecycle ------------------------------------------------------------------------------------

    def claim(self, item_id: int) -> None:
        """A handler starts on this row: if the process dies now, the row is an orphan on the next start."""
        self._conn.execute(
            "UPDATE work SET state = 'claimed', claimed_at = ?, attempts = attempts + 1 WHERE id = ?",
            (self._clock(), item_id),
        )

    def complete(self, item_id: int) -> None:
        """The handler finished: forget the row (the dedup key stays until its TTL)."""
        self._conn.execute("DELETE FROM work WHERE id = ?", (item_id,))

    def requeue(self, item_id: int, error: str | None = None) -> None:
        """Put the row back as pending work (drain deadline passed, or a retryable failure)."""
        self._conn.execute(
            "UPDATE work SET state = 'pending', claimed_at = NULL, error = ? WHERE id = ?", (error, item_id)
        )

    def fail(self, item_id: int, error: str) -> None:
        """Give up on the row: it stays as a ``failed`` dead letter for a person to inspect or replay."""
        self._conn.execute("UPDATE work SET state = 'failed', error = ? WHERE id = ?", (error[:500], item_id))

    def mark_effect(self, item_id: int, effect: str, effects: set[str]) -> None:
        """Record that a side effect (a reply) happened, so a re-run after a crash does not repeat it."""
        effects.add(effect)
        self._conn.execute("UPDATE work SET effects = ? WHERE id = ?", (",".join(sorted(effects)), item_id))

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
        return self.dedup.purge(self._clock())

    def counts(self) -> dict[str, int]:
        """Rows per state (``pending``, ``claimed``, ``failed``)."""
        out = {"pending": 0, "claimed": 0, "failed": 0}
        for state, n in self._conn.execute("SELECT state, count(*) FROM work GROUP BY state"):
            out[state] = n
        return out

    def close(self) -> None:
        """Close the database (checkpointing the WAL) and release the file lock."""
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
