"""A fixed-memory latency histogram with logarithmic buckets (about 5 % resolution), for percentiles.

Percentiles over millions of acks without keeping them: memory is the bucket array, whatever the input size.
"""

from __future__ import annotations

import math
from typing import Any

_GROWTH = 1.05
_LOG = math.log(_GROWTH)
#: Bucket 0 holds everything at or below 10 µs; the last holds everything above ~10 min.
_FLOOR_MS = 0.01
_BUCKETS = int(math.log(600_000 / _FLOOR_MS) / _LOG) + 2


class Histogram:
    """Counts of values (milliseconds) in geometric buckets."""

    __slots__ = ("counts", "max", "n", "total")

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.n = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, ms: float) -> None:
        if ms <= _FLOOR_MS:
            i = 0
        else:
            i = int(math.log(ms / _FLOOR_MS) / _LOG) + 1
            if i >= _BUCKETS:
                i = _BUCKETS - 1
        self.counts[i] += 1
        self.n += 1
        self.total += ms
        if ms > self.max:
            self.max = ms

    def add_many(self, values: list[float]) -> None:
        """:meth:`add` for each of ``values`` (one call for a batch of acks)."""
        if not values:
            return
        counts, log, top = self.counts, math.log, _BUCKETS - 1
        for ms in values:
            if ms <= _FLOOR_MS:
                counts[0] += 1
            else:
                i = int(log(ms / _FLOOR_MS) / _LOG) + 1
                counts[i if i < top else top] += 1
        self.n += len(values)
        self.total += sum(values)
        peak = max(values)
        if peak > self.max:
            self.max = peak

    @staticmethod
    def upper(i: int) -> float:
        """The upper bound (ms) of bucket ``i``."""
        return _FLOOR_MS * _GROWTH**i

    def percentile(self, p: float) -> float | None:
        """The value below which ``p`` percent of values fall (bucket upper bound, capped at the max seen)."""
        if not self.n:
            return None
        rank = max(1, math.ceil(self.n * p / 100.0))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return min(self.upper(i), self.max)
        return self.max

    def above(self, ms: float) -> int:
        """How many values exceeded ``ms`` (to bucket resolution)."""
        i = 0 if ms <= _FLOOR_MS else int(math.log(ms / _FLOOR_MS) / _LOG) + 1
        return sum(self.counts[i + 1 :])

    def bins(self, edges: list[float]) -> list[int]:
        """Counts regrouped into coarse bins ``[0, e0), [e0, e1) … [e_last, inf)`` for drawing."""
        out = [0] * (len(edges) + 1)
        j = 0
        for i, c in enumerate(self.counts):
            if not c:
                continue
            mid = self.upper(i) / math.sqrt(_GROWTH) if i else 0.0
            while j < len(edges) and mid >= edges[j]:
                j += 1
            out[j] += c
        return out

    def summary(self) -> dict[str, Any]:
        if not self.n:
            return {"count": 0}
        return {
            "count": self.n,
            "mean_ms": round(self.total / self.n, 3),
            "p50_ms": round(self.percentile(50) or 0, 3),
            "p90_ms": round(self.percentile(90) or 0, 3),
            "p99_ms": round(self.percentile(99) or 0, 3),
            "max_ms": round(self.max, 3),
        }
