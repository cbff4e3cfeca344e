"""Deduplicate deliveries on ``payload.event_id``: atomic insert-if-absent with a TTL.

Why: Slack retries an events_api envelope that was not acked within 3 s (attempts 1, 2, 3: right after the
deadline, then about +1 min and +5 min), sometimes re-sends attempt 0, and may route each attempt to a different
socket — including a second socket of this process during a make-before-break reconnect. ``envelope_id`` may
change between attempts; ``event_id`` does not. So the key is :attr:`Envelope.dedup_key <slackops.protocol.Envelope>`
(``event_id``, or ``envelope_id`` for slash/interactive envelopes, which Slack never retries).

The check must be *one* atomic step ("insert if absent"), not "look up, then insert": two sockets can hand us two
attempts of the same event within microseconds. The TTL must outlive Slack's last retry (+5 min after the
second), so anything under 10 minutes lets duplicates through; the default is 15 minutes.

:class:`DedupStore` is the seam for other backends (Redis ``SET NX EX``, a SQL table shared by several
instances). :class:`SqliteDedupStore` is the default; when it shares the work queue's SQLite connection the claim
and the enqueue commit in one transaction (see :mod:`slackops.bot.queue`).
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Protocol, runtime_checkable

#: Slack's last Events API retry comes ~5 min after the second; 10 min is the floor, 15 min leaves margin.
MIN_TTL_S = 600.0
DEFAULT_TTL_S = 900.0


@runtime_checkable
class DedupStore(Protocol):
    """Remembers which deliveries were already taken, for ``ttl_s`` seconds (wall clock: survives restarts)."""

    ttl_s: float

    def claim(self, key: str, now: float) -> bool:
        """Atomically record ``key`` unless it was seen within the TTL. True: first sighting, do the work."""
        ...

    def release(self, key: str) -> None:
        """Forget ``key`` (its work could not be queued, so a retry must be allowed through)."""
        ...

    def purge(self, now: float) -> int:
        """Delete expired keys; return how many."""
        ...


def check_ttl(ttl_s: float) -> float:
    """Refuse TTLs that let Slack's +5 min retry through as a fresh event."""
    if ttl_s < MIN_TTL_S:
        raise ValueError(
            f"dedup TTL {ttl_s:g}s is shorter than {MIN_TTL_S:g}s: Slack's last retry arrives ~5 min after the "
            "second one and would be handled again"
        )
    return float(ttl_s)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS dedup (
    key     TEXT PRIMARY KEY,
    seen_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_seen_at ON dedup (seen_at);
"""

# One statement, so the check and the insert cannot interleave with another claim. A row older than the TTL is
# expired: the upsert refreshes it and counts as a fresh claim (rowcount 1); a live row leaves rowcount 0.
_CLAIM = """
INSERT INTO dedup (key, seen_at) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET seen_at = excluded.seen_at WHERE dedup.seen_at <= ?
"""


class SqliteDedupStore:
    """:class:`DedupStore` in a SQLite table. Pass the work queue's connection to share its transactions.

    The connection must be in autocommit mode (``isolation_level=None``): statements run inside the caller's
    ``BEGIN ... COMMIT`` when there is one, else commit on their own.
    """

    def __init__(self, conn: sqlite3.Connection, *, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.connection = conn
        self.ttl_s = check_ttl(ttl_s)
        conn.executescript(_SCHEMA)

    def claim(self, key: str, now: float) -> bool:
        cur = self.connection.execute(_CLAIM, (key, now, now - self.ttl_s))
        return cur.rowcount == 1

    def release(self, key: str) -> None:
        self.connection.execute("DELETE FROM dedup WHERE key = ?", (key,))

    def purge(self, now: float) -> int:
        cur = self.connection.execute("DELETE FROM dedup WHERE seen_at <= ?", (now - self.ttl_s,))
        return cur.rowcount

    def __len__(self) -> int:
        return self.connection.execute("SELECT count(*) FROM dedup").fetchone()[0]


class MemoryDedupStore:
    """:class:`DedupStore` in a dict: for tests and for bots that accept losing dedup state on restart."""

    def __init__(self, *, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.ttl_s = check_ttl(ttl_s)
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def claim(self, key: str, now: float) -> bool:
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and seen > now - self.ttl_s:
                return False
            self._seen[key] = now
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)

    def purge(self, now: float) -> int:
        with self._lock:
            old = [k for k, seen in self._seen.items() if seen <= now - self.ttl_s]
            for k in old:
                del self._seen[k]
            return len(old)

    def __len__(self) -> int:
        return len(self._seen)
