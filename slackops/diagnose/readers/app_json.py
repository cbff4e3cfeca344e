"""Application JSON logs that carry a Slack ``event_id``: handler logs, LLM call logs, webhook retry logs.

Field names differ per application, so each field has a list of usual spellings (case-insensitive) and the
config file's ``[fields]`` table can name another (dotted paths reach nested objects: ``usage.prompt_tokens``).

Which record a line becomes:

- ``llm`` when it has token counts, a model or a cost (the cost analysis of retry-duplication and fan-out);
- ``envelope`` when it has Slack retry headers (``X-Slack-Retry-Num`` / ``retry_num``: a delivery attempt);
- ``process`` otherwise, with ``phase`` from a ``phase`` field, or guessed from the message (``start`` when
  the line says received/handling/processing, ``end`` for done/completed/replied, ``fail`` for error/failed).
  A line whose message fits none of these is counted as ignored rather than guessed as a handler run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from slackops.diagnose.readers.base import Input, ParseStats
from slackops.diagnose.readers.prefix import Clock
from slackops.records import Record, make

NAME = "app-json"

ALIASES: dict[str, tuple[str, ...]] = {
    "t": ("t", "time", "timestamp", "@timestamp", "ts", "asctime", "created", "datetime"),
    "event_id": ("event_id", "slack_event_id", "eventid", "slack.event_id"),
    "envelope_id": ("envelope_id", "envelopeid"),
    "channel": ("channel", "channel_id", "slack_channel"),
    "user": ("user", "user_id"),
    "bot_id": ("bot_id",),
    "subtype": ("subtype",),
    "event_type": ("event_type", "slack_event_type"),
    "event_ts": ("event_ts",),
    "thread_ts": ("thread_ts",),
    "status": ("http_status", "status", "status_code", "statuscode"),
    "tokens_in": ("tokens_in", "prompt_tokens", "input_tokens", "usage.prompt_tokens", "usage.input_tokens"),
    "tokens_out": (
        "tokens_out",
        "completion_tokens",
        "output_tokens",
        "usage.completion_tokens",
        "usage.output_tokens",
    ),
    "resource": ("model", "resource", "provider", "llm_model"),
    "cost_usd": ("cost_usd", "cost", "usd"),
    "latency_ms": ("latency_ms", "duration_ms", "elapsed_ms", "took_ms"),
    "retry_attempt": (
        "retry_attempt",
        "retry_num",
        "x-slack-retry-num",
        "x_slack_retry_num",
        "retrynum",
        "headers.x-slack-retry-num",
    ),
    "retry_reason": (
        "retry_reason",
        "x-slack-retry-reason",
        "x_slack_retry_reason",
        "retryreason",
        "headers.x-slack-retry-reason",
    ),
    "phase": ("phase",),
    "message": ("message", "msg", "event", "log"),
    "error": ("error", "err", "exception"),
}

_START = re.compile(r"(?i)\b(start|started|received|receiving|handling|processing|handle)\b")
_END = re.compile(r"(?i)\b(done|finished|completed|complete|replied|handled|success)\b")
_FAIL = re.compile(r"(?i)\b(fail|failed|failure|error|exception)\b")


def _lower(obj: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        lk = str(k).lower()
        out[lk] = v
        if isinstance(v, dict) and lk in ("headers", "usage", "slack", "request"):
            for k2, v2 in v.items():
                out[f"{lk}.{str(k2).lower()}"] = v2
    return out


class Fields:
    """Field lookup with the aliases above and the user's ``[fields]`` overrides."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        self.names: dict[str, tuple[str, ...]] = dict(ALIASES)
        for name, spelled in (overrides or {}).items():
            self.names[name] = (spelled.lower(), *self.names.get(name, ()))

    def get(self, low: dict[str, Any], name: str) -> Any:
        for key in self.names.get(name, (name,)):
            if key in low:
                return low[key]
            if "." in key:
                head, _, rest = key.partition(".")
                inner = low.get(head)
                if isinstance(inner, dict):
                    lowered = {str(k).lower(): v for k, v in inner.items()}
                    if rest in lowered:
                        return lowered[rest]
        return None

    def has_event(self, low: dict[str, Any]) -> bool:
        return self.get(low, "event_id") is not None or self.get(low, "retry_attempt") is not None


def sniff(line: bytes, fields: Fields | None = None) -> bool:
    """A JSON object carrying an event_id (or Slack retry headers)."""
    if not line.lstrip().startswith(b"{"):
        return False
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, dict) and (fields or Fields()).has_event(_lower(obj))


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def _text(v: Any) -> str | None:
    if isinstance(v, str) and v:
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    return None


def _time(v: Any, clock: Clock) -> float | None:
    n = _num(v)
    if n is not None:
        # Milliseconds (JS Date.now(), many loggers) vs seconds.
        return n / 1000.0 if n > 1e11 else n
    if isinstance(v, str):
        return clock.iso(v)
    return None


def to_record(obj: dict[str, Any], fields: Fields, clock: Clock, last_t: float) -> Record | None:
    """The record an application log line stands for, or ``None`` when it is not about handling an event."""
    low = _lower(obj)
    g = fields.get
    t = _time(g(low, "t"), clock)
    t = last_t if t is None else t
    event_id = _text(g(low, "event_id"))
    channel = _text(g(low, "channel"))
    status = g(low, "status")
    http_status = int(status) if _num(status) is not None and float(status).is_integer() else None
    error = _text(g(low, "error"))
    if (
        error is None
        and isinstance(status, str)
        and http_status is None
        and status.lower() not in ("ok", "success")
    ):
        error = status
    tokens_in, tokens_out, cost = g(low, "tokens_in"), g(low, "tokens_out"), g(low, "cost_usd")
    resource = _text(g(low, "resource"))
    src = "log:" + NAME
    if tokens_in is not None or tokens_out is not None or cost is not None or resource is not None:
        tin, tout, c = _num(tokens_in), _num(tokens_out), _num(cost)
        return make(
            "llm", t=t, source=src, event_id=event_id, channel=channel, resource=resource, http_status=http_status,
            latency_ms=_num(g(low, "latency_ms")), tokens_in=int(tin) if tin is not None else None,
            tokens_out=int(tout) if tout is not None else None, cost_usd=c, error=error,
        )  # fmt: skip
    retry = _num(g(low, "retry_attempt"))
    if retry is not None:
        return make(
            "envelope", t=t, source=src, type="events_api", event_id=event_id, channel=channel,
            envelope_id=_text(g(low, "envelope_id")), event_type=_text(g(low, "event_type")),
            retry_attempt=int(retry), retry_reason=_text(g(low, "retry_reason")),
        )  # fmt: skip
    if event_id is None:
        return None
    phase = _text(g(low, "phase"))
    if phase not in ("start", "end", "fail", "requeue", "shed"):
        message = _text(g(low, "message"))
        if message is None:
            phase = "start"
        elif _FAIL.search(message) or error:
            phase = "fail"
        elif _END.search(message):
            phase = "end"
        elif _START.search(message):
            phase = "start"
        else:
            return None
    return make(
        "process", t=t, source=src, event_id=event_id, envelope_id=_text(g(low, "envelope_id")), channel=channel,
        phase=phase, duration_ms=_num(g(low, "latency_ms")), error=error,
    )  # fmt: skip


def read(source: Input, stats: ParseStats, fields: Fields, clock: Clock) -> Iterator[list[Record]]:
    """Records from an application JSON log, in batches."""
    batch: list[Record] = []
    last_t = 0.0
    for line in source.lines(stats):
        stats.lines += 1
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            stats.bad(line, "not JSON")
            continue
        if not isinstance(obj, dict):
            stats.bad(line, "not a JSON object")
            continue
        try:
            rec = to_record(obj, fields, clock, last_t)
        except (TypeError, ValueError, OverflowError) as exc:
            stats.bad(line, f"unexpected field type ({exc})")
            continue
        if rec is None:
            stats.ignored += 1
            continue
        last_t = rec["t"]
        batch.append(rec)
        if len(batch) >= 5000:
            stats.records += len(batch)
            yield batch
            batch = []
    stats.records += len(batch)
    yield batch
