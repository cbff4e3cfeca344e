"""Cost guards for LLM-backed Slack bots: each a small, tested piece that emits a record when it fires.

Failure modes (shared/reference/failure-modes.md, ``slackops runbook <slug>``) and the guard for each:

- ``bot-self-loop``: :class:`SelfLoopFilter` (first, in every handler that posts) and :class:`PostCeiling`.
- ``fan-out``: :class:`ChannelLimiter` before any LLM call, :class:`MentionPairFilter`, :class:`EditFilter`.
- ``thundering-herd``: :class:`CircuitBreaker` per LLM resource and :class:`RetryPolicy` (jittered retries).
- all of them, as a bill: :class:`Budget` (calls and tokens per window).
- measuring them: :class:`LLMCall` emits an ``llm`` record per model call (``diagnose`` computes multipliers).

:class:`Guards` wires them together in the order a handler needs them::

    guards = Guards(GuardConfig(budget_calls=500), emit=writer.write)
    guards.learn_identity(client.auth_test())
    if not guards.admit(event, event_id=event_id):       # self-loop, no-op edit, second half of a mention pair
        return
    if not guards.may_post(channel, event_id=event_id):  # the post ceiling: do not pay for an unpostable answer
        return
    answer = await guards.call_llm("openai:gpt-4o-mini", ask, event_id=event_id, channel=channel,
                                   degraded="I'm busy right now, try again in a minute.")
    await client.chat_postMessage(channel=channel, thread_ts=ts, text=answer)

``ask(call)`` makes the model call and reports usage with ``call.usage(tokens_in, tokens_out)``.

Every threshold is a named setting of :class:`GuardConfig`, defaulting to the values in failure-modes.md.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from slackops.bot.guards import budget as _budget
from slackops.bot.guards import ceiling as _ceiling
from slackops.bot.guards import fanout as _fanout
from slackops.bot.guards.base import Emit, Emitter, as_emitter
from slackops.bot.guards.breaker import (
    DEFAULT_COOLDOWN_S,
    DEFAULT_THRESHOLD,
    BreakerOpen,
    Breakers,
    CircuitBreaker,
    RetryPolicy,
    State,
    status_of,
)
from slackops.bot.guards.budget import Budget
from slackops.bot.guards.ceiling import PostCeiling
from slackops.bot.guards.fanout import ChannelLimiter, EditFilter, MentionPairFilter, text_changed
from slackops.bot.guards.llm import LLMCall, Pricing
from slackops.bot.guards.selfloop import SelfLoopFilter, loop_reason

__all__ = [
    "BreakerOpen",
    "Breakers",
    "Budget",
    "ChannelLimiter",
    "CircuitBreaker",
    "EditFilter",
    "Emitter",
    "GuardBlocked",
    "GuardConfig",
    "Guards",
    "LLMCall",
    "MentionPairFilter",
    "PostCeiling",
    "Pricing",
    "RetryPolicy",
    "SelfLoopFilter",
    "State",
    "loop_reason",
    "status_of",
    "text_changed",
]


@dataclass(frozen=True)
class GuardConfig:
    """Every guard threshold, named; defaults from failure-modes.md."""

    #: bot posts per channel per ``post_window_s`` (bot-self-loop backstop)
    posts_per_channel: int = _ceiling.DEFAULT_POSTS
    post_window_s: float = _ceiling.DEFAULT_WINDOW_S
    #: LLM calls per channel per ``llm_channel_window_s`` (fan-out)
    llm_calls_per_channel: int = _fanout.DEFAULT_CALLS_PER_CHANNEL
    llm_channel_window_s: float = _fanout.DEFAULT_CHANNEL_WINDOW_S
    #: how long a mention's (channel, ts) is remembered to catch the other half of the pair
    mention_pair_ttl_s: float = _fanout.DEFAULT_PAIR_TTL_S
    #: consecutive 429s that open a resource's breaker, and its cool-down (thundering-herd)
    breaker_threshold: int = DEFAULT_THRESHOLD
    breaker_cooldown_s: float = DEFAULT_COOLDOWN_S
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: model calls and tokens per ``budget_window_s``, bot-wide (None: no cap)
    budget_calls: int | None = None
    budget_tokens: int | None = None
    budget_window_s: float = _budget.DEFAULT_WINDOW_S
    #: other bots whose messages the handler should answer (our own never is)
    allow_bot_ids: tuple[str, ...] = ()


class GuardBlocked(Exception):
    """A guard refused a model call; ``guard`` names it (fan_out, budget, breaker, rate_limited)."""

    def __init__(self, guard: str, detail: str = "") -> None:
        super().__init__(f"{guard}: {detail}" if detail else guard)
        self.guard = guard
        self.detail = detail


_RAISE: Any = object()

#: ``fn(call)`` does the model call, reports usage on ``call`` and returns the answer (sync or async)
ModelFn = Callable[[LLMCall], Awaitable[Any] | Any]


class Guards:
    """All cost guards of one bot process, sharing one record sink and one clock."""

    def __init__(
        self,
        config: GuardConfig | None = None,
        *,
        emit: Emit | Emitter | None = None,
        source: str = "bot",
        pricing: Mapping[str, Pricing] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        sleep_sync: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = c = config or GuardConfig()
        self.emit = as_emitter(emit, source)
        self.pricing = dict(pricing or {})
        self.clock, self.rand, self.sleep, self.sleep_sync = clock, rand, sleep, sleep_sync
        self.self_loop = SelfLoopFilter(allow_bot_ids=c.allow_bot_ids, emit=self.emit)
        self.edits = EditFilter(emit=self.emit)
        self.pairs = MentionPairFilter(c.mention_pair_ttl_s, emit=self.emit)
        self.ceiling = PostCeiling(c.posts_per_channel, c.post_window_s, emit=self.emit)
        self.limiter = ChannelLimiter(c.llm_calls_per_channel, c.llm_channel_window_s, emit=self.emit)
        self.breakers = Breakers(c.breaker_threshold, c.breaker_cooldown_s, emit=self.emit)
        self.budget = Budget(
            max_calls=c.budget_calls, max_tokens=c.budget_tokens, window=c.budget_window_s, emit=self.emit
        )

    def learn_identity(self, auth_test: Mapping[str, Any]) -> None:
        """Teach the self-loop filter our bot user id and bot id (from ``auth.test``)."""
        self.self_loop.learn(auth_test)

    def admit(self, event: Mapping[str, Any], *, event_id: str | None = None) -> bool:
        """Should a handler act on this inner event at all? Self-loop first, then no-op edits, then pairs."""
        return (
            self.self_loop.admit(event, event_id=event_id)
            and self.edits.admit(event, event_id=event_id)
            and self.pairs.admit(event, self.clock(), event_id=event_id)
        )

    def may_post(self, channel: str, *, event_id: str | None = None) -> bool:
        """The post ceiling: count and admit one post to ``channel``."""
        return self.ceiling.allow(channel, self.clock(), event_id=event_id)

    async def call_llm(
        self,
        resource: str,
        fn: ModelFn,
        *,
        event_id: str | None = None,
        channel: str | None = None,
        degraded: Any = _RAISE,
    ) -> Any:
        """Run ``fn(call)`` behind the fan-out limiter, the budget and ``resource``'s breaker, with jittered retries.

        Returns ``fn``'s answer, or ``degraded`` (a value, or a callable taking the :class:`GuardBlocked`) when
        a guard refuses or the provider is still rate limiting after the last retry. Without ``degraded``,
        :class:`GuardBlocked` is raised instead. Other errors propagate after their retries.
        """
        attempt = 0
        blocked = None
        while blocked is None:
            blocked = self._gate(resource, event_id, channel, first=attempt == 0)
            if blocked is not None:
                break
            call = self._call(resource, event_id, channel)
            try:
                with call:
                    result = fn(call)
                    if inspect.isawaitable(result):
                        result = await result
            except Exception as exc:
                delay = self._failed(resource, call, exc, attempt)
                if delay is None:
                    blocked = self._give_up(resource, exc)
                    break
                attempt += 1
                await self.sleep(delay)
                continue
            self._succeeded(resource, call)
            return result
        return self._degrade(blocked, degraded)

    def call_llm_sync(
        self,
        resource: str,
        fn: Callable[[LLMCall], Any],
        *,
        event_id: str | None = None,
        channel: str | None = None,
        degraded: Any = _RAISE,
    ) -> Any:
        """:meth:`call_llm` for synchronous handlers (Bolt listeners run in a thread pool)."""
        attempt = 0
        blocked = None
        while blocked is None:
            blocked = self._gate(resource, event_id, channel, first=attempt == 0)
            if blocked is not None:
                break
            call = self._call(resource, event_id, channel)
            try:
                with call:
                    result = fn(call)
            except Exception as exc:
                delay = self._failed(resource, call, exc, attempt)
                if delay is None:
                    blocked = self._give_up(resource, exc)
                    break
                attempt += 1
                self.sleep_sync(delay)
                continue
            self._succeeded(resource, call)
            return result
        return self._degrade(blocked, degraded)

    # -- the steps both loops share ---------------------------------------------------------------------------

    def _gate(
        self, resource: str, event_id: str | None, channel: str | None, *, first: bool
    ) -> GuardBlocked | None:
        """Breaker, then (first attempt only) the channel limiter, then the budget: the cheapest refusal first,
        and nothing counted against a limit for a call that does not happen."""
        now = self.clock()
        breaker = self.breakers.get(resource)
        if not breaker.allow(now, event_id=event_id, channel=channel):
            return GuardBlocked("breaker", str(BreakerOpen(resource, breaker.retry_in(now))))
        blocked = None
        # The channel limit counts questions, not tries: a retry is the same question, not more fan-out.
        if first and not self.limiter.allow(channel, now, event_id=event_id):
            blocked = GuardBlocked("fan_out", f"channel {channel} is over its LLM call limit")
        elif not self.budget.allow(now, event_id=event_id, channel=channel):
            blocked = GuardBlocked("budget", self.budget.exhausted(now) or "")
        if blocked is not None:
            # The breaker may have let this call through as its probe; it will not happen, so hand it back.
            breaker.release()
        return blocked

    def _call(self, resource: str, event_id: str | None, channel: str | None) -> LLMCall:
        return LLMCall(
            self.emit,
            resource=resource,
            event_id=event_id,
            channel=channel,
            pricing=self.pricing.get(resource),
        )

    def _failed(self, resource: str, call: LLMCall, exc: Exception, attempt: int) -> float | None:
        now = self.clock()
        self.budget.spend(now, call.tokens)
        self.breakers.get(resource).failure(now, status_of(exc))
        return self.config.retry.delay(attempt, exc, rand=self.rand)

    def _give_up(self, resource: str, exc: Exception) -> GuardBlocked:
        status = status_of(exc)
        if status in self.breakers.get(resource).trip_statuses:
            return GuardBlocked("rate_limited", f"{resource} still answered HTTP {status} after retries")
        raise exc

    def _succeeded(self, resource: str, call: LLMCall) -> None:
        now = self.clock()
        self.budget.spend(now, call.tokens)
        self.breakers.get(resource).success(now)

    @staticmethod
    def _degrade(blocked: GuardBlocked, degraded: Any) -> Any:
        if degraded is _RAISE:
            raise blocked
        return degraded(blocked) if callable(degraded) else degraded
