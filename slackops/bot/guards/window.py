"""A sliding-window counter per key: the one piece the post ceiling, the fan-out limiter and the budget share.

Sliding, not fixed, windows: a fixed hourly bucket lets a burst of 2x the limit through across a bucket
boundary (20 calls at 10:59, 20 more at 11:00), which is exactly the burst the limit exists to stop.
"""

from __future__ import annotations

from collections import deque

from slackops.bot.guards.base import Emit, Emitter, as_emitter


class SlidingWindow:
    """Amounts added per key within the last ``window`` seconds (of a monotonic clock the caller passes)."""

    def __init__(self, window: float) -> None:
        if window <= 0:
            raise ValueError("window must be positive")
        self.window = window
        self._entries: dict[str, deque[tuple[float, float]]] = {}

    def _prune(self, key: str, now: float) -> deque[tuple[float, float]]:
        entries = self._entries.get(key)
        if entries is None:
            return deque()
        while entries and now - entries[0][0] >= self.window:
            entries.popleft()
        if not entries:
            # Forget idle keys so thousands of quiet channels do not pin memory.
            del self._entries[key]
        return entries

    def total(self, key: str, now: float) -> float:
        """The sum of amounts added for ``key`` within the window ending at ``now``."""
        return sum(amount for _, amount in self._prune(key, now))

    def add(self, key: str, now: float, amount: float = 1.0) -> None:
        """Count ``amount`` for ``key`` at ``now``."""
        self._prune(key, now)
        self._entries.setdefault(key, deque()).append((now, amount))

    def retry_in(self, key: str, now: float) -> float:
        """Seconds until the oldest entry of ``key`` leaves the window (0 when the key is empty)."""
        entries = self._prune(key, now)
        return max(0.0, entries[0][0] + self.window - now) if entries else 0.0

    def keys(self) -> list[str]:
        return list(self._entries)


class ChannelQuota:
    """At most ``limit`` admissions per channel in any ``window`` seconds; a refusal emits a ``guard`` record.

    The post ceiling and the fan-out limiter are this one rule with different names, limits and record wording.
    """

    #: the ``guard`` record's guard name, its action on refusal, and what is being counted (for the detail)
    GUARD = "quota"
    ACTION = "block"
    WHAT = "admissions"

    def __init__(self, limit: int, window: float, *, emit: Emit | Emitter | None = None) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window = SlidingWindow(window)
        self.emit = as_emitter(emit)

    def allow(self, channel: str | None, now: float, *, event_id: str | None = None) -> bool:
        """Count and admit one for ``channel``, or emit a ``guard`` record and return False."""
        key = channel or "-"
        used = self.window.total(key, now)
        if used >= self.limit:
            self.emit.guard(
                self.GUARD,
                self.ACTION,
                event_id=event_id,
                channel=channel,
                detail=f"{int(used)} {self.WHAT} in {self.window.window:g} s (limit {self.limit}); "
                f"next slot in {self.window.retry_in(key, now):.1f} s",
            )
            return False
        self.window.add(key, now)
        return True
