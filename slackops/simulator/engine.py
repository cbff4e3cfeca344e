"""The delivery engine: routing, the 3 s ack deadline and Events API retries. Pure: every call takes ``now``.

Slack's rules, as the engine applies them (sources in shared/reference/socket-mode.md §2.5 and §4):

- Each delivery attempt is routed independently to **one** registered connection, ghosts included ("each
  payload may be sent to *any* of the connections"). An attempt routed to a ghost or half-open socket is
  black-holed: only the deadline notices.
- The app must ack within **3 s** (``{"envelope_id": ...}`` on the socket). Only the first ack per envelope counts.
  By default an ack is accepted on any connection of the app: the SDKs ack on their *current* socket, which after a
  make-before-break reconnect is not the one that carried the envelope.
- An ``events_api`` envelope not acked in time is retried with ``retry_attempt`` n+1 and ``retry_reason``
  ``"timeout"``: first right after the deadline, then +1 min, then +5 min, then Slack gives up. Each retry is a
  new attempt, with a fresh ``envelope_id`` by default (evidence conflicts; a switch reuses the first id).
- ``interactive`` and ``slash_commands`` are never retried: not acked in time means the user saw
  ``dispatch_failed``. With no connection at all they fail at once; events_api attempts then go nowhere and wait
  for their retries.

The engine never sleeps and never touches a socket: :meth:`submit`, :meth:`tick` and :meth:`ack` return what the
server must send, and update the :class:`~slackops.simulator.ledger.Ledger`.
"""

from __future__ import annotations

import heapq
import random
import uuid
from dataclasses import dataclass
from typing import Any

from slackops.simulator.ledger import Attempt, Event, EventEntry, Ledger
from slackops.simulator.registry import Registry


@dataclass(frozen=True)
class EngineSettings:
    """Delivery rules. Durations are monotonic seconds (already scaled)."""

    ack_deadline: float = 3.0
    #: delay of retry n after the previous attempt's deadline; its length is the retry budget
    retry_delays: tuple[float, ...] = (0.0, 60.0, 300.0)
    routing: str = "random"
    ack_any_connection: bool = True
    new_envelope_id_per_attempt: bool = True
    #: chance (0..1) that a retry is sent twice, each copy routed on its own
    duplicate_share: float = 0.0
    #: retry_reason of a retry after a missed deadline ("timeout" on sockets; "http_timeout" over HTTP)
    timeout_reason: str = "timeout"


@dataclass(frozen=True)
class Send:
    """Write ``frame`` to socket ``conn`` (``blackhole``: the registration cannot receive it; write nothing)."""

    conn: str | None
    frame: dict[str, Any]
    entry: EventEntry
    attempt: Attempt

    @property
    def blackhole(self) -> bool:
        return self.attempt.blackhole


@dataclass(frozen=True)
class AckResult:
    """What an ack frame meant."""

    envelope_id: str
    entry: EventEntry | None = None
    attempt: Attempt | None = None
    in_time: bool = False
    ack_ms: float | None = None
    #: unknown_envelope, duplicate_ack, wrong_connection, or a payload problem (invalid_response_action ...)
    error: str | None = None

    @property
    def counted(self) -> bool:
        """This ack settled an attempt (it was neither unknown, a duplicate nor refused)."""
        return self.attempt is not None and self.error not in (
            "duplicate_ack",
            "wrong_connection",
            "unknown_envelope",
        )


class DeliveryEngine:
    """Routes attempts, enforces the ack deadline and schedules retries."""

    def __init__(
        self,
        settings: EngineSettings,
        ledger: Ledger,
        registry: Registry,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.registry = registry
        self.rng = rng or random.Random()
        self._seq = 0
        self._rr = 0
        # (deadline, seq, event_id, index in entry.attempts): attempts waiting for their ack deadline
        self._deadlines: list[tuple[float, int, str, int]] = []
        # (due, seq, event_id): retries waiting to be sent
        self._retries: list[tuple[float, int, str]] = []
        #: (entry, reason) for deliveries that failed for good, for the server to report: no_connections,
        #: dispatch_failed (interactive/slash not acked in time), retries_exhausted (events_api)
        self.failures: list[tuple[EventEntry, str]] = []

    # -- inputs ----------------------------------------------------------------------------------------------

    def submit(self, event: Event, now: float) -> list[Send]:
        """A new event: record it and send its first attempt."""
        entry = self.ledger.add(event, now)
        return self._attempt(entry, now)

    def tick(self, now: float) -> list[Send]:
        """Expire deadlines and send retries that are due."""
        while self._deadlines and self._deadlines[0][0] < now:
            _deadline, _seq, event_id, index = heapq.heappop(self._deadlines)
            self._expired(self.ledger.entries[event_id], index, now)
        sends: list[Send] = []
        while self._retries and self._retries[0][0] <= now:
            _due, _seq, event_id = heapq.heappop(self._retries)
            sends.extend(self._attempt(self.ledger.entries[event_id], now))
        return sends

    def ack(self, envelope_id: str, conn: str, now: float, payload: Any = None) -> AckResult:
        """An ack frame arrived on ``conn``. Only the first ack per envelope counts."""
        found = self.ledger.by_envelope.get(envelope_id)
        if found is None:
            return AckResult(envelope_id, error="unknown_envelope")
        entry, attempts = found
        # With reused envelope ids several attempts share one id: the ack answers the newest one not yet acked.
        open_attempts = [a for a in attempts if not a.acked]
        if not open_attempts:
            return AckResult(envelope_id, entry=entry, attempt=attempts[-1], error="duplicate_ack")
        attempt = open_attempts[-1]
        if not self.settings.ack_any_connection and conn != attempt.conn:
            return AckResult(envelope_id, entry=entry, attempt=attempt, error="wrong_connection")
        attempt.ack_at = now
        attempt.ack_conn = conn
        attempt.ack_error = check_ack_payload(entry.event, payload)
        if attempt.in_time:
            entry.final = True
            _retire(entry)
        return AckResult(
            envelope_id,
            entry=entry,
            attempt=attempt,
            in_time=attempt.in_time,
            ack_ms=attempt.ack_ms,
            error=attempt.ack_error,
        )

    def fail(self, envelope_id: str, reason: str, now: float, *, no_retry: bool = False) -> EventEntry | None:
        """An attempt failed before its deadline (HTTP mode: an error status, a refused connection ...).

        The retry still goes out after the deadline, carrying ``reason`` as its retry_reason; ``no_retry`` (the
        app answered ``x-slack-no-retry: 1``) ends the event's retries.
        """
        found = self.ledger.by_envelope.get(envelope_id)
        if found is None:
            return None
        entry, attempts = found
        attempts[-1].fail_reason = reason
        if no_retry:
            entry.no_retry = True
            entry.failure = "no_retry"
        return entry

    # -- queries ---------------------------------------------------------------------------------------------

    def next_due(self) -> float | None:
        times = [self._deadlines[0][0]] if self._deadlines else []
        if self._retries:
            times.append(self._retries[0][0])
        return min(times) if times else None

    def settled(self, now: float) -> bool:
        """Every event is acked, lost or retried out (nothing is waiting on a deadline or a retry)."""
        return all(e.settled(now) for e in self.ledger.entries.values())

    # -- internals -------------------------------------------------------------------------------------------

    def _attempt(self, entry: EventEntry, now: float) -> list[Send]:
        event = entry.event
        number = entry.attempts[-1].number + 1 if entry.attempts else 0
        targets = self.registry.routable(now)
        if not targets and event.type != "events_api":
            # Interactive payloads and slash commands with nowhere to go fail at once ("dispatch_failed").
            entry.final = True
            entry.failure = "no_connections"
            self.failures.append((entry, "no_connections"))
            return []
        sends = [self._send(entry, number, targets, now, duplicate=False)]
        if event.type == "events_api" and number > 0 and self.rng.random() < self.settings.duplicate_share:
            # python-slack-events-api#93 logged attempts 0,1,2,2,3,3: Slack sometimes sends a retry twice.
            sends.append(self._send(entry, number, targets, now, duplicate=True))
        if event.type != "events_api":
            entry.final = True  # never retried, whatever happens next
        return sends

    def _send(self, entry: EventEntry, number: int, targets: list, now: float, *, duplicate: bool) -> Send:
        event = entry.event
        target = self._route(targets) if targets else None
        if not entry.attempts or self.settings.new_envelope_id_per_attempt:
            envelope_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        else:
            envelope_id = entry.attempts[0].envelope_id
        reason = self._retry_reason(entry.attempts[-1]) if number else ""
        attempt = Attempt(
            number=number,
            envelope_id=envelope_id,
            conn=target.id if target else None,
            sent_at=now,
            deadline=now + self.settings.ack_deadline,
            blackhole=target is None or target.blackhole,
            duplicate=duplicate,
        )
        self.ledger.add_attempt(entry, attempt)
        self._seq += 1
        heapq.heappush(
            self._deadlines, (attempt.deadline, self._seq, event.event_id, len(entry.attempts) - 1)
        )
        frame: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": event.payload,
            "type": event.type,
            "accepts_response_payload": event.accepts_response_payload,
        }
        if event.type == "events_api":
            frame["retry_attempt"] = number
            frame["retry_reason"] = reason
        return Send(conn=attempt.conn, frame=frame, entry=entry, attempt=attempt)

    def _retry_reason(self, previous: Attempt) -> str:
        return previous.fail_reason or self.settings.timeout_reason

    def _route(self, targets: list) -> Any:
        if self.settings.routing == "round_robin":
            target = targets[self._rr % len(targets)]
            self._rr += 1
            return target
        return self.rng.choice(targets)

    def _expired(self, entry: EventEntry, index: int, now: float) -> None:
        attempt = entry.attempts[index]
        number = attempt.number
        if attempt.in_time or entry.acked:
            return
        if entry.event.type != "events_api":
            entry.failure = "dispatch_failed"
            self.failures.append((entry, "dispatch_failed"))
            return
        if index != len(entry.attempts) - 1:
            return  # a newer attempt (or this one's duplicate) is already out
        if number < len(self.settings.retry_delays) and not entry.no_retry:
            self._seq += 1
            heapq.heappush(
                self._retries,
                (attempt.deadline + self.settings.retry_delays[number], self._seq, entry.event.event_id),
            )
        else:
            entry.final = True
            _retire(entry)
            if not entry.acked_late:
                self.failures.append((entry, "no_retry" if entry.no_retry else "retries_exhausted"))


def _retire(entry: EventEntry) -> None:
    """No attempt will follow: drop the payload so a long run's ledger stays small (frames already hold it)."""
    entry.event.payload = {}


def check_ack_payload(event: Event, payload: Any) -> str | None:
    """Problems with an ack's response payload, as a short code (``None`` = fine or nothing to check).

    Slack ignores a payload when ``accepts_response_payload`` is false; where it reads one, a view_submission
    answer needs a valid ``response_action``, a block_suggestion answer needs ``options``, and a slash command
    answer needs a message body.
    """
    if payload in (None, {}, ""):
        return None
    if not event.accepts_response_payload:
        return "payload_ignored"
    if not isinstance(payload, dict):
        return "invalid_payload"
    if event.kind == "view_submission":
        action = payload.get("response_action")
        if action not in ("update", "push", "clear", "errors"):
            return "invalid_response_action"
    elif event.kind == "block_suggestion":
        if "options" not in payload and "option_groups" not in payload:
            return "missing_options"
    elif event.type == "slash_commands" and not any(k in payload for k in ("text", "blocks", "attachments")):
        return "missing_message_body"
    return None
