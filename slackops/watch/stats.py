"""Rolling statistics of a watch run, computed from records alone.

:class:`WatchStats` is pure: feed it records (:meth:`WatchStats.feed`) in arrival order and ask for a JSON-able
:meth:`WatchStats.summary` at a given wall-clock ``now``. It reads no clock and does no I/O, so the live view, the
final summary, ``--json`` and the TUI all show the same numbers, and tests feed it hand-made records.

Memory stays bounded on a run of any length: ack latencies are kept for the last :data:`ACK_WINDOW` acks, the
envelope rate over the last :data:`RATE_WINDOW_S` seconds, and only the last few disconnects, reconnects and
closes are listed (their totals are counted).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from slackops.protocol import ACK_DEADLINE_S
from slackops.stats import percentile

#: Ack-latency percentiles are taken over this many most recent acks.
ACK_WINDOW = 10_000
#: envelopes/s is measured over this trailing window (seconds of record time).
RATE_WINDOW_S = 10.0
#: How many recent disconnects, reconnects, closes and errors the summary lists.
RECENT = 8
#: Closed sockets stay listed (state "closed") this long, so a refresh is visible in the live view.
CLOSED_VISIBLE_S = 5.0


@dataclass
class ConnectionView:
    """What the summary shows of one socket."""

    conn: str
    state: str = "connecting"  # connecting | live | draining | closed
    opened_t: float | None = None
    host: str | None = None
    num_connections: int | None = None
    last_rtt_ms: float | None = None
    envelopes: int = 0
    disconnect: str | None = None
    closed_t: float | None = None
    close_by: str | None = None
    close_code: int | None = None

    def to_dict(self, now: float) -> dict[str, Any]:
        # A closed socket's age stops at its close: how long it lived.
        return {
            "conn": self.conn,
            "state": self.state,
            "age_s": None
            if self.opened_t is None
            else round(max(0.0, (self.closed_t or now) - self.opened_t), 1),
            "host": self.host,
            "num_connections": self.num_connections,
            "last_rtt_ms": self.last_rtt_ms,
            "envelopes": self.envelopes,
            "disconnect": self.disconnect,
            "close_by": self.close_by,
            "close_code": self.close_code,
        }


class WatchStats:
    """Live numbers of a watch run, updated one record at a time. See the module docstring."""

    def __init__(self, *, ack_deadline_s: float = ACK_DEADLINE_S) -> None:
        self.ack_deadline_ms = ack_deadline_s * 1000.0
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.counts: Counter[str] = Counter()
        self.connections: dict[str, ConnectionView] = {}
        self.envelope_types: Counter[str] = Counter()
        self.retried_envelopes = 0
        self.acks_ok = 0
        self.acks_failed = 0
        self.acks_late = 0
        self._ack_ms: deque[float] = deque(maxlen=ACK_WINDOW)
        self._ack_ms_max: float | None = None
        self._envelope_times: deque[float] = deque()
        self.reconnects: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.reconnect_total = 0
        self.gap_total_ms = 0.0
        self.gap_max_ms = 0.0
        self.disconnects: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.closes: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.errors: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.drift: dict[str, Any] | None = None
        self.drift_total = 0
        self.open_calls = 0
        self.open_failures = 0
        self.last_api_error: str | None = None

    # -- feeding ------------------------------------------------------------------------------------------

    def feed(self, rec: dict[str, Any]) -> None:
        """Account for one record (records of kinds the summary does not show are only counted)."""
        kind = rec.get("kind")
        t = rec.get("t")
        if not isinstance(kind, str) or not isinstance(t, (int, float)):
            return
        self.counts[kind] += 1
        if self.first_t is None:
            self.first_t = t
        self.last_t = t if self.last_t is None else max(self.last_t, t)
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(rec, t)

    def _conn(self, rec: dict[str, Any]) -> ConnectionView | None:
        conn = rec.get("conn")
        if not isinstance(conn, str):
            return None
        view = self.connections.get(conn)
        if view is None:
            view = self.connections[conn] = ConnectionView(conn)
        return view

    def _on_connect(self, rec: dict[str, Any], t: float) -> None:
        view = self._conn(rec)
        if view is not None:
            view.opened_t = t

    def _on_hello(self, rec: dict[str, Any], t: float) -> None:
        view = self._conn(rec)
        if view is None:
            return
        view.state = "live"
        view.opened_t = view.opened_t or t
        view.host = rec.get("host")
        view.num_connections = rec.get("num_connections")

    def _on_drift(self, rec: dict[str, Any], t: float) -> None:
        self.drift_total += 1
        self.drift = {
            "t": t,
            "conn": rec.get("conn"),
            "num_connections": rec.get("num_connections"),
            "own_connections": rec.get("own_connections"),
        }

    def _on_disconnect(self, rec: dict[str, Any], t: float) -> None:
        view = self._conn(rec)
        if view is not None and view.state != "closed":
            view.state = "draining"
            view.disconnect = rec.get("reason")
        self.disconnects.append({"t": t, "conn": rec.get("conn"), "reason": rec.get("reason")})

    def _on_close(self, rec: dict[str, Any], t: float) -> None:
        view = self._conn(rec)
        if view is not None:
            view.state = "closed"
            view.closed_t = t
            view.close_by = rec.get("by")
            view.close_code = rec.get("code")
        self.closes.append(
            {
                "t": t,
                "conn": rec.get("conn"),
                "code": rec.get("code"),
                "by": rec.get("by"),
                "clean": rec.get("clean"),
            }
        )

    def _on_pong(self, rec: dict[str, Any], t: float) -> None:
        rtt = rec.get("rtt_ms")
        view = self._conn(rec)
        if view is not None and isinstance(rtt, (int, float)):
            view.last_rtt_ms = float(rtt)

    def _on_envelope(self, rec: dict[str, Any], t: float) -> None:
        view = self._conn(rec)
        if view is not None:
            view.envelopes += 1
        self.envelope_types[str(rec.get("type"))] += 1
        if rec.get("retry_attempt"):
            # Slack re-sent it: an earlier attempt was not acked within 3 s (by us or another consumer).
            self.retried_envelopes += 1
        self._envelope_times.append(t)
        self._trim_rate(t)

    def _on_ack(self, rec: dict[str, Any], t: float) -> None:
        if not rec.get("ok"):
            self.acks_failed += 1
            return
        self.acks_ok += 1
        ack_ms = rec.get("ack_ms")
        if isinstance(ack_ms, (int, float)):
            self._ack_ms.append(float(ack_ms))
            self._ack_ms_max = ack_ms if self._ack_ms_max is None else max(self._ack_ms_max, ack_ms)
            if ack_ms > self.ack_deadline_ms:
                self.acks_late += 1

    def _on_reconnect(self, rec: dict[str, Any], t: float) -> None:
        gap = rec.get("gap_ms")
        gap = float(gap) if isinstance(gap, (int, float)) else None
        self.reconnect_total += 1
        if gap is not None:
            self.gap_total_ms += gap
            self.gap_max_ms = max(self.gap_max_ms, gap)
        self.reconnects.append(
            {
                "t": t,
                "conn": rec.get("conn"),
                "initiator": rec.get("initiator"),
                "cause": rec.get("cause"),
                "gap_ms": gap,
            }
        )

    def _on_api_call(self, rec: dict[str, Any], t: float) -> None:
        if rec.get("method") != "apps.connections.open":
            return
        self.open_calls += 1
        if not rec.get("ok"):
            self.open_failures += 1
            self.last_api_error = rec.get("error")

    def _on_error(self, rec: dict[str, Any], t: float) -> None:
        self.errors.append(
            {"t": t, "conn": rec.get("conn"), "where": rec.get("where"), "error": rec.get("error")}
        )

    def _trim_rate(self, now: float) -> None:
        while self._envelope_times and self._envelope_times[0] < now - RATE_WINDOW_S:
            self._envelope_times.popleft()

    # -- reading ------------------------------------------------------------------------------------------

    def envelopes_per_s(self, now: float) -> float:
        """Envelopes per second over the last :data:`RATE_WINDOW_S` seconds (or since the first record)."""
        self._trim_rate(now)
        if self.first_t is None:
            return 0.0
        # Never divide by less than a second: the first envelopes of a run would show absurd rates.
        span = min(RATE_WINDOW_S, max(now - self.first_t, 1.0))
        return len(self._envelope_times) / span

    def ack_percentiles(self) -> dict[str, float | None]:
        values = list(self._ack_ms)
        return {
            "p50": _round(percentile(values, 50)),
            "p99": _round(percentile(values, 99)),
            "max": _round(self._ack_ms_max),
        }

    def summary(self, now: float) -> dict[str, Any]:
        """Everything the live view shows, as JSON-native data (times are epoch seconds)."""
        conns = [
            view.to_dict(now)
            for view in sorted(self.connections.values(), key=lambda v: v.opened_t or 0.0)
            if view.state != "closed"
            or (view.closed_t is not None and now - view.closed_t <= CLOSED_VISIBLE_S)
        ]
        envelopes = self.counts["envelope"]
        return {
            "elapsed_s": None if self.first_t is None else round(max(0.0, now - self.first_t), 1),
            "connections": conns,
            "live": sum(1 for v in self.connections.values() if v.state in ("live", "draining")),
            "envelopes": envelopes,
            "envelopes_per_s": round(self.envelopes_per_s(now), 2),
            "envelope_types": dict(self.envelope_types),
            "retried_envelopes": self.retried_envelopes,
            "acks": {
                "ok": self.acks_ok,
                "failed": self.acks_failed,
                "late": self.acks_late,
                "unacked": max(0, envelopes - self.acks_ok - self.acks_failed),
                "deadline_ms": self.ack_deadline_ms,
                "window": min(len(self._ack_ms), ACK_WINDOW),
                **self.ack_percentiles(),
            },
            "pings": {"ping": self.counts["ping"], "pong": self.counts["pong"]},
            "reconnects": {
                "total": self.reconnect_total,
                "gap_max_ms": _round(self.gap_max_ms),
                "gap_total_ms": _round(self.gap_total_ms),
                "recent": list(self.reconnects),
            },
            "disconnects": {"total": self.counts["disconnect"], "recent": list(self.disconnects)},
            "closes": {"total": self.counts["close"], "recent": list(self.closes)},
            "drift": {"total": self.drift_total, "last": self.drift},
            "open_calls": {
                "total": self.open_calls,
                "failed": self.open_failures,
                "last_error": self.last_api_error,
            },
            "errors": {"total": self.counts["error"], "recent": list(self.errors)},
            "records": sum(self.counts.values()),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)
