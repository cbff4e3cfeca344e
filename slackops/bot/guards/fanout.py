"""Fan-out guards: a per-channel limit on LLM calls, one answer per @-mention pair, no answers to no-op edits.

Failure mode ``fan-out`` (runbook ``fan-out``): a ``message`` subscription turns every message in every joined
channel into a candidate LLM call. Three habits of Slack multiply it:

- one @-mention arrives twice, as an ``app_mention`` event *and* a ``message`` event with the same channel and
  ``ts`` (different ``event_id``, so event_id dedup does not catch it) — :class:`MentionPairFilter`;
- a ``message_changed`` event fires for edits that do not touch the text (link unfurls, attachments, a
  reaction-driven re-render) — :func:`text_changed` / :class:`EditFilter`;
- a busy or noisy channel (an incident channel, a bot broadcasting) pours calls in —
  :class:`ChannelLimiter`, a sliding-window limit per channel checked before any LLM call.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from slackops.bot.guards.base import Emit, Emitter, as_emitter
from slackops.bot.guards.window import ChannelQuota

#: LLM calls allowed per channel per window (failure-modes.md: fan-out signature, "20 per channel per hour").
DEFAULT_CALLS_PER_CHANNEL = 20
#: The limiter's window, seconds.
DEFAULT_CHANNEL_WINDOW_S = 3600.0
#: How long to remember a mention's (channel, ts): both halves of a pair arrive within seconds, but retries of
#: the second half can come up to ~5 min later (Events API retries at +1 min and +5 min), so keep 10 min.
DEFAULT_PAIR_TTL_S = 600.0
#: Most (channel, ts) keys kept; the oldest are forgotten first.
DEFAULT_PAIR_CAPACITY = 50_000


class ChannelLimiter(ChannelQuota):
    """At most ``limit`` LLM calls per channel in any ``window`` seconds; excess calls are skipped with a record."""

    GUARD = "fan_out"
    ACTION = "skip"
    WHAT = "LLM calls"

    def __init__(
        self,
        limit: int = DEFAULT_CALLS_PER_CHANNEL,
        window: float = DEFAULT_CHANNEL_WINDOW_S,
        *,
        emit: Emit | Emitter | None = None,
    ) -> None:
        super().__init__(limit, window, emit=emit)


class MentionPairFilter:
    """Admit the first event of each (channel, ts); skip the other half of an ``app_mention`` + ``message`` pair.

    Works whichever half arrives first (delivery order across sockets is not guaranteed). The same ``event_id``
    seen again is admitted: that is a redelivery, which dedup (or crash recovery) decides about, not a pair.
    """

    GUARD = "mention_pair"

    def __init__(
        self,
        ttl: float = DEFAULT_PAIR_TTL_S,
        *,
        capacity: int = DEFAULT_PAIR_CAPACITY,
        emit: Emit | Emitter | None = None,
    ) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self.emit = as_emitter(emit)
        self._seen: OrderedDict[tuple[str, str], tuple[str | None, float]] = OrderedDict()

    def admit(
        self,
        event: Mapping[str, Any],
        now: float,
        *,
        event_id: str | None = None,
    ) -> bool:
        """True for the first of a pair (and for events that cannot pair); False, with a record, for the second."""
        if event.get("type") not in ("app_mention", "message") or event.get("subtype"):
            return True  # edits, joins, reactions ... never come in pairs
        channel, ts = event.get("channel"), event.get("ts")
        if not isinstance(channel, str) or not isinstance(ts, str):
            return True
        self._expire(now)
        key = (channel, ts)
        first = self._seen.get(key)
        if first is None:
            self._seen[key] = (event_id, now)
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
            return True
        if event_id is not None and first[0] == event_id:
            return True
        self.emit.guard(
            self.GUARD,
            "skip",
            event_id=event_id,
            channel=channel,
            detail=f"{event.get('type')} for a ts already handled as event {first[0]}",
        )
        return False

    def _expire(self, now: float) -> None:
        while self._seen:
            key, (_, seen_at) = next(iter(self._seen.items()))
            if now - seen_at < self.ttl:
                break
            del self._seen[key]


def text_changed(event: Mapping[str, Any]) -> bool | None:
    """For a ``message_changed`` event: did the text change? ``None`` for any other event.

    Only ``text`` is compared: unfurls and attachment updates arrive as ``message_changed`` with the text as it
    was, and are exactly the edits a bot should not answer again.
    """
    if event.get("subtype") != "message_changed":
        return None
    message, previous = event.get("message"), event.get("previous_message")
    if not isinstance(message, Mapping) or not isinstance(previous, Mapping):
        # No previous version to compare with: treat it as a real edit rather than drop a user's correction.
        return True
    return message.get("text") != previous.get("text")


class EditFilter:
    """Skip ``message_changed`` events whose text did not change (with a record); admit everything else."""

    GUARD = "unchanged_edit"

    def __init__(self, *, emit: Emit | Emitter | None = None) -> None:
        self.emit = as_emitter(emit)

    def admit(self, event: Mapping[str, Any], *, event_id: str | None = None) -> bool:
        if text_changed(event) is not False:
            return True
        channel = event.get("channel")
        self.emit.guard(
            self.GUARD,
            "skip",
            event_id=event_id,
            channel=channel if isinstance(channel, str) else None,
            detail="message_changed with unchanged text",
        )
        return False
