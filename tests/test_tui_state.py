"""The TUI's pure model and replay clock, tested without Textual: records in, panel data out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slackops import records
from slackops.errors import InputError
from slackops.store import RecordWriter, iter_records
from slackops.tui import findings as live_findings
from slackops.tui.replay import Replayer, open_recording
from slackops.tui.state import (
    ACK_BUDGET_MS,
    Dashboard,
    FrameLog,
    clean,
    duration_text,
    frame_text,
    matches,
    percentile,
)
from tests.test_tui_fixtures import SESSION, T0, T_END

ROOT = Path(__file__).resolve().parents[1]


def rec(kind: str, t: float, conn: str | None = "c1", **fields) -> dict:
    return records.make(kind, t=t, source="probe", conn=conn, **fields)


# ---------------------------------------------------------------------------------------------- frame log


@pytest.mark.parametrize(
    ("record", "prefix", "text"),
    [
        (
            rec("envelope", 1, envelope_id="e1", type="events_api", event_type="app_mention", bytes=900),
            "<",
            "envelope events_api app_mention e1 900B",
        ),
        (
            rec("envelope", 1, envelope_id="e2", type="events_api", retry_attempt=1, retry_reason="timeout"),
            "<",
            "envelope events_api - e2 retry=1(timeout)",
        ),
        (rec("ack", 1, envelope_id="e1", ack_ms=3.25, ok=True), ">", "ack e1 3.2ms"),
        (rec("ack", 1, envelope_id="e1", ack_ms=4200.0, ok=True), ">", "ack e1 4.20s LATE"),
        (rec("ack", 1, envelope_id="e1", ok=False, error="not ready"), "!", "ack failed e1 not ready"),
        (rec("ping", 1, direction="received", payload_kind="server"), "<", "PING server"),
        (rec("ping", 1, direction="sent"), ">", "PING"),
        (rec("pong", 1, direction="received", rtt_ms=41.0), "<", "PONG rtt=41.0ms"),
        (rec("hello", 1, num_connections=2, host="applink-1"), "<", "hello num_connections=2 host=applink-1"),
        (rec("disconnect", 1, reason="refresh_requested"), "<", "disconnect reason=refresh_requested"),
        (rec("close", 1, code=1006, by="network", clean=False), "x", "close 1006 by=network unclean"),
        (rec("connect", 1, attempt=2, url_host="wss.example"), "=", "connecting attempt=2 host=wss.example"),
        (
            rec("reconnect", 1, initiator="ping_timeout", gap_ms=1500.0),
            "=",
            "reconnect initiator=ping_timeout gap=1.50s",
        ),
        (rec("drift", 1, num_connections=3, own_connections=1), "!", "drift num_connections=3 own=1"),
        (rec("error", 1, where="transport", error="boom"), "!", "error transport: boom"),
        (
            rec(
                "api_call",
                1,
                None,
                method="apps.connections.open",
                ok=False,
                http_status=429,
                retry_after=2.0,
            ),
            "!",
            "api apps.connections.open failed 429 retry_after=2s",
        ),
        (
            rec("api_call", 1, None, method="auth.test", ok=True, latency_ms=12.0),
            "=",
            "api auth.test ok 12.0ms",
        ),
    ],
)
def test_frame_text_speaks_the_websockets_prefix_grammar(record, prefix, text):
    assert frame_text(record) == (prefix, text)


def test_handler_side_records_are_not_frames():
    assert frame_text(rec("process", 1, None, phase="start", event_id="Ev1")) is None
    assert frame_text(rec("queue", 1, None, depth=3, action="enqueue")) is None


def test_remote_text_loses_control_characters_but_markup_stays_literal():
    assert clean("[bold red]x[/] \x1b[31mred\x07") == "[bold red]x[/] ?[31mred?"
    assert clean("a" * 100, limit=10) == "a" * 9 + "…"
    line = frame_text(rec("error", 1, where="transport", error="x", detail="\x1b[2J[link=evil]y"))
    assert line is not None and "\x1b" not in line[1] and "[link=evil]y" in line[1]


def test_filter_terms_select_prefixes_and_substrings():
    log = FrameLog()
    d = Dashboard()
    d.log = log
    d.feed(rec("envelope", 1, envelope_id="e1", type="events_api"))
    d.feed(rec("ack", 1.1, envelope_id="e1", ack_ms=1.0, ok=True))
    d.feed(rec("close", 2, "c2", code=1000, by="server"))
    lines = list(log.lines)
    assert [ln.prefix for ln in lines if matches(ln, "<")] == ["<"]
    assert [ln.prefix for ln in lines if matches(ln, "e1")] == ["<", ">"]
    assert [ln.prefix for ln in lines if matches(ln, "> E1")] == [">"]
    assert [ln.conn for ln in lines if matches(ln, "x c2")] == ["c2"]
    assert [ln for ln in lines if matches(ln, "! e1")] == []


def test_frame_log_is_bounded_and_since_returns_only_new_lines():
    log = FrameLog(maxlen=3)
    for i in range(5):
        log.add(float(i), "c1", "<", f"line {i}")
    assert [ln.text for ln in log.lines] == ["line 2", "line 3", "line 4"]
    assert [ln.text for ln in log.since(0)] == ["line 2", "line 3", "line 4"]
    assert [ln.text for ln in log.since(4)] == ["line 4"]
    assert log.since(5) == []
    assert log.lines[-1].render().endswith("c1   < line 4")


# ---------------------------------------------------------------------------------------------- connections


def test_connection_lifecycle_refresh_countdown_and_frozen_age():
    d = Dashboard()
    d.feed(rec("connect", 100.0, attempt=1))
    assert [r.state for r in d.connection_rows(100.0)] == ["connecting"]
    d.feed(rec("hello", 100.5, num_connections=1, host="applink-1", approximate_connection_time=3600))
    d.feed(rec("pong", 110.0, direction="received", rtt_ms=42.0))
    (row,) = d.connection_rows(now=160.5)
    assert (row.state, row.age, row.host, row.num_connections, row.rtt) == (
        "open",
        "1m00s",
        "applink-1",
        "1",
        "42.0ms",
    )
    assert row.refresh_in == duration_text(3600 - 60) == "59m00s"
    d.feed(rec("disconnect", 170.0, reason="refresh_requested"))
    assert d.connection_rows(170.0)[0].state == "refreshing"
    assert d.connection_rows(170.0)[0].refresh_in == "-"
    d.feed(rec("close", 171.0, code=1000, by="server"))
    closed = d.connection_rows(now=500.0)[0]
    assert closed.state == "closed" and closed.age == "1m10s"  # age stops at the close


def test_live_sockets_are_listed_before_closed_ones_and_closed_ones_are_capped():
    d = Dashboard(closed_kept=2)
    for i in range(5):
        d.feed(rec("hello", float(i), f"old{i}", num_connections=1))
        d.feed(rec("close", float(i) + 0.5, f"old{i}", code=1000, by="server"))
    d.feed(rec("hello", 10.0, "live", num_connections=1))
    assert [r.conn for r in d.connection_rows(11.0)] == ["live", "old4", "old3"]


def test_a_stretch_with_no_open_socket_becomes_a_gap_on_the_timeline():
    d = Dashboard()
    d.feed(rec("hello", 1.0, "c1"))
    d.feed(rec("hello", 2.0, "c2"))
    d.feed(rec("close", 10.0, "c1", code=1006, by="network"))
    assert not [e for e in d.timeline if e.event == "gap"]  # c2 still open
    d.feed(rec("close", 12.0, "c2", code=1006, by="network"))
    d.feed(rec("reconnect", 14.5, "c3", initiator="ping_timeout", cause="reset", gap_ms=2500.0))
    d.feed(rec("hello", 14.5, "c3"))
    events = [(e.event, e.gap_s) for e in d.timeline]
    assert ("gap", 2.5) in events
    assert ("reconnect", 2.5) in events
    assert d.counts.reconnects == 1


def test_timeline_since_hands_out_each_entry_once_and_stays_bounded():
    d = Dashboard(timeline_len=3)
    for i in range(5):
        d.feed(rec("disconnect", float(i), reason="warning"))
    assert len(d.timeline_since(0)) == 3
    assert [e.t for e in d.timeline_since(4)] == [4.0]
    assert d.timeline_since(5) == []


# ---------------------------------------------------------------------------------------------- rates, acks


def test_rates_count_envelopes_per_second_over_a_bounded_window():
    d = Dashboard(rate_window=5)
    for t in (100.1, 100.5, 101.2, 103.9):
        d.feed(rec("envelope", t, envelope_id=f"e{t}"))
    assert d.rates(now=104.0) == [2, 1, 0, 1, 0]
    assert d.current_rate(now=104.0) == 1
    for t in range(200, 260):
        d.feed(rec("envelope", float(t), envelope_id=f"x{t}"))
    assert len(d._rate) <= 2 * d.rate_window + 1


def test_percentiles_are_nearest_rank():
    values = sorted(float(v) for v in range(1, 101))
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 50) is None


def test_ack_histogram_buckets_against_the_3s_budget():
    d = Dashboard()
    for i, ms in enumerate((5.0, 10.0, 10.5, 2999.0, ACK_BUDGET_MS, 3000.5, 4500.0)):
        d.feed(rec("ack", float(i), envelope_id=f"e{i}", ack_ms=ms, ok=True))
    d.feed(rec("ack", 9.0, envelope_id="bad", ok=False, error="closed"))
    stats = d.ack_stats()
    buckets = {label: (count, over) for label, count, over in stats.buckets}
    assert buckets["≤10ms"] == (2, False)
    assert buckets["≤50ms"] == (1, False)
    assert buckets["≤3s"] == (2, False)  # exactly 3 s is within the budget
    assert buckets[">3s"] == (2, True)
    assert (stats.count, stats.late, stats.failed) == (8, 2, 1)
    assert (stats.p50, stats.max) == (2999.0, 4500.0)


def test_the_session_fixture_fills_every_panel():
    d = Dashboard()
    recs = list(iter_records(SESSION))
    d.feed_many(recs)
    assert d.counts.records == len(recs)
    assert d.counts.envelopes == sum(1 for r in recs if r["kind"] == "envelope")
    assert (
        d.counts.late_acks == sum(1 for r in recs if r["kind"] == "ack" and r["ack_ms"] > ACK_BUDGET_MS) > 0
    )
    rows = d.connection_rows(T_END)
    assert [(r.conn, r.state) for r in rows] == [
        ("c4", "open"),
        ("c3", "closed"),
        ("c2", "closed"),
        ("c1", "closed"),
    ]
    assert {e.event for e in d.timeline} >= {"hello", "disconnect", "close", "reconnect", "gap", "drift"}
    assert any(ln.prefix == "!" and "[bold red]remote[/]" in ln.text for ln in d.log.lines)


# ---------------------------------------------------------------------------------------------- replay


def stream(*times: float) -> list[dict]:
    return [{"t": t, "kind": "ping", "source": "probe", "n": i} for i, t in enumerate(times)]


def test_replay_keeps_the_recorded_rhythm_scaled_by_speed():
    r = Replayer(stream(100.0, 101.0, 103.0, 107.0), speed=2.0)
    assert [x["n"] for x in r.due(10.0)] == [0]
    assert r.due(10.4) == []
    assert [x["n"] for x in r.due(10.5)] == [1]
    assert [x["n"] for x in r.due(11.5)] == [2]
    assert r.virtual_now(12.0) == 104.0
    assert [x["n"] for x in r.due(13.5)] == [3]
    assert r.done and r.released == 4


def test_replay_pause_resume_and_speed_changes_do_not_jump():
    r = Replayer(stream(0.0, 10.0, 20.0), speed=1.0)
    r.due(0.0)
    r.pause(5.0)
    assert r.due(100.0) == [] and r.virtual_now(100.0) == 5.0
    r.resume(100.0)
    assert [x["n"] for x in r.due(105.0)] == [1]
    r.set_speed(10.0, 105.0)
    assert r.virtual_now(105.0) == 10.0
    assert [x["n"] for x in r.due(106.0)] == [2]
    assert r.faster(106.0) == 30.0 and r.slower(106.0) == 10.0
    with pytest.raises(ValueError):
        r.set_speed(0, 106.0)


def test_replay_skips_long_quiet_stretches_but_not_ordinary_ones():
    r = Replayer(stream(0.0, 3600.0, 3605.0), speed=1.0, max_idle=10.0)
    assert [x["n"] for x in r.due(0.0)] == [0]
    assert r.due(1.0) == []  # the clock jumps to 10 s before the next record
    assert r.virtual_now(1.0) == 3590.0
    assert [x["n"] for x in r.due(11.0)] == [1]
    assert r.due(15.0) == []  # a 5 s pause is kept
    assert [x["n"] for x in r.due(16.0)] == [2]


def test_replay_limit_leaves_the_rest_due_and_advance_to_jumps():
    r = Replayer(stream(*[float(i) for i in range(10)]), speed=1.0)
    assert len(r.due(100.0, limit=1)) == 1
    assert len(r.advance_to(5.0, 100.0, limit=3)) == 3
    assert [x["n"] for x in r.due(100.0)] == [4, 5]
    assert r.advance_to(100.0, 100.0)[-1]["n"] == 9 and r.done
    assert Replayer([]).due(0.0) == [] and Replayer([]).virtual_now(0.0) is None


def test_open_recording_reads_sqlite_and_jsonl(tmp_path):
    db = tmp_path / "rec.db"
    with RecordWriter(db=str(db)) as w:
        for r in iter_records(SESSION):
            w.write(r)
    for path in (db, SESSION):
        replayer = open_recording(path, speed=1000.0)
        first = replayer.due(0.0)
        assert first and first[0]["t"] == T0
        assert len(replayer.advance_to(T_END, 0.0)) + len(first) == sum(1 for _ in iter_records(SESSION))
    with pytest.raises(InputError):
        open_recording(tmp_path / "missing.db")


# ---------------------------------------------------------------------------------------------- layering


def test_the_model_and_replay_do_not_import_textual():
    code = (
        "import sys, json, slackops.tui, slackops.tui.state, slackops.tui.replay, slackops.tui.findings\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    mods = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "textual" not in mods
    assert "rich" not in mods


# ---------------------------------------------------------------------------------------------- live findings


@pytest.mark.skipif(not live_findings.available(), reason="slackops.diagnose not importable")
def test_live_findings_report_as_often_as_asked_and_keep_counting():
    lf = live_findings.LiveFindings()
    assert lf.findings() == []
    recs = list(iter_records(SESSION))
    for r in recs:
        lf.feed(r)
    first = {f.code: f for f in lf.findings()}
    again = {f.code: f for f in lf.findings()}
    assert "ack-late" in first and first.keys() == again.keys()
    assert first["ack-late"].runbook == "ack-timeout"
    late_before = first["ack-late"].evidence["count"]
    lf.feed(rec("envelope", T_END + 1, "c4", envelope_id="env-x", type="events_api", event_id="EvX"))
    lf.feed(rec("ack", T_END + 5.5, "c4", envelope_id="env-x", event_id="EvX", ack_ms=4500.0, ok=True))
    later = {f.code: f for f in lf.findings()}
    assert later["ack-late"].evidence["count"] == late_before + 1
    lf.feed({"t": "not a time", "kind": "ack"})  # ignored, never fatal
