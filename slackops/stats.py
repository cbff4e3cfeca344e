"""Small pure statistics shared by the simulator's scorecard, watch's live summary and the terminal view."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float, *, presorted: bool = False) -> float | None:
    """The ``q``-th percentile (0-100) of ``values`` by the nearest-rank method; ``None`` when empty.

    Nearest rank returns an observed value (no interpolation), so "p99 = 3,513 ms" is a real ack that took that
    long. Pass ``presorted=True`` when ``values`` is already ascending, to skip the sort.
    """
    if not values:
        return None
    ordered = values if presorted else sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
