"""fan-out (cost): one channel (or one mention) turning into many LLM calls.

A ``message`` subscription makes every message in every joined channel a candidate LLM call; an @mention arrives
both as ``app_mention`` and as ``message``; edits (``message_changed``) re-trigger handlers even when the text
did not change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from slackops.diagnose.detectors.base import Ceiling, Context, Detector, Examples, Span, Window
from slackops.findings import Finding

_HOUR = 3600.0


class FanOut(Detector):
    slug = "fan-out"
    kinds = {"envelope": "on_envelope", "process": "on_process", "llm": "on_llm"}

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.ceiling = int(self.th["llm_per_channel_hour"])
        self.recent = Ceiling(self.ceiling, _HOUR)
        self.bursts = Span()
        self.burst_channels: dict[str, int] = {}
        self.llm_calls = 0
        w = self.th["dedup_window_s"]
        #: event_id -> (channel, ts, event_type, unchanged edit?)
        self.events = Window(w)
        #: (channel, ts) -> the event type handled first, or "pair" once both were
        self.handled = Window(w)
        self.pairs = Span()
        self.pair_examples = Examples()
        self.edits = Span()
        self.edit_examples = Examples()
        self.started = 0

    def on_envelope(self, rows: Iterable[Any]) -> None:
        w = self.events
        for rec in rows:
            et = rec.event_type
            if et != "app_mention" and et != "message":
                continue
            eid = rec.event_id
            if eid is None:
                continue
            t = rec.t
            if t >= w.deadline:
                w.rotate(t)
            unchanged = rec.text_changed is False and rec.subtype == "message_changed"
            w.current[eid] = (rec.channel, rec.ts or rec.event_ts, et, unchanged)

    def on_process(self, rows: Iterable[Any]) -> None:
        # The events window rotates on deliveries only: its generations stay put for the whole call.
        current, previous = self.events.current.get, self.events.previous.get
        h = self.handled
        n = 0
        try:
            for rec in rows:
                if rec.phase != "start":
                    continue
                n += 1
                eid = rec.event_id
                if eid is None:
                    continue
                info = current(eid) or previous(eid)
                if info is None:
                    continue
                channel, ts, et, unchanged = info
                if unchanged:
                    self.edits.add(rec.t)
                    self.edit_examples.add(eid)
                if channel is None or ts is None:
                    continue
                key = (channel, ts)
                t = rec.t
                if t >= h.deadline:
                    h.rotate(t)
                # One @mention arrives as app_mention and as message with the same channel + ts: both handled is waste.
                seen = h.current.get(key) or h.previous.get(key)
                if seen is None:
                    h.current[key] = et
                elif seen != et and seen != "pair":
                    h.current[key] = "pair"
                    self.pairs.add(t)
                    self.pair_examples.add(eid)
        finally:
            self.started += n

    def on_llm(self, rows: Iterable[Any]) -> None:
        over = self.recent.over
        n = 0
        try:
            for rec in rows:
                n += 1
                ch = rec.channel
                if ch is not None and over(ch, rec.t):
                    self.bursts.add(rec.t)
                    self.burst_channels[ch] = self.burst_channels.get(ch, 0) + 1
        finally:
            self.llm_calls += n

    def finish(self, ctx: Context) -> list[Finding]:
        out: list[Finding] = []
        if self.burst_channels and not ctx.timeless:
            worst = sorted(self.burst_channels.items(), key=lambda kv: -kv[1])[:5]
            over = self.bursts.count
            out.append(
                Finding(
                    "channel-llm-burst",
                    f"{len(self.burst_channels)} channel(s) went above {self.ceiling} LLM calls per hour; "
                    f"{over} call(s) beyond the ceiling",
                    evidence={
                        **self.bursts.evidence(),
                        "channels": [c for c, _ in worst],
                        "calls_over": dict(worst),
                    },
                    cost={
                        "wasted_llm_calls": over,
                        "share": round(over / self.llm_calls, 4) if self.llm_calls else 0.0,
                    },
                )
            )
        if self.pairs.count:
            out.append(
                Finding(
                    "mention-pair-double",
                    f"{self.pairs.count} @mention(s) handled twice: once as app_mention and once as message",
                    evidence={**self.pairs.evidence(), "examples": self.pair_examples.items},
                    cost={
                        "wasted_runs": self.pairs.count,
                        "share": round(self.pairs.count / max(1, self.started), 4),
                    },
                )
            )
        if self.edits.count:
            out.append(
                Finding(
                    "unchanged-edit-handled",
                    f"{self.edits.count} message_changed edit(s) with unchanged text were handled again",
                    evidence={**self.edits.evidence(), "examples": self.edit_examples.items},
                    cost={
                        "wasted_runs": self.edits.count,
                        "share": round(self.edits.count / max(1, self.started), 4),
                    },
                )
            )
        return out

    def caveats(self, ctx: Context) -> list[str]:
        notes = []
        if not ctx.has("llm"):
            notes.append("fan-out: no LLM call records: per-channel LLM rate not judged")
        if not ctx.has("process"):
            notes.append("fan-out: no handler runs: double-handled mentions and edits not judged")
        return notes
