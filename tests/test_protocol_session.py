"""The connection state machine and the timing policies, driven with an injected clock (no sockets, no sleeps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slackops.protocol import (
    AckDeadline,
    AckFailed,
    AckOverdue,
    AckSent,
    Backoff,
    Closed,
    DisconnectRequested,
    EnvelopeReceived,
    Liveness,
    LivenessLost,
    LivenessPolicy,
    Opened,
    PongReceived,
    ProtocolError,
    SendClose,
    SendPing,
    SendPong,
    SendText,
    ServerPingReceived,
    Session,
    State,
    Unrecognized,
)

FRAMES = Path(__file__).parent / "fixtures" / "frames"


def frame(name: str) -> str:
    return (FRAMES / f"{name}.json").read_text().strip()


def of(events, cls):
    return [e for e in events if isinstance(e, cls)]


def opened(now: float = 0.0, **policy) -> Session:
    s = Session("c1", created_at=now, liveness_policy=LivenessPolicy(**policy))
    s.receive_text(frame("hello_production"), now)
    return s


# ---- transitions ------------------------------------------------------------------------------------------


def test_connecting_to_open_on_hello():
    s = Session("c1", created_at=0.0)
    assert s.state is State.CONNECTING and not s.is_live
    events = s.receive_text(frame("hello_production"), 0.2)
    assert [type(e) for e in events] == [Opened]
    assert s.state is State.OPEN and s.is_live
    assert s.opened_at == 0.2
    assert s.hello.num_connections == 1


def test_open_to_draining_on_refresh():
    s = opened()
    (event,) = s.receive_text(frame("disconnect_refresh_requested"), 5.0)
    assert isinstance(event, DisconnectRequested)
    assert event.disconnect.is_refresh and not event.before_hello
    assert s.state is State.DRAINING and not s.is_live


def test_too_many_websockets_before_hello_is_flagged():
    s = Session("c1", created_at=0.0)
    (event,) = s.receive_text(frame("disconnect_too_many_websockets"), 0.1)
    assert event.before_hello
    assert s.state is State.DRAINING


def test_draining_socket_still_delivers_and_acks_envelopes():
    s = opened()
    s.receive_text(frame("disconnect_warning"), 1.0)
    (event,) = s.receive_text(frame("events_api_app_mention"), 1.5)
    assert isinstance(event, EnvelopeReceived)
    sent = s.ack(event.envelope.envelope_id, 1.502)
    assert isinstance(sent[0], SendText)
    assert sent[1].ack_ms == pytest.approx(2.0)


def test_hello_after_draining_does_not_reopen():
    s = opened()
    s.drain(1.0)
    s.receive_text(frame("hello_production"), 2.0)
    assert s.state is State.DRAINING


@pytest.mark.parametrize("state_setup", ["connecting", "open", "draining"])
def test_connection_lost_from_any_state_closes(state_setup):
    s = Session("c1", created_at=0.0)
    if state_setup != "connecting":
        s.receive_text(frame("hello_production"), 0.0)
    if state_setup == "draining":
        s.receive_text(frame("disconnect_refresh_requested"), 1.0)
    (closed,) = s.connection_closed(2.0)
    assert closed == Closed(None, "", "network", False)
    assert s.state is State.CLOSED


def test_server_close_frame_is_clean_and_by_server():
    s = opened()
    assert s.close_received(1000, "bye", 1.0) == [SendClose(1000, "bye")]
    (closed,) = s.connection_closed(1.1, 1000, "bye")
    assert (closed.by, closed.clean, closed.code) == ("server", True, 1000)


def test_client_close_is_by_client():
    s = opened()
    assert s.close(1.0) == [SendClose(1000, "")]
    assert s.close(1.0) == []  # only once
    (closed,) = s.connection_closed(1.2, 1000)
    assert (closed.by, closed.clean) == ("client", True)


def test_abnormal_closure_code_counts_as_network():
    s = opened()
    (closed,) = s.connection_closed(1.0, 1006, "")
    assert (closed.by, closed.clean) == ("network", False)


def test_closed_session_ignores_input_and_refuses_acks():
    s = opened()
    s.connection_closed(1.0)
    assert s.receive_text(frame("events_api_app_mention"), 2.0) == []
    assert s.receive_ping(b"x", 2.0) == []
    assert s.receive_pong(b"x", 2.0) == []
    assert s.tick(100.0) == []
    assert s.connection_closed(3.0) == []
    assert s.ack("e1", 2.0) == [AckFailed("e1", "socket closed")]


def test_ack_after_client_close_is_refused():
    s = opened()
    s.close(1.0)
    assert of(s.ack("e1", 1.1), AckFailed)


def test_malformed_and_binary_frames_are_events_not_exceptions():
    s = opened()
    assert isinstance(s.receive_text("{nope", 1.0)[0], ProtocolError)
    assert s.receive_binary(b"\x89PNG", 1.0)[0].error.problem == "binary"
    assert isinstance(s.receive_text(frame("unknown_type"), 1.0)[0], Unrecognized)
    assert s.state is State.OPEN


# ---- acks -------------------------------------------------------------------------------------------------


def test_ack_frame_and_latency():
    s = opened()
    (received,) = s.receive_text(frame("events_api_app_mention"), 10.0)
    send, sent = s.ack(received.envelope.envelope_id, 10.004)
    assert json.loads(send.data) == {"envelope_id": "cda4159a-72a5-4744-aba3-4d66eb52682b"}
    assert sent == AckSent("cda4159a-72a5-4744-aba3-4d66eb52682b", pytest.approx(4.0), False)
    assert s.pending == {}


def test_ack_with_payload_for_slash_command():
    s = opened()
    (received,) = s.receive_text(frame("slash_commands"), 0.0)
    send, _ = s.ack(received.envelope.envelope_id, 0.1, payload={"text": "done"})
    assert json.loads(send.data)["payload"] == {"text": "done"}


def test_late_ack_is_marked_late():
    s = opened()
    (received,) = s.receive_text(frame("events_api_app_mention"), 0.0)
    _, sent = s.ack(received.envelope.envelope_id, 3.2)
    assert sent.late and sent.ack_ms == pytest.approx(3200.0)


def test_ack_for_envelope_from_another_socket_has_no_latency():
    s = opened()
    _, sent = s.ack("from-old-socket", 1.0)
    assert sent.ack_ms is None and not sent.late


def test_overdue_ack_reported_once():
    s = opened(ping_interval_s=1000)
    (received,) = s.receive_text(frame("events_api_app_mention"), 0.0)
    assert not of(s.tick(2.9), AckOverdue)
    (overdue,) = of(s.tick(3.5), AckOverdue)
    assert overdue.envelope_id == received.envelope.envelope_id and overdue.age_s == pytest.approx(3.5)
    assert not of(s.tick(4.0), AckOverdue)


def test_redelivered_envelope_id_keeps_first_receipt_time():
    s = opened()
    s.receive_text(frame("events_api_app_mention"), 0.0)
    s.receive_text(frame("events_api_app_mention"), 2.0)
    _, sent = s.ack("cda4159a-72a5-4744-aba3-4d66eb52682b", 2.5)
    assert sent.ack_ms == pytest.approx(2500.0)


# ---- ping / pong ------------------------------------------------------------------------------------------


def test_server_ping_is_answered_with_same_payload():
    s = opened()
    events = s.receive_ping(b"Ping from applink-1", 3.0)
    assert events == [ServerPingReceived(b"Ping from applink-1"), SendPong(b"Ping from applink-1")]


def test_client_ping_schedule_and_rtt():
    s = opened(ping_interval_s=10)
    assert not of(s.tick(9.9), SendPing)
    (ping,) = of(s.tick(10.0), SendPing)
    assert ping.payload.startswith(b"slackops:c1:")
    assert not of(s.tick(12.0), SendPing)  # next one is due at 20
    (pong,) = s.receive_pong(ping.payload, 10.035)
    assert pong == PongReceived(ping.payload, pytest.approx(35.0))


def test_pong_for_latest_ping_answers_older_ones():
    s = opened(ping_interval_s=1, pong_timeout_s=100)
    p1 = of(s.tick(1.0), SendPing)[0].payload
    p2 = of(s.tick(2.0), SendPing)[0].payload
    assert s.receive_pong(p2, 2.01)[0].rtt_ms == pytest.approx(10.0)
    assert s.receive_pong(p1, 2.02)[0].rtt_ms is None  # already answered


def test_unsolicited_pong_counts_as_life():
    s = opened()
    (pong,) = s.receive_pong(b"whatever", 1.0)
    assert pong.rtt_ms is None
    assert s.liveness.last_pong_at == 1.0


# ---- liveness ---------------------------------------------------------------------------------------------


def test_quiet_but_healthy_socket_is_never_declared_dead():
    """No envelopes for an hour, but pongs and server pings keep coming: stays live (no stale-watchdog)."""
    s = opened(ping_interval_s=10, pong_timeout_s=15, server_ping_timeout_s=60, unhealthy_after_s=5)
    now = 0.0
    while now < 3600:
        now += 1.0
        for event in s.tick(now):
            assert not isinstance(event, LivenessLost)
            if isinstance(event, SendPing):
                s.receive_pong(event.payload, now + 0.05)
        if int(now) % 30 == 0:
            s.receive_ping(b"Ping from applink-1", now)
    assert s.is_live


def test_missing_pongs_lose_liveness_after_threshold():
    s = opened(ping_interval_s=10, pong_timeout_s=15, unhealthy_after_s=5)
    assert of(s.tick(10.0), SendPing)  # never answered
    assert not of(s.tick(25.5), LivenessLost)  # 15 s without pong: unhealthy since 25.0
    assert not of(s.tick(29.9), LivenessLost)  # not yet continuously unhealthy for 5 s
    (lost,) = of(s.tick(30.0), LivenessLost)
    assert lost.reason == "pong_timeout"
    assert not of(s.tick(40.0), LivenessLost)  # reported once


def test_brief_unhealthiness_recovers_without_verdict():
    s = opened(ping_interval_s=10, pong_timeout_s=15, unhealthy_after_s=5)
    ping = of(s.tick(10.0), SendPing)[0]
    s.tick(26.0)  # unhealthy
    s.receive_pong(ping.payload, 27.0)  # a late pong: healthy again
    assert not of(s.tick(40.0), LivenessLost)
    assert s.liveness.unhealthy_since is None


def test_server_ping_timeout_only_after_first_server_ping():
    s = opened(ping_interval_s=1000, server_ping_timeout_s=60, unhealthy_after_s=0)
    assert not of(s.tick(500.0), LivenessLost)  # never pinged: rule not armed
    s.receive_ping(b"Ping from applink-1", 500.0)
    assert not of(s.tick(559.0), LivenessLost)
    (lost,) = of(s.tick(561.0), LivenessLost)
    assert lost.reason == "server_ping_timeout"
    assert lost.silent_for_s == pytest.approx(61.0)


def test_next_deadline_points_at_next_work():
    s = opened(ping_interval_s=10)
    assert s.next_deadline() == 10.0
    s.receive_text(frame("events_api_app_mention"), 1.0)
    assert s.next_deadline() == 4.0


# ---- policies ---------------------------------------------------------------------------------------------


def test_ack_deadline():
    d = AckDeadline()
    assert d.due_at(10.0) == 13.0
    assert d.remaining(10.0, 11.0) == 2.0
    assert not d.is_late(10.0, 13.0)
    assert d.is_late(10.0, 13.001)


def test_backoff_full_jitter_bounds():
    b = Backoff(base_s=1.0, cap_s=60.0)
    assert b.delay(0, rand=lambda: 0.999) < 1.0
    assert b.delay(3, rand=lambda: 1.0) == 8.0
    assert b.delay(20, rand=lambda: 1.0) == 60.0  # capped
    assert b.delay(5, rand=lambda: 0.0) == 0.0  # full jitter may retry at once


def test_backoff_honours_retry_after_as_floor():
    b = Backoff(base_s=1.0, cap_s=60.0, retry_after_jitter_s=1.0)
    assert b.delay(0, retry_after=30.0, rand=lambda: 0.0) == 30.0
    assert b.delay(0, retry_after=30.0, rand=lambda: 0.5) == 30.5
    assert b.delay(10, retry_after=2.0, rand=lambda: 1.0) == 60.0  # the jittered delay can exceed the floor


def test_backoff_spreads_a_herd():
    import random

    rng = random.Random(7)
    delays = [Backoff().delay(4, rand=rng.random) for _ in range(200)]
    assert min(delays) < 2.0 < 14.0 < max(delays) <= 16.0


def test_liveness_silent_for():
    live = Liveness(LivenessPolicy(), opened_at=0.0)
    assert live.silent_for(5.0) == 5.0
    live.server_ping_received(3.0)
    assert live.silent_for(5.0) == 2.0
