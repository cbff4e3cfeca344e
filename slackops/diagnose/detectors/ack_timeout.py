"""ack-timeout: envelopes acked after Slack's 3 s deadline, slow p99, timeout retries, failed or missing acks.

Slack retries an unacked Events API envelope after 3 s (``retry_attempt`` 1..3, ``retry_reason`` "timeout"),
possibly to another socket; interactive and slash envelopes are not retried at all. Ack latency is measured
from the envelope's arrival to the ack being written — queue wait included, since that is what Slack sees.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from slackops.diagnose.detectors.base import Context, Detector, Examples, Pending, Span
from slackops.diagnose.histogram import Histogram
from slackops.findings import Finding

_TIMEOUT_REASONS = frozenset({"timeout", "http_timeout"})


class AckTimeout(Detector):
    slug = "ack-timeout"
    kinds = {"envelope": "on_envelope", "ack": "on_ack", "error": "on_error"}

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.deadline = self.th["ack_deadline_ms"]
        self.hist = Histogram()
        self.envelopes = 0
        self.pending = Pending(self.th["never_acked_after_s"])
        self.late = Span()
        self.late_examples = Examples()
        self.late_reported = Span()  # "didn't call ack()" / "not acknowledged within 3 seconds" log lines
        self.retries = Span()
        self.retry_examples = Examples()
        self.failed = Span()
        self.failed_examples = Examples()
        self.never = Span()
        self.never_examples = Examples()
        self.acks = 0

    def on_envelope(self, rows: Iterable[Any]) -> None:
        p = self.pending
        items, order, seconds = p.items, p.order, p.seconds
        # Pending.horizon(t) is min(t, max(ack_t, t - lag)) - seconds; ack_t does not change while deliveries
        # are handed over, so its two halves are compared inline and _expire runs only when one is passed.
        acked_by = p.ack_t - seconds
        lag = p.lag + seconds
        n = 0
        try:
            for rec in rows:
                n += 1
                t = rec.t
                if rec.retry_attempt and rec.retry_reason in _TIMEOUT_REASONS:
                    self.retries.add(t)
                    self.retry_examples.add(rec.event_id or rec.envelope_id)
                eid = rec.envelope_id
                if eid is not None:
                    # Pending.add inlined (hot: every envelope).
                    items[eid] = t
                    order.append((t, eid))
                    oldest = order[0][0]
                    if oldest < t - seconds and (oldest < acked_by or oldest < t - lag):
                        self._expire(t)
        finally:  # counts kept even when a record fails (the engine resumes after it)
            self.envelopes += n

    def _expire(self, t: float) -> None:
        p = self.pending
        for old_t, old in p.expire(p.horizon(t)):
            # Only a source that records acks at all can show an envelope was never acked.
            if self.acks:
                self.never.add(old_t)
                self.never_examples.add(old)

    def on_ack(self, rows: Iterable[Any]) -> None:
        pop = self.pending.items.pop
        latencies: list[float] = []
        add = latencies.append
        deadline = self.deadline
        n = 0
        t = float("-inf")
        try:
            for rec in rows:
                n += 1
                t = rec.t
                eid = rec.envelope_id
                sent = pop(eid, None) if eid is not None else None
                if rec.ok is False:
                    self.failed.add(t)
                    self.failed_examples.add(eid)
                    continue
                ms = rec.ack_ms
                if ms is None:
                    if sent is None:
                        continue
                    ms = (t - sent) * 1000.0
                else:
                    ms = float(ms)
                add(ms)
                if ms > deadline:
                    self.late.add(t)
                    self.late_examples.add(eid)
        finally:
            self.acks += n
            self.pending.acked(t)
            self.hist.add_many(latencies)

    def on_error(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            if rec.where == "ack_timeout":
                self.late_reported.add(rec.t)

    def finish(self, ctx: Context) -> list[Finding]:
        out: list[Finding] = []
        # Envelopes still pending at the end count only if they were delivered long enough before it.
        if self.acks and ctx.t_last is not None:
            for t, eid in self.pending.expire(ctx.t_last - self.th["never_acked_after_s"]):
                self.never.add(t)
                self.never_examples.add(eid)
        late = self.late.count + self.late_reported.count
        if late:
            ev = self.late.evidence() if self.late.count else self.late_reported.evidence()
            share = self.late.count / self.hist.n if self.hist.n else None
            out.append(
                Finding(
                    "ack-late",
                    f"{late} envelope(s) acked after the {self.deadline / 1000:.0f} s deadline"
                    + (f" ({share:.1%} of acks)" if share is not None and self.late.count else "")
                    + ": Slack retries these (events) or drops them (interactive, slash)",
                    evidence={
                        **ev,
                        "count": late,
                        "examples": self.late_examples.items,
                        "p99_ms": self.hist.percentile(99),
                    },
                )
            )
        p99 = self.hist.percentile(99)
        if (
            p99 is not None
            and self.hist.n >= self.th["min_envelopes"]
            and p99 > self.th["ack_p99_budget_ms"]
            and not self.late.count
        ):
            out.append(
                Finding(
                    "ack-p99-over-budget",
                    f"ack latency p99 is {p99:.0f} ms, above the {self.th['ack_p99_budget_ms']:.0f} ms budget",
                    evidence=self.hist.summary(),
                )
            )
        if self.retries.count:
            share = self.retries.count / self.envelopes if self.envelopes else 0.0
            out.append(
                Finding(
                    "timeout-retries",
                    f"Slack re-sent {self.retries.count} envelope(s) because an ack did not arrive in time ({share:.1%} of deliveries)",
                    evidence={
                        **self.retries.evidence(),
                        "examples": self.retry_examples.items,
                        "share": round(share, 4),
                    },
                )
            )
        if self.failed.count:
            out.append(
                Finding(
                    "ack-failed",
                    f"{self.failed.count} ack(s) could not be sent (socket closed or replaced): Slack will retry or drop them",
                    evidence={**self.failed.evidence(), "examples": self.failed_examples.items},
                )
            )
        if self.never.count:
            out.append(
                Finding(
                    "never-acked",
                    f"{self.never.count} envelope(s) were never acked within {self.th['never_acked_after_s']:.0f} s",
                    evidence={**self.never.evidence(), "examples": self.never_examples.items},
                )
            )
        return out

    def caveats(self, ctx: Context) -> list[str]:
        if not self.hist.n:
            return [
                "ack-timeout: no ack timing in this data: ack-timeout judged from retries and SDK warnings only"
            ]
        return []

    def stats(self) -> dict[str, Any]:
        return {"ack_latency": self.hist.summary(), "ack_histogram": self.hist}
