"""out-of-order: handlers starting events of one channel or thread out of ``event_ts`` order.

Socket Mode guarantees no order across connections, retries or reconnects; a handler that assumes it (a
conversation state machine, "the latest message wins") acts on stale input. Inversions that coincide with
retries point at slow acks as the cause.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from slackops.diagnose.detectors.base import Context, Detector, Examples, Span, Window
from slackops.findings import Finding


def _behind(latest: dict[tuple[str, str], float], key: tuple[str, str], ts: float, tolerance: float) -> bool:
    """Advance ``key``'s latest ``ts``; True when ``ts`` is more than ``tolerance`` behind it (an inversion)."""
    prev = latest.get(key)
    if prev is None:
        if len(latest) > 100_000:
            latest.clear()
        latest[key] = ts
    elif ts > prev:
        latest[key] = ts
    elif ts < prev - tolerance:
        return True
    return False


class OutOfOrder(Detector):
    slug = "out-of-order"
    kinds = {"envelope": "on_envelope", "process": "on_process"}

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.events = Window(self.th["dedup_window_s"])
        self.latest: dict[tuple[str, str], float] = {}
        self.latest_delivered: dict[tuple[str, str], float] = {}
        self.inversions = Span()
        self.examples = Examples()
        self.on_retry = 0
        self.delivery_inversions = Span()
        self.has_process = False
        self.tolerance = self.th["order_tolerance_s"]

    def on_envelope(self, rows: Iterable[Any]) -> None:
        w = self.events
        latest = self.latest_delivered
        tolerance = self.tolerance
        for rec in rows:
            eid = rec.event_id
            ch = rec.channel
            if eid is None or ch is None:
                continue
            t = rec.t
            if t >= w.deadline:
                w.rotate(t)
            if eid in w.current or eid in w.previous:
                continue  # a retry of an event already seen: its position was judged the first time
            try:
                ts = float(rec.event_ts or rec.ts)
            except (TypeError, ValueError):
                continue
            thread = rec.thread_ts
            w.current[eid] = (ch, thread, ts, bool(rec.retry_attempt))
            if _behind(latest, (ch, thread or ""), ts, tolerance):
                self.delivery_inversions.add(t)

    def on_process(self, rows: Iterable[Any]) -> None:
        # The events window rotates on deliveries only: its generations stay put for the whole call.
        current, previous = self.events.current.get, self.events.previous.get
        latest = self.latest
        tolerance = self.tolerance
        for rec in rows:
            if rec.phase != "start":
                continue
            self.has_process = True
            eid = rec.event_id
            if eid is None:
                continue
            info = current(eid) or previous(eid)
            if info is None:
                continue
            ch, thread, ts, retry = info
            if _behind(latest, (ch, thread or ""), ts, tolerance):
                self.inversions.add(rec.t)
                self.examples.add(eid)
                self.on_retry += retry

    def finish(self, ctx: Context) -> list[Finding]:
        if self.inversions.count:
            return [
                Finding(
                    "order-inversion",
                    f"{self.inversions.count} handler start(s) came after a later message of the same channel/thread"
                    + (f"; {self.on_retry} of them were Slack retries" if self.on_retry else ""),
                    evidence={
                        **self.inversions.evidence(),
                        "examples": self.examples.items,
                        "on_retries": self.on_retry,
                    },
                )
            ]
        if not self.has_process and self.delivery_inversions.count:
            return [
                Finding(
                    "order-inversion",
                    f"{self.delivery_inversions.count} event(s) were delivered after a later message of the same channel/thread",
                    evidence=self.delivery_inversions.evidence(),
                    caveats=["no handler runs in this data: judged from delivery order"],
                )
            ]
        return []
