"""What every detector shares: the feeding protocol, the end-of-data context, small bounded helpers.

A detector declares in :attr:`Detector.kinds` which record kinds it wants (``kind -> method name``) and reports
findings once at the end (:meth:`Detector.finish`). It keeps only bounded state (windows, counters, capped
example lists), never the records themselves, and does no I/O.

A handler takes an *iterable* of :class:`~slackops.diagnose.rows.Row` objects of its kind, in time order, and
walks it once with ``for rec in rows`` (``rec.event_id`` reads like ``rec.get("event_id")``). The engine hands
over many rows per call — a loop in the handler instead of a call per record is most of diagnose's speed — and
one record at a time is the same call with a one-row tuple (:meth:`Detector.handlers`, the live view).
Kinds of one bulk group (:data:`~slackops.diagnose.rows.BULK`, e.g. ping and pong) must share one method:
they arrive in one sequence, in time order.

Between groups, the engine hands over a slice of the data group by group in pipeline order (deliveries, then
acks, then handler runs ...), so a handler must not depend on records of *another* bulk group being
interleaved with its own at a finer grain than a slice (at most :func:`slice_seconds`); sequenced kinds
(connects, closes, signals) are never reordered.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Sequence
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

    @property
    def timeless(self) -> bool:
        """Every record has the same time: logs without timestamps (their lines all get one time). Rates,
        bursts and per-window ceilings mean nothing then; detectors leave them out."""
        return self.t_first is not None and self.t_first == self.t_last and sum(self.kinds.values()) > 1

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

    def row_handlers(self) -> dict[str, Callable[[Iterable[Row]], None]]:
        """Bound handler methods by kind, each taking an iterable of rows: the engine's routing table."""
        return {kind: getattr(self, name) for kind, name in self.kinds.items()}

    def handlers(self) -> dict[str, Callable[[Any], None]]:
        """Handlers by kind taking ONE record, a dict or a row; a record that does not fit raises ``ValueError``."""
        return {kind: _one_at_a_time(h) for kind, h in self.row_handlers().items()}

    def finish(self, ctx: Context) -> list[Finding]:
        raise NotImplementedError

    def caveats(self, ctx: Context) -> list[str]:
        """What this detector could not judge with the kinds of records present (shown in the overview)."""
        return []

    def stats(self) -> dict[str, Any]:
        """Figures this detector contributes to the report's overview (most contribute none)."""
        return {}


def _one_at_a_time(handle: Callable[[Iterable[Row]], None]) -> Callable[[Any], None]:
    def take(rec: Any) -> None:
        handle((rec if isinstance(rec, Row) else convert(rec),))

    return take


def slice_seconds(th: dict[str, float]) -> float:
    """The longest stretch of data the engine hands over group by group (see the module docs).

    Half the shortest window a detector joins two groups over (deliveries to handler runs, acks to runs), so a
    record is always still in the window when the other group's records are looked up against it.
    """
    return max(1.0, min(60.0, th["dedup_window_s"] / 2))


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


class Ceiling:
    """At most ``limit`` per ``window`` seconds for each key (a channel): :meth:`over` says when a time breaks it.

    Keeps the last ``limit + 1`` times per key; forgets every key past ``max_keys`` (memory stays bounded).
    """

    __slots__ = ("limit", "max_keys", "times", "window")

    def __init__(self, limit: int, window: float, max_keys: int = 50_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self.times: dict[Hashable, deque[float]] = {}

    def over(self, key: Hashable, t: float) -> bool:
        """Count ``t`` for ``key``; True when it makes more than ``limit`` within ``window``."""
        dq = self.times.get(key)
        if dq is None:
            if len(self.times) > self.max_keys:
                self.times.clear()
            dq = self.times[key] = deque(maxlen=self.limit + 1)
        dq.append(t)
        return len(dq) > self.limit and t - dq[0] <= self.window


class Pending:
    """Envelopes waiting for their ack, oldest first; entries still waiting ``seconds`` later expire (never acked).

    An entry expires only once the acks that could still answer it have been seen: the engine hands over a
    slice's deliveries before its acks, so "``seconds`` before the envelope being added" would be too early. The
    horizon is ``seconds`` before the later of the last ack seen (:meth:`acked`) and ``lag`` seconds before now;
    the lag keeps memory bounded when acks stop altogether.
    """

    __slots__ = ("ack_t", "items", "lag", "order", "seconds")

    def __init__(self, seconds: float, lag: float = 600.0) -> None:
        self.seconds = seconds
        self.lag = lag
        self.items: dict[str, float] = {}
        self.order: deque[tuple[float, str]] = deque()
        #: time of the last ack seen
        self.ack_t = float("-inf")

    def add(self, t: float, key: str) -> Sequence[tuple[float, str]]:
        """Remember ``key`` delivered at ``t``; return the entries that expired meanwhile."""
        self.items[key] = t
        order = self.order
        order.append((t, key))
        horizon = self.horizon(t)
        if order[0][0] < horizon:
            return self.expire(horizon)
        return ()

    def horizon(self, t: float) -> float:
        """At time ``t``, entries delivered before this are past hope of an ack."""
        return min(t, max(self.ack_t, t - self.lag)) - self.seconds

    def acked(self, t: float) -> None:
        """An ack (of any envelope) was seen at ``t``."""
        if t > self.ack_t:
            self.ack_t = t

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
