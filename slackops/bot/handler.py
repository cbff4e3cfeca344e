"""What a handler receives: :class:`Context`, one per run of a queued envelope.

A handler is ``async def handle(ctx: Context) -> None`` (a plain function also works; it runs in a worker
thread). It runs *after* the envelope was persisted and acked, so it may take as long as it needs — an LLM call,
a slow API — without Slack retrying the event.

Handlers may run more than once for the same event in one case: the process died mid-handler (kill -9, OOM)
and the event was re-dispatched on start (``ctx.redelivered``). :meth:`Context.reply` and :meth:`Context.say`
remember which posts already went out for this event and skip them on a re-run, so the user does not get the
answer twice. (The remaining window is a crash between Slack accepting the post and our note of it.)

A *responder* (``async def respond(ctx) -> dict | str | None``) is the fast path for envelopes that accept a
response payload (slash commands, ``view_submission``, ``block_suggestion``): its return value goes into the ack,
so it must answer well inside Slack's 3 s; see :mod:`slackops.bot.app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from slackops import records
from slackops.bot.conversation import ConversationStore, thread_key
from slackops.bot.queue import WorkItem
from slackops.protocol import Envelope, EventInfo, message_text

Handler = Callable[["Context"], Awaitable[None] | None]
Responder = Callable[["Context"], Awaitable[dict[str, Any] | str | None] | dict[str, Any] | str | None]

log = logging.getLogger("slackops.bot")

#: How long a cancelled handler still waits for a post that is on the wire (slack-sdk's retries included).
POST_GRACE_S = 10.0


class Context:
    """The event, helpers to answer it, and the bot's shared services, for one handler run."""

    def __init__(
        self,
        item: WorkItem,
        client: AsyncWebClient,
        *,
        emit: Callable[[dict[str, Any]], None] | None = None,
        conversations: ConversationStore | None = None,
        mark_effect: Callable[[str], Any] | None = None,
        source: str = "bot",
        bot_user_id: str | None = None,
        effect_prefix: str = "post",
    ) -> None:
        self.item = item
        #: the slack-sdk ``AsyncWebClient`` (retry handlers on, calls recorded)
        self.client = client
        self.logger = log
        self._emit = emit
        self._conversations = conversations
        self._mark_effect = mark_effect
        self._source = source
        self._posts = 0
        self._effect_prefix = effect_prefix
        #: this bot's own user id (from ``auth.test`` at start), when known
        self.bot_user_id = bot_user_id

    # -- the event --------------------------------------------------------------------------------------------

    @property
    def envelope(self) -> Envelope:
        return self.item.envelope

    @property
    def payload(self) -> dict[str, Any]:
        """The envelope's payload (for events_api: the event callback with ``event``, ``event_id`` …)."""
        return self.item.envelope.payload

    @property
    def event(self) -> dict[str, Any]:
        """The inner event for events_api envelopes; the payload itself for slash/interactive ones."""
        inner = self.payload.get("event")
        return inner if isinstance(inner, dict) else self.payload

    @property
    def info(self) -> EventInfo:
        """Ids and places of the event (channel, user, ts, thread_ts …), parsed once."""
        return self.item.envelope.event

    @property
    def event_id(self) -> str:
        """The dedup key: ``event_id`` for events, ``envelope_id`` otherwise."""
        return self.item.dedup_key

    @property
    def text(self) -> str:
        """The full visible text: ``text`` plus the text in ``blocks`` and ``attachments``."""
        return message_text(self.event)

    @property
    def is_bot_message(self) -> bool:
        """Posted by a bot (maybe this one): answering it risks a self-loop."""
        own = self.bot_user_id is not None and self.info.user == self.bot_user_id
        return own or bool(self.info.bot_id) or self.info.subtype == "bot_message"

    @property
    def mentions_me(self) -> bool:
        """A plain ``message`` that @-mentions this bot. Slack also sends it as ``app_mention``: handle one."""
        return bool(self.bot_user_id) and f"<@{self.bot_user_id}>" in self.text

    @property
    def redelivered(self) -> bool:
        """This event was started before (a previous process died, or an earlier run failed)."""
        return self.item.orphaned or self.item.attempts > 1

    @property
    def attempt(self) -> int:
        """Which handler run this is for the event (1 on the first)."""
        return max(1, self.item.attempts)

    @property
    def state(self) -> dict[str, Any]:
        """Conversation state of this event's thread (kept for the store's TTL); ``{}`` outside threads."""
        key = thread_key(self.info)
        if self._conversations is None or key is None:
            return {}
        return self._conversations.get(key)

    # -- answering --------------------------------------------------------------------------------------------

    async def reply(self, text: str | None = None, **kwargs: Any) -> dict[str, Any] | None:
        """Post in the event's thread (starting one on a top-level message). ``None`` if already posted."""
        thread_ts = self.info.thread_ts or self.info.ts
        if thread_ts:
            kwargs.setdefault("thread_ts", thread_ts)
        return await self.say(text, **kwargs)

    async def say(self, text: str | None = None, **kwargs: Any) -> dict[str, Any] | None:
        """Post in the event's channel. Skipped (returns ``None``) if this post was made by an earlier run."""
        self._posts += 1
        effect = f"{self._effect_prefix}{self._posts}"
        if effect in self.item.effects:
            return None
        channel = kwargs.pop("channel", None) or self.info.channel
        if not channel:
            raise ValueError("this event has no channel to post in; pass channel=")
        if text is not None:
            kwargs["text"] = text
        response = await _uncancellable(self._post_and_note(effect, channel, kwargs))
        return response.data if isinstance(response.data, dict) else None

    async def _post_and_note(self, effect: str, channel: str, kwargs: dict[str, Any]) -> Any:
        response = await self.client.chat_postMessage(channel=channel, **kwargs)
        await self._note(effect)
        return response

    async def _note(self, effect: str) -> None:
        if self._mark_effect is None:
            self.item.effects.add(effect)
            return
        result = self._mark_effect(effect)  # a shared store (Redis) notes it over the network
        if inspect.isawaitable(result):
            await result

    async def respond(self, text: str | None = None, **kwargs: Any) -> None:
        """Answer a slash command or interactive action through its ``response_url`` (valid 30 min, 5 uses)."""
        url = self.payload.get("response_url")
        if not isinstance(url, str) or not url:
            raise ValueError("this envelope has no response_url; use reply() or say()")
        self._posts += 1
        effect = f"{self._effect_prefix}{self._posts}"
        if effect in self.item.effects:
            return
        from slack_sdk.webhook.async_client import AsyncWebhookClient

        response = await _uncancellable(AsyncWebhookClient(url).send(text=text, **kwargs))
        ok = response.status_code == 200
        if self._emit is not None:
            self._emit(
                records.make(
                    "post",
                    t=time.time(),
                    source=self._source,
                    method="response_url",
                    channel=self.info.channel,
                    event_id=self.event_id,
                    ok=ok,
                    http_status=response.status_code,
                )
            )
        if not ok:
            raise RuntimeError(f"response_url answered HTTP {response.status_code}")
        await self._note(effect)

    def record(self, kind: str, **fields: Any) -> None:
        """Emit a record (``llm``, ``guard`` …) into the bot's recording; ids only, never tokens or text."""
        if self._emit is None:
            return
        if kind in {"llm", "guard", "post", "process"}:
            fields.setdefault("event_id", self.info.event_id)
        self._emit(records.make(kind, t=time.time(), source=self._source, **fields))


async def _uncancellable(work: Awaitable[Any]) -> Any:
    """Finish a post (and its note in the queue) even if the drain deadline cancels the handler meanwhile.

    Cancelled halfway, Slack may have accepted the message while we never wrote down that it did: the re-run
    after restart would post it again. So a cancellation waits for the post to complete, then takes effect.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, POST_GRACE_S)
        raise
