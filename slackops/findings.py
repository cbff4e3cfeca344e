"""Findings: what ``diagnose`` reports, and the catalogue of finding codes.

A finding names one failure mode seen in the data. Its ``code`` is stable (alerts and runbooks refer to it),
and each code belongs to exactly one runbook slug — the failure modes of ``shared/reference/failure-modes.md``.
This catalogue is the one list; detectors may only emit codes listed here, and every runbook's front matter
names codes from here (both are checked by tests).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    """Ordered so ``max()`` gives the worst."""

    INFO = 0
    WARNING = 1
    CRITICAL = 2

    def __str__(self) -> str:
        return self.name.lower()


#: The runbook slugs, one per failure mode, in the order a reader meets them.
SLUGS: tuple[str, ...] = (
    "disconnect-storm",
    "ack-timeout",
    "queue-overflow",
    "stale-watchdog",
    "silent-deafness",
    "competing-consumers",
    "retry-duplication",
    "fan-out",
    "bot-self-loop",
    "thundering-herd",
    "lost-in-flight",
    "out-of-order",
    "rate-limited",
    "auth-failure",
)


@dataclass(frozen=True)
class Code:
    """One finding code: its runbook and default severity."""

    code: str
    slug: str
    severity: Severity
    title: str


def _c(code: str, slug: str, severity: Severity, title: str) -> Code:
    return Code(code, slug, severity, title)


W, C = Severity.WARNING, Severity.CRITICAL

#: Every finding code. Keys are the codes.
CODES: dict[str, Code] = {
    c.code: c
    for c in (
        # disconnect-storm
        _c("reconnect-burst", "disconnect-storm", C, "Reconnects far above the refresh cadence"),
        _c("too-many-websockets", "disconnect-storm", C, "Slack closed sockets for exceeding 10 connections"),
        _c("connections-above-expected", "disconnect-storm", W, "More live sockets than configured"),
        _c("open-ratelimited", "disconnect-storm", W, "apps.connections.open was rate limited (429)"),
        # ack-timeout
        _c("ack-late", "ack-timeout", C, "Envelopes acked after Slack's 3 s deadline"),
        _c("ack-p99-over-budget", "ack-timeout", W, "Ack latency p99 above budget"),
        _c("timeout-retries", "ack-timeout", W, "Slack retried envelopes after ack timeouts"),
        _c("ack-failed", "ack-timeout", C, "Acks that could not be sent"),
        _c("never-acked", "ack-timeout", C, "Envelopes never acked"),
        # queue-overflow
        _c("queue-growing", "queue-overflow", W, "Work queue depth keeps rising"),
        _c("queue-wait-growing", "queue-overflow", W, "Time from ack to handler start keeps growing"),
        _c("events-shed", "queue-overflow", W, "Events were shed under backpressure"),
        _c("queue-wait-hidden", "queue-overflow", W, "Handlers look fast while acks wait in the queue"),
        # stale-watchdog
        _c("watchdog-false-positive", "stale-watchdog", W, "Healthy sockets reconnected by a watchdog"),
        # silent-deafness
        _c("pong-missing", "silent-deafness", C, "No pong for too long without a close"),
        _c("frames-not-dispatched", "silent-deafness", C, "Envelopes received but never dispatched or acked"),
        _c("ghost-connections", "silent-deafness", W, "hello reports more connections than are held"),
        _c("envelope-gap", "silent-deafness", W, "Long stretch with no envelopes on a live connection"),
        _c("sdk-loop-stopped", "silent-deafness", C, "The SDK's receive or monitor loop stopped reporting"),
        # competing-consumers
        _c("competing-consumer", "competing-consumers", W, "Another consumer shares this app token"),
        _c("delivery-share-drop", "competing-consumers", W, "An instance's share of deliveries dropped"),
        _c(
            "instance-died-with-work",
            "competing-consumers",
            W,
            "An instance exited holding acked, unfinished work (reclaimed by others)",
        ),
        # retry-duplication
        _c("duplicate-processing", "retry-duplication", C, "The same event_id was processed more than once"),
        _c("duplicate-llm-calls", "retry-duplication", C, "The same event_id triggered several LLM calls"),
        _c("retry-share-high", "retry-duplication", W, "A large share of envelopes are retries"),
        # fan-out
        _c("channel-llm-burst", "fan-out", W, "LLM calls per channel per hour above the ceiling"),
        _c("mention-pair-double", "fan-out", W, "app_mention and message for one mention both handled"),
        _c("unchanged-edit-handled", "fan-out", W, "message_changed edits with unchanged text handled"),
        # bot-self-loop
        _c("bot-message-handled", "bot-self-loop", C, "Handlers ran on bot or self messages"),
        _c("post-ceiling-exceeded", "bot-self-loop", C, "Bot posts per channel above the ceiling"),
        # thundering-herd
        _c("llm-429-cluster", "thundering-herd", W, "LLM 429s clustered in time"),
        _c("llm-429-consecutive", "thundering-herd", C, "Consecutive LLM 429s for one resource"),
        _c("aligned-retries", "thundering-herd", W, "LLM retries aligned to the same schedule"),
        # lost-in-flight
        _c("in-flight-lost", "lost-in-flight", C, "Acked work neither finished nor requeued at shutdown"),
        _c("interactive-lost", "lost-in-flight", C, "Interactive or slash envelopes not acked within 3 s"),
        # out-of-order
        _c("order-inversion", "out-of-order", W, "Handlers started out of event_ts order"),
        # rate-limited
        _c("app-rate-limited", "rate-limited", C, "Slack sent app_rate_limited"),
        _c("web-api-429", "rate-limited", W, "Web API calls were rate limited"),
        # auth-failure
        _c("auth-error", "auth-failure", C, "apps.connections.open refused the token"),
        _c("link-disabled", "auth-failure", C, "Socket Mode is disabled for the app"),
    )
}


@dataclass
class Finding:
    """One failure mode seen in the data, with its evidence and what to do."""

    code: str
    summary: str
    severity: Severity | None = None
    #: counts, time ranges (epoch floats), example ids, connection ids: JSON-native values only
    evidence: dict[str, Any] = field(default_factory=dict)
    #: cost framing where it applies: wasted_runs, wasted_llm_calls, share, multiplier
    cost: dict[str, Any] | None = None
    #: what the detector could not judge with this input (e.g. "no ack timing in this log")
    caveats: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown finding code {self.code!r}")
        if self.severity is None:
            self.severity = CODES[self.code].severity

    @property
    def runbook(self) -> str:
        return CODES[self.code].slug

    @property
    def title(self) -> str:
        return CODES[self.code].title

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": str(self.severity),
            "title": self.title,
            "summary": self.summary,
            "runbook": self.runbook,
            "evidence": self.evidence,
            "cost": self.cost,
            "caveats": self.caveats,
        }
