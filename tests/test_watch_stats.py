"""WatchStats: the live numbers, computed from hand-made records (no sockets, no clock)."""

from __future__ import annotations

from slackops import records
from slackops.watch.stats import ACK_WINDOW, WatchStats, percentile


def rec(kind: str, t: float, conn: str | None = "s0.1", **fields):
    return records.make(kind, t=t, source="probe", conn=conn, **fields)


def test_percentile_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0


def test_connection_lifecycle_and_refresh():
    s = WatchStats()
    s.feed(rec("connect", 100.0, attempt=0, url_host="sim"))
    s.feed(rec("hello", 100.1, num_connections=1, host="applink-1"))
    s.feed(rec("pong", 101.0, direction="received", rtt_ms=1.5))
    s.feed(rec("disconnect", 110.0, reason="warning", host="applink-1"))
    summary = s.summary(110.0)
    (conn,) = summary["connections"]
    assert conn["state"] == "draining" and conn["disconnect"] == "warning"
    assert conn["host"] == "applink-1" and conn["last_rtt_ms"] == 1.5 and conn["age_s"] == 10.0
    s.feed(rec("connect", 110.1, conn="s0.2", attempt=0, url_host="sim"))
    s.feed(rec("hello", 110.2, conn="s0.2", num_connections=2, host="applink-2"))
    s.feed(rec("reconnect", 110.2, conn="s0.2", initiator="server", cause="warning", gap_ms=0.0))
    s.feed(rec("close", 110.7, code=1000, by="client", clean=True))
    summary = s.summary(111.0)
    assert [c["state"] for c in summary["connections"]] == ["closed", "live"]
    assert summary["live"] == 1
    assert summary["reconnects"]["total"] == 1 and summary["reconnects"]["gap_max_ms"] == 0.0
    assert summary["reconnects"]["recent"][0]["cause"] == "warning"
    # A closed socket leaves the live view after a few seconds; its close stays in the totals.
    summary = s.summary(200.0)
    assert [c["conn"] for c in summary["connections"]] == ["s0.2"]
    assert summary["closes"]["total"] == 1


def test_envelope_rate_and_ack_percentiles():
    s = WatchStats()
    for i in range(100):
        t = 1000.0 + i * 0.1  # 10 envelopes a second for 10 s
        s.feed(rec("envelope", t, envelope_id=f"e{i}", type="events_api", retry_attempt=1 if i < 3 else 0))
        s.feed(rec("ack", t + 0.001, envelope_id=f"e{i}", ack_ms=float(i + 1), ok=True))
    s.feed(rec("ack", 1010.0, envelope_id="late", ack_ms=3500.0, ok=True))
    s.feed(rec("ack", 1010.0, envelope_id="gone", ok=False, error="socket closed"))
    summary = s.summary(1010.0)
    assert summary["envelopes"] == 100 and summary["retried_envelopes"] == 3
    assert 9.0 <= summary["envelopes_per_s"] <= 10.1
    acks = summary["acks"]
    assert acks["ok"] == 101 and acks["failed"] == 1 and acks["late"] == 1
    assert acks["p50"] == 51.0 and acks["p99"] == 100.0 and acks["max"] == 3500.0
    # Ten quiet seconds later the rate falls to zero; percentiles keep the recent acks.
    assert s.summary(1025.0)["envelopes_per_s"] == 0.0


def test_ack_window_is_bounded():
    s = WatchStats()
    for i in range(ACK_WINDOW + 50):
        s.feed(rec("ack", 1.0 + i, envelope_id=f"e{i}", ack_ms=1.0, ok=True))
    assert s.summary(2.0)["acks"]["window"] == ACK_WINDOW


def test_drift_errors_and_open_calls():
    s = WatchStats()
    s.feed(
        records.make("api_call", t=1.0, source="probe", method="apps.connections.open", ok=False, error="x")
    )
    s.feed(records.make("api_call", t=2.0, source="probe", method="apps.connections.open", ok=True))
    s.feed(rec("drift", 2.5, num_connections=3, own_connections=1))
    s.feed(rec("error", 3.0, where="liveness", error="pong_timeout"))
    summary = s.summary(4.0)
    assert summary["open_calls"] == {"total": 2, "failed": 1, "last_error": "x"}
    assert summary["drift"]["total"] == 1 and summary["drift"]["last"]["num_connections"] == 3
    assert summary["errors"]["recent"][0]["error"] == "pong_timeout"


def test_observe_mode_counts_unacked():
    s = WatchStats()
    for i in range(4):
        s.feed(rec("envelope", 1.0 + i, envelope_id=f"e{i}", type="events_api"))
    assert s.summary(5.0)["acks"]["unacked"] == 4


def test_views_render_and_escape_remote_text():
    from rich.console import Console

    from slackops.watch.render import final_view, live_view

    s = WatchStats()
    s.feed(rec("hello", 1.0, num_connections=1, host="[bold red]evil"))
    s.feed(rec("disconnect", 2.0, reason="[link=http://x]warning", host="h"))
    s.feed(rec("reconnect", 2.1, conn="s0.2", initiator="server", cause="warning", gap_ms=0.0))
    s.feed(rec("envelope", 2.2, envelope_id="e1", type="events_api"))
    s.feed(rec("ack", 2.2, envelope_id="e1", ack_ms=0.4, ok=True))
    summary = s.summary(3.0) | {
        "target": {"label": "simulator (built in)", "scenario": "steady", "time_scale": 20.0},
        "mode": "ack",
        "recording": {"db": "x.db", "jsonl": None, "written": 5, "spilled": 0, "dropped": 0},
        "simulator": {"events": 1, "acked": 1, "acked_late": 0, "lost": 0, "retries": 0},
        "stopped_by": "SIGTERM",
    }
    console = Console(record=True, width=120, force_terminal=True)
    console.print(live_view(summary))
    console.print(final_view(summary))
    text = console.export_text()
    assert "[bold red]evil" in text and "[link=http://x]warning" in text  # shown literally, not as markup
    assert "gap 0.0 ms" in text and "ack p50 0.4 ms" in text
    assert "0 lost" in text and "stopped by SIGTERM" in text
