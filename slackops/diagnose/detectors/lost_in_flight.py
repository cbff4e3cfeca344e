"""lost-in-flight: work that was acked (so Slack will never re-send it) and then never finished.

A SIGTERM during a deploy, or a crash, while handlers run: the envelope was acked first, so Slack never
re-delivers it and the user hears nothing. Also interactive and slash-command envelopes not acked within 3 s:
Slack does not retry those, the user sees ``dispatch_failed``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from slackops.diagnose.detectors.base import Context, Detector, Examples, Pending, Span
from slackops.findings import Finding

_INTERACTIVE = frozenset({"interactive", "slash_commands", "block_actions", "view_submission", "shortcut"})
_DONE = frozenset({"end", "fail", "requeue", "shed"})
_MAX_IN_FLIGHT = 100_000


class LostInFlight(Detector):
    slug = "lost-in-flight"
    kinds = {"process": "on_process", "signal": "on_signal", "envelope": "on_envelope", "ack": "on_ack"}

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.in_flight: dict[str, float] = {}
        self.shutdowns: list[float] = []
        self.lost = Span()
        self.lost_examples = Examples()
        self.interactive = Pending(self.th["never_acked_after_s"])
        self.interactive_lost = Span()
        self.interactive_examples = Examples()
        self.interactive_total = 0

    def on_process(self, rows: Iterable[Any]) -> None:
        in_flight = self.in_flight
        for rec in rows:
            key = rec.event_id or rec.envelope_id
            if key is None:
                continue
            phase = rec.phase
            if phase == "start":
                if len(in_flight) < _MAX_IN_FLIGHT:
                    in_flight[key] = rec.t
            elif phase in _DONE:
                in_flight.pop(key, None)

    def on_signal(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            name = (rec.name or "").upper()
            if name in ("SIGTERM", "SIGINT", "TERM", "INT", "SHUTDOWN") or rec.action in (
                "shutdown",
                "received",
            ):
                # Work still running a drain deadline after the signal is judged when the data ends.
                self.shutdowns.append(rec.t)

    def on_envelope(self, rows: Iterable[Any]) -> None:
        pending = self.interactive
        for rec in rows:
            if rec.type not in _INTERACTIVE:
                continue
            self.interactive_total += 1
            eid = rec.envelope_id
            if eid is None:
                continue
            for old_t, old in pending.add(rec.t, eid):
                # Only data that records acks at all can show an envelope was not acked.
                if pending.ack_t > float("-inf"):
                    self.interactive_lost.add(old_t)
                    self.interactive_examples.add(old)

    def on_ack(self, rows: Iterable[Any]) -> None:
        pending = self.interactive
        pop = pending.items.pop  # Pending.pop inlined: every ack comes here
        deadline = self.th["ack_deadline_ms"]
        t = float("-inf")
        try:
            for rec in rows:
                t = rec.t
                eid = rec.envelope_id
                if eid is None:
                    continue
                sent = pop(eid, None)
                if sent is None:
                    continue
                ms = rec.ack_ms
                ms = float(ms) if ms is not None else (t - sent) * 1000.0
                if rec.ok is False or ms > deadline:
                    self.interactive_lost.add(sent)
                    self.interactive_examples.add(eid)
        finally:
            pending.acked(t)

    def finish(self, ctx: Context) -> list[Finding]:
        out: list[Finding] = []
        end = ctx.t_last or 0.0
        at_shutdown = 0
        for key, started in self.in_flight.items():
            # The first shutdown after the work started, if the drain deadline has passed since.
            i = bisect.bisect_left(self.shutdowns, started)
            if i < len(self.shutdowns) and end - self.shutdowns[i] >= self.th["drain_deadline_s"]:
                at_shutdown += 1
            elif end - started < self.th["in_flight_max_s"]:
                continue
            self.lost.add(started)
            self.lost_examples.add(key)
        if self.lost.count:
            out.append(
                Finding(
                    "in-flight-lost",
                    f"{self.lost.count} handler run(s) started and never finished or requeued"
                    + (f" across {len(self.shutdowns)} shutdown(s)" if self.shutdowns else "")
                    + ": the envelopes were acked, so Slack will not re-send them",
                    evidence={
                        **self.lost.evidence(),
                        "examples": self.lost_examples.items,
                        "shutdowns": len(self.shutdowns),
                        "lost_at_shutdown": at_shutdown,
                        "unfinished_at_end": self.lost.count - at_shutdown,
                    },
                )
            )
        if ctx.has("ack"):
            for t, eid in self.interactive.expire(end - self.th["never_acked_after_s"]):
                self.interactive_lost.add(t)
                self.interactive_examples.add(eid)
        if self.interactive_lost.count:
            out.append(
                Finding(
                    "interactive-lost",
                    f"{self.interactive_lost.count} of {self.interactive_total} interactive/slash envelope(s) not acked "
                    "within 3 s: Slack does not retry these, users saw an error",
                    evidence={
                        **self.interactive_lost.evidence(),
                        "examples": self.interactive_examples.items,
                    },
                )
            )
        return out

    def caveats(self, ctx: Context) -> list[str]:
        if not ctx.has("process"):
            return ["lost-in-flight: no handler start/end records: in-flight work not judged"]
        return []
