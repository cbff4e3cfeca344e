"""queue-overflow: downstream work falling behind the socket.

Signatures: queue depth rising bucket after bucket; the wait from ack to handler start growing; events shed.
The slack-sdk logs queue depth on every enqueue ("A new message enqueued (current queue size: N)"), which is
the backpressure signal Bolt's own "Response time" hides: Bolt starts timing when its handler picks the request
up, after the SDK queue (python-slack-sdk #1299). So handler durations (Bolt's "Response time", slack-sdk's
processing started/completed, the reference bot's runs) are paired with ack latency as Slack sees it (frame
received to ack sent): fast handlers with slow acks, or with a growing queue, mean the time goes in the queue.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from slackops.diagnose.detectors.base import Context, Detector, Examples, Span, Window
from slackops.diagnose.histogram import Histogram
from slackops.findings import Finding


class QueueOverflow(Detector):
    slug = "queue-overflow"
    kinds = {"queue": "on_queue", "ack": "on_ack", "process": "on_process"}

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.bucket_start: float | None = None
        self.bucket_max = -1
        self.prev_max = -1
        self.rising = 0
        self.rise_start: float | None = None
        self.growth = Span()
        self.growth_peak = 0
        self.max_depth = 0
        self.shed = Span()
        self.shed_examples = Examples()
        self.acked = Window(self.th["dedup_window_s"])
        #: ack latency as Slack sees it, and handler durations as the handler (or Bolt) sees them
        self.ack_ms = Histogram()
        self.handler_ms = Histogram()
        self.wait_bucket_start: float | None = None
        self.wait_deadline = float("-inf")
        self.wait_sum = 0.0
        self.wait_n = 0
        self.wait_means: list[float] = []
        self.wait_rising = 0
        self.wait_flagged = Span()
        self.max_wait = 0.0
        self.bucket_s = self.th["queue_bucket_s"]

    def on_queue(self, rows: Iterable[Any]) -> None:
        bucket_s = self.bucket_s
        for rec in rows:
            t = rec.t
            if rec.action == "shed":
                self.shed.add(t)
                self.shed_examples.add(rec.event_id)
            depth = rec.depth
            if depth is None:
                continue
            depth = int(depth)
            if depth > self.max_depth:
                self.max_depth = depth
            if self.bucket_start is None:
                self.bucket_start = t
            elif t - self.bucket_start >= bucket_s:
                self._close_bucket(t)
                self.bucket_start = t
            if depth > self.bucket_max:
                self.bucket_max = depth

    def _close_bucket(self, t: float) -> None:
        if self.bucket_max > self.prev_max >= 0:
            if self.rising == 0:
                self.rise_start = self.bucket_start
            self.rising += 1
            if (
                self.rising + 1 >= self.th["queue_growth_buckets"]
                and self.bucket_max >= self.th["queue_min_depth"]
            ):
                if self.growth.count == 0 or (self.growth.last or 0) < (self.rise_start or 0):
                    self.growth.add(self.rise_start or t)
                self.growth.last = t
                self.growth_peak = max(self.growth_peak, self.bucket_max)
        else:
            self.rising = 0
        self.prev_max = self.bucket_max
        self.bucket_max = -1

    def on_ack(self, rows: Iterable[Any]) -> None:
        w = self.acked
        latencies: list[float] = []
        try:
            for rec in rows:
                ms = rec.ack_ms
                if ms is not None:
                    latencies.append(float(ms))
                key = rec.envelope_id or rec.event_id
                if key is not None:
                    t = rec.t
                    if t >= w.deadline:
                        w.rotate(t)
                    w.current[key] = t
        finally:
            self.ack_ms.add_many(latencies)

    def on_process(self, rows: Iterable[Any]) -> None:
        # The window rotates on acks only: its two generations stay put for the whole call.
        current, previous = self.acked.current.get, self.acked.previous.get
        bucket_s = self.th["queue_wait_bucket_s"]
        durations: list[float] = []
        try:
            for rec in rows:
                phase = rec.phase
                if phase != "start":
                    if phase == "end":
                        ms = rec.duration_ms
                        if ms is not None:
                            durations.append(float(ms))
                    elif phase == "shed":
                        self.shed.add(rec.t)
                        self.shed_examples.add(rec.event_id)
                    continue
                key = rec.envelope_id or rec.event_id
                if key is None:
                    continue
                acked = current(key) or previous(key)
                if acked is None:
                    continue
                t = rec.t
                wait = t - acked
                if wait > self.max_wait:
                    self.max_wait = wait
                if t >= self.wait_deadline:
                    if self.wait_bucket_start is not None:
                        self._close_wait(t)
                    self.wait_bucket_start = t
                    self.wait_deadline = t + bucket_s
                if wait > 0:
                    self.wait_sum += wait
                self.wait_n += 1
        finally:
            self.handler_ms.add_many(durations)

    def _close_wait(self, t: float) -> None:
        if not self.wait_n:
            return
        mean = self.wait_sum / self.wait_n
        self.wait_sum, self.wait_n = 0.0, 0
        if self.wait_means and mean > self.wait_means[-1]:
            self.wait_rising += 1
        else:
            self.wait_rising = 0
        if len(self.wait_means) > 1000:
            del self.wait_means[:500]
        self.wait_means.append(mean)
        if self.wait_rising + 1 >= 5 and mean >= self.th["queue_wait_s"]:
            self.wait_flagged.add(t)

    def finish(self, ctx: Context) -> list[Finding]:
        if self.bucket_start is not None and self.bucket_max >= 0:
            self._close_bucket(ctx.t_last or 0.0)
        self._close_wait(ctx.t_last or 0.0)
        out: list[Finding] = []
        if self.growth.count:
            out.append(
                Finding(
                    "queue-growing",
                    f"the work queue kept growing, to {self.growth_peak} items (max seen {self.max_depth}): handlers fall behind the socket",
                    evidence={
                        **self.growth.evidence(),
                        "peak_depth": self.growth_peak,
                        "max_depth": self.max_depth,
                    },
                )
            )
        if self.wait_flagged.count:
            out.append(
                Finding(
                    "queue-wait-growing",
                    f"the wait from ack to handler start kept rising, up to {self.max_wait:.1f} s",
                    evidence={**self.wait_flagged.evidence(), "max_wait_s": round(self.max_wait, 2)},
                )
            )
        hidden = self._hidden_wait()
        if hidden is not None:
            out.append(hidden)
        if self.shed.count:
            out.append(
                Finding(
                    "events-shed",
                    f"{self.shed.count} event(s) were shed under backpressure",
                    evidence={**self.shed.evidence(), "examples": self.shed_examples.items},
                )
            )
        return out

    def _hidden_wait(self) -> Finding | None:
        """Handlers look fast while Slack waits: the time goes in the queue before the handler's clock starts."""
        h, a = self.handler_ms, self.ack_ms
        if h.n < self.th["min_envelopes"]:
            return None
        handler_p90 = h.percentile(90) or 0.0
        if handler_p90 > self.th["handler_fast_ms"]:
            return None  # slow handlers are not hiding anything
        ack_p90 = a.percentile(90) if a.n >= self.th["min_envelopes"] else None
        slow_acks = (
            ack_p90 is not None
            and ack_p90 >= self.th["hidden_wait_min_ms"]
            and ack_p90 >= self.th["hidden_wait_ratio"] * max(handler_p90, 1.0)
        )
        if not slow_acks and not self.growth.count:
            return None
        evidence: dict[str, Any] = {
            "handler_p50_ms": round(h.percentile(50) or 0.0, 1),
            "handler_p90_ms": round(handler_p90, 1),
            "handlers": h.n,
        }
        if ack_p90 is not None:
            evidence |= {"ack_p90_ms": round(ack_p90, 1), "ack_p99_ms": round(a.percentile(99) or 0.0, 1)}
        if self.max_depth:
            evidence["max_depth"] = self.max_depth
        if slow_acks:
            assert ack_p90 is not None
            what = (
                f"acks took {ack_p90:.0f} ms at p90 while handlers report {handler_p90:.0f} ms: "
                f"about {ack_p90 - handler_p90:.0f} ms per envelope is spent waiting in the queue"
            )
        else:
            what = (
                f"handlers report {handler_p90:.0f} ms at p90 while the queue kept growing "
                f"(to {self.growth_peak} items)"
            )
        return Finding(
            "queue-wait-hidden",
            what + ", which handler timing (Bolt's Response time) leaves out",
            evidence=evidence,
        )

    def caveats(self, ctx: Context) -> list[str]:
        if not ctx.has("queue"):
            return [
                "queue-overflow: no queue depth records (slack-sdk logs them at DEBUG): growth not judged"
            ]
        return []
