"""The Socket Mode connection state machine, sans I/O.

One :class:`Session` per WebSocket. The transport feeds it what arrived (text, binary, control pings and pongs,
the end of the connection) together with ``now`` from a monotonic clock, and calls :meth:`Session.tick`
periodically. Every call returns a list of events: things that happened (:class:`Opened`,
:class:`EnvelopeReceived`, :class:`LivenessLost` ...) and frames to send (:class:`SendText`, :class:`SendPing`,
:class:`SendPong`, :class:`SendClose`). The session never touches a socket, a clock or an event loop, so the same
code serves the watch probe, the reference bot and the tests.

States::

    CONNECTING --hello--> OPEN --disconnect frame / drain()--> DRAINING --connection closed--> CLOSED
         \\--disconnect (too_many_websockets instead of hello)--> DRAINING                ^
          \\-------------------------- connection closed (any state) ----------------------/

A DRAINING socket still delivers envelopes already in flight and still accepts acks: Slack may have routed an
envelope to it just before it sent ``disconnect``, and that envelope is lost unless someone acks it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from slackops.protocol.frames import (
    Disconnect,
    Envelope,
    FrameError,
    Hello,
    UnknownFrame,
    build_ack,
    parse_frame,
)
from slackops.protocol.policies import AckDeadline, Liveness, LivenessPolicy


class State(enum.StrEnum):
    CONNECTING = "connecting"
    OPEN = "open"
    DRAINING = "draining"
    CLOSED = "closed"


# ---- events: what happened -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Opened:
    """``hello`` arrived: the socket is registered and will receive envelopes."""

    hello: Hello


@dataclass(frozen=True, slots=True)
class EnvelopeReceived:
    envelope: Envelope
    received_at: float


@dataclass(frozen=True, slots=True)
class DisconnectRequested:
    """Slack sent ``disconnect``: open a replacement (for refreshes) and drain this socket."""

    disconnect: Disconnect
    #: True when it came before ``hello`` (e.g. ``too_many_websockets``: this socket was refused)
    before_hello: bool


@dataclass(frozen=True, slots=True)
class Unrecognized:
    """A well-formed frame of a type Socket Mode does not document (kept for the record)."""

    frame: UnknownFrame


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """A frame that could not be parsed. The session stays usable."""

    error: FrameError


@dataclass(frozen=True, slots=True)
class ServerPingReceived:
    payload: bytes


@dataclass(frozen=True, slots=True)
class PongReceived:
    payload: bytes
    #: round trip of our ping, or ``None`` for a pong we did not ask for
    rtt_ms: float | None


@dataclass(frozen=True, slots=True)
class LivenessLost:
    """The socket has been unhealthy past the policy's threshold: replace it. Reported once per session."""

    reason: str
    silent_for_s: float


@dataclass(frozen=True, slots=True)
class AckOverdue:
    """An envelope received here was not acked within the deadline; Slack has retried or failed it."""

    envelope_id: str
    age_s: float


@dataclass(frozen=True, slots=True)
class AckSent:
    envelope_id: str
    #: receipt -> ack on this session's clock, ``None`` when the envelope arrived on another socket
    ack_ms: float | None
    late: bool


@dataclass(frozen=True, slots=True)
class AckFailed:
    """The ack could not be sent on this socket (it is closed): send it on another one, quickly."""

    envelope_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Closed:
    code: int | None
    reason: str
    #: ``client`` (we closed first), ``server`` (they sent a close frame first), ``network`` (no close frame)
    by: str
    #: a close frame went both ways
    clean: bool


# ---- events: what to send ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendText:
    data: str


@dataclass(frozen=True, slots=True)
class SendPing:
    payload: bytes


@dataclass(frozen=True, slots=True)
class SendPong:
    payload: bytes


@dataclass(frozen=True, slots=True)
class SendClose:
    code: int
    reason: str


Event = (
    Opened
    | EnvelopeReceived
    | DisconnectRequested
    | Unrecognized
    | ProtocolError
    | ServerPingReceived
    | PongReceived
    | LivenessLost
    | AckOverdue
    | AckSent
    | AckFailed
    | Closed
    | SendText
    | SendPing
    | SendPong
    | SendClose
)


@dataclass
class Session:
    """State of one Socket Mode WebSocket. See the module docstring for the life cycle."""

    conn_id: str
    created_at: float
    liveness_policy: LivenessPolicy = field(default_factory=LivenessPolicy)
    deadline: AckDeadline = field(default_factory=AckDeadline)

    state: State = State.CONNECTING
    hello: Hello | None = None
    opened_at: float | None = None
    disconnect: Disconnect | None = None
    #: envelope_id -> monotonic receipt time, for envelopes received here and not yet acked
    pending: dict[str, float] = field(default_factory=dict)
    envelopes_received: int = 0
    acks_sent: int = 0

    def __post_init__(self) -> None:
        self.liveness = Liveness(self.liveness_policy, opened_at=self.created_at)
        self._ping_seq = 0
        self._pings: dict[bytes, float] = {}
        self._overdue_reported: set[str] = set()
        self._liveness_reported = False
        self._close_sent = False
        self._close_received = False

    # -- receiving ------------------------------------------------------------------------------------------

    def receive_text(self, data: str, now: float) -> list[Event]:
        """A TEXT frame arrived."""
        if self.state is State.CLOSED:
            return []
        frame = parse_frame(data)
        if isinstance(frame, Envelope):
            self.envelopes_received += 1
            # Re-deliveries with the same envelope_id keep the first receipt time: the deadline started then.
            self.pending.setdefault(frame.envelope_id, now)
            return [EnvelopeReceived(frame, now)]
        if isinstance(frame, Hello):
            if self.state is State.CONNECTING:
                self.state = State.OPEN
                self.opened_at = now
            self.hello = frame
            return [Opened(frame)]
        if isinstance(frame, Disconnect):
            before_hello = self.hello is None
            self.disconnect = frame
            self.state = State.DRAINING
            return [DisconnectRequested(frame, before_hello)]
        if isinstance(frame, FrameError):
            return [ProtocolError(frame)]
        return [Unrecognized(frame)]

    def receive_binary(self, data: bytes, now: float) -> list[Event]:
        """A BINARY frame arrived. Slack never sends these; report and carry on."""
        if self.state is State.CLOSED:
            return []
        frame = parse_frame(bytes(data))
        assert isinstance(frame, FrameError)
        return [ProtocolError(frame)]

    def receive_ping(self, payload: bytes, now: float) -> list[Event]:
        """Slack's control PING (``Ping from <host>``). Answer with a PONG echoing the payload.

        Transports whose WebSocket library already answers pings may drop the :class:`SendPong`.
        """
        if self.state is State.CLOSED:
            return []
        self.liveness.server_ping_received(now)
        return [ServerPingReceived(payload), SendPong(payload)]

    def receive_pong(self, payload: bytes, now: float) -> list[Event]:
        """A PONG arrived. Slack echoes our ping payload, which is how we time the round trip."""
        if self.state is State.CLOSED:
            return []
        sent_at = self._pings.pop(payload, None)
        if sent_at is None:
            # Unsolicited, or for a ping we no longer track: still a sign of life.
            self.liveness.pong_received(now)
            return [PongReceived(payload, None)]
        # A pong answers its ping and every older one (RFC 6455 allows answering only the latest).
        for key, t in list(self._pings.items()):
            if t <= sent_at:
                del self._pings[key]
        self.liveness.pong_received(now)
        return [PongReceived(payload, (now - sent_at) * 1000.0)]

    def connection_closed(self, now: float, code: int | None = None, reason: str = "") -> list[Event]:
        """The connection is gone. ``code`` is the peer's close code, ``None`` when no close frame came."""
        if self.state is State.CLOSED:
            return []
        self.state = State.CLOSED
        got_frame = code is not None and code != 1006
        if self._close_sent:
            by = "client"
        elif got_frame:
            by = "server"
        else:
            by = "network"
        # A close frame arrived, so the closing handshake happened (we reply to theirs, they replied to ours).
        clean = got_frame
        return [Closed(code, reason, by, clean)]

    def close_received(self, code: int, reason: str, now: float) -> list[Event]:
        """The peer sent a close frame; reply with ours (the transport usually does this for us)."""
        if self.state is State.CLOSED:
            return []
        self._close_received = True
        if self._close_sent:
            return []
        return [SendClose(code, reason)]

    # -- acting ---------------------------------------------------------------------------------------------

    def ack(self, envelope_id: str, now: float, payload: dict[str, Any] | str | None = None) -> list[Event]:
        """Ack ``envelope_id`` on this socket.

        Acks for envelopes that arrived on another socket are allowed (slack-sdk acks on its newest socket after
        a make-before-break switch, and Slack accepts them); their latency is unknown here.
        """
        if self.state is State.CLOSED or self._close_sent:
            return [AckFailed(envelope_id, "socket closed")]
        received_at = self.pending.pop(envelope_id, None)
        self.acks_sent += 1
        ack_ms = None if received_at is None else (now - received_at) * 1000.0
        late = received_at is not None and self.deadline.is_late(received_at, now)
        return [SendText(build_ack(envelope_id, payload)), AckSent(envelope_id, ack_ms, late)]

    def drain(self, now: float) -> list[Event]:
        """Stop treating this socket as the live one (a replacement is up). Envelopes still arriving are
        delivered; close it once in-flight acks are out."""
        if self.state in (State.CONNECTING, State.OPEN):
            self.state = State.DRAINING
        return []

    def close(self, now: float, code: int = 1000, reason: str = "") -> list[Event]:
        """Start a clean close: send a close frame. :meth:`connection_closed` completes it."""
        if self.state is State.CLOSED or self._close_sent:
            return []
        self._close_sent = True
        if self.state is not State.DRAINING:
            self.state = State.DRAINING
        return [SendClose(code, reason)]

    def tick(self, now: float) -> list[Event]:
        """Time passed: send a ping if due, report overdue acks and lost liveness."""
        if self.state is State.CLOSED:
            return []
        events: list[Event] = []
        if self.liveness.ping_due(now) and not self._close_sent:
            self._ping_seq += 1
            payload = f"slackops:{self.conn_id}:{self._ping_seq}".encode()
            self._pings[payload] = now
            self.liveness.ping_sent(now)
            events.append(SendPing(payload))
        for envelope_id, received_at in self.pending.items():
            if envelope_id not in self._overdue_reported and now > self.deadline.due_at(received_at):
                self._overdue_reported.add(envelope_id)
                events.append(AckOverdue(envelope_id, now - received_at))
        if not self._liveness_reported:
            verdict = self.liveness.verdict(now)
            if verdict is not None:
                self._liveness_reported = True
                events.append(LivenessLost(verdict, self.liveness.silent_for(now)))
        return events

    def next_deadline(self) -> float:
        """The next ``now`` at which :meth:`tick` has something to do (for an event loop's timer)."""
        candidates = [self.liveness.next_ping_at()]
        candidates.extend(
            self.deadline.due_at(t) for e, t in self.pending.items() if e not in self._overdue_reported
        )
        waiting = self.liveness.oldest_unanswered_ping_at
        if waiting is not None and not self._liveness_reported:
            policy = self.liveness_policy
            candidates.append(waiting + policy.pong_timeout_s + policy.unhealthy_after_s)
        return min(candidates)

    @property
    def is_live(self) -> bool:
        """Registered with Slack and expected to receive envelopes."""
        return self.state is State.OPEN
