"""diagnose detectors: a positive and a negative case per failure mode, and the chaos-scenario recordings.

Detectors are pure, so most cases feed a few records straight in (``diagnose_records``). The recordings in
fixtures/logs/recording_*.jsonl mimic a bot recording made while the simulator runs each chaos scenario
(regenerate them with fixtures/logs/_make_recordings.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slackops.diagnose import diagnose, diagnose_records
from slackops.diagnose.detectors import ALL
from slackops.diagnose.thresholds import THRESHOLDS, load
from slackops.errors import ConfigError, ExitCode, UsageError
from slackops.findings import CODES, SLUGS, Finding
from slackops.records import make

LOGS = Path(__file__).parent / "fixtures" / "logs"


def R(kind: str, t: float, **fields):
    return make(kind, t=t, source="test", **fields)


def codes(recs, **thresholds) -> set[str]:
    return {
        f.code
        for f in diagnose_records(sorted(recs, key=lambda r: r["t"]), thresholds=thresholds or None).findings
    }


def finding(recs, code: str, **thresholds) -> Finding:
    report = diagnose_records(sorted(recs, key=lambda r: r["t"]), thresholds=thresholds or None)
    hits = [f for f in report.findings if f.code == code]
    assert hits, f"{code} not in {[f.code for f in report.findings]}"
    return hits[0]


def healthy(n: int = 50, start: float = 0.0, conn: str = "c1") -> list[dict]:
    """Steady healthy traffic: pongs, prompt acks, one handler run per event."""
    out = [
        R("connect", start, conn=conn),
        R("hello", start + 0.1, conn=conn, num_connections=1, own_connections=1),
    ]
    for i in range(n):
        t = start + 1 + i * 5
        out += [
            R("ping", t, conn=conn, direction="sent"),
            R("pong", t + 0.03, conn=conn, direction="received"),
            R(
                "envelope",
                t + 0.5,
                conn=conn,
                envelope_id=f"{conn}-e{i}",
                type="events_api",
                event_id=f"{conn}-Ev{i}",
                event_type="app_mention",
                channel=f"C{i % 17}",
                ts=f"{t:.3f}",
                event_ts=f"{t:.3f}",
                retry_attempt=0,
            ),
            R("ack", t + 0.505, conn=conn, envelope_id=f"{conn}-e{i}", ack_ms=5.0, ok=True, ack_conn=conn),
            R(
                "process",
                t + 0.51,
                event_id=f"{conn}-Ev{i}",
                envelope_id=f"{conn}-e{i}",
                channel=f"C{i % 17}",
                phase="start",
            ),
            R(
                "llm",
                t + 1.0,
                event_id=f"{conn}-Ev{i}",
                channel=f"C{i % 17}",
                resource="m",
                http_status=200,
                tokens_in=10,
                tokens_out=5,
            ),
            R("post", t + 1.2, channel=f"C{i % 17}", method="chat.postMessage", ok=True, http_status=200),
            R(
                "process",
                t + 1.3,
                event_id=f"{conn}-Ev{i}",
                envelope_id=f"{conn}-e{i}",
                phase="end",
                duration_ms=790.0,
            ),
        ]
    return out


def test_catalogue_every_detector_has_a_slug_and_codes() -> None:
    assert {d.slug for d in ALL} == set(SLUGS)
    assert all(t.slug in SLUGS and t.help for t in THRESHOLDS.values())


def test_healthy_steady_traffic_raises_nothing() -> None:
    report = diagnose_records(healthy(200))
    assert report.findings == []
    assert report.exit_code() == ExitCode.OK
    assert report.summary().startswith("No problems found")


# -- disconnect-storm -----------------------------------------------------------------------------------------


def test_disconnect_storm_burst_positive_and_refresh_negative() -> None:
    storm = healthy(5) + [
        R("reconnect", 100 + i * 10, conn="c1", initiator="client", cause="socket dropped") for i in range(4)
    ]
    f = finding(storm, "reconnect-burst")
    assert f.evidence["max_in_burst"] == 4 and f.runbook == "disconnect-storm"
    # Slack's normal refresh: one reconnect after 5 h is not a storm.
    assert "reconnect-burst" not in codes(
        [*healthy(5), R("reconnect", 18060, conn="c1", initiator="server", cause="refresh_requested")]
    )


def test_disconnect_storm_counts_new_sessions_when_no_reconnect_records() -> None:
    sessions = [R("connect", i * 15.0, conn=f"s{i}") for i in range(5)]
    assert finding(sessions, "reconnect-burst").evidence["counted_from"] == "new sessions"
    assert "reconnect-burst" not in codes([R("connect", i * 3600.0, conn=f"s{i}") for i in range(5)])


def test_too_many_websockets_open_429_and_socket_count() -> None:
    recs = [
        R("disconnect", 1, conn="c1", reason="too_many_websockets"),
        R(
            "api_call",
            2,
            method="apps.connections.open",
            ok=False,
            http_status=429,
            error="ratelimited",
            retry_after=30.0,
        ),
        R("hello", 3, conn="c2", num_connections=4, own_connections=4),
    ]
    assert {"too-many-websockets", "open-ratelimited", "connections-above-expected"} <= codes(recs)
    assert not {"too-many-websockets", "open-ratelimited", "connections-above-expected"} & codes(healthy(3))


# -- ack-timeout ---------------------------------------------------------------------------------------------


def _acks(ms: list[float]) -> list[dict]:
    out = []
    for i, m in enumerate(ms):
        out += [R("envelope", i * 10.0, conn="c1", envelope_id=f"e{i}", type="events_api", event_id=f"Ev{i}"),
                R("ack", i * 10.0 + m / 1000, conn="c1", envelope_id=f"e{i}", ok=True)]  # fmt: skip
    return out


def test_ack_late_from_pairing_and_threshold_override() -> None:
    recs = _acks([5.0] * 30 + [3500.0])
    f = finding(recs, "ack-late")
    assert f.evidence["examples"] == ["e30"]
    assert "ack-late" not in codes(recs, ack_deadline_ms=4000)
    assert "ack-late" not in codes(_acks([5.0] * 30))


def test_ack_p99_over_budget() -> None:
    assert "ack-p99-over-budget" in codes(_acks([5.0] * 20 + [1500.0] * 2))
    assert "ack-p99-over-budget" not in codes(_acks([5.0] * 22))


def test_timeout_retries_failed_and_never_acked() -> None:
    recs = [
        *_acks([5.0] * 30),
        R(
            "envelope",
            400,
            envelope_id="r1",
            type="events_api",
            event_id="Ev1",
            retry_attempt=1,
            retry_reason="timeout",
        ),
        R("ack", 400.01, envelope_id="r1", ok=True),
        R("ack", 401, envelope_id="x9", ok=False, error="socket closed"),
        R("envelope", 402, envelope_id="lost", type="events_api", event_id="EvL"),
        R("ping", 600, conn="c1", direction="sent"),
    ]
    assert {"timeout-retries", "ack-failed", "never-acked"} <= codes(recs)
    assert not {"timeout-retries", "ack-failed", "never-acked"} & codes(_acks([5.0] * 30))


def test_ack_timeout_without_ack_timing_says_so() -> None:
    report = diagnose_records(
        [R("envelope", 1, envelope_id="a", type="events_api", retry_attempt=1, retry_reason="timeout")]
    )
    assert "timeout-retries" in {f.code for f in report.findings}
    assert any("no ack timing" in c for c in report.caveats)


# -- stale-watchdog -----------------------------------------------------------------------------------------


def _quiet(start: float, end: float, conn: str) -> list[dict]:
    out = []
    t = start
    while t < end:
        out += [
            R("ping", t, conn=conn, direction="sent"),
            R("pong", t + 0.04, conn=conn, direction="received"),
        ]
        t += 15
    return out


def test_stale_watchdog_positive_regular_reconnects_of_healthy_sockets() -> None:
    recs = []
    for i in range(6):
        conn = f"c{i}"
        recs += [R("connect", i * 239.0, conn=conn), *_quiet(i * 239.0 + 1, (i + 1) * 239.0 - 1, conn)]
        recs.append(R("reconnect", (i + 1) * 239.0 - 0.5, conn=conn, initiator="watchdog"))
    f = finding(recs, "watchdog-false-positive")
    assert f.evidence["regular"] is True and f.evidence["median_period_s"] == pytest.approx(239, abs=1)


def test_stale_watchdog_negative_quiet_healthy_socket_with_regular_pongs() -> None:
    recs = [R("connect", 0, conn="c1"), *_quiet(1, 3600, "c1")]
    assert codes(recs) == set()


def test_stale_watchdog_negative_reconnect_after_pongs_stopped_or_a_close() -> None:
    recs = [R("connect", 0, conn="c1"), *_quiet(1, 100, "c1")]
    recs += [
        R("reconnect", 200 + i * 100, conn="c1", initiator="client") for i in range(3)
    ]  # pongs long gone
    recs += [
        *_quiet(500, 600, "c2"),
        R("close", 601, conn="c2", code=1006, by="network"),
        R("reconnect", 602, conn="c2", initiator="client"),
    ]
    assert "watchdog-false-positive" not in codes(recs)


# -- silent-deafness ----------------------------------------------------------------------------------------


def test_pong_missing_while_client_keeps_pinging() -> None:
    pings = [R("ping", 60 + i * 10.0, conn="c1", direction="sent") for i in range(12)]
    recs = [R("connect", 0, conn="c1"), *_quiet(1, 60, "c1"), *pings]
    assert "pong-missing" in codes(recs)
    healed = [
        R("connect", 0, conn="c1"),
        *_quiet(1, 60, "c1"),
        R("ping", 70, conn="c1", direction="sent"),
        R("close", 75, conn="c1", by="client"),
    ]
    assert "pong-missing" not in codes(healed)


def test_ghost_connections_and_frames_not_dispatched_and_envelope_gap() -> None:
    ghosts = [*healthy(3), R("hello", 30, conn="c1", num_connections=4, own_connections=1)]
    assert "ghost-connections" in codes(ghosts)
    deaf = healthy(10) + [
        R("envelope", 100 + i, conn="dead", envelope_id=f"d{i}", type="events_api") for i in range(5)
    ]
    assert "frames-not-dispatched" in codes(deaf)
    late = [R("envelope", t, conn="c2", envelope_id=f"g{t}", type="events_api") for t in (1.0, 700.0)]
    gap = [*healthy(150, conn="c1"), *late]
    assert "envelope-gap" in codes(gap)
    assert not {"ghost-connections", "frames-not-dispatched", "envelope-gap"} & codes(healthy(150))


# -- competing-consumers ------------------------------------------------------------------------------------


def test_competing_consumer_and_share_drop() -> None:
    assert "competing-consumer" in codes([R("hello", 1, conn="c1", num_connections=3)])
    assert "competing-consumer" not in codes([R("hello", 1, conn="c1", num_connections=2)])
    recs = []
    for i in range(200):
        t = i * 3.0
        inst = "a" if i % 2 == 0 or t > 300 else "b"
        recs.append(R("envelope", t, envelope_id=f"e{i}", type="events_api", instance=inst))
    assert "delivery-share-drop" in codes(recs)
    steady = [
        R("envelope", i * 3.0, envelope_id=f"e{i}", type="events_api", instance="ab"[i % 2])
        for i in range(200)
    ]
    assert "delivery-share-drop" not in codes(steady)


# -- retry-duplication -------------------------------------------------------------------------------------


def test_duplicate_processing_and_llm_calls_with_cost() -> None:
    recs = healthy(20)
    for i in range(5):  # five events handled a second time after a retry
        t = 200 + i
        recs += [R("process", t, event_id=f"c1-Ev{i}", phase="start"),
                 R("llm", t + 0.5, event_id=f"c1-Ev{i}", channel="C1", http_status=200, tokens_in=100, tokens_out=50, cost_usd=0.01)]  # fmt: skip
    dup = finding(recs, "duplicate-processing")
    assert dup.cost == {"wasted_runs": 5, "share": 0.2, "multiplier": 1.25}
    llm = finding(recs, "duplicate-llm-calls")
    assert (
        llm.cost["wasted_llm_calls"] == 5
        and llm.cost["wasted_tokens"] == 750
        and llm.cost["wasted_usd"] == 0.05
    )


def test_duplicates_outside_the_dedup_window_are_not_counted() -> None:
    recs = [R("process", 0, event_id="Ev1", phase="start"), R("process", 5000, event_id="Ev1", phase="start")]
    assert "duplicate-processing" not in codes(recs)
    assert "duplicate-processing" in codes(recs, dedup_window_s=6000)


def test_retry_share_high() -> None:
    recs = [
        R("envelope", i, envelope_id=f"e{i}", type="events_api", event_id=f"Ev{i // 2}", retry_attempt=i % 2)
        for i in range(40)
    ]
    assert finding(recs, "retry-share-high").cost["multiplier"] == 2.0
    assert "retry-share-high" not in codes(recs[::2])


# -- fan-out ------------------------------------------------------------------------------------------------


def test_channel_llm_burst() -> None:
    burst = [R("llm", i * 60.0, event_id=f"Ev{i}", channel="CBUSY", http_status=200) for i in range(30)]
    assert finding(burst, "channel-llm-burst").evidence["channels"] == ["CBUSY"]
    spread = [R("llm", i * 200.0, event_id=f"Ev{i}", channel="C1", http_status=200) for i in range(30)]
    assert "channel-llm-burst" not in codes(spread)


def test_mention_pair_and_unchanged_edit() -> None:
    recs = [
        R(
            "envelope",
            1,
            envelope_id="a",
            type="events_api",
            event_id="EvA",
            event_type="app_mention",
            channel="C1",
            ts="5.0",
        ),
        R(
            "envelope",
            1.01,
            envelope_id="b",
            type="events_api",
            event_id="EvB",
            event_type="message",
            channel="C1",
            ts="5.0",
        ),
        R("process", 1.1, event_id="EvA", phase="start"),
        R("process", 1.2, event_id="EvB", phase="start"),
        R(
            "envelope",
            2,
            envelope_id="c",
            type="events_api",
            event_id="EvC",
            event_type="message",
            subtype="message_changed",
            channel="C1",
            ts="6.0",
            text_changed=False,
        ),
        R("process", 2.1, event_id="EvC", phase="start"),
    ]
    assert {"mention-pair-double", "unchanged-edit-handled"} <= codes(recs)
    handled_once = [r for r in recs if r.get("event_id") not in ("EvB", "EvC") or r["kind"] == "envelope"]
    assert not {"mention-pair-double", "unchanged-edit-handled"} & codes(handled_once)


# -- bot-self-loop ------------------------------------------------------------------------------------------


def test_bot_message_handled_and_post_ceiling() -> None:
    recs = [R("envelope", 1, envelope_id="a", type="events_api", event_id="EvA", bot_id="B1", subtype="bot_message"),
            R("process", 1.1, event_id="EvA", phase="start")]  # fmt: skip
    assert "bot-message-handled" in codes(recs)
    assert "bot-message-handled" not in codes(
        [recs[0], R("guard", 1.1, guard="self-loop", event_id="EvA", action="skip")]
    )
    posts = [R("post", 10 + i * 5.0, channel="C1", method="chat.postMessage", ok=True) for i in range(8)]
    assert "post-ceiling-exceeded" in codes(posts)
    assert "post-ceiling-exceeded" not in codes(posts[::2], post_window_s=15)


def test_self_user_id_from_config(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[diagnose]\nbot_user_id = "U0BOT"\n')
    recs = [
        R("envelope", 1, envelope_id="a", type="events_api", event_id="EvA", user="U0BOT"),
        R("process", 1.1, event_id="EvA", phase="start"),
    ]
    assert "bot-message-handled" in {f.code for f in diagnose_records(recs, config=str(cfg)).findings}
    assert "bot-message-handled" not in codes(recs)


# -- thundering-herd ----------------------------------------------------------------------------------------


def test_llm_429_waves_and_consecutive() -> None:
    waves = [
        R("llm", w * 10.0 + k * 0.01, event_id=f"E{k}", resource="m", http_status=429)
        for w in range(4)
        for k in range(6)
    ]
    assert {"llm-429-cluster", "llm-429-consecutive", "aligned-retries"} <= codes(waves)
    scattered = [
        R("llm", i * 7.3, event_id=f"E{i}", resource="m", http_status=429 if i % 3 == 0 else 200)
        for i in range(30)
    ]
    assert not {"llm-429-cluster", "llm-429-consecutive", "aligned-retries"} & codes(scattered)


# -- lost-in-flight -----------------------------------------------------------------------------------------


def test_in_flight_lost_at_shutdown() -> None:
    recs = [R("process", 1, event_id="Ev1", phase="start"), R("process", 1.5, event_id="Ev2", phase="start"),
            R("process", 2, event_id="Ev2", phase="end"), R("signal", 3, name="SIGTERM", action="received"),
            R("ping", 60, conn="c1", direction="sent")]  # fmt: skip
    f = finding(recs, "in-flight-lost")
    assert f.evidence["examples"] == ["Ev1"]
    drained = [*recs[:3], R("process", 4, event_id="Ev1", phase="requeue"), *recs[3:]]
    assert "in-flight-lost" not in codes(drained)


def test_interactive_lost() -> None:
    late = [R("envelope", 1, envelope_id="i1", type="interactive"), R("ack", 5, envelope_id="i1", ok=True)]
    assert "interactive-lost" in codes(late)
    assert "interactive-lost" not in codes([late[0], R("ack", 1.2, envelope_id="i1", ok=True)])


# -- out-of-order -------------------------------------------------------------------------------------------


def test_order_inversion() -> None:
    def run(order: list[int]) -> list[dict]:
        recs = [
            R(
                "envelope",
                i * 0.1,
                envelope_id=f"e{i}",
                type="events_api",
                event_id=f"Ev{i}",
                channel="C1",
                event_ts=f"{100 + i}.0",
            )
            for i in range(4)
        ]
        return recs + [R("process", 1 + k, event_id=f"Ev{i}", phase="start") for k, i in enumerate(order)]

    assert finding(run([0, 2, 1, 3]), "order-inversion").evidence["count"] == 1
    assert "order-inversion" not in codes(run([0, 1, 2, 3]))


# -- queue-overflow -----------------------------------------------------------------------------------------


def test_queue_growing_wait_growing_and_shed() -> None:
    grow = [R("queue", i * 2.0, depth=i * 3, action="enqueue") for i in range(60)]
    assert "queue-growing" in codes(grow)
    assert "queue-growing" not in codes(
        [R("queue", i * 2.0, depth=i % 5, action="enqueue") for i in range(60)]
    )
    wait = []
    for i in range(40):
        wait += [
            R("ack", i * 10.0, envelope_id=f"e{i}", ok=True),
            R("process", i * 10.0 + i * 0.5, envelope_id=f"e{i}", phase="start"),
        ]
    assert "queue-wait-growing" in codes(wait, queue_wait_bucket_s=30)
    assert "events-shed" in codes([R("queue", 1, depth=100, action="shed", event_id="Ev1")])


# -- rate-limited / auth-failure ----------------------------------------------------------------------------


def test_rate_limited_and_auth() -> None:
    assert "app-rate-limited" in codes([R("envelope", 1, envelope_id="x", type="app_rate_limited")])
    assert "web-api-429" in codes(
        [R("api_call", 1, method="chat.postMessage", ok=False, http_status=429, retry_after=3.0)]
    )
    assert "web-api-429" not in codes([R("api_call", 1, method="chat.postMessage", ok=True, http_status=200)])
    auth = finding(
        [
            R("api_call", i, method="apps.connections.open", ok=False, error="not_allowed_token_type")
            for i in range(3)
        ],
        "auth-error",
    )
    assert "xapp-" in auth.summary and auth.evidence["count"] == 3
    assert "link-disabled" in codes([R("disconnect", 1, conn="c1", reason="link_disabled")])
    assert not {"auth-error", "link-disabled"} & codes(
        [R("api_call", 1, method="apps.connections.open", ok=True)]
    )


# -- recordings of the simulator's chaos scenarios --------------------------------------------------------------

SCENARIO_FINDINGS = {
    "steady": set(),
    "quiet-healthy": set(),
    "watchdog": {"watchdog-false-positive"},
    # Sockets stack up during the storm: hello counts more connections than the client holds.
    "disconnect-storm": {"reconnect-burst", "too-many-websockets", "open-ratelimited", "ghost-connections"},
    "ghost-connections": {"ghost-connections"},
    "half-open": {"pong-missing"},
    "slow-consumer": {"ack-late", "timeout-retries", "duplicate-processing", "duplicate-llm-calls"},
    "self-loop": {"bot-message-handled", "post-ceiling-exceeded"},
    "fan-out": {"channel-llm-burst", "mention-pair-double"},
    "auth-errors": {"auth-error"},
    "rate-limited-open": {"open-ratelimited", "web-api-429", "app-rate-limited"},
    "lost-in-flight": {"in-flight-lost", "interactive-lost"},
    "thundering-herd": {"llm-429-consecutive", "llm-429-cluster", "aligned-retries"},
    "out-of-order": {"order-inversion"},
    "queue-overflow": {"queue-growing", "events-shed"},
    "competing": {"competing-consumer", "delivery-share-drop"},
}


@pytest.mark.parametrize("scenario", sorted(SCENARIO_FINDINGS))
def test_scenario_recording_produces_its_findings(scenario: str) -> None:
    report = diagnose([str(LOGS / f"recording_{scenario}.jsonl")])
    found = {f.code for f in report.findings}
    assert SCENARIO_FINDINGS[scenario] <= found
    if not SCENARIO_FINDINGS[scenario]:
        assert found == set()
    # Nothing unrelated to the scenario's failure modes shows up.
    expected_slugs = {CODES[c].slug for c in SCENARIO_FINDINGS[scenario]} | {
        "ack-timeout",
        "retry-duplication",
    }
    assert {f.runbook for f in report.findings} <= expected_slugs


# -- report, exit codes, thresholds -----------------------------------------------------------------------


def test_exit_codes_and_fail_on() -> None:
    warn = diagnose_records([R("hello", 1, conn="c1", num_connections=3)])
    assert warn.exit_code("warning") == ExitCode.WARNING and warn.exit_code("critical") == ExitCode.OK
    crit = diagnose_records([R("envelope", 1, envelope_id="x", type="app_rate_limited")])
    assert crit.exit_code("warning") == ExitCode.CRITICAL == crit.exit_code("critical")
    with pytest.raises(UsageError):
        crit.exit_code("info")


def test_findings_are_worst_first_and_json_has_everything() -> None:
    report = diagnose([str(LOGS / "recording_slow-consumer.jsonl")])
    sevs = [int(f.severity) for f in report.findings]
    assert sevs == sorted(sevs, reverse=True)
    doc = report.to_dict()
    assert set(doc) >= {
        "summary",
        "exit_code",
        "counts",
        "findings",
        "overview",
        "sources",
        "caveats",
        "thresholds",
    }
    assert doc["overview"]["ack_latency"]["p99_ms"] > 3000
    assert sum(doc["overview"]["ack_histogram"]["counts"]) == doc["overview"]["ack_latency"]["count"]
    assert all(f["runbook"] in SLUGS for f in doc["findings"])


def test_since_until_filter() -> None:
    recs = [
        R("envelope", 1, envelope_id="x", type="app_rate_limited"),
        R("ping", 100, conn="c", direction="sent"),
    ]
    assert diagnose_records(recs, since=50).findings == []
    assert diagnose_records(recs, until=50).findings


def test_threshold_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[thresholds]\nnope = 3\n")
    with pytest.raises(ConfigError, match="unknown threshold"):
        load(config=str(bad))
    bad.write_text("[thresholds]\nack_deadline_ms = 'slow'\n")
    with pytest.raises(ConfigError, match="needs a number"):
        load(config=str(bad))
    with pytest.raises(UsageError):
        load({"nope": 1.0})
    good = tmp_path / "good.toml"
    good.write_text("[thresholds]\nack_deadline_ms = 5000\n")
    assert load({"burst_min": 5}, config=str(good)).thresholds["ack_deadline_ms"] == 5000


def _bolt_log(path: Path, *, gap_ms: int, work_ms: int, n: int = 300, sdk_timing: bool = True) -> Path:
    """A Bolt Python DEBUG log (builtin adapter templates): ``n`` envelopes every ``gap_ms``, one worker
    taking ``work_ms`` each; the listener acks first, Bolt logs its ``Response time`` after the ack.
    ``sdk_timing=False`` leaves out the SDK's "Message processing started/completed" lines."""
    sid = "3f1c2a9e-1b7d-4c55-9a0e-7d2b8c1e0a01"
    lines: list[tuple[float, str]] = []

    def at(t: float, logger: str, msg: str) -> None:
        lines.append((t, f"DEBUG {logger}: {msg}"))

    free = 0.0
    depth = 0
    done_at: list[float] = []
    for i in range(n):
        t = 1.0 + i * gap_ms / 1000
        # Dequeues of work that finished before this arrival.
        while done_at and done_at[0] <= t:
            done_at.pop(0)
        env = f"env-{i:04d}"
        event = {"type": "app_mention", "channel": "C01", "ts": f"{1700000000 + i}.0001"}
        frame = json.dumps(
            {
                "envelope_id": env,
                "type": "events_api",
                "accepts_response_payload": False,
                "retry_attempt": 0,
                "payload": {"event_id": f"Ev{i:04d}", "event": event},
            }
        )
        at(t, "slack_sdk.socket_mode.builtin.client", f"on_message invoked: (message: {frame})")
        depth = sum(1 for d in done_at if d > t) + 1
        at(
            t + 0.0001,
            "slack_sdk.socket_mode.client",
            f"A new message enqueued (current queue size: {depth})",
        )
        start = max(t, free)
        free = start + work_ms / 1000
        done_at.append(start)
        if sdk_timing:
            at(
                start,
                "slack_sdk.socket_mode.client",
                f"Message processing started (type: events_api, envelope_id: {env})",
            )
        at(
            start + 0.002,
            "slack_sdk.socket_mode.builtin.connection",
            f'Sending a message (session id: {sid}, message: {{"envelope_id": "{env}"}})',
        )
        at(free - 0.001, "slack_bolt.App", f"Response time: {work_ms} milliseconds")
        if sdk_timing:
            at(
                free,
                "slack_sdk.socket_mode.client",
                f"Message processing completed (type: events_api, envelope_id: {env})",
            )
    lines.sort(key=lambda x: x[0])
    out = []
    for t, text in lines:
        ms = round(t * 1000)
        out.append(f"2024-02-15 14:{32 + ms // 60000:02d}:{(ms // 1000) % 60:02d},{ms % 1000:03d} {text}")
    path.write_text(
        f"2024-02-15 14:32:00,000 INFO slack_sdk.socket_mode.builtin.client: A new session has been established "
        f"(session id: {sid})\n" + "\n".join(out) + "\n"
    )
    return path


@pytest.mark.parametrize("sdk_timing", [True, False], ids=["sdk-and-bolt-timing", "bolt-response-time-only"])
def test_bolt_response_time_hides_the_queue(tmp_path: Path, sdk_timing: bool) -> None:
    # A burst: one every 10 ms, handlers take 30 ms (and Bolt says so), so envelopes wait in the SDK queue.
    report = diagnose([str(_bolt_log(tmp_path / "bolt.log", gap_ms=10, work_ms=30, sdk_timing=sdk_timing))])
    hidden = [f for f in report.findings if f.code == "queue-wait-hidden"]
    assert hidden, [f.code for f in report.findings]
    ev = hidden[0].evidence
    assert ev["handler_p90_ms"] <= 40 and ev["ack_p90_ms"] > 1000
    assert "leaves out" in hidden[0].summary
    assert hidden[0].runbook == "queue-overflow"


def test_bolt_response_time_with_a_keeping_up_worker_is_fine(tmp_path: Path) -> None:
    report = diagnose([str(_bolt_log(tmp_path / "bolt.log", gap_ms=100, work_ms=30))])
    assert "queue-wait-hidden" not in {f.code for f in report.findings}
    assert report.overview["ack_latency"]["p99_ms"] < 100


def test_slow_handlers_are_not_hidden_queue_wait(tmp_path: Path) -> None:
    # Handlers themselves take 5 s: the queue grows, but Bolt's Response time shows it: nothing hidden.
    report = diagnose([str(_bolt_log(tmp_path / "bolt.log", gap_ms=1000, work_ms=5000, n=60))])
    assert "queue-wait-hidden" not in {f.code for f in report.findings}


def _aiohttp_heartbeats(path: Path, *, receive_until: float, end: float) -> Path:
    """slack-sdk aiohttp client DEBUG trace lines: both loops report every 100 s; the receive loop stops at
    ``receive_until``; other lines (pings, the monitor loop) go on to ``end``."""
    sid = "6d4c1a0e-55b1-4c8e-a7b2-0f3e9d8c7b61"
    lines = [f"A new session has been established (session id: {sid})"]
    stamped: list[tuple[float, str]] = [(0.0, lines[0])]
    t = 10.0
    while t <= end:
        stamped.append(
            (
                t,
                "#monitor_current_session method has been verifying if this session is active "
                f"(session: {sid}, logging interval: 100)",
            )
        )
        if t <= receive_until:
            stamped.append(
                (
                    t + 1,
                    "#receive_messages method has been working without any issues "
                    f"(session: {sid}, logging interval: 100)",
                )
            )
        t += 100
    stamped.sort()
    text = "".join(
        f"2024-03-01 10:{int(s // 60):02d}:{int(s % 60):02d},000 DEBUG slack_sdk.socket_mode.aiohttp: {m}\n"
        for s, m in stamped
    )
    path.write_text(text)
    return path


def test_sdk_receive_loop_that_stops_reporting_is_flagged(tmp_path: Path) -> None:
    report = diagnose([str(_aiohttp_heartbeats(tmp_path / "a.log", receive_until=1500, end=3500))])
    (f,) = [f for f in report.findings if f.code == "sdk-loop-stopped"]
    assert f.evidence["loops"] == ["receive"] and f.evidence["usual_interval_s"] == 100.0
    assert f.evidence["silent_s"] >= 1900 and f.runbook == "silent-deafness" and f.severity.name == "CRITICAL"


def test_sdk_loops_that_keep_reporting_or_end_with_the_log_are_fine(tmp_path: Path) -> None:
    both = diagnose([str(_aiohttp_heartbeats(tmp_path / "a.log", receive_until=3500, end=3500))])
    assert "sdk-loop-stopped" not in {f.code for f in both.findings}
    # Heartbeats stop only because the log ends soon after: the process exited, nothing to say.
    ended = diagnose([str(_aiohttp_heartbeats(tmp_path / "b.log", receive_until=3400, end=3500))])
    assert "sdk-loop-stopped" not in {f.code for f in ended.findings}


def test_sdk_loops_ended_by_a_shutdown_are_fine() -> None:
    recs = [
        R("loop", t, conn="s1", loop=name) for t in range(0, 2000, 100) for name in ("monitor", "receive")
    ]
    recs += [R("loop", t, conn="s1", loop="monitor") for t in range(2000, 5000, 100)]
    assert "sdk-loop-stopped" in codes(recs)
    recs.append(R("signal", 1950, name="SIGTERM", action="received"))
    assert "sdk-loop-stopped" not in codes(recs)


def test_logs_without_timestamps_do_not_turn_into_rates(tmp_path: Path) -> None:
    # Bolt's basicConfig default has no time: every line gets one time. Eight reconnects over what was really
    # a week, thirty LLM 429s and a watchdog's reconnects must not read as bursts happening at once.
    log = tmp_path / "untimed.log"
    lines = []
    for i in range(8):
        sid = f"0000000{i}-aaaa-4bbb-8ccc-0123456789ab"
        lines.append(
            f"INFO:slack_sdk.socket_mode.builtin.client:A new session has been established (session id: {sid})"
        )
        lines.append(
            f"DEBUG:slack_sdk.socket_mode.builtin.connection:Received 1 pong data frame (session id: {sid})"
        )
    log.write_text("\n".join(lines) + "\n")
    report = diagnose([str(log)])
    assert "reconnect-burst" not in {f.code for f in report.findings}
    assert any("no timestamps" in c for c in report.caveats)
    # The same lines with timestamps a second apart are a storm.
    timed = tmp_path / "timed.log"
    timed.write_text(
        "".join(
            f"2024-02-15 14:32:{i:02d},000 {ln.replace(':', ' ', 1).replace(':', ': ', 1)}\n"
            for i, ln in enumerate(lines)
        )
    )
    storm = diagnose([str(timed)])
    assert "reconnect-burst" in {f.code for f in storm.findings}
    assert not any("no timestamps" in c for c in storm.caveats)
