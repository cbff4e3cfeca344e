"""The diagnose engine: open inputs, pick readers, merge by time, route records by kind to the detectors.

Records travel as :mod:`~slackops.diagnose.rows` (slackops JSONL is decoded straight into them; the other
readers' dicts are converted once). Routing is a table ``row type -> [bound handler, ...]`` built once from what
each detector declares, so a record costs one dict lookup plus the handlers that want it; counts per kind and
the time span are taken per batch, in C. Each input is streamed in batches; several inputs are merged by time
with a heap (logs of one process are in time order already). A record that does not fit the model (wrong
types, unknown kind) is counted and sampled, never fatal.

A big slackops JSONL file is analysed on two cores: a forked worker (:mod:`.split`) reads the same file and
runs about half the detectors, and hands them back for the report. Memory stays bounded by the detectors'
windows in both processes, whatever the file size.
"""

from __future__ import annotations

import bisect
import gc
import heapq
import itertools
import operator
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from slackops.diagnose import split
from slackops.diagnose.detectors import ALL, Context, Detector
from slackops.diagnose.detectors.base import slice_seconds
from slackops.diagnose.readers import slackops_jsonl
from slackops.diagnose.readers.base import Input, ParseStats, Progress
from slackops.diagnose.readers.detect import FORMATS, canonical, detect, reader
from slackops.diagnose.readers.slackops_jsonl import Mixed
from slackops.diagnose.report import Report
from slackops.diagnose.rows import BULK, TYPES, Row, as_dict, convert, convert_many
from slackops.diagnose.thresholds import Settings, load
from slackops.errors import InputError
from slackops.records import Record

_BATCH = 4096
_TIMELINE_MAX = 5000
#: A single slackops JSONL file at least this big is analysed on two cores (see :mod:`.split`): below it,
#: a run takes well under a second and forking would not pay.
SPLIT_MIN_BYTES = 16 << 20
#: The detectors the forked worker runs: about half the per-record cost of all of them, so both processes
#: finish at about the same time (CPU seconds of each process measured on bench/bench_diagnose.py's recording:
#: about 1.9 here, 2.0 there).
_ELSEWHERE = frozenset({"out-of-order", "fan-out", "bot-self-loop"})


#: The caveat for input whose records all have one time (log lines without timestamps).
TIMELESS = (
    "every record has the same time (the log lines carry no timestamps): reconnect rates, per-hour and "
    "per-minute ceilings, 429 waves and watchdog timing were not judged. Log with timestamps: Python "
    'logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s"); Bolt JS: a logger that '
    "prefixes the time"
)


class _Overview:
    """The connection-level facts the report's overview shows (not a detector: it judges nothing)."""

    kinds = ("connect", "hello", "close", "disconnect", "reconnect", "envelope")

    def __init__(self) -> None:
        self.conns: dict[str, None] = {}
        self.timeline: deque[tuple[float, str, str]] = deque(maxlen=_TIMELINE_MAX)
        self.envelope_types: Counter[str] = Counter()
        self.retries = 0
        #: instance -> envelopes it received: each replica's share of Slack's deliveries
        self.instances: Counter[str] = Counter()

    def on_events(self, rows: Iterable[Row]) -> None:
        conns, timeline = self.conns, self.timeline
        for rec in rows:
            conn = rec.conn  # type: ignore[attr-defined]
            if conn is not None and len(conns) < 10_000:
                conns[conn] = None
            what = rec.reason or rec.initiator or rec.cause or ""  # type: ignore[attr-defined]
            timeline.append((rec.t, rec.kind, str(what)))

    def on_envelope(self, rows: Iterable[Row]) -> None:
        types, instances = self.envelope_types, self.instances
        for rec in rows:
            types[rec.type or "unknown"] += 1  # type: ignore[attr-defined]
            if rec.retry_attempt:  # type: ignore[attr-defined]
                self.retries += 1
            inst = rec.instance  # type: ignore[attr-defined]
            if inst is not None and (inst in instances or len(instances) < 100):
                instances[inst] += 1

    def row_handlers(self) -> dict[str, Callable[[Iterable[Row]], None]]:
        h: dict[str, Callable[[Iterable[Row]], None]] = {k: self.on_events for k in self.kinds}
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


def _checked(batches: Iterable[list[Any]], stats: ParseStats) -> Iterator[Any]:
    """Records with a numeric ``t`` only (the heap merge compares times); the rest are counted."""
    for batch in batches:
        for rec in batch:
            if isinstance(rec, Row):
                yield rec
                continue
            t = rec.get("t") if isinstance(rec, dict) else None
            if isinstance(t, (int, float)) and not isinstance(t, bool):
                yield rec
            else:
                stats.bad(repr(rec)[:160], "record without a numeric t")


def _merged(streams: list[tuple[Iterable[list[Any]], ParseStats]]) -> Iterator[list[Any]]:
    merged = heapq.merge(*(_checked(b, s) for b, s in streams), key=_time)
    while batch := list(itertools.islice(merged, _BATCH)):
        yield Mixed(batch)


def _time(rec: Any) -> float:
    return rec.t if isinstance(rec, Row) else rec["t"]


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
        streams = [(_rows_of(s.format, src, s, settings, since, until), s) for src, s in opened]
        if len(streams) == 1:
            batches, sink = streams[0]
        else:
            batches, sink = _merged(streams), ParseStats("(merged)")
        src, stats = opened[0]
        splittable = (
            len(opened) == 1
            and stats.format == slackops_jsonl.NAME
            and src.path != "-"
            and src.size >= SPLIT_MIN_BYTES
        )
        report = _analyse(
            batches,
            sink,
            settings,
            {s.format for _, s in opened},
            since,
            until,
            all_stats,
            split_path=src.path if splittable else None,
        )
    finally:
        for src, _ in opened:
            src.close()
    report.caveats[:0] = [
        f"{s.path}: not in a known format, skipped (tried {', '.join(FORMATS)})" for s in unknown
    ]
    return report


def _rows_of(
    fmt: str, source: Input, stats: ParseStats, settings: Settings, since: float | None, until: float | None
) -> Iterator[list[Any]]:
    """Batches for the engine: rows straight from slackops JSONL; any other reader's dicts, marked for checking."""
    if fmt == slackops_jsonl.NAME:
        return slackops_jsonl.read_rows(source, stats)
    return (Mixed(b) for b in reader(fmt, source, stats, settings, since, until))


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
        (Mixed(b) for b in itertools.batched(records, _BATCH))
        if hasattr(itertools, "batched")
        else _batches(records)
    )
    return _analyse(batches, stats, settings, {"records"}, since, until, [stats])


def _batches(records: Iterable[Record]) -> Iterator[list[Record]]:
    it = iter(records)
    while batch := Mixed(itertools.islice(it, _BATCH)):
        yield batch


def _analyse(
    batches: Iterable[list[Any]],
    sink: ParseStats,
    settings: Settings,
    formats: set[str],
    since: float | None,
    until: float | None,
    all_stats: list[ParseStats],
    split_path: str | None = None,
) -> Report:
    detectors = [cls(settings) for cls in ALL]
    overview = _Overview()
    here, elsewhere = detectors, []
    forked = None
    if split_path is not None:
        elsewhere = [d for d in detectors if d.slug in _ELSEWHERE]
        forked = split.fork(lambda: _run(elsewhere, settings, split_path, since, until))
        if forked is not None:
            here = [d for d in detectors if d.slug not in _ELSEWHERE]
    plan = _Plan([*here, overview], settings)
    ctx = Context(formats=formats)
    try:
        _feed(batches, plan, ctx, sink, since, until)
    except BaseException:
        if forked is not None:
            forked.cancel()
        raise
    if forked is not None:
        try:
            done = forked.result()
        except BaseException:
            forked.cancel()
            raise
        if done is None:  # the worker failed (killed, out of memory): do its part here
            done = _run(elsewhere, settings, split_path or "", since, until)
        theirs, rejects = done
        by_slug = {d.slug: d for d in theirs}
        detectors = [by_slug.get(d.slug, d) for d in detectors]
        sink.merge(rejects)
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
    if ctx.timeless:
        caveats.insert(0, TIMELESS)
    extra: dict[str, Any] = {}
    for d in detectors:
        extra.update(d.stats())
    return Report.build(findings, ctx, all_stats, caveats, settings, overview, extra)


class _Plan:
    """Who gets what: per bulk group (in :data:`~slackops.diagnose.rows.BULK` order) and per sequenced row type,
    the handlers to call, each taking an iterable of rows."""

    def __init__(self, parts: list[Any], settings: Settings) -> None:
        #: rank -> [(handler, the row types it wants, or None for every type of the group)]
        self.groups: list[list[tuple[Callable[[Iterable[Row]], None], frozenset[type] | None]]] = [
            [] for _ in BULK
        ]
        #: sequenced row type -> handlers
        self.sequenced: dict[type[Row], list[Callable[[Iterable[Row]], None]]] = {}
        for part in parts:
            by_group: dict[int, dict[Any, set[type]]] = {}
            for kind, handler in part.row_handlers().items():
                cls = TYPES[kind]
                if cls.rank < 0:
                    self.sequenced.setdefault(cls, []).append(handler)
                else:
                    by_group.setdefault(cls.rank, {}).setdefault(handler, set()).add(cls)
            for rank, handlers in by_group.items():
                if len(handlers) > 1:
                    raise TypeError(
                        f"{type(part).__name__}: kinds {'/'.join(BULK[rank])} arrive as one sequence; "
                        "map them to one method"
                    )
                ((handler, wanted),) = handlers.items()
                whole = {TYPES[k] for k in BULK[rank]}
                self.groups[rank].append((handler, None if wanted == whole else frozenset(wanted)))
        #: rank -> the group's one row type, or None for a group of several kinds
        self.single: list[type[Row] | None] = [TYPES[g[0]] if len(g) == 1 else None for g in BULK]
        self.slice_s = slice_seconds(settings.thresholds)


def _feed(
    batches: Iterable[list[Any]],
    plan: _Plan,
    ctx: Context,
    stats: ParseStats,
    since: float | None,
    until: float | None,
    rejects: ParseStats | None = None,
    count: bool = True,
) -> None:
    """The hot loop: filter by time, cut each batch into slices, hand each slice to the detectors.

    A batch is cut wherever it spans more than ``plan.slice_s`` seconds, and before and after every sequenced
    record (handed over on its own); within a slice, the detectors get the bulk groups one after the other.
    Records that do not fit the model are counted in ``stats``; records a detector chokes on in ``rejects``
    (default: ``stats`` too). ``count=False`` skips the time span (the worker's is not used).
    """
    # The cyclic GC would walk the detectors' windows (tuples and dicts of every event in them) hundreds of
    # times per run: about a tenth of the CPU, for nothing, since the hot path makes no reference cycles.
    # Reference counting still frees everything; the collector is back on when the feed ends.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        _feed_all(batches, plan, ctx, stats, since, until, rejects, count)
    finally:
        if was_enabled:
            gc.enable()


def _feed_all(
    batches: Iterable[list[Any]],
    plan: _Plan,
    ctx: Context,
    stats: ParseStats,
    since: float | None,
    until: float | None,
    rejects: ParseStats | None,
    count: bool,
) -> None:
    rejected = _Rejects(stats if rejects is None else rejects)
    lo = since if since is not None else float("-inf")
    hi = until if until is not None else float("inf")
    windowed = since is not None or until is not None
    tally: Counter[type[Row]] = Counter()
    first: float | None = None
    last = float("-inf")
    filtered = 0
    span = plan.slice_s
    for batch in batches:
        if batch.__class__ is Mixed:
            batch, dropped = _rows(batch, stats, lo, hi)
            filtered += dropped
        if windowed:
            kept = [rec for rec in batch if lo <= rec.t <= hi]
            filtered += len(batch) - len(kept)
            batch = kept
        if not batch:
            continue
        rejected.seen.clear()  # ids are unique while the batch is alive
        if count:
            if first is None:
                first = batch[0].t
            top = max(map(_T, batch))  # in C; records are only about in time order
            if top > last:
                last = top
        n = len(batch)
        if batch[-1].t - batch[0].t <= span:
            _slice(batch, plan, rejected, tally)
            continue
        i = 0
        while i < n:
            j = max(i + 1, bisect.bisect_right(batch, batch[i].t + span, i, n, key=_T))
            _slice(batch[i:j], plan, rejected, tally)
            i = j
    counts = dict(tally)
    ctx.kinds.update({cls.kind: n for cls, n in counts.items() if n})
    if not stats.records:
        # Record-per-line formats are not counted by their readers (the hot path stays lean).
        stats.records = sum(counts.values()) + filtered
    ctx.t_first = first
    ctx.t_last = last if first is not None else None


_T = operator.attrgetter("t")
_RANK = operator.attrgetter("rank")
_ERRORS = (KeyError, TypeError, ValueError, AttributeError, OverflowError)


class _Rejects:
    """Where records a detector chokes on are counted: once per record, however many detectors choke on it."""

    __slots__ = ("seen", "stats")

    def __init__(self, stats: ParseStats) -> None:
        self.stats = stats
        #: ids of the rows of the current batch already counted
        self.seen: set[int] = set()

    def bad(self, row: Row, exc: Exception) -> None:
        if id(row) not in self.seen:
            self.seen.add(id(row))
            self.stats.bad(repr(as_dict(row))[:160], _why(exc))


def _slice(rows: list[Row], plan: _Plan, rejects: _Rejects, tally: Counter[type[Row]]) -> None:
    """Every bulk group of ``rows`` to the handlers that want it, group after group; counts kinds in ``tally``.

    Sequenced records (rank -1) sort first; if there are any, the slice is cut at each of them instead.
    """
    srt = sorted(rows, key=_RANK)  # stable: time order is kept within a group
    if srt[0].rank < 0:
        start = 0
        for i, rec in enumerate(rows):
            if rec.rank < 0:
                if i > start:
                    _slice(rows[start:i], plan, rejects, tally)
                start = i + 1
                cls = rec.__class__
                tally[cls] += 1
                for handle in plan.sequenced.get(cls, ()):
                    _call(handle, [rec], rejects)
        if start < len(rows):
            _slice(rows[start:], plan, rejects, tally)
        return
    lo, n = 0, len(srt)
    for rank, handlers in enumerate(plan.groups):
        if lo >= n:
            return
        if srt[lo].rank != rank:
            continue
        hi = bisect.bisect_right(srt, rank, lo, n, key=_RANK)
        part = srt[lo:hi]
        lo = hi
        single = plan.single[rank]
        if single is None:
            tally.update(map(type, part))
        else:
            tally[single] += len(part)
        for handle, wanted in handlers:
            _call(handle, part if wanted is None else [r for r in part if r.__class__ in wanted], rejects)


def _call(handle: Callable[[Iterable[Row]], None], rows: list[Row], rejects: _Rejects) -> None:
    """``handle(rows)``; a record it chokes on is counted and the handler resumes after it."""
    it = iter(rows)
    try:
        handle(it)
    except _ERRORS as exc:
        _resume(handle, rows, it, exc, rejects)


def _resume(
    handle: Callable[[Iterable[Row]], None],
    rows: list[Row],
    it: Iterator[Row],
    exc: Exception,
    rejects: _Rejects,
) -> None:
    """``handle`` raised ``exc`` while walking ``it`` (over ``rows``): count the record it was on, go on after it."""
    n = len(rows)
    left = n
    while True:
        now = it.__length_hint__()  # type: ignore[attr-defined]
        if now == left:  # failed without taking a record: nothing to skip past
            rejects.bad(rows[min(n - left, n - 1)], exc)
            return
        left = now
        rejects.bad(rows[n - now - 1], exc)
        try:
            handle(it)
            return
        except _ERRORS as again:
            exc = again


def _run(
    detectors: list[Detector], settings: Settings, path: str, since: float | None, until: float | None
) -> tuple[list[Detector], ParseStats]:
    """Feed ``detectors`` every row of the slackops JSONL file ``path`` (in the forked worker).

    Returns them and the records they rejected; the lines that could not be read at all are the main
    process's to count (it reads the same file).
    """
    source = Input(path)
    try:
        rejects = ParseStats(path)
        read = ParseStats(path)
        _feed(
            slackops_jsonl.read_rows(source, read),
            _Plan(detectors, settings),
            Context(),
            read,
            since,
            until,
            rejects,
            count=False,
        )
    finally:
        source.close()
    return detectors, rejects


def _rows(batch: list[Any], stats: ParseStats, lo: float, hi: float) -> tuple[list[Row], int]:
    """Rows for a batch of dicts (and rows); counts what does not fit. Returns the rows and how many were
    outside ``[lo, hi]`` among the records dropped here (the rest are filtered by the hot loop)."""
    if not any(isinstance(r, Row) for r in batch):
        try:
            return convert_many(batch), 0
        except ValueError:
            pass  # something in the batch does not fit: find it below
    out: list[Row] = []
    filtered = 0
    for rec in batch:
        if isinstance(rec, Row):
            out.append(rec)
            continue
        try:
            t = rec["t"]
            if t.__class__ is not float and t.__class__ is not int:
                raise TypeError(f"t is {type(t).__name__}")
            if t < lo or t > hi:
                filtered += 1
                continue
            TYPES[rec["kind"]]
            out.append(convert(rec))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            stats.bad(repr(rec)[:160], _why(exc))
    return out, filtered


def _why(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"unknown kind or missing field {exc}"
    return f"wrong field type ({exc})"


__all__ = ["diagnose", "diagnose_records"]
