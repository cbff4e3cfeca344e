"""The post ceiling: at most N bot posts per channel per window, whatever the handlers decide.

Failure mode ``bot-self-loop`` (runbook ``bot-self-loop``): the self-loop filter stops the loops it can
recognise; this backstop stops the rest (two bots answering each other through a path that carries no
``bot_id``, a handler bug that posts in a loop). A person cannot read more than a few messages a minute from one
bot anyway, so the default — 5 posts per channel per 60 s — costs nothing in normal use and caps a runaway loop
at 5 LLM-backed turns a minute.
"""

from __future__ import annotations

from slackops.bot.guards.base import Emit, Emitter
from slackops.bot.guards.window import ChannelQuota

GUARD = "post_ceiling"

#: Posts allowed per channel per window (failure-modes.md: bot-self-loop signature, "5 per 60 s").
DEFAULT_POSTS = 5
#: The window, seconds.
DEFAULT_WINDOW_S = 60.0


class PostCeiling(ChannelQuota):
    """Admit a post to ``channel`` while fewer than ``limit`` were admitted in the last ``window`` seconds."""

    GUARD = GUARD
    ACTION = "block"
    WHAT = "posts"

    def __init__(
        self,
        limit: int = DEFAULT_POSTS,
        window: float = DEFAULT_WINDOW_S,
        *,
        emit: Emit | Emitter | None = None,
    ) -> None:
        super().__init__(limit, window, emit=emit)
