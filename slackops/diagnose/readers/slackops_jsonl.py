"""slackops JSONL recordings (``watch --jsonl``, the reference bot, the simulator): one record per line.

This is the hot path of ``diagnose``. Each chunk is parsed with a single ``orjson.loads`` call over the
chunk turned into a JSON array (newlines become commas), which removes the per-line call overhead; a chunk that
fails (a bad line somewhere) is re-parsed line by line so only the bad lines are lost. Records are checked for
shape by the engine, which counts the ones that do not fit.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from slackops.diagnose.readers.base import Input, ParseStats
from slackops.records import KINDS, Record

NAME = "slackops-jsonl"


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
