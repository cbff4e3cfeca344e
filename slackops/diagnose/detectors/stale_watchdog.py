"""stale-watchdog: a self-heal watchdog that tears down healthy sockets on quiet workspaces.

The signature: reconnects started by the client with nothing wrong on the transport — no ``disconnect`` frame,
no close, no ping failure shortly before — while pongs were still arriving. A quiet socket that keeps getting
pongs is healthy; judging liveness by "time since the last business event" is the bug (one real case
reconnected every ~239 s with a 180 s threshold).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from msgspec import UNSET

from slackops.diagnose.detectors.base import Context, Detector, Examples, Span, fmt_s
from slackops.findings import Finding

_HEALTHY_INITIATORS = frozenset({"watchdog", "client"})
_EXPLAINED_CAUSE = (
    "stale",
    "ping",
    "pong",
    "closed",
    "close",
    "fail",
    "error",
    "timeout",
    "disconnect",
    "refresh",
)


def _initiator(rec: Any) -> Any:
    """Who started a reconnect; a record that does not say is the client's own (``UNSET`` means absent)."""
    who = rec.initiator
    return "client" if who is UNSET else who


class StaleWatchdog(Detector):
    slug = "stale-watchdog"
    kinds = {"reconnect": "on_reconnect", "connect": "on_connect", "pong": "on_pong", "disconnect": "on_trouble",
             "close": "on_trouble", "error": "on_trouble", "envelope": "on_envelope"}  # fmt: skip

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.last_pong: dict[str | None, float] = {}
        self.last_pong_any = -1e18
        self.last_trouble = -1e18
        self.last_envelope = -1e18
        self.last_reconnect = -1e18
        self.connects = 0
        self.saw_reconnect_kind = False
        self.healthy = Span()
        self.idle = 0
        self.times: list[float] = []
        self.conns = Examples()
        self.unjudged = 0

    def on_pong(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            if rec.direction == "received":
                t = rec.t
                self.last_pong[rec.conn] = t
                self.last_pong_any = t

    def on_trouble(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            kind = rec.kind
            # A clean client close that is part of a reconnect is an effect, not a cause.
            if kind == "close" and rec.by == "client":
                continue
            if kind == "error" and rec.where not in (
                "ping",
                "pong_timeout",
                "ping_timeout",
                "socket",
                "connect",
            ):
                continue
            self.last_trouble = rec.t

    def on_envelope(self, rows: Iterable[Any]) -> None:
        t = self.last_envelope
        for rec in rows:
            t = rec.t
        self.last_envelope = t

    def on_reconnect(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            self.saw_reconnect_kind = True
            cause = (rec.cause or "").lower()
            if _initiator(rec) not in _HEALTHY_INITIATORS or any(w in cause for w in _EXPLAINED_CAUSE):
                self.last_reconnect = rec.t
                continue
            self._judge(rec.t, rec.conn, explicit=rec.initiator == "watchdog")

    def on_connect(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            self.connects += 1
            t = rec.t
            # Logs without reconnect records (a custom watchdog calling connect() again) show only new sessions.
            if (
                self.connects > 1
                and not self.saw_reconnect_kind
                and t - self.last_reconnect > self.th["cause_window_s"]
            ):
                self._judge(t, rec.conn, explicit=False)

    def _judge(self, t: float, conn: str | None, explicit: bool) -> None:
        self.last_reconnect = t
        if t - self.last_trouble <= self.th["cause_window_s"]:
            return
        pong = self.last_pong.get(conn, self.last_pong_any) if conn in self.last_pong else self.last_pong_any
        if pong < -1e17:
            if not explicit:
                self.unjudged += 1
                return
        elif t - pong > self.th["pong_fresh_s"]:
            return  # the transport really was quiet: reconnecting was right
        self.healthy.add(t)
        self.conns.add(conn)
        if len(self.times) < 10_000:
            self.times.append(t)
        if t - self.last_envelope > self.th["pong_fresh_s"]:
            self.idle += 1

    def finish(self, ctx: Context) -> list[Finding]:
        if self.healthy.count < self.th["watchdog_min_reconnects"] or ctx.timeless:
            return []  # without times every pong looks fresh
        gaps = [b - a for a, b in zip(self.times, self.times[1:], strict=False)]
        period = statistics.median(gaps) if gaps else None
        regular = bool(gaps) and len(gaps) >= 2 and statistics.pstdev(gaps) <= 0.2 * (period or 1)
        summary = f"{self.healthy.count} reconnect(s) of sockets that were still getting pongs, with no close or disconnect before them"
        if period:
            summary += f"; every ~{fmt_s(period)}" + (" like clockwork" if regular else "")
        return [
            Finding(
                "watchdog-false-positive",
                summary,
                evidence={
                    **self.healthy.evidence(),
                    "median_period_s": round(period, 1) if period else None,
                    "regular": regular,
                    "during_idle": self.idle,
                    "connections": self.conns.items,
                },
            )
        ]

    def caveats(self, ctx: Context) -> list[str]:
        if self.unjudged:
            return [
                f"stale-watchdog: {self.unjudged} client reconnect(s) not judged: no pong records in this data"
            ]
        return []
