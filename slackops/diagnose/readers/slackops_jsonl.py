"""slackops JSONL recordings (``watch --jsonl``, the reference bot, the simulator): one record per line.

This is the hot path of ``diagnose``. Each chunk is parsed with a single decoder call over the chunk turned
into a JSON array (newlines become commas), which removes the per-line call overhead; a chunk that fails (a bad
line somewhere) is re-parsed line by line so only the bad lines are lost. :func:`read` yields record dicts
(``orjson``); :func:`read_rows`, what the engine uses, decodes straight into :mod:`~slackops.diagnose.rows`
and hands lines that are JSON but do not fit a row to the engine as they are, which counts them.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import orjson

from slackops.diagnose import rows
from slackops.diagnose.readers.base import Input, ParseStats
from slackops.records import KINDS, Record

NAME = "slackops-jsonl"
#: Bigger reads than the text readers use: per-chunk costs (join, decoder call) shrink, memory stays small.
ROW_CHUNK = 1 << 15


class Mixed(list):  # type: ignore[type-arg]
    """A batch holding rows and also values that did not fit a row (the engine checks and counts those)."""

    __slots__ = ()


def sniff(line: bytes) -> bool:
    """A slackops record: a JSON object with a known ``kind`` and a numeric ``t``."""
    if not line.lstrip().startswith(b"{"):
        return False
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, dict) and obj.get("kind") in KINDS and isinstance(obj.get("t"), (int, float))


def read(source: Input, stats: ParseStats) -> Iterator[list[Record]]:
    """Batches of parsed JSON values (normally record dicts), one batch per chunk."""
    loads = orjson.loads
    for body in source.blocks(stats):
        yield _batch(body, stats, loads)
    tail = source.tail
    if tail.strip():
        stats.lines += 1
        try:
            yield [loads(tail)]
        except orjson.JSONDecodeError:
            stats.bad(tail, "truncated or invalid last line")


def _batch(body: bytes, stats: ParseStats, loads) -> list[Record]:  # type: ignore[no-untyped-def]
    stats.lines += body.count(b"\n") + 1
    try:
        out = loads(b"[" + body.replace(b"\n", b",") + b"]")
    except orjson.JSONDecodeError:
        pass
    else:
        return out
    # Slow path: something in this chunk is not one JSON value per line (a blank line, binary bytes,
    # a torn write). Parse line by line and count only what fails.
    out = []
    for line in body.split(b"\n"):
        if not line.strip():
            stats.lines -= 1  # blank lines are not data
            continue
        try:
            out.append(loads(line))
        except orjson.JSONDecodeError as exc:
            stats.bad(line, f"not JSON ({str(exc).split(':')[0]})")
    return out


def read_rows(source: Input, stats: ParseStats, *, count: bool = True) -> Iterator[list[rows.Row]]:
    """Batches of :class:`~slackops.diagnose.rows.Row`, one per chunk; a :class:`Mixed` batch where lines failed.

    ``count=False`` leaves ``stats.lines`` alone (a second reader of the same file, whose counts are not used).
    """
    decode_many = rows.decode_many
    for body in source.blocks(stats, ROW_CHUNK):
        try:
            batch = decode_many(b"[" + body.replace(b"\n", b",") + b"]")
        except msgspec.DecodeError:
            stats.lines += body.count(b"\n") + 1
            yield _slow_rows(body.split(b"\n"), stats)
            continue
        if count:
            # Every line of a chunk that decoded whole is one row (a blank or broken line fails the chunk).
            stats.lines += len(batch)
        yield batch
    tail = source.tail
    if tail.strip():
        stats.lines += 1
        batch = _slow_rows([tail], stats, "truncated or invalid last line")
        if batch:
            yield batch


def _slow_rows(lines: list[bytes], stats: ParseStats, why: str | None = None) -> Mixed:
    out = Mixed()
    decode_one = rows.decode_one
    for line in lines:
        if not line.strip():
            stats.lines -= 1  # blank lines are not data
            continue
        try:
            out.append(decode_one(line))
            continue
        except msgspec.DecodeError:
            pass
        try:
            # Valid JSON that is not a row (wrong types, unknown kind): the engine says what is wrong with it.
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            stats.bad(line, why or f"not JSON ({str(exc).split(':')[0]})")
    return out
