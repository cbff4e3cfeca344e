"""What every detector shares: the feeding protocol, the end-of-data context, small bounded helpers.

A detector is fed records of the kinds it declares in :attr:`Detector.kinds` (``kind -> method name``), one at
a time in time order, and reports findings once at the end (:meth:`Detector.finish`). It keeps only bounded
state (windows, counters, capped example lists), never the records themselves, and does no I/O.

Handlers take :class:`~slackops.diagnose.rows.Row` objects (``rec.event_id`` reads like
``rec.get("event_id")``): the engine decodes JSONL straight into rows. :meth:`Detector.handlers` wraps them to
take record dicts too, for callers that feed records one at a time.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from slackops.diagnose.rows import Row, convert
from slackops.diagnose.thresholds import Settings
from slackops.findings import Finding

EXAMPLES = 5


@dataclass
class Context:
    """What the engine knows at the end: record counts per kind and the time span of the data."""

    kinds: Counter[str] = field(default_factory=Counter)
    t_first: float | None = None
    t_last: float | None = None
    formats: set[str] = field(default_factory=set)

    def has(self, *kinds: str) -> bool:
        """True when the data holds records of any of ``kinds``."""
        return any(self.kinds.get(k) for k in kinds)


class Detector:
    """Base class. Subclasses set ``slug`` and ``kinds`` and implement the handlers and :meth:`finish`."""

    slug: ClassVar[str]
    #: record kind -> name of the method that takes such a record
    kinds: ClassVar[dict[str, str]]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.th = settings.thresholds

    def row_handlers(self) -> dict[str, Any]:
        """Bound handler methods by kind, taking rows: the engine's routing table."""
        return {kind: getattr(self, name) for kind, name in self.kinds.items()}

    def handlers(self) -> dict[str, Any]:
        """Handlers by kind that take record dicts (or rows); a record that does not fit raises ``ValueError``."""
        return {kind: _taking_dicts(h) for kind, h in self.row_handlers().items()}

    def finish(self, ctx: Context) -> list[Finding]:
        raise NotImplementedError

    def caveats(self, ctx: Context) -> list[str]:
        """What this detector could not judge with the kinds of records present (shown in the overview)."""
        return []

    def stats(self) -> dict[str, Any]:
        """Figures this detector contributes to the report's overview (most contribute none)."""
        return {}


def _taking_dicts(handle: Any) -> Any:
    def take(rec: Any) -> None:
        handle(rec if isinstance(rec, Row) else convert(rec))

    return take


class Examples:
    """At most :data:`EXAMPLES` distinct example ids, in the order first seen."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[Any] = []

    def add(self, item: Any) -> None:
        if item is not None and len(self.items) < EXAMPLES and item not in self.items:
            self.items.append(item)


class Span:
    """First and last time something was seen, and how often."""

    __slots__ = ("count", "first", "last")

    def __init__(self) -> None:
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None

    def add(self, t: float) -> None:
        self.count += 1
        if self.first is None:
            self.first = t
        self.last = t

    def evidence(self) -> dict[str, Any]:
        return {"count": self.count, "first_t": self.first, "last_t": self.last}


class Window:
    """A set of keys remembered for about ``seconds``: two generations, rotated as time passes.

    Used for "the same event_id again within the retry horizon" without remembering every event ever seen.
    Hot detectors inline the cheap part (``if t >= w.deadline: w.rotate(t)``, then plain dict operations on
    ``current`` / ``previous``) to save a method call per record.
    """

    __slots__ = ("current", "deadline", "previous", "seconds", "started")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.current: dict[Hashable, Any] = {}
        self.previous: dict[Hashable, Any] = {}
        self.started: float | None = None
        self.deadline = float("-inf")

    def rotate(self, t: float) -> None:
        """Start a new generation at ``t`` (call when ``t >= deadline``)."""
        if self.started is not None:
            # After a long quiet stretch the current generation is older than the window too: drop both.
            self.previous = self.current if t - self.started < 2 * self.seconds else {}
            self.current = {}
        self.started = t
        self.deadline = t + self.seconds

    def tick(self, t: float) -> None:
        if t >= self.deadline:
            self.rotate(t)

    def get(self, key: Hashable) -> Any:
        value = self.current.get(key)
        if value is None:
            value = self.previous.get(key)
        return value

    def put(self, key: Hashable, value: Any) -> None:
        self.current[key] = value


class Pending:
    """Envelopes waiting for their ack, oldest first; entries older than ``seconds`` expire (never acked)."""

    __slots__ = ("items", "order", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.items: dict[str, float] = {}
        self.order: deque[tuple[float, str]] = deque()

    def add(self, t: float, key: str) -> Sequence[tuple[float, str]]:
        """Remember ``key`` delivered at ``t``; return the entries that expired meanwhile."""
        self.items[key] = t
        order = self.order
        order.append((t, key))
        if order[0][0] < t - self.seconds:
            return self.expire(t - self.seconds)
        return ()

    def pop(self, key: str) -> float | None:
        """The delivery time of ``key`` if it was still waiting."""
        return self.items.pop(key, None)

    def expire(self, before: float) -> list[tuple[float, str]]:
        """Forget and return the entries delivered before ``before`` that are still waiting."""
        out = []
        order, items = self.order, self.items
        while order and order[0][0] < before:
            t, key = order.popleft()
            if items.pop(key, None) is not None:
                out.append((t, key))
        return out


def fmt_s(seconds: float) -> str:
    """A duration for summaries: ``45 s``, ``12 min``, ``3.2 h``, ``2.5 days``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
