"""An LLM-style Slack bot on the slackops reference runtime: replies in thread after a slow (simulated) model call.

Run it against the built-in simulator (no Slack app needed)::

    slackops bot run examples.echo_llm_bot:handle --responder examples.echo_llm_bot:respond

or against Slack, with an app-level token (``connections:write``) and a bot token::

    SLACK_APP_TOKEN=xapp-... SLACK_BOT_TOKEN=xoxb-... slackops bot run examples.echo_llm_bot:handle

The runtime has already persisted and acked each event before ``handle`` runs, so the model call can take as
long as it needs: Slack will not retry it, a duplicate delivery never reaches here twice, and a deploy (SIGTERM)
or a crash does not lose it.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

from slackops.bot import Context

#: Simulated model latency in seconds (uniform between the two); set ECHO_LLM_MIN_S / ECHO_LLM_MAX_S.
LATENCY_S = (float(os.environ.get("ECHO_LLM_MIN_S", "0.5")), float(os.environ.get("ECHO_LLM_MAX_S", "2.0")))


async def fake_llm(prompt: str) -> str:
    """Stands in for a model API call: slow, and the reason acks must never wait for it."""
    await asyncio.sleep(random.uniform(*LATENCY_S))
    return f"You said: {prompt[:200]}" if prompt else "Done."


async def handle(ctx: Context) -> None:
    """Answer mentions, messages, button clicks and slash commands; ignore everything a bot should ignore."""
    if ctx.is_bot_message:
        return  # never answer bots, ourselves included: that is how self-loops start
    if ctx.info.subtype:
        return  # edits, joins, deletions: not a question
    if ctx.info.event_type == "message" and ctx.mentions_me:
        return  # Slack sends an @-mention twice (app_mention + message): answer the app_mention only
    if ctx.envelope.type == "events_api" and ctx.info.event_type not in {"message", "app_mention"}:
        return
    turns = ctx.state.get("turns", 0) + 1
    ctx.state["turns"] = turns  # thread -> conversation state, expires after an hour of silence
    started = time.monotonic()
    answer = await fake_llm(ctx.text)
    ctx.record(
        "llm",
        channel=ctx.info.channel,
        resource="fake-llm",
        latency_ms=round((time.monotonic() - started) * 1000, 1),
    )
    if ctx.envelope.type == "slash_commands":
        await ctx.respond(answer)  # via response_url: slash commands have no message to thread on
    elif ctx.info.channel and (ctx.info.ts or ctx.info.thread_ts):
        await ctx.reply(answer)


async def respond(ctx: Context) -> dict[str, str] | None:
    """Fast path: the immediate answer to a slash command, sent inside the ack (must take well under 3 s)."""
    if ctx.envelope.type == "slash_commands":
        return {"text": "Thinking…"}
    return None
