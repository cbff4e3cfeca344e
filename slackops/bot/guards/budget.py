"""The budget cap: at most N model calls and M tokens per window, bot-wide, with a clear record when it trips.

Failure modes ``retry-duplication``, ``fan-out``, ``bot-self-loop`` and ``thundering-herd`` all end in the same
place — a bill. The other guards each stop one cause; the budget stops the total, including causes nobody has
named yet. When it trips it says so once, loudly (``guard`` record, action ``trip``, with the numbers), then
records each call it refuses (action ``skip``) until the window frees up (action ``reset``).
"""

from __future__ import annotations

from slackops.bot.guards.base import Emit, Emitter, as_emitter
from slackops.bot.guards.window import SlidingWindow

GUARD = "budget"

#: Default window, seconds (an hour: the unit people budget model spend in).
DEFAULT_WINDOW_S = 3600.0

_CALLS, _TOKENS = "calls", "tokens"


class Budget:
    """Calls and tokens spent in a sliding ``window``; ``None`` limits are not enforced."""

    def __init__(
        self,
        *,
        max_calls: int | None = None,
        max_tokens: int | None = None,
        window: float = DEFAULT_WINDOW_S,
        emit: Emit | Emitter | None = None,
    ) -> None:
        self.max_calls = max_calls
        self.max_tokens = max_tokens
        self.window = SlidingWindow(window)
        self.emit = as_emitter(emit)
        self.tripped = False

    def used(self, now: float) -> tuple[int, int]:
        """(calls, tokens) spent within the window ending at ``now``."""
        return int(self.window.total(_CALLS, now)), int(self.window.total(_TOKENS, now))

    def exhausted(self, now: float) -> str | None:
        """Which limit is used up (a sentence with the numbers), or ``None``."""
        calls, tokens = self.used(now)
        span = f"{self.window.window:g} s"
        if self.max_calls is not None and calls >= self.max_calls:
            return f"{calls} calls in {span} (limit {self.max_calls})"
        if self.max_tokens is not None and tokens >= self.max_tokens:
            return f"{tokens} tokens in {span} (limit {self.max_tokens})"
        return None

    def allow(self, now: float, *, event_id: str | None = None, channel: str | None = None) -> bool:
        """Admit one call (counting it) unless a limit is used up; refusals are recorded."""
        why = self.exhausted(now)
        if why is None:
            if self.tripped:
                self.tripped = False
                self.emit.guard(GUARD, "reset", detail="budget window has room again")
            self.window.add(_CALLS, now)
            return True
        if not self.tripped:
            self.tripped = True
            self.emit.guard(GUARD, "trip", event_id=event_id, channel=channel, detail=why)
        self.emit.guard(GUARD, "skip", event_id=event_id, channel=channel, detail=why)
        return False

    def spend(self, now: float, tokens: int) -> None:
        """Count the tokens a call used (known only after it returns)."""
        if tokens > 0:
            self.window.add(_TOKENS, now, tokens)
