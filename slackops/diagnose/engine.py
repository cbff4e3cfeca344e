"""The diagnose engine: open inputs, pick readers, merge by time, route records by kind to the detectors.

Routing is a table ``kind -> [bound handler, ...]`` built once from what each detector declares, so a record
costs one dict lookup plus the handlers that want it. Each input is streamed in batches; several inputs are
merged by time with a heap (logs of one process are in time order already). A record that does not fit the
model (wrong types, unknown kind) is counted and sampled, never fatal.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from slackops.diagnose.detectors import ALL, Context
from slackops.diagnose.readers.base import Input, ParseStats, Progress
from slackops.diagnose.readers.detect import FORMATS, canonical, detect, reader
from slackops.diagnose.report import Report
from slackops.diagnose.thresholds import Settings, load
from slackops.errors import InputError
from slackops.records import KINDS, Record

_BATCH = 4096
_TIMELINE_MAX = 5000


class _Overview:
    """The connection-level facts the report's overview shows (not a detector: it judges nothing)."""

    kinds = ("connect", "hello", "close", "disconnect", "reconnect", "envelope")

    def __init__(self) -> None:
        self.conns: dict[str, None] = {}
        self.timeline: deque[tuple[float, str, str]] = deque(maxlen=_TIMELINE_MAX)
        self.envelope_types: Counter[str] = Counter()
        self.retries = 0
        self.instances: dict[str, None] = {}

    def on_event(self, rec: Record) -> None:
        kind = rec["kind"]
        conn = rec.get("conn")
        if conn is not None and len(self.conns) < 10_000:
            self.conns[conn] = None
        what = rec.get("reason") or rec.get("initiator") or rec.get("cause") or ""
        self.timeline.append((rec["t"], kind, str(what)))

    def on_envelope(self, rec: Record) -> None:
        self.envelope_types[rec.get("type") or "unknown"] += 1
        if rec.get("retry_attempt"):
            self.retries += 1
        inst = rec.get("instance")
        if inst is not None and len(self.instances) < 100:
            self.instances[inst] = None

    def handlers(self) -> dict[str, Callable[[Record], None]]:
        h: dict[str, Callable[[Record], None]] = {k: self.on_event for k in self.kinds}
        h["envelope"] = self.on_envelope
        return h


def _open(
    paths: list[str], fmt: str | None, settings: Settings, progress: Progress | None
) -> tuple[list[tuple[Input, ParseStats]], list[ParseStats]]:
    usable: list[tuple[Input, ParseStats]] = []
    unknown: list[ParseStats] = []
    forced = canonical(fmt) if fmt else None
    for path in paths:
        source = Input(path, progress)
        stats = ParseStats(path)
        name = forced or detect(source, settings)
        if name is None:
            stats.format = "unknown"
            first = next((ln for ln in source.head.split(b"\n") if ln.strip()), b"")
            if first:
                stats.bad(first, "first line")
            source.close()
            unknown.append(stats)
            continue
        stats.format = name
        usable.append((source, stats))
    return usable, unknown


def _checked(batches: Iterable[list[Any]], stats: ParseStats) -> Iterator[Record]:
    """Records with a numeric ``t`` only (the heap merge compares times); the rest are counted."""
    for batch in batches:
        for rec in batch:
            t = rec.get("t") if isinstance(rec, dict) else None
            if isinstance(t, (int, float)) and not isinstance(t, bool):
                yield rec
            else:
                stats.bad(repr(rec)[:160], "record without a numeric t")


def _merged(streams: list[tuple[Iterable[list[Any]], ParseStats]]) -> Iterator[list[Any]]:
    merged = heapq.merge(*(_checked(b, s) for b, s in streams), key=lambda r: r["t"])
    while batch := list(itertools.islice(merged, _BATCH)):
        yield batch


def diagnose(
    paths: list[str],
    *,
    fmt: str | None = None,
    since: float | None = None,
    until: float | None = None,
    thresholds: dict[str, float] | None = None,
    config: str | None = None,
    progress: Progress | None = None,
) -> Report:
    """Read ``paths`` (files, ``-`` for stdin; any mix of formats), run every detector, return the report.

    Raises :class:`~slackops.errors.InputError` when no input is in a known format or nothing could be parsed.
    """
    if not paths:
        raise InputError("no input given", hint="Pass one or more log files or recordings, or - for stdin.")
    settings = load(thresholds, config)
    opened, unknown = _open(paths, fmt, settings, progress)
    all_stats = [s for _, s in opened] + unknown
    if not opened:
        raise InputError(
            "no input is in a known format: " + ", ".join(s.path for s in unknown),
            hint="Formats tried: "
            + ", ".join(FORMATS)
            + ". Pick one with --format if detection guessed wrong.",
        )
    try:
        streams = [(reader(s.format, src, s, settings, since, until), s) for src, s in opened]
        if len(streams) == 1:
            batches, sink = streams[0]
        else:
            batches, sink = _merged(streams), ParseStats("(merged)")
        report = _analyse(batches, sink, settings, {s.format for _, s in opened}, since, until, all_stats)
    finally:
        for src, _ in opened:
            src.close()
    report.caveats[:0] = [
        f"{s.path}: not in a known format, skipped (tried {', '.join(FORMATS)})" for s in unknown
    ]
    return report


def diagnose_records(
    records: Iterable[Record],
    *,
    since: float | None = None,
    until: float | None = None,
    thresholds: dict[str, float] | None = None,
    config: str | None = None,
) -> Report:
    """Run every detector over records already in memory (in time order): for tests and other features."""
    settings = load(thresholds, config)
    stats = ParseStats("(records)", format="records")
    batches = (
        (list(b) for b in itertools.batched(records, _BATCH))
        if hasattr(itertools, "batched")
        else _batches(records)
    )
    return _analyse(batches, stats, settings, {"records"}, since, until, [stats])


def _batches(records: Iterable[Record]) -> Iterator[list[Record]]:
    it = iter(records)
    while batch := list(itertools.islice(it, _BATCH)):
        yield batch


def _analyse(
    batches: Iterable[list[Any]],
    sink: ParseStats,
    settings: Settings,
    formats: set[str],
    since: float | None,
    until: float | None,
    all_stats: list[ParseStats],
) -> Report:
    detectors = [cls(settings) for cls in ALL]
    overview = _Overview()
    routes: dict[str, list[Callable[[Record], None]]] = {kind: [] for kind in KINDS}
    for part in (*detectors, overview):
        for kind, handler in part.handlers().items():
            routes[kind].append(handler)
    ctx = Context(formats=formats)
    _feed(batches, routes, ctx, sink, since, until)
    if sink not in all_stats and sink.unparsed:
        all_stats.append(sink)
    if not sum(ctx.kinds.values()):
        raise InputError(
            "nothing could be parsed from the input ("
            + ", ".join(f"{s.path}: {s.format}, {s.lines} lines, {s.unparsed} unparsable" for s in all_stats)
            + ")",
            hint="Formats tried: "
            + ", ".join(FORMATS)
            + ". For SDK logs, DEBUG level gives the most to work with.",
        )
    findings = [f for d in detectors for f in d.finish(ctx)]
    caveats = [c for d in detectors for c in d.caveats(ctx)]
    extra: dict[str, Any] = {}
    for d in detectors:
        extra.update(d.stats())
    return Report.build(findings, ctx, all_stats, caveats, settings, overview, extra)


def _feed(
    batches: Iterable[list[Any]],
    routes: dict[str, list[Callable[[Record], None]]],
    ctx: Context,
    stats: ParseStats,
    since: float | None,
    until: float | None,
) -> None:
    """The hot loop: validate the few fields routing needs, count, filter by time, hand to detectors."""
    counts: dict[str, int] = dict.fromkeys(KINDS, 0)
    lo = since if since is not None else float("-inf")
    hi = until if until is not None else float("inf")
    first: float | None = None
    last = float("-inf")
    get_route = routes.__getitem__
    filtered = 0
    for batch in batches:
        for rec in batch:
            try:
                t = rec["t"]
                if t.__class__ is not float:
                    if t.__class__ is not int:
                        raise TypeError(f"t is {type(t).__name__}")
                    t = rec["t"] = float(t)
                if t < lo or t > hi:
                    filtered += 1
                    continue
                kind = rec["kind"]
                handlers = get_route(kind)
                counts[kind] += 1
                if first is None:
                    first = t
                if t > last:
                    last = t
                for handle in handlers:
                    handle(rec)
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                stats.bad(repr(rec)[:160], _why(exc))
    ctx.kinds.update({k: n for k, n in counts.items() if n})
    if not stats.records:
        # Record-per-line formats are not counted by their readers (the hot path stays lean).
        stats.records = sum(counts.values()) + filtered
    ctx.t_first = first
    ctx.t_last = last if first is not None else None


def _why(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"unknown kind or missing field {exc}"
    return f"wrong field type ({exc})"


__all__ = ["diagnose", "diagnose_records"]
