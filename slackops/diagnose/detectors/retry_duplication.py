"""retry-duplication (cost): one event handled, or sent to an LLM, more than once.

Slack re-sends an event after a slow ack (``retry_attempt`` 1..3 within ~5 min), and overlapping sockets during a
reconnect can deliver it twice; ``envelope_id`` changes between attempts but ``event_id`` does not. Every
handler run past the first for an event_id is waste — for an LLM bot, a paid model call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from slackops.diagnose.detectors.base import Context, Detector, Examples, Window
from slackops.findings import Finding


class _Tally:
    """Runs per event_id within the dedup window: total runs, unique events, and the repeats."""

    __slots__ = ("cost", "examples", "multi", "repeats", "runs", "seen", "tokens", "worst")

    def __init__(self, seconds: float) -> None:
        self.seen = Window(seconds)
        self.runs = 0
        self.repeats = 0
        self.examples = Examples()
        self.tokens = 0
        self.cost = 0.0
        self.worst = 1
        #: distinct event_ids seen more than once
        self.multi = 0

    def add(self, t: float, event_id: str) -> bool:
        seen = self.seen
        if t >= seen.deadline:
            seen.rotate(t)
        self.runs += 1
        cur = seen.current
        n = cur.get(event_id) or seen.previous.get(event_id)
        if n is None:
            cur[event_id] = 1
            return False
        n += 1
        cur[event_id] = n
        self.repeats += 1
        if n == 2:
            self.multi += 1
        if n > self.worst:
            self.worst = n
        self.examples.add(event_id)
        return True

    def cost_dict(self, what: str) -> dict[str, Any]:
        unique = self.runs - self.repeats
        return {
            f"wasted_{what}": self.repeats,
            "share": round(self.repeats / self.runs, 4) if self.runs else 0.0,
            "multiplier": round(self.runs / unique, 3) if unique else None,
        }


class RetryDuplication(Detector):
    slug = "retry-duplication"
    kinds = {"process": "on_process", "llm": "on_llm", "envelope": "on_envelope"}

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        w = self.th["dedup_window_s"]
        self.runs = _Tally(w)
        self.llm = _Tally(w)
        self.deliveries = _Tally(w)
        self.envelopes = 0
        self.retried = 0
        self.retry_examples = Examples()

    def on_process(self, rows: Iterable[Any]) -> None:
        add = self.runs.add
        for rec in rows:
            eid = rec.event_id
            if eid is not None and rec.phase == "start":
                add(rec.t, eid)

    def on_llm(self, rows: Iterable[Any]) -> None:
        tally = self.llm
        add = tally.add
        for rec in rows:
            eid = rec.event_id
            # A call the provider refused (429, 5xx) did no work: retrying it is thundering-herd's business.
            if eid is None or rec.error is not None or (rec.http_status or 200) >= 400:
                continue
            if add(rec.t, eid):
                tally.tokens += int(rec.tokens_in or 0) + int(rec.tokens_out or 0)
                tally.cost += float(rec.cost_usd or 0.0)

    def on_envelope(self, rows: Iterable[Any]) -> None:
        add = self.deliveries.add
        n = 0
        try:
            for rec in rows:
                n += 1
                if rec.retry_attempt:
                    self.retried += 1
                    self.retry_examples.add(rec.event_id)
                eid = rec.event_id
                if eid is not None:
                    add(rec.t, eid)
        finally:
            self.envelopes += n

    def finish(self, ctx: Context) -> list[Finding]:
        out: list[Finding] = []
        r = self.runs
        if r.repeats:
            c = r.cost_dict("runs")
            out.append(
                Finding(
                    "duplicate-processing",
                    f"{r.repeats} extra handler run(s) for events already handled ({c['share']:.1%} of runs, "
                    f"x{c['multiplier']} per event; worst event ran {r.worst} times)",
                    evidence={
                        "runs": r.runs,
                        "unique_events": r.runs - r.repeats,
                        "examples": r.examples.items,
                    },
                    cost=c,
                )
            )
        m = self.llm
        if m.repeats:
            c = m.cost_dict("llm_calls")
            c["wasted_tokens"] = m.tokens
            if m.cost:
                c["wasted_usd"] = round(m.cost, 4)
            out.append(
                Finding(
                    "duplicate-llm-calls",
                    f"{m.repeats} LLM call(s) repeated for the same event ({c['share']:.1%} of calls, x{c['multiplier']})"
                    + (f", {m.tokens} tokens" if m.tokens else "")
                    + (f", ${m.cost:.2f} wasted" if m.cost else ""),
                    evidence={
                        "calls": m.runs,
                        "unique_events": m.runs - m.repeats,
                        "examples": m.examples.items,
                    },
                    cost=c,
                )
            )
        if self.envelopes >= self.th["min_envelopes"]:
            share = self.retried / self.envelopes
            if share > self.th["retry_share"]:
                d = self.deliveries
                cost = {"share": round(share, 4)}
                if d.runs:
                    cost["multiplier"] = round(d.runs / max(1, d.runs - d.repeats), 3)
                out.append(
                    Finding(
                        "retry-share-high",
                        f"{share:.1%} of {self.envelopes} envelopes are Slack retries (threshold {self.th['retry_share']:.0%}); "
                        "each reaches your handlers unless deduplicated on event_id",
                        evidence={
                            "envelopes": self.envelopes,
                            "retries": self.retried,
                            "examples": self.retry_examples.items,
                        },
                        cost=cost,
                    )
                )
        return out

    def caveats(self, ctx: Context) -> list[str]:
        if not ctx.has("process", "llm"):
            return [
                "retry-duplication: no handler runs or LLM calls in this data: duplication judged from deliveries only"
            ]
        return []

    def stats(self) -> dict[str, Any]:
        d = self.deliveries
        return {
            "events": d.runs - d.repeats,
            "events_delivered_more_than_once": d.multi,
            "deliveries": d.runs,
        }
