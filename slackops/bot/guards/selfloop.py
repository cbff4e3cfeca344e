"""The self-loop filter: never answer a bot's message, least of all our own.

Failure mode ``bot-self-loop`` (runbook ``bot-self-loop``): Slack delivers the bot's own ``chat.postMessage``
back to it as a ``message`` event (with ``bot_id``, and ``user`` = the bot user). A handler that answers every
message answers itself, one LLM call per turn, until something stops it. Two bots answering each other loop the
same way. This filter runs first in every handler that posts; :mod:`.ceiling` is the backstop for loops it
cannot see (another bot posting through a user token, say).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from slackops.bot.guards.base import Emit, Emitter, as_emitter

GUARD = "self_loop"


def loop_reason(
    event: Mapping[str, Any],
    *,
    bot_user_id: str | None = None,
    allow_bot_ids: Iterable[str] = (),
) -> str | None:
    """Why answering this inner ``event`` would risk a loop (``None``: it came from a person).

    Checks, in order: ``subtype = bot_message`` (integrations and legacy bots), a ``bot_id`` (every app's post,
    ours included), and ``user`` equal to our own bot user id (from ``auth.test``). Edits (``message_changed``)
    are judged by the edited message, so a bot editing its own reply does not wake the handler either.
    """
    inner = event.get("message") if isinstance(event.get("message"), Mapping) else event
    allowed = set(allow_bot_ids)
    for candidate in (event, inner):
        if candidate.get("subtype") == "bot_message" and candidate.get("bot_id") not in allowed:
            return "subtype=bot_message"
        bot_id = candidate.get("bot_id")
        if bot_id and bot_id not in allowed:
            return "bot_id"
        if bot_user_id and candidate.get("user") == bot_user_id:
            return "own_user"
    return None


class SelfLoopFilter:
    """:func:`loop_reason` with the bot's identity learned from ``auth.test``, emitting a record per skip.

    ``allow_bot_ids`` lists other bots whose messages you do want to handle (a CI bot announcing deploys); our
    own ``bot_id`` is never allowed.
    """

    def __init__(
        self,
        *,
        bot_user_id: str | None = None,
        bot_id: str | None = None,
        allow_bot_ids: Iterable[str] = (),
        emit: Emit | Emitter | None = None,
    ) -> None:
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.allow_bot_ids = frozenset(allow_bot_ids)
        self.emit = as_emitter(emit)

    def learn(self, auth_test: Mapping[str, Any]) -> None:
        """Take our ``user_id`` and ``bot_id`` from an ``auth.test`` response (a dict or slack-sdk response)."""
        self.bot_user_id = auth_test.get("user_id") or self.bot_user_id
        self.bot_id = auth_test.get("bot_id") or self.bot_id

    def admit(
        self, event: Mapping[str, Any], *, event_id: str | None = None, channel: str | None = None
    ) -> bool:
        """True when a handler may answer ``event``; otherwise emit a ``guard`` record and return False."""
        allowed = self.allow_bot_ids - {self.bot_id} if self.bot_id else self.allow_bot_ids
        reason = loop_reason(event, bot_user_id=self.bot_user_id, allow_bot_ids=allowed)
        if reason is None:
            return True
        self.emit.guard(GUARD, "skip", event_id=event_id, channel=channel or _channel(event), detail=reason)
        return False


def _channel(event: Mapping[str, Any]) -> str | None:
    channel = event.get("channel")
    return channel if isinstance(channel, str) else None
