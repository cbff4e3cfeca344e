"""Backpressure: what to do with a new envelope when handler work has fallen behind the socket.

The work queue is on disk, so its depth is bounded by what the operator tolerates (event age, memory of the
dispatcher), not by RAM. Three answers, chosen per *event class* and current depth:

- ``accept``: persist and ack as usual.
- ``shed``: ack it and drop it, with a ``process``/``queue`` record saying what was shed (never silently). Only
  for classes marked low priority (reactions, edits, ambient channel chatter …).
- ``block``: hold the socket reader until the queue drains below the hard limit, bounded by ``block_timeout_s``
  (well under Slack's 3 s ack deadline), then accept anyway. Blocking the reader delays acks of *every*
  envelope on that socket — a last resort, used only for high-priority classes above the hard limit.

Interactive and slash-command envelopes are never shed: Slack does not retry them and the user is waiting.
Readiness (``/readyz``) turns false above the soft limit, so a load balancer or an operator sees the pressure
before anything is shed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from slackops.protocol import Envelope


class Action(enum.StrEnum):
    """The backpressure decision for one envelope."""

    ACCEPT = "accept"
    SHED = "shed"
    BLOCK = "block"


#: Classes that are never shed: a person is waiting on them (and Slack never retries interactive/slash).
NEVER_SHED = frozenset({"interactive", "slash_commands", "events_api:app_mention", "events_api:message.im"})

#: Default low-priority classes: shed first when the queue is above the soft limit.
DEFAULT_LOW = frozenset(
    {
        "events_api:reaction_added",
        "events_api:reaction_removed",
        "events_api:message_changed",
        "events_api:message_deleted",
        "events_api:user_typing",
        "events_api:user_change",
        "events_api:member_joined_channel",
        "events_api:member_left_channel",
        "events_api:app_home_opened",
        "events_api:bot_message",
    }
)


def classify(env: Envelope) -> str:
    """The event class of ``env``: ``interactive``, ``slash_commands`` or ``events_api:<type>``.

    Message subtypes count as their own class (``events_api:message_changed``, ``events_api:bot_message``)
    because they are the usual candidates to shed; a direct message is ``events_api:message.im``.
    """
    if env.type != "events_api":
        return env.type
    ev = env.event
    if ev.event_type == "message":
        if ev.subtype:
            return f"events_api:{ev.subtype}"
        if ev.channel and ev.channel.startswith("D"):
            return "events_api:message.im"
    return f"events_api:{ev.event_type or 'unknown'}"


@dataclass(frozen=True)
class BackpressurePolicy:
    """Limits on queued-but-unfinished work and the per-class answer above them.

    - below ``soft_limit``: accept everything;
    - from ``soft_limit``: shed ``low`` classes, accept the rest (and report not-ready);
    - from ``hard_limit``: shed ``low`` and ``normal`` classes; block the reader for high-priority classes
      (``NEVER_SHED``) up to ``block_timeout_s``, then accept.
    """

    soft_limit: int = 1000
    hard_limit: int = 5000
    low: frozenset[str] = field(default=DEFAULT_LOW)
    block_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.soft_limit <= self.hard_limit:
            raise ValueError("backpressure limits need 0 < soft_limit <= hard_limit")
        if not 0 <= self.block_timeout_s < 3.0:
            raise ValueError("block_timeout_s must stay under Slack's 3 s ack deadline")

    @classmethod
    def with_low(cls, classes: Iterable[str], **kwargs: float) -> BackpressurePolicy:
        """A policy whose low-priority classes are ``classes`` (never including the never-shed ones)."""
        return cls(low=frozenset(classes) - NEVER_SHED, **kwargs)  # type: ignore[arg-type]

    def decide(self, event_class: str, depth: int) -> Action:
        """The action for an envelope of ``event_class`` arriving with ``depth`` items unfinished."""
        if depth < self.soft_limit:
            return Action.ACCEPT
        if event_class in NEVER_SHED:
            return Action.BLOCK if depth >= self.hard_limit else Action.ACCEPT
        if event_class in self.low or depth >= self.hard_limit:
            return Action.SHED
        return Action.ACCEPT

    def ready(self, depth: int) -> bool:
        """Is the bot keeping up (the ``/readyz`` answer, as far as the queue is concerned)?"""
        return depth < self.soft_limit
