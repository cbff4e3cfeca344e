"""``slackops.bot``: the reference Socket Mode bot runtime, one small guard per failure mode.

::

    from slackops.bot import Bot, BotConfig

    async def handle(ctx):                      # runs after the envelope was persisted and acked
        if ctx.is_bot_message:
            return
        await ctx.reply(f"you said: {ctx.text}")

    asyncio.run(Bot(BotConfig(app_token=..., bot_token=...), handle).serve())   # until SIGTERM

or from the shell: ``slackops bot run mymodule:handle``. The pieces, each usable alone:

=====================  =================================================================================
:mod:`.queue`          durable SQLite (WAL) work queue: persist before ack, orphan re-dispatch on start
:mod:`.dedup`          ``DedupStore`` protocol; atomic insert-if-absent on event_id with a TTL >= 10 min
:mod:`.redis_backend`  several replicas: shared dedup + Redis Streams work queue, reclaim of dead replicas' work
:mod:`.dispatcher`     bounded-concurrency handler runs, bounded retries, drain with a deadline
:mod:`.backpressure`   per-event-class accept / shed / block above soft and hard queue limits
:mod:`.ordering`       optional per-channel/thread resequencing on event_ts with a hold window
:mod:`.shutdown`       SIGTERM/SIGINT: stop receiving, drain, requeue
:mod:`.handler`        the :class:`Context` a handler receives (text, reply/say/respond, state, records)
:mod:`.webapi`         slack-sdk ``AsyncWebClient`` with its retry handlers on, recording every call
:mod:`.conversation`   thread -> state with a TTL
:mod:`.metrics`        Prometheus ``/metrics``, ``/healthz``, ``/readyz``
:mod:`.app`            :class:`Bot` wiring it together on :class:`slackops.transport.ConnectionManager`
=====================  =================================================================================

Names are imported lazily so ``import slackops.bot.dedup`` does not pull in aiohttp or prometheus-client.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Bot": "slackops.bot.app",
    "BotConfig": "slackops.bot.app",
    "load_app": "slackops.bot.app",
    "run": "slackops.bot.app",
    "Context": "slackops.bot.handler",
    "WorkQueue": "slackops.bot.queue",
    "WorkItem": "slackops.bot.queue",
    "DedupStore": "slackops.bot.dedup",
    "SqliteDedupStore": "slackops.bot.dedup",
    "MemoryDedupStore": "slackops.bot.dedup",
    "RedisWorkQueue": "slackops.bot.redis_backend",
    "RedisDedupStore": "slackops.bot.redis_backend",
    "BackpressurePolicy": "slackops.bot.backpressure",
    "Resequencer": "slackops.bot.ordering",
    "ConversationStore": "slackops.bot.conversation",
    "Dispatcher": "slackops.bot.dispatcher",
    "make_web_client": "slackops.bot.webapi",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'slackops.bot' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
