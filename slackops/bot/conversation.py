"""Thread -> conversation state with a TTL: what an LLM bot remembers about a thread between events.

A bot that answers in threads needs a little state per thread (the model's message history, a summary, which
user started it). Keeping it forever leaks memory on a busy workspace; keeping it in the handler's closure loses
it across events. This is a small LRU map from ``(channel, thread_ts)`` to a dict, where an entry expires
``ttl_s`` after it was last touched and the oldest entries go first past ``max_threads``.

In memory, per process: state is a cache the bot can rebuild (``conversations.replies``), not a record of truth.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from slackops.protocol import EventInfo


def thread_key(info: EventInfo) -> tuple[str, str] | None:
    """``(channel, thread root ts)`` for an event: a top-level message starts its own thread."""
    root = info.thread_ts or info.ts
    if not info.channel or not root:
        return None
    return info.channel, root


class ConversationStore:
    """``(channel, thread_ts) -> dict`` with a sliding TTL and a size cap. Not thread-safe (one event loop)."""

    def __init__(
        self, *, ttl_s: float = 3600.0, max_threads: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl_s <= 0 or max_threads <= 0:
            raise ValueError("ttl_s and max_threads must be positive")
        self.ttl_s = ttl_s
        self.max_threads = max_threads
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, dict[str, Any]]] = OrderedDict()

    def get(self, key: tuple[str, str]) -> dict[str, Any]:
        """The state of thread ``key`` (a new empty dict if absent or expired); touching it renews the TTL."""
        now = self._clock()
        self.sweep(now)
        entry = self._entries.pop(key, None)
        state = entry[1] if entry is not None else {}
        self._entries[key] = (now, state)
        while len(self._entries) > self.max_threads:
            self._entries.popitem(last=False)
        return state

    def peek(self, key: tuple[str, str]) -> dict[str, Any] | None:
        """The state of ``key`` if it exists and has not expired, without renewing it."""
        entry = self._entries.get(key)
        if entry is None or self._clock() - entry[0] >= self.ttl_s:
            return None
        return entry[1]

    def drop(self, key: tuple[str, str]) -> None:
        """Forget a thread (the conversation ended)."""
        self._entries.pop(key, None)

    def sweep(self, now: float | None = None) -> int:
        """Drop expired entries (the map is in touch order, so this stops at the first live one)."""
        now = self._clock() if now is None else now
        dropped = 0
        while self._entries:
            key, (touched, _) = next(iter(self._entries.items()))
            if now - touched < self.ttl_s:
                break
            del self._entries[key]
            dropped += 1
        return dropped

    def __len__(self) -> int:
        return len(self._entries)
