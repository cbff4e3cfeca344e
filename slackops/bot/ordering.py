"""Optional per-conversation resequencing on ``event_ts`` with a short hold window.

Socket Mode does not promise order: each delivery attempt is routed to any socket, retries come 3 s to 5 min
late, and a make-before-break reconnect briefly has two sockets delivering. Most handlers should simply be
order-tolerant (the default: no resequencer). A bot that must see a thread in order (a conversation state
machine) can hold each event for ``hold_s`` and release events of one key (channel, or channel + thread) in
``event_ts`` order. An event older than one already released for its key cannot be put back in order; it is
released at once and counted in :attr:`Resequencer.inversions` so the inversion is visible.

Pure: every call takes ``now`` (monotonic seconds); the dispatcher owns the timer.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from slackops.protocol import EventInfo

T = TypeVar("T")

#: How many keys' "last released ts" to remember (LRU); older keys simply start fresh.
MAX_KEYS = 10_000


def order_key(info: EventInfo) -> str | None:
    """The resequencing key: the thread when the event is in one, else the channel. ``None``: do not hold."""
    if not info.channel:
        return None
    return f"{info.channel}/{info.thread_ts}" if info.thread_ts else info.channel


def order_ts(info: EventInfo) -> float | None:
    """The event's position in its conversation (``event_ts``, else ``ts``), as a float."""
    for value in (info.event_ts, info.ts):
        if value:
            try:
                return float(value)
            except ValueError:
                continue
    return None


@dataclass(order=True)
class _Held(Generic[T]):
    ts: float
    seq: int
    arrived: float = field(compare=False)
    item: T = field(compare=False)


class Resequencer(Generic[T]):
    """Hold items per key for ``hold_s`` and release them in ``ts`` order."""

    def __init__(self, hold_s: float = 0.5) -> None:
        if hold_s < 0:
            raise ValueError("hold_s must be >= 0")
        self.hold_s = hold_s
        self.inversions = 0
        self._held: dict[str, list[_Held[T]]] = {}
        self._released: OrderedDict[str, float] = OrderedDict()
        self._seq = itertools.count()

    def __len__(self) -> int:
        return sum(len(h) for h in self._held.values())

    def push(self, key: str | None, ts: float | None, item: T, now: float) -> list[T]:
        """Add ``item``; return what must be released right away (unkeyed, or too late to reorder)."""
        if key is None or ts is None:
            return [item]
        last = self._released.get(key)
        if last is not None and ts < last:
            self.inversions += 1
            return [item]
        heapq.heappush(self._held.setdefault(key, []), _Held(ts, next(self._seq), now, item))
        return []

    def due(self, now: float) -> list[T]:
        """Items whose hold has expired, each key's in ``ts`` order.

        When any held item of a key has waited ``hold_s``, every item of that key with a smaller ``ts`` goes out
        with it, even if it arrived later: holding an older event longer cannot improve the order.
        """
        out: list[T] = []
        for key in list(self._held):
            heap = self._held[key]
            while heap:
                oldest_arrival = min(h.arrived for h in heap)
                if now - oldest_arrival < self.hold_s:
                    break
                # Release up to and including the expired item with the largest ts among the expired ones.
                limit = max(h.ts for h in heap if now - h.arrived >= self.hold_s)
                while heap and heap[0].ts <= limit:
                    held = heapq.heappop(heap)
                    self._remember(key, held.ts)
                    out.append(held.item)
            if not heap:
                del self._held[key]
        return out

    def next_due(self) -> float | None:
        """The earliest ``now`` at which :meth:`due` will release something (``None`` if nothing is held)."""
        arrivals = [h.arrived for heap in self._held.values() for h in heap]
        return min(arrivals) + self.hold_s if arrivals else None

    def flush(self) -> list[T]:
        """Release everything now, in ``ts`` order per key (shutdown)."""
        out: list[T] = []
        for key, heap in self._held.items():
            while heap:
                held = heapq.heappop(heap)
                self._remember(key, held.ts)
                out.append(held.item)
        self._held.clear()
        return out

    def _remember(self, key: str, ts: float) -> None:
        self._released[key] = max(ts, self._released.get(key, ts))
        self._released.move_to_end(key)
        while len(self._released) > MAX_KEYS:
            self._released.popitem(last=False)
