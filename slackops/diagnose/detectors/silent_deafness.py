"""silent-deafness: a connection that looks alive but receives nothing.

Signatures: pongs stop with no close (a half-open TCP socket); the SDK's own loop heartbeat lines stop while the
log goes on (the receive or monitor loop died: slack-sdk's aiohttp client logs one every 100 iterations);
envelopes arrive on a connection but nothing is ever acked there (handlers detached after a reconnect);
``hello.num_connections`` above the sockets the client holds (ghost registrations swallow deliveries until a
retry); a live connection with no envelopes for a long stretch while other connections get traffic.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from slackops.diagnose.detectors.base import Context, Detector, Examples, Span, fmt_s
from slackops.findings import Finding


class _Conn:
    __slots__ = ("acks", "closed", "deaf_from", "envelopes", "last_env", "last_pong", "others_at_last_env")

    def __init__(self) -> None:
        self.last_pong: float | None = None
        self.deaf_from: float | None = None
        self.closed = False
        self.envelopes = 0
        self.acks = 0
        self.last_env: float | None = None
        self.others_at_last_env = 0


class _Beats:
    """One SDK loop's heartbeat lines: first and last seen, how many."""

    __slots__ = ("beats", "conn", "first", "last")

    def __init__(self, t: float, conn: str | None) -> None:
        self.first = self.last = t
        self.beats = 1
        self.conn = conn


class SilentDeafness(Detector):
    slug = "silent-deafness"
    kinds = {"pong": "on_liveness", "ping": "on_liveness", "close": "on_close", "reconnect": "on_close",
             "loop": "on_loop", "signal": "on_signal",
             "envelope": "on_envelope", "ack": "on_ack", "hello": "on_hello", "drift": "on_drift"}  # fmt: skip

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.conns: dict[str | None, _Conn] = {}
        self.deaf = Span()
        self.deaf_conns = Examples()
        self.longest_deaf = 0.0
        self.ghost = Span()
        self.ghost_max = 0
        self.gaps = Span()
        self.gap_conns = Examples()
        self.longest_gap = 0.0
        self.total_envelopes = 0
        self.total_acks = 0
        self.gap_s = self.th["envelope_gap_s"]
        #: SDK loop name -> its heartbeats (slack-sdk's aiohttp client: monitor and receive loops)
        self.loops: dict[str, _Beats] = {}
        self.last_signal = float("-inf")

    def _conn(self, key: str | None) -> _Conn:
        c = self.conns.get(key)
        if c is None:
            if len(self.conns) > 10_000:
                self.conns.clear()
            c = self.conns[key] = _Conn()
        return c

    def on_liveness(self, rows: Iterable[Any]) -> None:
        """Pings and pongs, in one sequence: their interleaving is the signal."""
        for rec in rows:
            if rec.kind == "pong":
                if rec.direction != "received":
                    continue
                c = self._conn(rec.conn)
                self._end_deaf(rec.conn, c, rec.t)
                c.last_pong = rec.t
                continue
            # A ping we sent proves the client still believes in this socket.
            if rec.direction != "sent":
                continue
            c = self._conn(rec.conn)
            t = rec.t
            if (
                c.last_pong is not None
                and not c.closed
                and t - c.last_pong > self.th["pong_timeout_s"]
                and c.deaf_from is None
            ):
                c.deaf_from = c.last_pong

    def _end_deaf(self, key: str | None, c: _Conn, t: float) -> None:
        if c.deaf_from is not None:
            length = t - c.deaf_from
            self.deaf.add(c.deaf_from)
            self.deaf_conns.add(key)
            self.longest_deaf = max(self.longest_deaf, length)
            c.deaf_from = None

    def on_loop(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            name = str(rec.loop or "loop")
            b = self.loops.get(name)
            if b is None:
                if len(self.loops) < 100:
                    self.loops[name] = _Beats(rec.t, rec.conn)
                continue
            b.last, b.conn = rec.t, rec.conn
            b.beats += 1

    def on_signal(self, rows: Iterable[Any]) -> None:
        # A shutdown ends the loops on purpose.
        for rec in rows:
            self.last_signal = rec.t

    def _stopped_loops(self, end: float) -> Finding | None:
        stopped = []
        for name, b in self.loops.items():
            if b.beats < 2 or self.last_signal >= b.last:
                continue
            every = (b.last - b.first) / (b.beats - 1)
            silence = end - b.last
            if silence > max(self.th["loop_silence_factor"] * every, self.th["loop_silence_min_s"]):
                stopped.append((name, b, every, silence))
        if not stopped:
            return None
        name, b, every, silence = max(stopped, key=lambda s: s[3])
        names = ", ".join(n for n, *_ in stopped)
        return Finding(
            "sdk-loop-stopped",
            f"slack-sdk's {names} loop stopped reporting {fmt_s(silence)} before the data ends (it reported "
            f"every ~{fmt_s(every)}): the loop has died, and the socket with it, until the process restarts",
            evidence={
                "loops": [n for n, *_ in stopped],
                "last_t": b.last,
                "silent_s": round(silence, 1),
                "usual_interval_s": round(every, 1),
                "connection": b.conn,
            },
        )

    def on_close(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            c = self._conn(rec.conn)
            # A close or reconnect after the pongs stopped means the client noticed: not silent.
            c.deaf_from = None
            c.closed = True

    def on_envelope(self, rows: Iterable[Any]) -> None:
        conns = self.conns
        gap_s = self.gap_s
        for rec in rows:
            self.total_envelopes += 1
            key = rec.conn
            c = conns.get(key)
            if c is None:
                c = self._conn(key)
            t = rec.t
            c.closed = False
            # The cheap half of _gap inline (hot: every envelope); _gap checks the rest.
            last = c.last_env
            if last is not None and t - last > gap_s:
                self._gap(key, c, t)
            c.envelopes += 1
            c.last_env = t
            c.others_at_last_env = self.total_envelopes

    def _gap(self, key: str | None, c: _Conn, t: float) -> None:
        gap = t - (c.last_env or t)
        others = self.total_envelopes - c.others_at_last_env
        if gap > self.th["envelope_gap_s"] and others >= self.th["gap_min_other_envelopes"]:
            self.gaps.add(c.last_env or t)
            self.gap_conns.add(key)
            self.longest_gap = max(self.longest_gap, gap)

    def on_ack(self, rows: Iterable[Any]) -> None:
        conns = self.conns
        n = 0
        try:
            for rec in rows:
                n += 1
                key = rec.ack_conn or rec.conn
                c = conns.get(key)
                if c is not None:
                    c.acks += 1
        finally:
            self.total_acks += n

    def on_hello(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            num, own = rec.num_connections, rec.own_connections
            if num is not None and own is not None and num > own:
                self.ghost.add(rec.t)
                self.ghost_max = max(self.ghost_max, num - own)

    def on_drift(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            num, own = rec.num_connections or 0, rec.own_connections or 0
            self.ghost.add(rec.t)
            self.ghost_max = max(self.ghost_max, num - own)

    def finish(self, ctx: Context) -> list[Finding]:
        out: list[Finding] = []
        end = ctx.t_last or 0.0
        for key, c in self.conns.items():
            if c.deaf_from is not None:
                self._end_deaf(key, c, end)
            if c.last_env is not None and not c.closed:
                self._gap(key, c, end)
        stopped = self._stopped_loops(end)
        if stopped is not None:
            out.append(stopped)
        if self.deaf.count:
            out.append(
                Finding(
                    "pong-missing",
                    f"{self.deaf.count} time(s) a socket went more than {self.th['pong_timeout_s']:.0f} s without a pong "
                    f"while the client kept using it (longest {fmt_s(self.longest_deaf)}): a half-open socket",
                    evidence={
                        **self.deaf.evidence(),
                        "connections": self.deaf_conns.items,
                        "longest_s": round(self.longest_deaf, 1),
                    },
                )
            )
        if self.total_acks:
            silent = [
                (k, c)
                for k, c in self.conns.items()
                if c.envelopes >= self.th["undispatched_min"] and c.acks == 0 and k is not None
            ]
            # Only meaningful when acks carry the connection they were written on.
            if silent and any(c.acks for c in self.conns.values()):
                n = sum(c.envelopes for _, c in silent)
                out.append(
                    Finding(
                        "frames-not-dispatched",
                        f"{n} envelope(s) arrived on {len(silent)} connection(s) that never acked anything: handlers detached",
                        evidence={"envelopes": n, "connections": [k for k, _ in silent][:5]},
                    )
                )
        if self.ghost.count:
            out.append(
                Finding(
                    "ghost-connections",
                    f"hello reported up to {self.ghost_max} more connection(s) than this client holds ({self.ghost.count} time(s)): "
                    "ghost registrations swallow deliveries until Slack retries",
                    evidence={**self.ghost.evidence(), "max_excess": self.ghost_max},
                )
            )
        if self.gaps.count:
            out.append(
                Finding(
                    "envelope-gap",
                    f"{self.gaps.count} stretch(es) of over {fmt_s(self.th['envelope_gap_s'])} with no envelopes on a live "
                    f"connection while others got traffic (longest {fmt_s(self.longest_gap)})",
                    evidence={
                        **self.gaps.evidence(),
                        "connections": self.gap_conns.items,
                        "longest_s": round(self.longest_gap, 1),
                    },
                )
            )
        return out

    def caveats(self, ctx: Context) -> list[str]:
        if not ctx.has("pong"):
            return [
                "silent-deafness: no pong records (enable ping/pong tracing): half-open sockets not judged"
            ]
        return []
