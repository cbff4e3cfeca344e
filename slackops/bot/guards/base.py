"""What every guard shares: the record sink, the wall clock for record times, and the ``guard`` record itself.

Guards decide on a monotonic ``now`` the caller passes in (so they are tested without sleeping); the records
they emit carry wall-clock ``t`` like every other record, because recordings from several machines are merged
by time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from slackops import records

#: Where guards send records: ``RecordWriter.write``, a list's ``append``, or the bot's own emitter.
Emit = Callable[[records.Record], None]


class Emitter:
    """Build and send records for one producer (``source``); a ``None`` sink makes every emit a no-op."""

    def __init__(
        self, emit: Emit | None = None, *, source: str = "bot", wall: Callable[[], float] = time.time
    ) -> None:
        self.sink = emit
        self.source = source
        self.wall = wall

    def __call__(self, kind: str, **fields: Any) -> None:
        if self.sink is None:
            return
        self.sink(records.make(kind, t=self.wall(), source=self.source, **fields))

    def guard(
        self,
        guard: str,
        action: str,
        *,
        event_id: str | None = None,
        channel: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Emit a ``guard`` record: which guard fired, on what, and what it did (skip, block, open ...)."""
        self("guard", guard=guard, action=action, event_id=event_id, channel=channel, detail=detail)


def as_emitter(emit: Emit | Emitter | None, source: str = "bot") -> Emitter:
    """Accept a plain sink or an :class:`Emitter` wherever a guard takes ``emit``."""
    return emit if isinstance(emit, Emitter) else Emitter(emit, source=source)
