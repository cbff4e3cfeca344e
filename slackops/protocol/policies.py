"""Timing rules of Socket Mode as pure functions of time: the ack deadline, reconnect backoff, liveness.

Nothing here reads a clock or sleeps: callers pass ``now`` (a monotonic reading in seconds) and, for jitter,
a random source. That keeps every rule testable to the millisecond without waiting.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

#: Slack retries an unacked events_api envelope after 3 s (and fails interactive/slash ones).
ACK_DEADLINE_S = 3.0


@dataclass(frozen=True, slots=True)
class AckDeadline:
    """The 3-second ack rule, with an optional safety margin for alerting before the hard deadline."""

    deadline_s: float = ACK_DEADLINE_S

    def due_at(self, received_at: float) -> float:
        """When Slack gives up on this delivery attempt."""
        return received_at + self.deadline_s

    def remaining(self, received_at: float, now: float) -> float:
        """Seconds left before the deadline (negative once missed)."""
        return self.due_at(received_at) - now

    def is_late(self, received_at: float, acked_at: float) -> bool:
        # Measured on the client; the server's clock also counts network time, so treat the deadline as
        # an upper bound and keep acks far below it (the reference bot aims for milliseconds).
        return acked_at - received_at > self.deadline_s


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect backoff with *full jitter* (delay uniform in [0, min(cap, base * 2**attempt)]).

    Full jitter spreads replicas that lost their sockets together, so they do not hammer
    ``apps.connections.open`` (Tier 1: about one call a minute tolerated in bursts) in lockstep.
    A server ``Retry-After`` is a floor: we never come back earlier than Slack asked, and add a little jitter on
    top so a herd told the same Retry-After does not return in the same millisecond.
    """

    base_s: float = 1.0
    cap_s: float = 60.0
    #: extra random spread added after a Retry-After floor
    retry_after_jitter_s: float = 1.0

    def delay(
        self,
        attempt: int,
        *,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait before reconnect ``attempt`` (0 for the first retry after a failure)."""
        ceiling = min(self.cap_s, self.base_s * (2 ** max(0, min(attempt, 30))))
        jittered = rand() * ceiling
        if retry_after is not None and retry_after > 0:
            return max(retry_after + rand() * self.retry_after_jitter_s, jittered)
        return jittered


@dataclass(frozen=True, slots=True)
class LivenessPolicy:
    """How a connection is judged alive: by the transport, never by how long since the last business event.

    A quiet workspace can go hours without an event on a perfectly healthy socket; judging by events reconnects
    healthy sockets (the stale-watchdog failure). Instead:

    - we ping every ``ping_interval_s`` and expect a pong within ``pong_timeout_s`` of the oldest unanswered ping;
    - Slack pings us (every 10-30 s observed); none for ``server_ping_timeout_s`` is a second, independent signal
      (only armed after the first server ping, as Slack's own node client does, so a server that never pings is
      not declared dead by this rule);
    - the socket is declared dead only after it has been *continuously* unhealthy for ``unhealthy_after_s``,
      so one late pong on a congested link does not trigger a reconnect.
    """

    ping_interval_s: float = 10.0
    pong_timeout_s: float = 15.0
    server_ping_timeout_s: float = 60.0
    unhealthy_after_s: float = 5.0


@dataclass(slots=True)
class Liveness:
    """Liveness state of one socket, updated with readings of a monotonic clock."""

    policy: LivenessPolicy
    opened_at: float
    last_ping_sent_at: float | None = None
    #: send time of the oldest ping still waiting for its pong
    oldest_unanswered_ping_at: float | None = None
    last_pong_at: float | None = None
    last_server_ping_at: float | None = None
    unhealthy_since: float | None = None

    def ping_due(self, now: float) -> bool:
        last = self.last_ping_sent_at if self.last_ping_sent_at is not None else self.opened_at
        return now - last >= self.policy.ping_interval_s

    def next_ping_at(self) -> float:
        last = self.last_ping_sent_at if self.last_ping_sent_at is not None else self.opened_at
        return last + self.policy.ping_interval_s

    def ping_sent(self, now: float) -> None:
        self.last_ping_sent_at = now
        if self.oldest_unanswered_ping_at is None:
            self.oldest_unanswered_ping_at = now

    def pong_received(self, now: float) -> None:
        self.last_pong_at = now
        self.oldest_unanswered_ping_at = None

    def server_ping_received(self, now: float) -> None:
        self.last_server_ping_at = now

    def problem(self, now: float) -> tuple[str, float] | None:
        """The rule broken right now and when it started being broken, or ``None`` when healthy."""
        waiting = self.oldest_unanswered_ping_at
        if waiting is not None and now - waiting > self.policy.pong_timeout_s:
            return "pong_timeout", waiting + self.policy.pong_timeout_s
        last_ping = self.last_server_ping_at
        if last_ping is not None and now - last_ping > self.policy.server_ping_timeout_s:
            return "server_ping_timeout", last_ping + self.policy.server_ping_timeout_s
        return None

    def verdict(self, now: float) -> str | None:
        """The reason to give up on this socket, once it has been unhealthy long enough; else ``None``.

        "Unhealthy since" is when the broken rule started to be broken, not when a tick noticed it, so the
        verdict does not depend on how often the caller ticks.
        """
        problem = self.problem(now)
        if problem is None:
            self.unhealthy_since = None
            return None
        reason, since = problem
        if self.unhealthy_since is None or since < self.unhealthy_since:
            self.unhealthy_since = since
        if now - self.unhealthy_since >= self.policy.unhealthy_after_s:
            return reason
        return None

    def silent_for(self, now: float) -> float:
        """Seconds since the last sign of life from the peer (pong, server ping, or the open)."""
        signs = [t for t in (self.last_pong_at, self.last_server_ping_at, self.opened_at) if t is not None]
        return now - max(signs)
