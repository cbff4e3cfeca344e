"""disconnect-storm: reconnects far above Slack's refresh cadence, socket caps hit, connections.open throttled.

Slack refreshes a healthy socket about every 5 h (``approximate_connection_time`` 18060 s), announced by a
``warning`` then ``refresh_requested`` disconnect. More than a few reconnects per socket slot in 10 minutes, or a
burst within a minute, is a storm; ``too_many_websockets`` means more than 10 sockets were open; a 429 on
``apps.connections.open`` means the reconnect loop is being throttled.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from slackops.diagnose.detectors.base import Context, Detector, Examples, Span, fmt_s
from slackops.findings import Finding


class _Rate:
    """Reconnect times, with the densest sliding window and burst seen so far."""

    def __init__(self, window_s: float, burst_s: float) -> None:
        self.window_s, self.burst_s = window_s, burst_s
        self.span = Span()
        self.conns = Examples()
        self.window: deque[float] = deque()
        self.burst: deque[float] = deque()
        self.max_in_window = 0
        self.worst_window: tuple[float, float] | None = None
        self.max_burst = 0
        self.burst_at: tuple[float, float] | None = None

    def add(self, t: float, conn: str | None) -> None:
        self.span.add(t)
        self.conns.add(conn)
        w, b = self.window, self.burst
        w.append(t)
        b.append(t)
        while w and t - w[0] > self.window_s:
            w.popleft()
        while b and t - b[0] > self.burst_s:
            b.popleft()
        if len(w) > self.max_in_window:
            self.max_in_window, self.worst_window = len(w), (w[0], t)
        if len(b) > self.max_burst:
            self.max_burst, self.burst_at = len(b), (b[0], t)


class DisconnectStorm(Detector):
    slug = "disconnect-storm"
    kinds = {"reconnect": "on_reconnect", "connect": "on_connect", "disconnect": "on_disconnect",
             "api_call": "on_api_call", "hello": "on_hello"}  # fmt: skip

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        window_s, burst_s = self.th["reconnect_window_s"], self.th["burst_window_s"]
        # Reconnects are counted from reconnect records where the producer writes them (watch, the bot);
        # recordings and logs that only show new sessions (the simulator's side, slack-sdk logs) count every
        # connect after the initial ones instead. Both are kept, and finish() picks one, because a reconnect
        # record is written after the connect it explains.
        self.from_reconnects = _Rate(window_s, burst_s)
        self.from_connects = _Rate(window_s, burst_s)
        self.connects = 0
        self.saw_reconnect_kind = False
        self.too_many = Span()
        self.too_many_hosts = Examples()
        self.open_429 = Span()
        self.retry_after: list[float] = []
        self.max_own = 0

    def on_reconnect(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            self.saw_reconnect_kind = True
            self.from_reconnects.add(rec.t, rec.conn)

    def on_connect(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            self.connects += 1
            # The first connect of each expected socket is the start, not a reconnect.
            if self.connects > max(1, int(self.th["expected_connections"])):
                self.from_connects.add(rec.t, rec.conn)

    def on_disconnect(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            if rec.reason == "too_many_websockets":
                self.too_many.add(rec.t)
                self.too_many_hosts.add(rec.host)

    def on_api_call(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            if rec.method == "apps.connections.open" and (
                rec.http_status == 429 or rec.error == "ratelimited"
            ):
                self.open_429.add(rec.t)
                ra = rec.retry_after
                if ra is not None and len(self.retry_after) < 100:
                    self.retry_after.append(float(ra))

    def on_hello(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            own = rec.own_connections
            if own is not None and own > self.max_own:
                self.max_own = int(own)

    def finish(self, ctx: Context) -> list[Finding]:
        out: list[Finding] = []
        r = self.from_reconnects if self.saw_reconnect_kind else self.from_connects
        slots = max(1.0, self.th["expected_connections"])
        per_slot = r.max_in_window / slots
        storm = per_slot > self.th["reconnect_max_per_window"] or r.max_burst >= self.th["burst_min"]
        if storm and not ctx.timeless:
            worst = r.burst_at if r.max_burst >= self.th["burst_min"] else r.worst_window
            out.append(
                Finding(
                    "reconnect-burst",
                    f"{r.span.count} reconnects; up to {r.max_in_window} within "
                    f"{fmt_s(self.th['reconnect_window_s'])} and {r.max_burst} within {fmt_s(self.th['burst_window_s'])} "
                    f"— a healthy socket refreshes about every 5 h",
                    evidence={
                        **r.span.evidence(),
                        "max_in_window": r.max_in_window,
                        "max_in_burst": r.max_burst,
                        "worst_from_t": worst[0] if worst else None,
                        "worst_to_t": worst[1] if worst else None,
                        "connections": r.conns.items,
                        "counted_from": "reconnect records" if self.saw_reconnect_kind else "new sessions",
                    },
                )
            )
        if self.too_many.count:
            out.append(
                Finding(
                    "too-many-websockets",
                    f"Slack closed {self.too_many.count} socket(s) with too_many_websockets: more than 10 were open",
                    evidence={**self.too_many.evidence(), "hosts": self.too_many_hosts.items},
                )
            )
        if self.max_own > self.th["expected_connections"]:
            out.append(
                Finding(
                    "connections-above-expected",
                    f"up to {self.max_own} sockets held at once, more than the expected {self.th['expected_connections']:.0f}",
                    evidence={
                        "max_own_connections": self.max_own,
                        "expected": self.th["expected_connections"],
                    },
                )
            )
        if self.open_429.count:
            out.append(
                Finding(
                    "open-ratelimited",
                    f"apps.connections.open was rate limited {self.open_429.count} time(s): the reconnect loop is too fast",
                    evidence={**self.open_429.evidence(), "retry_after_s": sorted(set(self.retry_after))[:5]},
                )
            )
        return out

    def caveats(self, ctx: Context) -> list[str]:
        if not ctx.has("reconnect", "connect"):
            return ["disconnect-storm: no connects or reconnects in this data; reconnect rate not judged"]
        return []

    def stats(self) -> dict[str, Any]:
        r = self.from_reconnects if self.saw_reconnect_kind else self.from_connects
        return {"reconnects": r.span.count}
