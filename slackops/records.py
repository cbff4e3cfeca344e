"""The one event-log model every part of slackops speaks.

A *record* is one observation of Socket Mode: a frame received, an ack written, a socket closed, a handler run.
Records are flat ``dict`` objects holding JSON-native values only, so the same record is identical in memory,
in a JSONL line and in a row of the SQLite ``records`` table. Everything that observes Socket Mode (the watch
probe, the reference bot, the simulator, the log importers of ``diagnose``) produces records; everything that
analyses consumes them.

Common fields, on every record:

=========  ======  =============================================================================
field      type    meaning
=========  ======  =============================================================================
t          float   wall-clock time, epoch seconds
kind       str     one of :data:`KINDS`
conn       str     connection id, stable per socket (``None`` when not about one socket)
source     str     who produced it: ``probe``, ``bot``, ``sim``, or the importer (``log:slack-sdk`` …)
instance   str     optional: which bot replica / host produced it (several instances, one recording)
=========  ======  =============================================================================

Kinds and their own fields (all optional; a field that is ``None`` is simply absent):

``api_call``    method, ok, error, http_status, latency_ms, retry_after
``connect``     attempt, url_host (the host only: never the WSS ticket)
``hello``       num_connections, own_connections, host, build_number, approximate_connection_time
``disconnect``  reason, host
``close``       code, reason, by (client / server / network), clean
``ping``        direction (sent / received), rtt_ms, payload_kind
``pong``        direction (sent / received), rtt_ms, payload_kind
``envelope``    envelope_id, type, event_id, event_type, subtype, channel, user, bot_id, ts, event_ts,
                thread_ts, retry_attempt, retry_reason, accepts_response_payload, bytes, text_changed, text
``ack``         envelope_id, event_id, ack_ms, ok, ack_conn, error
``dedup``       event_id, envelope_id, duplicate
``process``     event_id, envelope_id, channel, phase (start / end / fail / requeue / shed), duration_ms, error,
                owner (an orphan reclaimed from another instance: the instance that had started it)
``post``        method, channel, thread_ts, event_id, ok, http_status, error
``llm``         event_id, channel, resource, http_status, latency_ms, tokens_in, tokens_out, cost_usd, error
``queue``       depth, action (enqueue / dequeue / shed / block), event_id, envelope_id
``reconnect``   initiator (server / watchdog / ping_timeout / client), cause, gap_ms
``signal``      name, action
``error``       where, error, detail (a problem the producer survived: bad frame, failed write …)
``drift``       num_connections, own_connections (hello says more sockets than we hold)
``guard``       guard, event_id, channel, action, detail (a cost guard fired: self-loop, fan-out, budget …)
``chaos``       action, target, detail (the simulator injected a fault: refresh, drop, half_open, fail_open …)
``loop``        loop (monitor / receive): an SDK-internal loop saying it is alive (slack-sdk's aiohttp client
                logs one every 100 iterations; when they stop, that loop has died)

Privacy: records hold ids, types, sizes and timings. ``text`` (message text) is present only when the user
opted in with ``--record-text``; tokens and WSS tickets never appear (see :mod:`slackops.redact`).

Time: ``t`` is wall clock because records from several machines and log files are merged by time. Durations
(``ack_ms``, ``rtt_ms``, ``gap_ms`` …) are measured on a monotonic clock by the producer.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

Record = dict[str, Any]

#: Fields every record may carry, with their types. ``t``, ``kind`` and ``source`` are required.
COMMON: dict[str, type] = {"t": float, "kind": str, "conn": str, "source": str, "instance": str}

_ENVELOPE_FIELDS: dict[str, type] = {
    "envelope_id": str,
    "type": str,
    "event_id": str,
    "event_type": str,
    "subtype": str,
    "channel": str,
    "user": str,
    "bot_id": str,
    "ts": str,
    "event_ts": str,
    "thread_ts": str,
    "retry_attempt": int,
    "retry_reason": str,
    "accepts_response_payload": bool,
    "bytes": int,
    "text_changed": bool,
    "text": str,
}

_PING_FIELDS: dict[str, type] = {"direction": str, "rtt_ms": float, "payload_kind": str}

#: The one list of kinds and their fields. Extend here, and nowhere else.
KINDS: dict[str, dict[str, type]] = {
    "api_call": {
        "method": str,
        "ok": bool,
        "error": str,
        "http_status": int,
        "latency_ms": float,
        "retry_after": float,
    },
    "connect": {"attempt": int, "url_host": str},
    "hello": {
        "num_connections": int,
        "own_connections": int,
        "host": str,
        "build_number": int,
        "approximate_connection_time": int,
    },
    "disconnect": {"reason": str, "host": str},
    "close": {"code": int, "reason": str, "by": str, "clean": bool},
    "ping": _PING_FIELDS,
    "pong": _PING_FIELDS,
    "envelope": _ENVELOPE_FIELDS,
    "ack": {
        "envelope_id": str,
        "event_id": str,
        "ack_ms": float,
        "ok": bool,
        "ack_conn": str,
        "error": str,
    },
    "dedup": {"event_id": str, "envelope_id": str, "duplicate": bool},
    "process": {
        "event_id": str,
        "envelope_id": str,
        "channel": str,
        "phase": str,
        "duration_ms": float,
        "error": str,
        "owner": str,
    },
    "post": {
        "method": str,
        "channel": str,
        "thread_ts": str,
        "event_id": str,
        "ok": bool,
        "http_status": int,
        "error": str,
    },
    "llm": {
        "event_id": str,
        "channel": str,
        "resource": str,
        "http_status": int,
        "latency_ms": float,
        "tokens_in": int,
        "tokens_out": int,
        "cost_usd": float,
        "error": str,
    },
    "queue": {"depth": int, "action": str, "event_id": str, "envelope_id": str},
    "reconnect": {"initiator": str, "cause": str, "gap_ms": float},
    "signal": {"name": str, "action": str},
    "error": {"where": str, "error": str, "detail": str},
    "drift": {"num_connections": int, "own_connections": int},
    "guard": {"guard": str, "event_id": str, "channel": str, "action": str, "detail": str},
    "chaos": {"action": str, "target": str, "detail": str},
    "loop": {"loop": str},
}

#: Allowed values for enumerated fields (checked by :func:`validate`).
ENUMS: dict[tuple[str, str], frozenset[str]] = {
    ("close", "by"): frozenset({"client", "server", "network"}),
    ("ping", "direction"): frozenset({"sent", "received"}),
    ("pong", "direction"): frozenset({"sent", "received"}),
    ("process", "phase"): frozenset({"start", "end", "fail", "requeue", "shed"}),
    ("queue", "action"): frozenset({"enqueue", "dequeue", "shed", "block"}),
    ("reconnect", "initiator"): frozenset({"server", "watchdog", "ping_timeout", "client"}),
}

#: Every field name of any kind, with its type: the columns of the SQLite ``records`` table.
ALL_FIELDS: dict[str, type] = dict(COMMON)
for _fields in KINDS.values():
    for _name, _typ in _fields.items():
        if ALL_FIELDS.setdefault(_name, _typ) is not _typ:  # pragma: no cover - guarded by a test
            raise TypeError(f"field {_name!r} has two types across kinds")

REQUIRED = ("t", "kind", "source")


class RecordError(ValueError):
    """A record (or a line claiming to be one) that does not fit the model."""


def make(kind: str, *, t: float, source: str, conn: str | None = None, **fields: Any) -> Record:
    """Build a record, dropping ``None`` fields, and check every field belongs to ``kind``.

    >>> make("ack", t=1.5, source="probe", conn="c1", envelope_id="e1", ack_ms=0.4, ok=True)["ack_ms"]
    0.4
    """
    allowed = KINDS.get(kind)
    if allowed is None:
        raise RecordError(f"unknown record kind {kind!r}; known kinds: {', '.join(KINDS)}")
    rec: Record = {"t": float(t), "kind": kind, "source": source}
    if conn is not None:
        rec["conn"] = conn
    for name, value in fields.items():
        if value is None:
            continue
        if name not in allowed and name != "instance":
            raise RecordError(f"{kind} records have no field {name!r}; fields: {', '.join(allowed)}")
        rec[name] = value
    return rec


def validate(rec: Mapping[str, Any]) -> list[str]:
    """Return the problems with ``rec`` (an empty list means it is a valid record).

    Unknown fields are allowed (forward compatibility: a newer slackops may add fields) and are kept by the
    store; wrong types and unknown kinds are problems.
    """
    problems: list[str] = []
    for name in REQUIRED:
        if name not in rec:
            problems.append(f"missing field {name!r}")
    kind = rec.get("kind")
    fields = KINDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        problems.append(f"unknown kind {kind!r}")
        return problems
    for name, value in rec.items():
        if value is None:
            continue
        typ = COMMON.get(name) or fields.get(name)
        if typ is None:
            continue
        if not _is_type(value, typ):
            problems.append(f"{kind}.{name} should be {typ.__name__}, got {type(value).__name__}")
        elif isinstance(value, float) and not math.isfinite(value):
            # JSON has no NaN/Infinity (orjson writes null): such a record would not survive a JSONL round trip.
            problems.append(f"{kind}.{name} should be a finite number, got {value!r}")
        elif (kind, name) in ENUMS and value not in ENUMS[(kind, name)]:
            allowed = ", ".join(sorted(ENUMS[(kind, name)]))
            problems.append(f"{kind}.{name} is {value!r}; expected one of {allowed}")
    return problems


def _is_type(value: Any, typ: type) -> bool:
    if typ is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, typ)


def coerce(rec: Record) -> Record:
    """Restore Python types of the kind's own fields (SQLite hands back ``0``/``1`` for booleans, ints for floats).

    Only fields of the record's kind (and the common ones) are touched: a field unknown to the kind is kept as
    given, so ``{"kind": "ack", "clean": 0}`` keeps its ``0`` (``clean`` is a bool only on ``close`` records).
    """
    kind = rec.get("kind")
    own = KINDS.get(kind) if isinstance(kind, str) else None
    for name, value in list(rec.items()):
        if value is None:
            del rec[name]
            continue
        typ = COMMON.get(name) or (own.get(name) if own is not None else ALL_FIELDS.get(name))
        if typ is bool and isinstance(value, int) and not isinstance(value, bool):
            rec[name] = bool(value)
        elif typ is float and isinstance(value, int) and not isinstance(value, bool):
            rec[name] = float(value)
    return rec


def dumps(rec: Mapping[str, Any]) -> bytes:
    """One JSONL line (without the newline) for ``rec``."""
    return orjson.dumps(rec)


def loads(line: bytes | str) -> Record:
    """Parse one JSONL line into a record; raise :class:`RecordError` saying what is wrong."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {type(obj).__name__}")
    problems = validate(obj)
    if problems:
        raise RecordError("; ".join(problems))
    return coerce(obj)


def iso(t: float) -> str:
    """ISO-8601 UTC with milliseconds, the human column beside epoch ``t``."""
    return _dt.datetime.fromtimestamp(t, tz=_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sort_by_time(records: Iterable[Record]) -> list[Record]:
    """Records ordered by ``t`` (stable: records with equal times keep their order)."""
    return sorted(records, key=lambda r: r["t"])
