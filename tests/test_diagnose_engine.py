"""diagnose's engine: records go to detectors in bulk, slice by slice, group by group, and nothing is lost.

Within a slice (at most ``slice_seconds`` of data, cut at every sequenced record such as a connect or a close)
a detector gets all deliveries, then all acks, then all handler runs ... Those tests pin what must hold anyway:
the same findings as feeding one record at a time, no "never acked" for an ack that arrives later in the slice,
windows that still join over sparse data, and a record a detector chokes on costs that record only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from slackops.diagnose import diagnose, diagnose_records, engine
from slackops.diagnose.detectors import ALL, Context, Detector
from slackops.diagnose.detectors.base import slice_seconds
from slackops.diagnose.readers.base import ParseStats
from slackops.diagnose.rows import BULK, RANK, TYPES, convert
from slackops.diagnose.thresholds import load
from slackops.records import make
from slackops.store import iter_records

LOGS = Path(__file__).parent / "fixtures" / "logs"
RECORDINGS = sorted(LOGS.glob("recording_*.jsonl"))


def R(kind: str, t: float, **fields: Any) -> dict[str, Any]:
    return make(kind, t=t, source="test", **fields)


def _one_at_a_time(records: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Every detector fed one record per call, in file order (what the live view does): code -> summary."""
    settings = load()
    detectors = [cls(settings) for cls in ALL]
    ctx = Context()
    for rec in records:
        ctx.kinds[rec["kind"]] += 1
        ctx.t_first = rec["t"] if ctx.t_first is None else ctx.t_first
        ctx.t_last = rec["t"] if ctx.t_last is None else max(ctx.t_last, rec["t"])
        for d in detectors:
            handle = d.handlers().get(rec["kind"])
            if handle is not None:
                handle(rec)
    return {f.code: f.summary for d in detectors for f in d.finish(ctx)}


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.stem)
def test_bulk_slices_find_what_one_record_at_a_time_finds(path: Path) -> None:
    records = list(iter_records(path))
    bulk = {f.code: f.summary for f in diagnose([str(path)]).findings}
    assert bulk == _one_at_a_time(records)


def test_every_kind_is_bulk_or_sequenced_and_pipeline_order_is_kept() -> None:
    order = [kind for group in BULK for kind in group]
    assert order.index("envelope") < order.index("ack") < order.index("process") < order.index("llm")
    assert len(order) == len(set(order))
    for kind, cls in TYPES.items():
        assert cls.rank == RANK.get(kind, -1)
    # The rare, order-carrying kinds are never reordered against anything.
    for kind in ("connect", "hello", "disconnect", "close", "reconnect", "signal", "error", "api_call"):
        assert TYPES[kind].rank == -1


def test_an_ack_later_in_the_slice_is_not_never_acked() -> None:
    # never_acked_after_s=5: e1's ack comes 0.1 s after it, but the slice hands e2 (10 s later) over first.
    recs = [
        R("envelope", 0.0, conn="c1", envelope_id="e1", type="events_api", event_id="Ev1"),
        R("ack", 0.1, conn="c1", envelope_id="e1", ack_ms=100.0),
        R("envelope", 10.0, conn="c1", envelope_id="e2", type="events_api", event_id="Ev2"),
        R("ack", 10.1, conn="c1", envelope_id="e2", ack_ms=100.0),
        # e3 is never acked; the data goes on well past the 5 s.
        R("envelope", 20.0, conn="c1", envelope_id="e3", type="events_api", event_id="Ev3"),
        R("envelope", 40.0, conn="c1", envelope_id="e4", type="events_api", event_id="Ev4"),
        R("ack", 40.1, conn="c1", envelope_id="e4", ack_ms=100.0),
    ]
    assert slice_seconds(load().thresholds) >= 40.1  # one slice: the point of the test
    report = diagnose_records(recs, thresholds={"never_acked_after_s": 5})
    (never,) = [f for f in report.findings if f.code == "never-acked"]
    assert never.evidence["count"] == 1 and never.evidence["examples"] == ["e3"]


def test_windows_still_join_over_sparse_data() -> None:
    # A mention handled twice at t=0, then one delivery every 700 s for hours: one batch of records, but many
    # slices, so the deliveries do not rotate the mention out of fan-out's window before its runs are seen.
    recs = [
        R("envelope", 0.0, envelope_id="a", event_id="EvA", event_type="app_mention", channel="C1", ts="1.0"),
        R("envelope", 0.1, envelope_id="b", event_id="EvB", event_type="message", channel="C1", ts="1.0"),
        R("process", 0.2, event_id="EvA", phase="start"),
        R("process", 0.3, event_id="EvB", phase="start"),
    ]
    recs += [
        R("envelope", 700.0 * i, envelope_id=f"x{i}", event_id=f"Ev{i}", event_type="message", channel="C2")
        for i in range(1, 12)
    ]
    report = diagnose_records(recs)
    assert "mention-pair-double" in {f.code for f in report.findings}


def test_a_record_a_detector_chokes_on_costs_that_record_only() -> None:
    recs = []
    for i in range(30):
        recs.append(R("envelope", i, conn="c1", envelope_id=f"e{i}", type="events_api", event_id=f"Ev{i}"))
        # ack 3 carries a latency that is not a number; acks 10.. are late.
        ms: Any = "oops" if i == 3 else (4000.0 if i >= 10 else 5.0)
        recs.append(R("ack", i + 0.01, conn="c1", envelope_id=f"e{i}", ack_ms=ms))
    report = diagnose_records(recs)
    (late,) = [f for f in report.findings if f.code == "ack-late"]
    assert late.evidence["count"] == 20
    (src,) = report.sources
    assert src["unparsed"] == 1 and "oops" in src["samples"][0]
    assert report.overview["ack_latency"]["count"] == 29


def test_kinds_of_one_group_must_share_a_method() -> None:
    class Split(Detector):
        slug = "split"
        kinds: ClassVar[dict[str, str]] = {"ping": "on_ping", "pong": "on_pong"}

        def on_ping(self, rows: Any) -> None: ...

        def on_pong(self, rows: Any) -> None: ...

        def finish(self, ctx: Context) -> list[Any]:
            return []

    settings = load()
    with pytest.raises(TypeError, match="one sequence"):
        engine._Plan([Split(settings)], settings)


def test_a_detector_asking_for_part_of_a_group_gets_only_that_part() -> None:
    seen: list[str] = []

    class PongsOnly(Detector):
        slug = "pongs-only"
        kinds: ClassVar[dict[str, str]] = {"pong": "on_pong"}

        def on_pong(self, rows: Any) -> None:
            seen.extend(rec.kind for rec in rows)

        def finish(self, ctx: Context) -> list[Any]:
            return []

    settings = load()
    recs = [R("ping", 1.0, conn="c1", direction="sent"), R("pong", 1.1, conn="c1", direction="received")] * 3
    batch = [convert(r) for r in recs]
    engine._feed(
        [batch], engine._Plan([PongsOnly(settings)], settings), Context(), ParseStats("x"), None, None
    )
    assert seen == ["pong"] * 3
