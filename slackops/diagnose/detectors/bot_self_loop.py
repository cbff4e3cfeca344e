"""bot-self-loop (cost): handlers running on the bot's own (or another bot's) messages, posts spiralling.

A bot that answers messages with a ``bot_id`` or ``subtype: bot_message`` — or from its own user id — can answer
itself forever, one LLM call per turn. The backstop signature is posts per channel rising past a ceiling.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from slackops.diagnose.detectors.base import Ceiling, Context, Detector, Examples, Span, Window
from slackops.findings import Finding


class BotSelfLoop(Detector):
    slug = "bot-self-loop"
    kinds = {"envelope": "on_envelope", "process": "on_process", "llm": "on_llm", "post": "on_post"}

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.bot_user = settings.bot_user_id
        self.bot_events = Window(self.th["dedup_window_s"])
        self.handled = Span()
        self.handled_examples = Examples()
        self.runs = 0
        self.llm_on_bot = 0
        self.ceiling = int(self.th["post_ceiling"])
        self.posts = Ceiling(self.ceiling, self.th["post_window_s"])
        self.over = Span()
        self.over_channels = Examples()

    def on_envelope(self, rows: Iterable[Any]) -> None:
        w = self.bot_events
        bot_user = self.bot_user
        for rec in rows:
            if rec.bot_id or rec.subtype == "bot_message" or (bot_user and rec.user == bot_user):
                eid = rec.event_id
                if eid is not None:
                    w.tick(rec.t)
                    w.put(eid, True)

    def on_process(self, rows: Iterable[Any]) -> None:
        w = self.bot_events
        # Most recordings have no bot-authored events at all: then only the runs are counted.
        look = bool(w.current or w.previous)
        current, previous = w.current.get, w.previous.get
        n = 0
        try:
            for rec in rows:
                if rec.phase != "start":
                    continue
                n += 1
                if look:
                    eid = rec.event_id
                    if eid is not None and (current(eid) or previous(eid)):
                        self.handled.add(rec.t)
                        self.handled_examples.add(eid)
        finally:
            self.runs += n

    def on_llm(self, rows: Iterable[Any]) -> None:
        w = self.bot_events
        if not (w.current or w.previous):
            return
        current, previous = w.current.get, w.previous.get
        for rec in rows:
            eid = rec.event_id
            if eid is not None and (current(eid) or previous(eid)):
                self.llm_on_bot += 1

    def on_post(self, rows: Iterable[Any]) -> None:
        over = self.posts.over
        for rec in rows:
            ch = rec.channel
            if ch is not None and over(ch, rec.t):
                self.over.add(rec.t)
                self.over_channels.add(ch)

    def finish(self, ctx: Context) -> list[Finding]:
        out: list[Finding] = []
        if self.handled.count:
            out.append(
                Finding(
                    "bot-message-handled",
                    f"handlers ran {self.handled.count} time(s) on bot or self messages"
                    + (f", {self.llm_on_bot} LLM call(s)" if self.llm_on_bot else ""),
                    evidence={**self.handled.evidence(), "examples": self.handled_examples.items},
                    cost={
                        "wasted_runs": self.handled.count,
                        "wasted_llm_calls": self.llm_on_bot,
                        "share": round(self.handled.count / max(1, self.runs), 4),
                    },
                )
            )
        if self.over.count and not ctx.timeless:
            out.append(
                Finding(
                    "post-ceiling-exceeded",
                    f"bot posts went above {self.ceiling} per {self.th['post_window_s']:.0f} s in "
                    f"{len(self.over_channels.items)} channel(s) ({self.over.count} post(s) over the ceiling)",
                    evidence={**self.over.evidence(), "channels": self.over_channels.items},
                )
            )
        return out

    def caveats(self, ctx: Context) -> list[str]:
        if not ctx.has("process", "post"):
            return ["bot-self-loop: no handler runs or posts in this data: self-loops not judged"]
        return []
