"""Replaying a recording: hand out its records when their time comes on a virtual clock.

The virtual clock runs ``speed`` times as fast as the monotonic clock it is given, starts at the recording's
first record, and can be paused, sped up, slowed down or jumped forward. Nothing here sleeps or reads a clock:
the caller passes ``mono`` (monotonic seconds) to every method, so the view polls :meth:`Replayer.due` from its
refresh timer and tests drive it with plain numbers.

Records are pulled lazily from an iterator (``slackops.store.iter_records`` streams SQLite and JSONL in time
order), so a recording of any size replays in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

Record = dict[str, Any]

#: Speeds the view steps through with its faster/slower keys.
SPEEDS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 100.0, 1000.0)


class Replayer:
    """Records of a recording, released in their original rhythm scaled by ``speed``.

    ``max_idle`` (recording seconds) caps how long the replay waits for the next record: a recording with a
    quiet hour in it does not keep the viewer waiting for an hour, while the ordinary 10 s ping rhythm and
    reconnect gaps keep their shape. ``None`` keeps every pause as recorded.

    >>> r = Replayer([{"t": 100.0, "kind": "hello"}, {"t": 101.0, "kind": "ping"}], speed=2.0)
    >>> [rec["kind"] for rec in r.due(mono=0.0)]
    ['hello']
    >>> [rec["kind"] for rec in r.due(mono=0.5)]
    ['ping']
    >>> r.done
    True
    """

    def __init__(
        self, records: Iterable[Record], *, speed: float = 1.0, max_idle: float | None = 30.0
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._it: Iterator[Record] = iter(records)
        self._next: Record | None = next(self._it, None)
        self.speed = float(speed)
        self.max_idle = max_idle
        self.paused = False
        #: records handed out so far
        self.released = 0
        self._anchor_mono: float | None = None
        self._anchor_virtual: float | None = None if self._next is None else float(self._next["t"])
        self._paused_at: float | None = None

    @property
    def done(self) -> bool:
        """True once every record has been handed out."""
        return self._next is None

    def virtual_now(self, mono: float) -> float | None:
        """Where the replay stands, in recording time (``None`` for an empty recording)."""
        if self._anchor_virtual is None:
            return None
        if self._anchor_mono is None:
            return self._anchor_virtual
        at = self._paused_at if self.paused and self._paused_at is not None else mono
        return self._anchor_virtual + (at - self._anchor_mono) * self.speed

    def due(self, mono: float, limit: int | None = None) -> list[Record]:
        """Records whose time has come at ``mono`` (at most ``limit``: the rest stay due for the next call)."""
        if self._anchor_mono is None:
            self._anchor_mono = mono
        if self.paused or self._next is None:
            return []
        now = self.virtual_now(mono)
        assert now is not None
        gap = float(self._next["t"]) - now
        if self.max_idle is not None and gap > self.max_idle:
            # Skip the quiet stretch: move the clock to just before the next record.
            self._reanchor(mono, float(self._next["t"]) - self.max_idle)
            now = float(self._next["t"]) - self.max_idle
        return self._take(now, limit)

    def advance_to(self, t: float, mono: float, limit: int | None = None) -> list[Record]:
        """Jump the virtual clock to recording time ``t`` and return every record up to it."""
        if self._next is None:
            return []
        self._reanchor(mono, t)
        return self._take(t, limit)

    def _take(self, until: float, limit: int | None) -> list[Record]:
        out: list[Record] = []
        nxt = self._next
        while nxt is not None and nxt["t"] <= until and (limit is None or len(out) < limit):
            out.append(nxt)
            nxt = next(self._it, None)
        self._next = nxt
        self.released += len(out)
        return out

    def _reanchor(self, mono: float, virtual: float) -> None:
        self._anchor_mono, self._anchor_virtual = mono, virtual
        if self.paused:
            self._paused_at = mono

    def pause(self, mono: float) -> None:
        """Stop the virtual clock where it is."""
        if not self.paused:
            now = self.virtual_now(mono)
            self.paused = True
            if now is not None:
                self._reanchor(mono, now)

    def resume(self, mono: float) -> None:
        """Start the virtual clock again from where it was paused."""
        if self.paused:
            now = self.virtual_now(mono)
            self.paused, self._paused_at = False, None
            if now is not None:
                self._reanchor(mono, now)

    def set_speed(self, speed: float, mono: float) -> None:
        """Change speed without a jump: the clock continues from where it stands now."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        now = self.virtual_now(mono)
        if now is not None and self._anchor_mono is not None:
            self._reanchor(mono, now)
        self.speed = float(speed)

    def faster(self, mono: float) -> float:
        """Step to the next listed speed above the current one; return it."""
        bigger = [s for s in SPEEDS if s > self.speed]
        self.set_speed(bigger[0] if bigger else self.speed, mono)
        return self.speed

    def slower(self, mono: float) -> float:
        """Step to the next listed speed below the current one; return it."""
        smaller = [s for s in SPEEDS if s < self.speed]
        self.set_speed(smaller[-1] if smaller else self.speed, mono)
        return self.speed


def open_recording(path: str | Path, *, speed: float = 1.0, max_idle: float | None = 30.0) -> Replayer:
    """A :class:`Replayer` over a SQLite or JSONL recording (read lazily, in time order, via the store).

    Raises :class:`~slackops.errors.InputError` when the file cannot be read.
    """
    from slackops.errors import InputError
    from slackops.store import iter_records

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: no such file", hint="Record one with: slackops watch --db slackops.db")
    return Replayer(iter_records(p), speed=speed, max_idle=max_idle)
