"""The ``llm`` record: one per model call, so ``slackops diagnose`` can count cost per event.

Failure mode ``retry-duplication`` is measured as LLM calls per unique event_id; ``fan-out`` as calls per channel
per hour; ``thundering-herd`` as 429s clustered in time. All three need the same facts for every model call:
which event caused it, where, what the provider answered, how long it took, how many tokens and what it cost.
:class:`LLMCall` times one call (sync or async ``with``) and emits that record on exit, success or failure.

    with LLMCall(emit, resource="openai:gpt-4o-mini", event_id=ev, channel=ch, pricing=PRICES) as call:
        resp = client.chat.completions.create(...)
        call.usage(resp.usage.prompt_tokens, resp.usage.completion_tokens)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from slackops.bot.guards.base import Emit, Emitter, as_emitter
from slackops.bot.guards.breaker import status_of


@dataclass(frozen=True)
class Pricing:
    """USD per million input and output tokens (check your provider's price list; prices change)."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0

    def cost(self, tokens_in: int | None, tokens_out: int | None) -> float:
        return ((tokens_in or 0) * self.input_per_mtok + (tokens_out or 0) * self.output_per_mtok) / 1e6


class LLMCall:
    """Times one model call and emits its ``llm`` record when the ``with`` block ends.

    A block that raises is recorded with ``error`` (the exception type) and the HTTP status the exception
    carries; the exception is not swallowed.
    """

    def __init__(
        self,
        emit: Emit | Emitter | None,
        *,
        resource: str,
        event_id: str | None = None,
        channel: str | None = None,
        pricing: Pricing | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.emit = as_emitter(emit)
        self.resource = resource
        self.event_id = event_id
        self.channel = channel
        self.pricing = pricing
        self.clock = clock
        self.http_status: int | None = None
        self.error: str | None = None
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None
        self.cost_usd: float | None = None
        self.latency_ms: float | None = None
        self._started: float | None = None

    def usage(
        self, tokens_in: int | None = None, tokens_out: int | None = None, *, cost_usd: float | None = None
    ) -> None:
        """Report the tokens the provider billed (and the cost, if it says; otherwise :class:`Pricing` is used)."""
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out
        if cost_usd is not None:
            self.cost_usd = cost_usd

    @property
    def tokens(self) -> int:
        return (self.tokens_in or 0) + (self.tokens_out or 0)

    def fail(self, error: str, http_status: int | None = None) -> None:
        """Mark the call failed without raising (a provider that returns errors in the body)."""
        self.error = error
        self.http_status = http_status

    def __enter__(self) -> LLMCall:
        self._started = self.clock()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exc)

    async def __aenter__(self) -> LLMCall:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish(exc)

    def finish(self, exc: BaseException | None = None) -> None:
        """Emit the record (called by ``with``; call it yourself when not using a ``with`` block)."""
        if self._started is not None:
            self.latency_ms = round((self.clock() - self._started) * 1000.0, 3)
        if exc is not None:
            self.error = self.error or type(exc).__name__
            self.http_status = self.http_status or status_of(exc)
        elif self.error is None and self.http_status is None:
            self.http_status = 200
        if self.cost_usd is None and self.pricing is not None and (self.tokens_in or self.tokens_out):
            self.cost_usd = round(self.pricing.cost(self.tokens_in, self.tokens_out), 8)
        self.emit(
            "llm",
            event_id=self.event_id,
            channel=self.channel,
            resource=self.resource,
            http_status=self.http_status,
            latency_ms=self.latency_ms,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            cost_usd=self.cost_usd,
            error=self.error,
        )
