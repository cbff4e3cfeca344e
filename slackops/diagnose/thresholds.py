"""Named, documented detector thresholds, their overrides and the diagnose config file.

Every number a detector compares against lives here, with the Slack fact it comes from. Users override any of
them with ``--threshold NAME=VALUE`` or a ``[thresholds]`` table in the config file (TOML)::

    [thresholds]
    ack_p99_budget_ms = 500
    expected_connections = 4

    [fields]                 # application JSON logs: which field holds what
    event_id = "slack_event_id"
    tokens_in = "usage.prompt"

    [diagnose]
    bot_user_id = "U0BOT"    # handler runs on this user's messages are a self-loop
    utc_offset = "+02:00"    # naive timestamps in logs are in this zone (default UTC)
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slackops.errors import ConfigError, UsageError


@dataclass(frozen=True)
class Threshold:
    """One tunable number: its name, default, unit and why it has that default."""

    name: str
    default: float
    unit: str
    slug: str
    help: str


def _t(name: str, default: float, unit: str, slug: str, help: str) -> Threshold:
    return Threshold(name, default, unit, slug, help)


#: Every threshold, keyed by name. The help text is what ``slackops diagnose --help`` and the README show.
THRESHOLDS: dict[str, Threshold] = {
    t.name: t
    for t in (
        _t(
            "expected_connections",
            2,
            "sockets",
            "disconnect-storm",
            "Sockets one deployment should hold: one plus one make-before-break overlap.",
        ),
        _t(
            "reconnect_window_s",
            600,
            "s",
            "disconnect-storm",
            "Window for counting reconnects; Slack refreshes a socket about every 5 h, so a few per 10 min is a storm.",
        ),
        _t(
            "reconnect_max_per_window",
            3,
            "reconnects",
            "disconnect-storm",
            "More reconnects per slot than this in the window is a storm.",
        ),
        _t("burst_window_s", 60, "s", "disconnect-storm", "Window for a reconnect burst."),
        _t(
            "burst_min",
            3,
            "reconnects",
            "disconnect-storm",
            "This many reconnects within the burst window is a storm.",
        ),
        _t(
            "ack_deadline_ms",
            3000,
            "ms",
            "ack-timeout",
            "Slack's ack deadline: after 3 s Events API envelopes are retried.",
        ),
        _t(
            "ack_p99_budget_ms",
            1000,
            "ms",
            "ack-timeout",
            "Ack latency p99 above this leaves too little margin before the deadline.",
        ),
        _t(
            "never_acked_after_s",
            60,
            "s",
            "ack-timeout",
            "An envelope with no ack this long after delivery counts as never acked.",
        ),
        _t(
            "min_envelopes",
            20,
            "envelopes",
            "ack-timeout",
            "Shares and percentiles are judged only above this many envelopes.",
        ),
        _t(
            "retry_share",
            0.05,
            "share",
            "retry-duplication",
            "Share of envelopes that are Slack retries above which it is a finding.",
        ),
        _t(
            "dedup_window_s",
            600,
            "s",
            "retry-duplication",
            "Window for matching repeated event_ids; Slack's last retry comes ~5 min after the first.",
        ),
        _t(
            "pong_fresh_s",
            30,
            "s",
            "stale-watchdog",
            "A pong this recent means the socket was healthy when it was torn down.",
        ),
        _t(
            "cause_window_s",
            10,
            "s",
            "stale-watchdog",
            "A close, disconnect or ping failure this soon before a reconnect explains it.",
        ),
        _t(
            "watchdog_min_reconnects",
            2,
            "reconnects",
            "stale-watchdog",
            "Healthy-socket reconnects needed before calling it a watchdog loop.",
        ),
        _t(
            "pong_timeout_s",
            30,
            "s",
            "silent-deafness",
            "No pong for this long while the client carries on is a dead socket.",
        ),
        _t(
            "envelope_gap_s",
            600,
            "s",
            "silent-deafness",
            "A live connection with no envelopes this long while others get traffic is deaf.",
        ),
        _t(
            "gap_min_other_envelopes",
            5,
            "envelopes",
            "silent-deafness",
            "Others must receive at least this many envelopes during the gap.",
        ),
        _t(
            "undispatched_min",
            3,
            "envelopes",
            "silent-deafness",
            "Envelopes on one connection with no ack at all before it counts.",
        ),
        _t(
            "share_window_s",
            300,
            "s",
            "competing-consumers",
            "Window for comparing each instance's share of deliveries.",
        ),
        _t(
            "share_drop_ratio",
            0.5,
            "ratio",
            "competing-consumers",
            "An instance's share falling below this fraction of its previous share.",
        ),
        _t(
            "llm_per_channel_hour",
            20,
            "calls",
            "fan-out",
            "LLM calls per channel per hour above this are fan-out.",
        ),
        _t(
            "post_ceiling",
            5,
            "posts",
            "bot-self-loop",
            "Bot posts per channel per post window above this are a loop.",
        ),
        _t("post_window_s", 60, "s", "bot-self-loop", "Window for the post ceiling."),
        _t(
            "llm_429_consecutive",
            3,
            "429s",
            "thundering-herd",
            "Consecutive 429s for one LLM resource (a circuit breaker opens here).",
        ),
        _t(
            "llm_429_cluster_min",
            5,
            "429s",
            "thundering-herd",
            "This many LLM 429s within one second is a cluster.",
        ),
        _t(
            "aligned_min_waves",
            3,
            "waves",
            "thundering-herd",
            "Clusters repeating at a regular interval this many times are aligned retries.",
        ),
        _t(
            "aligned_tolerance",
            0.25,
            "ratio",
            "thundering-herd",
            "Relative spread of wave intervals still counted as regular.",
        ),
        _t(
            "drain_deadline_s",
            30,
            "s",
            "lost-in-flight",
            "Work still running this long after SIGTERM is lost.",
        ),
        _t(
            "in_flight_max_s",
            120,
            "s",
            "lost-in-flight",
            "Work started this long before the end of the data and never finished is lost.",
        ),
        _t(
            "order_tolerance_s",
            0,
            "s",
            "out-of-order",
            "Handler starts inverting event_ts by more than this are out of order.",
        ),
        _t(
            "queue_bucket_s",
            10,
            "s",
            "queue-overflow",
            "Queue depth is sampled as the maximum per bucket of this length.",
        ),
        _t(
            "queue_growth_buckets",
            6,
            "buckets",
            "queue-overflow",
            "Depth rising over this many consecutive buckets is growth.",
        ),
        _t(
            "queue_min_depth",
            50,
            "items",
            "queue-overflow",
            "Growth only counts once the queue is at least this deep.",
        ),
        _t(
            "queue_wait_s",
            5,
            "s",
            "queue-overflow",
            "Ack-to-handler-start wait above this, rising, is a backlog.",
        ),
        _t(
            "queue_wait_bucket_s", 60, "s", "queue-overflow", "Bucket length for the ack-to-start wait trend."
        ),
        _t(
            "loop_silence_factor",
            3,
            "x",
            "silent-deafness",
            "An SDK loop silent for this many of its usual heartbeat intervals has died...",
        ),
        _t(
            "loop_silence_min_s",
            300,
            "s",
            "silent-deafness",
            "...and for at least this long (the aiohttp client logs one heartbeat per 100 loop iterations).",
        ),
        _t(
            "handler_fast_ms",
            500,
            "ms",
            "queue-overflow",
            "Handlers at or below this p90 (Bolt's Response time) cannot explain slow acks or a growing queue.",
        ),
        _t(
            "hidden_wait_ratio",
            3,
            "x",
            "queue-overflow",
            "Ack latency p90 this many times the handlers' p90 is time lost in the queue.",
        ),
        _t(
            "hidden_wait_min_ms",
            1000,
            "ms",
            "queue-overflow",
            "...and at least this slow at p90, so fast acks with faster handlers are not flagged.",
        ),
    )
}


def defaults() -> dict[str, float]:
    """Every threshold at its default."""
    return {name: t.default for name, t in THRESHOLDS.items()}


def parse_assignment(text: str) -> tuple[str, float]:
    """Parse ``NAME=VALUE`` from ``--threshold``; raise :class:`UsageError` naming the known thresholds."""
    name, sep, value = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or name not in THRESHOLDS:
        raise UsageError(
            f"unknown threshold {text!r}",
            hint="Use NAME=VALUE with one of: " + ", ".join(THRESHOLDS),
        )
    try:
        return name, float(value)
    except ValueError:
        raise UsageError(f"threshold {name} needs a number, got {value!r}") from None


@dataclass
class Settings:
    """Everything a diagnose run is tuned by: thresholds, app-JSON field names and a few facts about the app."""

    thresholds: dict[str, float]
    fields: dict[str, str]
    bot_user_id: str | None = None
    utc_offset_s: float = 0.0


def _offset(text: str, path: str) -> float:
    text = text.strip()
    try:
        sign = -1 if text.startswith("-") else 1
        hours, _, minutes = text.lstrip("+-").partition(":")
        return sign * (int(hours) * 3600 + int(minutes or 0) * 60)
    except ValueError:
        raise ConfigError(f"utc_offset should look like +02:00, got {text!r}", path=path) from None


def load(overrides: Mapping[str, float] | None = None, config: str | None = None) -> Settings:
    """Defaults, then the config file, then ``overrides`` (the command line wins)."""
    values = defaults()
    settings = Settings(values, {})
    if config:
        try:
            with open(config, "rb") as fh:
                data: dict[str, Any] = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config: {exc.strerror}", path=config) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", path=config) from None
        for name, value in (data.get("thresholds") or {}).items():
            if name not in THRESHOLDS:
                raise ConfigError(
                    f"unknown threshold {name!r}", path=config, hint="Known: " + ", ".join(THRESHOLDS)
                )
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"threshold {name} needs a number, got {value!r}", path=config)
            values[name] = float(value)
        settings.fields = {str(k): str(v) for k, v in (data.get("fields") or {}).items()}
        section = data.get("diagnose") or {}
        settings.bot_user_id = section.get("bot_user_id")
        if "utc_offset" in section:
            settings.utc_offset_s = _offset(str(section["utc_offset"]), config)
    for name, value in (overrides or {}).items():
        if name not in THRESHOLDS:
            raise UsageError(f"unknown threshold {name!r}", hint="Known: " + ", ".join(THRESHOLDS))
        values[name] = float(value)
    return settings
