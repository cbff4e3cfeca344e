"""What the terminal view shows, computed from records: a pure model with no Textual (and no clock) inside.

The live view and the replay both feed records into one :class:`Dashboard`, then read its panels whenever
they repaint. Feeding is cheap and O(1) per record (dict and deque updates only), so at 2,000 envelopes/s the
socket loop pays a few milliseconds a second; the expensive parts (sorting latencies for percentiles,
formatting rows) run only when a panel is read, at the view's bounded refresh rate.

Memory is bounded whatever the recording's length: the rate window, the latency window, the timeline, the
frame log and the table of closed connections are all capped.

Time is always passed in (``now``): the live view passes the wall clock, the replay its virtual clock, the
tests a constant — so nothing here reads the time of day.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import math
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slackops.stats import percentile

#: Slack retries an events_api envelope that is not acked within 3 s (socket-mode.md §5): the ack budget.
ACK_BUDGET_MS = 3000.0

#: Upper edges of the ack latency histogram's buckets, in ms; the last bucket is everything over the budget.
HISTOGRAM_EDGES_MS: tuple[float, ...] = (10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0, ACK_BUDGET_MS)

#: The frame-log prefixes, as in the websockets library's debug log.
SENT, RECEIVED, STATE, CLOSE, ERROR = ">", "<", "=", "x", "!"
PREFIXES: tuple[str, ...] = (SENT, RECEIVED, STATE, CLOSE, ERROR)

# Disconnect reasons after which Slack drops the socket soon (socket-mode.md §2): the socket is on its way out.
_REFRESH_REASONS = frozenset({"warning", "refresh_requested"})

# Control characters (and ANSI escapes with them) must not reach the terminal from remote text.
_CONTROL = {i: "?" for i in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0))}


def clean(value: Any, limit: int = 80) -> str:
    """``value`` as one printable line: control characters replaced, long text cut. Remote text goes through here."""
    text = value if isinstance(value, str) else str(value)
    text = text.translate(_CONTROL)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clock_text(t: float) -> str:
    """``HH:MM:SS.mmm`` in UTC, the frame log's and the timeline's time column."""
    return _dt.datetime.fromtimestamp(t, tz=_dt.UTC).strftime("%H:%M:%S.%f")[:-3]


def duration_text(seconds: float | None) -> str:
    """A short human duration: ``850ms``, ``42s``, ``3m05s``, ``5h01m``; ``-`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 1:
        return f"{sign}{s * 1000:.0f}ms"
    if s < 60:
        return f"{sign}{s:.0f}s"
    if s < 3600:
        return f"{sign}{int(s // 60)}m{int(s % 60):02d}s"
    return f"{sign}{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def ms_text(ms: float | None) -> str:
    """Milliseconds for a table cell: ``3.0ms``, ``412ms``, ``4.50s``; ``-`` when unknown."""
    if ms is None:
        return "-"
    if ms < 100:
        return f"{ms:.1f}ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    return f"{ms / 1000:.2f}s"


def _edge_label(ms: float) -> str:
    return f"{ms:g}ms" if ms < 1000 else f"{ms / 1000:g}s"


@dataclass
class Connection:
    """One socket as the records describe it."""

    conn: str
    first_seen: float
    #: connecting / open / refreshing / closing / closed
    state: str = "connecting"
    opened_at: float | None = None
    host: str | None = None
    num_connections: int | None = None
    rtt_ms: float | None = None
    #: when Slack is expected to refresh it: hello time + ``approximate_connection_time`` (seconds)
    refresh_at: float | None = None
    reason: str | None = None
    closed_at: float | None = None
    envelopes: int = 0
    last_seen: float = 0.0


@dataclass(frozen=True)
class ConnectionRow:
    """One row of the connections panel, already formatted."""

    conn: str
    state: str
    age: str
    host: str
    num_connections: str
    rtt: str
    refresh_in: str
    envelopes: int


@dataclass(frozen=True)
class TimelineEntry:
    """A connection-level event: connect, hello, disconnect, close, reconnect, a gap with no open socket …"""

    t: float
    conn: str
    event: str
    detail: str
    #: how long the bot had no open socket (or the producer's ``gap_ms``), when this entry is about a gap
    gap_s: float | None = None


@dataclass(frozen=True)
class LogLine:
    """One line of the frame log: ``seq`` orders lines, so a view can ask for the ones it has not shown."""

    seq: int
    t: float
    conn: str
    prefix: str
    text: str

    def render(self) -> str:
        return f"{clock_text(self.t)} {self.conn:<4} {self.prefix} {self.text}"


@dataclass(frozen=True)
class AckStats:
    """Ack latency summary: counts, percentiles over the recent window, and the histogram since the start."""

    count: int
    late: int
    failed: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    #: (label, count, over budget) per bucket, in edge order; the last bucket is over the 3 s budget
    buckets: tuple[tuple[str, int, bool], ...]


@dataclass
class Counts:
    """Totals since the view started."""

    records: int = 0
    envelopes: int = 0
    acks: int = 0
    late_acks: int = 0
    reconnects: int = 0
    errors: int = 0
    kinds: Counter[str] = field(default_factory=Counter)


class FrameLog:
    """The scrolling frame log: the latest ``maxlen`` lines, each in the websockets prefix grammar."""

    def __init__(self, maxlen: int = 2000) -> None:
        self.lines: deque[LogLine] = deque(maxlen=maxlen)
        self.seq = 0

    def add(self, t: float, conn: str, prefix: str, text: str) -> None:
        self.seq += 1
        self.lines.append(LogLine(self.seq, t, conn, prefix, text))

    def since(self, seq: int) -> list[LogLine]:
        """Lines newer than ``seq`` that are still held (older ones fell off the end)."""
        if not self.lines or self.lines[-1].seq <= seq:
            return []
        first = self.lines[0].seq
        start = max(0, seq - first + 1)
        return [self.lines[i] for i in range(start, len(self.lines))]

    def clear(self) -> None:
        self.lines.clear()


def matches(line: LogLine, query: str) -> bool:
    """Does ``line`` pass the frame-log filter ``query``?

    The query is space-separated terms, all of which must match: a lone prefix character (``<`` ``>`` ``=``
    ``x`` ``!``) selects lines with that prefix; any other term is a case-insensitive substring of the line
    (connection id, kind, envelope id …). ``"< envelope"`` shows received envelopes; ``"! c2"`` errors on c2.
    """
    for term in query.split():
        if term in PREFIXES:
            if line.prefix != term:
                return False
        elif term.lower() not in f"{line.conn} {line.text}".lower():
            return False
    return True


def frame_text(rec: Mapping[str, Any]) -> tuple[str, str] | None:
    """The frame-log prefix and text for a record, or ``None`` for records that are not about the transport.

    Kinds map to the websockets debug-log grammar: ``>`` sent, ``<`` received, ``=`` a state change, ``x`` a
    close, ``!`` an error. Handler-side kinds (process, queue, llm, post …) are not frames and are left out.
    """
    kind = rec.get("kind")
    g = rec.get
    if kind == "envelope":
        parts = [
            clean(g("type") or "?"),
            clean(g("event_type") or g("subtype") or "-"),
            clean(g("envelope_id")),
        ]
        if g("event_id"):
            parts.append(clean(g("event_id")))
        if g("retry_attempt"):
            parts.append(f"retry={g('retry_attempt')}({clean(g('retry_reason') or '?')})")
        if g("bytes") is not None:
            parts.append(f"{g('bytes')}B")
        return RECEIVED, "envelope " + " ".join(parts)
    if kind == "ack":
        ack_ms = g("ack_ms")
        if g("ok") is False:
            return ERROR, f"ack failed {clean(g('envelope_id'))} {clean(g('error') or '')}".rstrip()
        late = " LATE" if ack_ms is not None and ack_ms > ACK_BUDGET_MS else ""
        return SENT, f"ack {clean(g('envelope_id'))} {ms_text(ack_ms)}{late}"
    if kind in ("ping", "pong"):
        prefix = SENT if g("direction") == "sent" else RECEIVED
        text = kind.upper()
        if g("payload_kind"):
            text += f" {clean(g('payload_kind'))}"
        if g("rtt_ms") is not None:
            text += f" rtt={ms_text(g('rtt_ms'))}"
        return prefix, text
    if kind == "hello":
        text = f"hello num_connections={g('num_connections', '?')} host={clean(g('host') or '?')}"
        if g("approximate_connection_time") is not None:
            text += f" refresh_in~{duration_text(float(g('approximate_connection_time')))}"
        return RECEIVED, text
    if kind == "disconnect":
        return RECEIVED, f"disconnect reason={clean(g('reason') or '?')}"
    if kind == "close":
        text = f"close {g('code', '-')} by={clean(g('by') or '?')}"
        if g("reason"):
            text += f" reason={clean(g('reason'))}"
        if g("clean") is False:
            text += " unclean"
        return CLOSE, text
    if kind == "connect":
        return STATE, f"connecting attempt={g('attempt', '?')} host={clean(g('url_host') or '?')}"
    if kind == "reconnect":
        text = f"reconnect initiator={clean(g('initiator') or '?')}"
        if g("cause"):
            text += f" cause={clean(g('cause'))}"
        if g("gap_ms") is not None:
            text += f" gap={ms_text(g('gap_ms'))}"
        return STATE, text
    if kind == "drift":
        return ERROR, f"drift num_connections={g('num_connections', '?')} own={g('own_connections', '?')}"
    if kind == "error":
        text = f"error {clean(g('where') or '?')}: {clean(g('error') or '')}"
        if g("detail"):
            text += f" ({clean(g('detail'))})"
        return ERROR, text
    if kind == "api_call":
        method = clean(g("method") or "?")
        if g("ok") is False or (g("http_status") or 200) >= 400:
            text = f"api {method} failed {g('http_status', '')} {clean(g('error') or '')}".rstrip()
            if g("retry_after") is not None:
                text += f" retry_after={g('retry_after'):g}s"
            return ERROR, text
        return STATE, f"api {method} ok {ms_text(g('latency_ms'))}"
    return None


class Dashboard:
    """Everything the view shows, updated one record at a time.

    >>> d = Dashboard()
    >>> d.feed({"t": 10.0, "kind": "hello", "source": "probe", "conn": "c1", "num_connections": 1})
    >>> [row.state for row in d.connection_rows(now=12.0)]
    ['open']
    """

    def __init__(
        self,
        *,
        rate_window: int = 60,
        latency_window: int = 10_000,
        timeline_len: int = 500,
        log_len: int = 2000,
        closed_kept: int = 10,
    ) -> None:
        self.rate_window = rate_window
        self.closed_kept = closed_kept
        self.counts = Counts()
        self.connections: dict[str, Connection] = {}
        self.timeline: deque[TimelineEntry] = deque(maxlen=timeline_len)
        self.timeline_seq = 0
        self.log = FrameLog(log_len)
        self.findings: list[dict[str, Any]] = []
        self.latest: float | None = None
        self.first: float | None = None
        self._rate: dict[int, int] = {}
        self._latencies: deque[float] = deque(maxlen=latency_window)
        self._histogram = [0] * (len(HISTOGRAM_EDGES_MS) + 1)
        self._failed_acks = 0
        self._sorted: list[float] | None = None
        self._no_socket_since: float | None = None

    # ------------------------------------------------------------------------------------------ feeding

    def feed_many(self, recs: Iterable[Mapping[str, Any]]) -> None:
        for rec in recs:
            self.feed(rec)

    def feed(self, rec: Mapping[str, Any]) -> None:
        """Take one record into every panel it concerns."""
        t = rec.get("t")
        kind = rec.get("kind")
        if not isinstance(t, (int, float)) or not isinstance(kind, str):
            return
        c = self.counts
        c.records += 1
        c.kinds[kind] += 1
        if self.first is None:
            self.first = t
        if self.latest is None or t > self.latest:
            self.latest = t
        conn_id = rec.get("conn")
        conn = self._conn(str(conn_id), t) if conn_id is not None else None
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(rec, t, conn)
        framed = frame_text(rec)
        if framed is not None:
            self.log.add(t, clean(conn_id, 8) if conn_id is not None else "-", *framed)

    def _conn(self, conn_id: str, t: float) -> Connection:
        conn = self.connections.get(conn_id)
        if conn is None:
            conn = self.connections[conn_id] = Connection(conn_id, first_seen=t)
            self._prune_closed()
        conn.last_seen = max(conn.last_seen, t)
        return conn

    def _prune_closed(self) -> None:
        closed = [c for c in self.connections.values() if c.state == "closed"]
        for old in sorted(closed, key=lambda c: c.closed_at or 0.0)[: max(0, len(closed) - self.closed_kept)]:
            del self.connections[old.conn]

    def _add_timeline(self, t: float, conn: Connection | None, event: str, detail: str, gap_s=None) -> None:
        self.timeline_seq += 1
        self.timeline.append(TimelineEntry(t, conn.conn if conn else "-", event, detail, gap_s))

    def _open_count(self) -> int:
        return sum(1 for c in self.connections.values() if c.state in ("open", "refreshing", "closing"))

    def _on_connect(self, rec, t, conn) -> None:
        if conn is not None and conn.state == "closed":
            conn.state, conn.closed_at = "connecting", None
        self._add_timeline(t, conn, "connect", f"attempt {rec.get('attempt', '?')}")

    def _on_hello(self, rec, t, conn) -> None:
        if conn is None:
            return
        conn.state, conn.opened_at, conn.closed_at, conn.reason = "open", t, None, None
        conn.host = clean(rec["host"], 40) if rec.get("host") else conn.host
        conn.num_connections = rec.get("num_connections", conn.num_connections)
        act = rec.get("approximate_connection_time")
        # hello.debug_info.approximate_connection_time is in seconds: "how long the connection will persist
        # until Slack refreshes it" (socket-mode.md §2) — the panel counts down to that.
        conn.refresh_at = t + float(act) if isinstance(act, (int, float)) else None
        if self._no_socket_since is not None:
            gap = t - self._no_socket_since
            self._add_timeline(t, conn, "gap", f"no socket for {duration_text(gap)}", gap)
            self._no_socket_since = None
        self._add_timeline(
            t, conn, "hello", f"num_connections={conn.num_connections} host={conn.host or '?'}"
        )

    def _on_disconnect(self, rec, t, conn) -> None:
        reason = clean(rec.get("reason") or "?", 40)
        if conn is not None and conn.state != "closed":
            conn.state = "refreshing" if reason in _REFRESH_REASONS else "closing"
            conn.reason = reason
        self._add_timeline(t, conn, "disconnect", f"reason={reason}")

    def _on_close(self, rec, t, conn) -> None:
        code, by = rec.get("code", "-"), clean(rec.get("by") or "?", 10)
        detail = f"code {code} by {by}"
        if rec.get("reason"):
            detail += f" ({clean(rec['reason'], 40)})"
        was_open = self._open_count()
        if conn is not None:
            conn.state, conn.closed_at = "closed", t
            conn.reason = conn.reason or (clean(rec["reason"], 40) if rec.get("reason") else f"close {code}")
            self._prune_closed()
        if was_open and not self._open_count():
            # Events sent while no socket is open are retried by Slack, or lost (interactive): mark the gap.
            self._no_socket_since = t
        self._add_timeline(t, conn, "close", detail)

    def _on_reconnect(self, rec, t, conn) -> None:
        self.counts.reconnects += 1
        gap_ms = rec.get("gap_ms")
        detail = f"{clean(rec.get('initiator') or '?', 20)}"
        if rec.get("cause"):
            detail += f": {clean(rec['cause'], 40)}"
        gap_s = gap_ms / 1000.0 if isinstance(gap_ms, (int, float)) else None
        if gap_s is not None:
            detail += f", gap {duration_text(gap_s)}"
        self._add_timeline(t, conn, "reconnect", detail, gap_s)

    def _on_drift(self, rec, t, conn) -> None:
        detail = f"hello says {rec.get('num_connections', '?')}, we hold {rec.get('own_connections', '?')}"
        self._add_timeline(t, conn, "drift", detail)

    def _on_error(self, rec, t, conn) -> None:
        self.counts.errors += 1

    def _on_api_call(self, rec, t, conn) -> None:
        if rec.get("ok") is False or (rec.get("http_status") or 200) >= 400:
            self.counts.errors += 1
            detail = f"{clean(rec.get('method') or '?', 40)} {rec.get('http_status', '')} {clean(rec.get('error') or '', 40)}"
            self._add_timeline(t, conn, "api error", " ".join(detail.split()))

    def _on_ping(self, rec, t, conn) -> None:
        if conn is not None and rec.get("rtt_ms") is not None:
            conn.rtt_ms = rec["rtt_ms"]

    _on_pong = _on_ping

    def _on_envelope(self, rec, t, conn) -> None:
        self.counts.envelopes += 1
        if conn is not None:
            conn.envelopes += 1
        second = int(t)
        self._rate[second] = self._rate.get(second, 0) + 1
        if len(self._rate) > self.rate_window * 2:
            horizon = int(self.latest or t) - self.rate_window
            for old in [s for s in self._rate if s < horizon]:
                del self._rate[old]

    def _on_ack(self, rec, t, conn) -> None:
        self.counts.acks += 1
        if rec.get("ok") is False:
            self._failed_acks += 1
            return
        ack_ms = rec.get("ack_ms")
        if not isinstance(ack_ms, (int, float)):
            return
        if ack_ms > ACK_BUDGET_MS:
            self.counts.late_acks += 1
        self._latencies.append(float(ack_ms))
        self._histogram[bisect.bisect_left(HISTOGRAM_EDGES_MS, ack_ms)] += 1
        self._sorted = None

    # ------------------------------------------------------------------------------------------ reading

    def connection_rows(self, now: float) -> list[ConnectionRow]:
        """The connections panel: live sockets first (oldest first), then recently closed ones."""
        live = sorted(
            (c for c in self.connections.values() if c.state != "closed"), key=lambda c: c.first_seen
        )
        closed = sorted(
            (c for c in self.connections.values() if c.state == "closed"),
            key=lambda c: c.closed_at or 0.0,
            reverse=True,
        )
        rows = []
        for c in live + closed:
            since = c.opened_at if c.opened_at is not None else c.first_seen
            end = c.closed_at if c.closed_at is not None else now
            refresh = c.refresh_at - now if c.refresh_at is not None and c.state == "open" else None
            rows.append(
                ConnectionRow(
                    conn=clean(c.conn, 12),
                    state=c.state,
                    age=duration_text(end - since),
                    host=c.host or "-",
                    num_connections="-" if c.num_connections is None else str(c.num_connections),
                    rtt=ms_text(c.rtt_ms),
                    refresh_in=duration_text(refresh),
                    envelopes=c.envelopes,
                )
            )
        return rows

    def rates(self, now: float) -> list[int]:
        """Envelopes per second for each of the last ``rate_window`` whole seconds, oldest first."""
        end = int(now)
        return [self._rate.get(s, 0) for s in range(end - self.rate_window + 1, end + 1)]

    def current_rate(self, now: float) -> int:
        """Envelopes in the last complete second before ``now``."""
        return self._rate.get(int(now) - 1, 0)

    def ack_stats(self) -> AckStats:
        """Percentiles over the latest ``latency_window`` acks; the histogram counts every ack since the start."""
        if self._sorted is None:
            self._sorted = sorted(self._latencies)
        s = self._sorted
        labels = [f"≤{_edge_label(e)}" for e in HISTOGRAM_EDGES_MS] + [f">{_edge_label(ACK_BUDGET_MS)}"]
        buckets = tuple(
            (label, count, i == len(HISTOGRAM_EDGES_MS))
            for i, (label, count) in enumerate(zip(labels, self._histogram, strict=True))
        )
        return AckStats(
            count=self.counts.acks,
            late=self.counts.late_acks,
            failed=self._failed_acks,
            p50=percentile(s, 50, presorted=True),
            p90=percentile(s, 90, presorted=True),
            p99=percentile(s, 99, presorted=True),
            max=s[-1] if s else None,
            buckets=buckets,
        )

    def timeline_since(self, seq: int) -> list[TimelineEntry]:
        """Timeline entries added after the view had seen ``seq`` of them (bounded by the timeline's length)."""
        new = self.timeline_seq - seq
        if new <= 0:
            return []
        return list(self.timeline)[-min(new, len(self.timeline)) :]

    def set_findings(self, findings: Iterable[Any]) -> None:
        """Replace the findings panel: :class:`slackops.findings.Finding` objects or their ``to_dict()``."""
        out = []
        for f in findings:
            d = f.to_dict() if hasattr(f, "to_dict") else dict(f)
            out.append(d)
        order = {"critical": 0, "warning": 1, "info": 2}
        self.findings = sorted(out, key=lambda d: (order.get(str(d.get("severity")), 3), str(d.get("code"))))

    def clear(self) -> None:
        """The view's *clear*: empty the frame log and the timeline (counters, rates and connections stay)."""
        self.log.clear()
        self.timeline.clear()
