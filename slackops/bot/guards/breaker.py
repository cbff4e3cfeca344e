"""The circuit breaker per LLM resource, and jittered retries that never line up.

Failure mode ``thundering-herd`` (runbook ``thundering-herd``): many handlers hit a provider's rate limit
together, and if they all retry after the same fixed delay they hit it together again, in waves. Two guards:

- :class:`CircuitBreaker`: after ``threshold`` consecutive rate-limit answers (HTTP 429) from one resource, stop
  calling it (*open*) for ``cooldown`` seconds and answer degraded instead; then let exactly one probe through
  (*half-open*): success closes the breaker, another failure re-opens it for a fresh cool-down.
- :class:`RetryPolicy`: retry 429/5xx with *full jitter* (a random delay up to an exponential ceiling), with the
  provider's ``Retry-After`` as a floor plus jitter — the same policy the Socket Mode reconnect uses
  (:class:`slackops.protocol.policies.Backoff`), so a herd spreads out instead of synchronising.

Both are pure: they take ``now`` and a random source, and return decisions.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from slackops.bot.guards.base import Emit, Emitter, as_emitter
from slackops.protocol.policies import Backoff

GUARD = "breaker"

#: Consecutive 429s that open the breaker (failure-modes.md: thundering-herd, ">= 3 consecutive 429s").
DEFAULT_THRESHOLD = 3
#: Seconds the breaker stays open before one half-open probe (failure-modes.md: "default 90 s").
DEFAULT_COOLDOWN_S = 90.0
#: HTTP statuses that count as "the provider is shedding load" (529: Anthropic's "overloaded").
DEFAULT_TRIP_STATUSES = frozenset({429, 529})
#: HTTP statuses worth retrying (rate limits and transient server errors); 4xx other than 429 never are.
DEFAULT_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})


class State(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerOpen(Exception):
    """The breaker for ``resource`` is open: no call was made. ``retry_in`` seconds until the next probe."""

    def __init__(self, resource: str, retry_in: float) -> None:
        super().__init__(f"circuit open for {resource}; next probe in {retry_in:.1f} s")
        self.resource = resource
        self.retry_in = retry_in


class CircuitBreaker:
    """Closed -> open after ``threshold`` consecutive trip statuses -> half-open after ``cooldown`` -> closed."""

    def __init__(
        self,
        resource: str,
        *,
        threshold: int = DEFAULT_THRESHOLD,
        cooldown: float = DEFAULT_COOLDOWN_S,
        trip_statuses: Iterable[int] = DEFAULT_TRIP_STATUSES,
        emit: Emit | Emitter | None = None,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.resource = resource
        self.threshold = threshold
        self.cooldown = cooldown
        self.trip_statuses = frozenset(trip_statuses)
        self.emit = as_emitter(emit)
        self.state = State.CLOSED
        self.consecutive = 0
        self.opened_at: float | None = None
        self._probe_out = False

    def retry_in(self, now: float) -> float:
        """Seconds until a probe is allowed (0 unless open)."""
        if self.state is not State.OPEN or self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.cooldown - now)

    def allow(self, now: float, *, event_id: str | None = None, channel: str | None = None) -> bool:
        """May a call go out now? While open: no (with a ``reject`` record). After the cool-down: one probe."""
        if self.state is State.CLOSED:
            return True
        if self.state is State.OPEN and self.retry_in(now) <= 0:
            self.state = State.HALF_OPEN
            self._probe_out = False
            self._note("half_open", event_id, channel, f"cool-down of {self.cooldown:g} s over; one probe")
        if self.state is State.HALF_OPEN and not self._probe_out:
            # Exactly one caller probes; everyone else keeps getting the degraded answer until it reports.
            self._probe_out = True
            return True
        self._note("reject", event_id, channel, f"open; next probe in {self.retry_in(now):.1f} s")
        return False

    def release(self) -> None:
        """A call that :meth:`allow` admitted was not made after all: let the next caller probe instead."""
        self._probe_out = False

    def success(self, now: float) -> None:
        """A call to the resource succeeded: reset the count, close the breaker if it was probing."""
        self.consecutive = 0
        if self.state is not State.CLOSED:
            self.state = State.CLOSED
            self.opened_at = None
            self._probe_out = False
            self._note("close", None, None, "probe succeeded")

    def failure(self, now: float, http_status: int | None) -> None:
        """A call failed with ``http_status`` (``None``: no HTTP answer, e.g. a timeout)."""
        tripping = http_status in self.trip_statuses
        if self.state is State.HALF_OPEN:
            # The probe failed: the provider has not recovered. Back off for another full cool-down.
            self._open(now, f"probe failed (HTTP {http_status})")
            return
        if not tripping:
            # A 400 or a timeout says nothing about the provider's load; it neither counts nor resets.
            return
        self.consecutive += 1
        if self.state is State.CLOSED and self.consecutive >= self.threshold:
            self._open(now, f"{self.consecutive} consecutive HTTP {http_status}")

    def _open(self, now: float, why: str) -> None:
        self.state = State.OPEN
        self.opened_at = now
        self._probe_out = False
        self._note("open", None, None, f"{why}; cool-down {self.cooldown:g} s")

    def _note(self, action: str, event_id: str | None, channel: str | None, detail: str) -> None:
        self.emit.guard(
            GUARD, action, event_id=event_id, channel=channel, detail=f"{self.resource}: {detail}"
        )


@dataclass
class Breakers:
    """One :class:`CircuitBreaker` per resource name (``"openai:gpt-4o"``, ``"anthropic"`` ...), made on demand."""

    threshold: int = DEFAULT_THRESHOLD
    cooldown: float = DEFAULT_COOLDOWN_S
    emit: Emit | Emitter | None = None
    _by_resource: dict[str, CircuitBreaker] = field(default_factory=dict)

    def get(self, resource: str) -> CircuitBreaker:
        breaker = self._by_resource.get(resource)
        if breaker is None:
            breaker = CircuitBreaker(
                resource, threshold=self.threshold, cooldown=self.cooldown, emit=self.emit
            )
            self._by_resource[resource] = breaker
        return breaker


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try an LLM call, and how long to wait between tries (full jitter, Retry-After floor)."""

    #: total attempts, the first included
    attempts: int = 3
    backoff: Backoff = field(
        default_factory=lambda: Backoff(base_s=1.0, cap_s=30.0, retry_after_jitter_s=1.0)
    )
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES

    def delay(
        self, attempt: int, exc: BaseException, *, rand: Callable[[], float] = random.random
    ) -> float | None:
        """Seconds to wait before trying again after ``exc`` failed try number ``attempt`` (0-based); ``None``:
        do not retry (out of attempts, or an error retrying cannot fix)."""
        if attempt + 1 >= self.attempts or isinstance(exc, BreakerOpen):
            return None
        if status_of(exc) not in self.retry_statuses:
            return None
        return self.backoff.delay(attempt, retry_after=retry_after_of(exc), rand=rand)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an SDK exception carries (openai/anthropic ``status_code``, aiohttp ``status``, httpx
    ``response.status_code``); ``None`` when it has none."""
    for holder in (exc, getattr(exc, "response", None)):
        if holder is None:
            continue
        for attr in ("status_code", "http_status", "status"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


def retry_after_of(exc: BaseException) -> float | None:
    """``Retry-After`` seconds from an exception's ``retry_after`` or its response headers, if any."""
    value: Any = getattr(exc, "retry_after", None)
    if value is None:
        headers = getattr(getattr(exc, "response", None), "headers", None) or getattr(exc, "headers", None)
        if headers is not None:
            try:
                value = headers.get("retry-after") or headers.get("Retry-After")
            except AttributeError:
                value = None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP date: rare from LLM providers; fall back to plain jitter
