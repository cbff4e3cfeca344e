"""Ground truth: every event the simulator sent, each delivery attempt, each ack and each reply; and the scorecard.

The simulator knows what a real deployment can only guess: which events existed, where each attempt went (a
live socket, a ghost, a half-open socket), when and where it was acked, and which bot replies it caused. A
reply is attributed to an event when a ``chat.postMessage`` has ``thread_ts``, a ``chat.update`` has ``ts``, or a
``reactions.add`` has ``timestamp`` equal to the event's ``ts``. An event with two or more replies was
*processed twice* — the duplicate an LLM bot pays for.

Outcomes, per event:

- **acked**: some attempt was acked within the deadline.
- **acked late**: some attempt was acked after its deadline (Slack had already counted it failed).
- **lost**: never acked once no attempt is left (events_api after its retries), or — for interactive and slash
  commands, which Slack never retries — not acked within the deadline: the user saw an error.
- **pending**: still in flight.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from slackops.stats import percentile


@dataclass
class Event:
    """One event as Slack would deliver it (the payload is the envelope's ``payload``)."""

    event_id: str
    type: str  # events_api | slash_commands | interactive
    payload: dict[str, Any]
    accepts_response_payload: bool = False
    kind: str = "message"  # traffic kind: message, app_mention, block_actions ...
    ts: str | None = None
    channel: str | None = None
    user: str | None = None
    bot_id: str | None = None
    subtype: str | None = None
    #: traffic | echo (the bot's own post delivered back) | injected (tests)
    origin: str = "traffic"
    #: bot-reply generations behind this event (echoes of echoes); used to end self-loops
    depth: int = 0
    #: created by the bot itself: replying to it is a self-loop
    from_bot: bool = False


@dataclass
class Attempt:
    """One delivery attempt of an event (retry_attempt = ``number``)."""

    number: int
    envelope_id: str
    conn: str | None
    sent_at: float
    deadline: float
    #: routed to a ghost or half-open socket (or nowhere): no client could see it
    blackhole: bool = False
    ack_at: float | None = None
    ack_conn: str | None = None
    ack_error: str | None = None
    #: why the attempt failed before its deadline (HTTP mode: http_error, connection_failed ...)
    fail_reason: str | None = None
    #: a second copy of the same retry (Slack sometimes sends one twice)
    duplicate: bool = False

    @property
    def acked(self) -> bool:
        return self.ack_at is not None

    @property
    def in_time(self) -> bool:
        return self.ack_at is not None and self.ack_at <= self.deadline

    @property
    def ack_ms(self) -> float | None:
        return None if self.ack_at is None else (self.ack_at - self.sent_at) * 1000.0


@dataclass
class Reply:
    """A bot Web API call attributed to an event."""

    method: str
    at: float
    channel: str | None
    ts: str | None


@dataclass
class EventEntry:
    """The ledger line for one event."""

    event: Event
    created_at: float
    attempts: list[Attempt] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    #: no further attempt will be made (retries exhausted, acked, or not retryable)
    final: bool = False
    #: why delivery failed outright (no_connections, dispatch_failed, no_retry, subscription_disabled)
    failure: str | None = None
    #: the app asked for no retries (HTTP ``x-slack-no-retry: 1``)
    no_retry: bool = False

    @property
    def acked(self) -> bool:
        return any(a.in_time for a in self.attempts)

    @property
    def acked_late(self) -> bool:
        return any(a.acked and not a.in_time for a in self.attempts)

    def settled(self, now: float) -> bool:
        """Nothing more will happen to this event's delivery (replies may still arrive)."""
        if self.acked:
            return True
        return self.final and (not self.attempts or now > self.attempts[-1].deadline)

    def status(self, now: float) -> str:
        if self.acked:
            return "acked"
        if self.event.type != "events_api" and (
            self.failure or (self.attempts and now > self.attempts[0].deadline)
        ):
            return "lost"
        if self.settled(now):
            return "acked_late" if self.acked_late else "lost"
        return "pending"


@dataclass
class Scorecard:
    """What a bot lost, duplicated or acked late during a simulator run."""

    scenario: str
    duration_s: float
    events: int
    delivered: int
    acked: int
    acked_late: int
    lost: int
    pending: int
    processed: int
    processed_twice: int
    self_replies: int
    retries: int
    blackholed: int
    ack_p50_ms: float | None
    ack_p99_ms: float | None
    connections_opened: int
    connections_refused: int
    reconnect_gaps_ms: list[float]
    lost_by_type: dict[str, int]
    ledger: list[dict[str, Any]] = field(default_factory=list)
    #: retries Slack sent twice (``duplicate_share``)
    duplicate_sends: int = 0

    def to_dict(self, *, with_ledger: bool = True) -> dict[str, Any]:
        """JSON-ready dict (``--json``); the per-event ledger is included unless ``with_ledger`` is false."""
        data = asdict(self)
        if not with_ledger:
            data.pop("ledger")
        return data

    @property
    def clean(self) -> bool:
        """Nothing lost and nothing processed twice."""
        return self.lost == 0 and self.processed_twice == 0


class Ledger:
    """Every event, attempt, ack and reply, indexed for the engine and the Web API handlers."""

    def __init__(self) -> None:
        self.entries: dict[str, EventEntry] = {}
        self.by_envelope: dict[str, tuple[EventEntry, list[Attempt]]] = {}
        self.by_ts: dict[str, EventEntry] = {}
        #: ts of messages the bot posted -> the event that caused them (for chat.update attribution)
        self.bot_posts: dict[str, EventEntry | None] = {}
        self.connections_opened = 0
        self.connections_refused = 0
        self.unattributed_replies = 0

    def add(self, event: Event, now: float) -> EventEntry:
        entry = EventEntry(event=event, created_at=now)
        self.entries[event.event_id] = entry
        if event.ts and event.ts not in self.by_ts:
            # Slack sends an app_mention and a plain message for one mention with the same ts: attribute the
            # reply to the first of the pair, so answering either counts once and answering both counts twice.
            self.by_ts[event.ts] = entry
        return entry

    def add_attempt(self, entry: EventEntry, attempt: Attempt) -> None:
        entry.attempts.append(attempt)
        self.by_envelope.setdefault(attempt.envelope_id, (entry, []))[1].append(attempt)

    def attribute(self, method: str, now: float, *, channel: str | None, ts: str | None) -> EventEntry | None:
        """Attribute a bot reply to the event whose ts it names; return that event's entry (or ``None``)."""
        entry = self.by_ts.get(ts) if ts else None
        if entry is None:
            self.unattributed_replies += 1
            return None
        entry.replies.append(Reply(method=method, at=now, channel=channel, ts=ts))
        return entry

    def scorecard(self, now: float, *, scenario: str, duration_s: float, gaps_ms: list[float]) -> Scorecard:
        entries = list(self.entries.values())
        latencies = [a.ack_ms for e in entries for a in e.attempts if a.ack_ms is not None]
        statuses = {e.event.event_id: e.status(now) for e in entries}
        lost_by_type: dict[str, int] = {}
        for e in entries:
            if statuses[e.event.event_id] == "lost":
                lost_by_type[e.event.type] = lost_by_type.get(e.event.type, 0) + 1
        return Scorecard(
            scenario=scenario,
            duration_s=round(duration_s, 3),
            events=len(entries),
            delivered=sum(1 for e in entries if any(not a.blackhole for a in e.attempts)),
            acked=sum(1 for s in statuses.values() if s == "acked"),
            acked_late=sum(1 for e in entries if e.acked_late),
            lost=sum(1 for s in statuses.values() if s == "lost"),
            pending=sum(1 for s in statuses.values() if s == "pending"),
            processed=sum(1 for e in entries if e.replies),
            processed_twice=sum(1 for e in entries if len(e.replies) >= 2),
            self_replies=sum(len(e.replies) for e in entries if e.event.from_bot),
            retries=sum(1 for e in entries for a in e.attempts if a.number and not a.duplicate),
            blackholed=sum(1 for e in entries for a in e.attempts if a.blackhole),
            ack_p50_ms=_round(percentile(latencies, 50)),
            ack_p99_ms=_round(percentile(latencies, 99)),
            connections_opened=self.connections_opened,
            connections_refused=self.connections_refused,
            reconnect_gaps_ms=[round(g, 1) for g in gaps_ms],
            lost_by_type=lost_by_type,
            ledger=[_entry_dict(e, statuses[e.event.event_id]) for e in entries],
            duplicate_sends=sum(1 for e in entries for a in e.attempts if a.duplicate),
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _entry_dict(entry: EventEntry, status: str) -> dict[str, Any]:
    ev = entry.event
    return {
        "event_id": ev.event_id,
        "type": ev.type,
        "kind": ev.kind,
        "ts": ev.ts,
        "channel": ev.channel,
        "origin": ev.origin,
        "status": status,
        "failure": entry.failure,
        "attempts": [
            {
                "retry_attempt": a.number,
                "envelope_id": a.envelope_id,
                "conn": a.conn,
                "blackhole": a.blackhole,
                "ack_ms": _round(a.ack_ms),
                "ack_conn": a.ack_conn,
                "in_time": a.in_time if a.acked else None,
                "ack_error": a.ack_error,
                "fail_reason": a.fail_reason,
                "duplicate": a.duplicate,
            }
            for a in entry.attempts
        ],
        "replies": [{"method": r.method, "channel": r.channel} for r in entry.replies],
    }
