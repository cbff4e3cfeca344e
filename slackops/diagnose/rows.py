"""Rows: records as the detectors see them, one small typed struct per kind holding only the fields analysis reads.

``diagnose`` reads millions of JSONL lines. msgspec decodes each line straight into the row type its ``kind``
names and skips the fields nobody reads, about 1.6x as fast as ``orjson`` builds a full dict (measured on
bench/bench_diagnose.py's recording), and detectors read attributes about twice as fast as ``dict.get``.
Records from the other readers, and from callers of ``diagnose_records``, are dicts, converted here once.

A row reads like the dict it came from: ``row.event_id`` is ``rec.get("event_id")`` (``None`` when absent or
null), ``row.t`` is the time as a float and ``row.kind`` is the kind. :data:`FIELDS` is the one list of what
each kind carries; ``tests/test_diagnose_rows.py`` checks it covers every field a detector handler reads.
"""

from __future__ import annotations

from typing import Any, ClassVar, Union

import msgspec

from slackops.records import KINDS

#: kind -> the fields the detectors (and the report's overview) read from records of that kind.
FIELDS: dict[str, tuple[str, ...]] = {
    "api_call": ("error", "http_status", "method", "retry_after"),
    "connect": ("conn", "reason", "initiator", "cause"),
    "hello": ("conn", "num_connections", "own_connections", "host", "reason", "initiator", "cause"),
    "disconnect": ("conn", "reason", "host", "initiator", "cause", "by", "where"),
    "close": ("conn", "reason", "by", "initiator", "cause", "where"),
    "ping": ("conn", "direction"),
    "pong": ("conn", "direction"),
    "envelope": (
        "conn",
        "instance",
        "envelope_id",
        "type",
        "event_id",
        "event_type",
        "subtype",
        "channel",
        "user",
        "bot_id",
        "ts",
        "event_ts",
        "thread_ts",
        "retry_attempt",
        "retry_reason",
        "text_changed",
    ),
    "ack": ("conn", "envelope_id", "event_id", "ack_ms", "ok", "ack_conn"),
    "process": ("event_id", "envelope_id", "phase", "instance", "error", "owner", "duration_ms"),
    "post": ("channel", "method", "http_status", "error", "retry_after"),
    "llm": ("event_id", "channel", "resource", "http_status", "error", "tokens_in", "tokens_out", "cost_usd"),
    "queue": ("depth", "action", "event_id"),
    "reconnect": ("conn", "initiator", "cause", "reason"),
    "signal": ("name", "action"),
    "error": ("where", "by"),
    "drift": ("num_connections", "own_connections"),
    "loop": ("conn", "loop"),
}

#: Fields whose absence means something other than ``None`` (``rec.get(field, default)`` in the detectors).
#: ``UNSET`` is falsy, so ``row.initiator or ...`` still reads like ``rec.get("initiator") or ...``.
DEFAULTS: dict[tuple[str, str], Any] = {
    ("pong", "direction"): "received",
    ("reconnect", "initiator"): msgspec.UNSET,
}


#: Kinds the engine hands to the detectors in bulk: within a slice of the data, every record of one group goes
#: to a detector (as one sequence, in time order) before any record of the next group, in pipeline order — a
#: delivery before its ack, the ack before the handler run, the run before its LLM call and post. Every other
#: kind (connects, closes, signals, errors ...) is rare and *sequenced*: it cuts the slice, so records before it
#: are handed over before it and records after it after it. See :mod:`slackops.diagnose.engine`.
BULK: tuple[tuple[str, ...], ...] = (
    ("envelope",),
    ("ack",),
    ("queue",),
    ("dedup",),
    ("process",),
    ("llm",),
    ("post",),
    ("ping", "pong"),
)
#: kind -> its group's position in :data:`BULK`; -1 for sequenced kinds
RANK: dict[str, int] = {kind: i for i, group in enumerate(BULK) for kind in group}


class Row(msgspec.Struct, tag_field="kind", gc=False):
    """Base of every row type: the time, and the kind and its :data:`RANK` as class attributes."""

    t: float
    kind: ClassVar[str]
    rank: ClassVar[int]


def _row_type(kind: str) -> type[Row]:
    fields = [(f, Any, DEFAULTS.get((kind, f))) for f in FIELDS.get(kind, ())]
    name = "".join(p.title() for p in kind.split("_")) + "Row"
    # gc=False: a row holds JSON values only, which cannot form reference cycles.
    return msgspec.defstruct(
        name, fields, bases=(Row,), tag=kind, namespace={"kind": kind, "rank": RANK.get(kind, -1)}, gc=False
    )


#: kind -> its row type, for every kind of :data:`slackops.records.KINDS`.
TYPES: dict[str, type[Row]] = {kind: _row_type(kind) for kind in KINDS}
AnyRow = Union[tuple(TYPES.values())]  # noqa: UP007 - built at run time from the kinds

#: Decodes a JSON array of records (a chunk of JSONL lines joined with commas) in one call.
decode_many = msgspec.json.Decoder(list[AnyRow]).decode  # type: ignore[valid-type]
#: Decodes one JSONL line.
decode_one = msgspec.json.Decoder(AnyRow).decode  # type: ignore[valid-type]
_ROWS = list[AnyRow]  # type: ignore[valid-type]


def convert_many(records: list[Any]) -> list[Row]:
    """Dict records as rows; raises :class:`msgspec.ValidationError` if any one does not fit."""
    return msgspec.convert(records, _ROWS)


def convert(record: Any) -> Row:
    """One dict record as a row; raises :class:`ValueError` (a :class:`msgspec.ValidationError`) if it does not fit."""
    return msgspec.convert(record, AnyRow)


def as_dict(row: Row) -> dict[str, Any]:
    """The row as a record dict (the fields it carries that are set), for samples of records that failed."""
    out: dict[str, Any] = {"t": row.t, "kind": row.kind}
    for f in row.__struct_fields__[1:]:
        v = getattr(row, f)
        if v is not None and v is not msgspec.UNSET:
            out[f] = v
    return out


__all__ = [
    "BULK",
    "FIELDS",
    "RANK",
    "TYPES",
    "Row",
    "as_dict",
    "convert",
    "convert_many",
    "decode_many",
    "decode_one",
]
