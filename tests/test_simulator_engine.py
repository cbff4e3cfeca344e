"""The simulator's pure core: registry, delivery engine, ledger. No sockets, no sleeping: time is a number."""

from __future__ import annotations

import random

from slackops.simulator.engine import DeliveryEngine, EngineSettings, check_ack_payload
from slackops.simulator.ledger import Event, Ledger, percentile
from slackops.simulator.registry import GHOST, Registry, Timing
from slackops.simulator.scenario import TrafficSettings
from slackops.simulator.traffic import TrafficGenerator


def make(settings: EngineSettings | None = None, timing: Timing | None = None, conns: int = 1):
    registry = Registry(timing or Timing())
    ledger = Ledger()
    engine = DeliveryEngine(settings or EngineSettings(), ledger, registry, random.Random(7))
    regs = [registry.admit(0.0) for _ in range(conns)]
    return engine, registry, ledger, regs


def event(n: int = 1, type_: str = "events_api", kind: str = "message", ts: str | None = None) -> Event:
    return Event(event_id=f"Ev{n}", type=type_, payload={"n": n}, kind=kind, ts=ts or f"100.{n:06d}")


# -- delivery engine ---------------------------------------------------------------------------------------


def test_ack_within_deadline_settles_the_event():
    engine, _reg, ledger, regs = make()
    (send,) = engine.submit(event(), now=10.0)
    assert send.conn == regs[0].id
    assert send.frame["retry_attempt"] == 0 and send.frame["retry_reason"] == ""
    result = engine.ack(send.frame["envelope_id"], regs[0].id, now=11.5)
    assert result.in_time and result.ack_ms == 1500.0
    assert engine.tick(now=100.0) == []
    assert ledger.entries["Ev1"].status(100.0) == "acked"
    assert engine.settled(100.0)


def test_events_api_retries_immediately_then_plus_one_and_five_minutes():
    engine, _reg, ledger, _regs = make()
    (first,) = engine.submit(event(), now=0.0)
    assert engine.tick(now=3.0) == []  # exactly at the deadline is still in time
    (retry1,) = engine.tick(now=3.01)
    assert retry1.frame["retry_attempt"] == 1 and retry1.frame["retry_reason"] == "timeout"
    assert retry1.frame["envelope_id"] != first.frame["envelope_id"]
    assert engine.tick(now=6.0 + 59.9) == []
    (retry2,) = engine.tick(now=6.02 + 60.0)
    assert retry2.frame["retry_attempt"] == 2
    deadline2 = retry2.attempt.deadline
    assert engine.tick(now=deadline2 + 299.0) == []
    (retry3,) = engine.tick(now=deadline2 + 300.1)
    assert retry3.frame["retry_attempt"] == 3
    assert engine.tick(now=deadline2 + 400.0) == []  # budget spent: Slack gives up after 3 retries
    entry = ledger.entries["Ev1"]
    assert [a.number for a in entry.attempts] == [0, 1, 2, 3]
    assert entry.status(deadline2 + 400.0) == "lost"
    assert engine.failures[-1] == (entry, "retries_exhausted")


def test_late_ack_is_scored_late_and_the_retry_still_goes_out():
    engine, _reg, ledger, regs = make()
    (first,) = engine.submit(event(), now=0.0)
    (retry,) = engine.tick(now=3.1)
    late = engine.ack(first.frame["envelope_id"], regs[0].id, now=3.5)
    assert not late.in_time and late.ack_ms == 3500.0
    engine.ack(retry.frame["envelope_id"], regs[0].id, now=3.6)
    entry = ledger.entries["Ev1"]
    assert entry.acked and entry.acked_late
    assert entry.status(10.0) == "acked"
    card = ledger.scorecard(10.0, scenario="t", duration_s=10, gaps_ms=[])
    assert (card.acked, card.acked_late, card.retries, card.lost) == (1, 1, 1, 0)


def test_only_the_last_attempt_acked_late_is_acked_late_not_lost():
    engine, _reg, ledger, regs = make(EngineSettings(retry_delays=()))
    (first,) = engine.submit(event(), now=0.0)
    engine.tick(now=3.5)
    engine.ack(first.frame["envelope_id"], regs[0].id, now=4.0)
    assert ledger.entries["Ev1"].status(5.0) == "acked_late"


def test_interactive_is_never_retried_and_is_lost_when_not_acked_in_time():
    engine, _reg, ledger, regs = make()
    (send,) = engine.submit(event(type_="interactive", kind="block_actions"), now=0.0)
    assert "retry_attempt" not in send.frame
    assert engine.tick(now=60.0) == []
    engine.ack(send.frame["envelope_id"], regs[0].id, now=60.0)  # far too late: the user already saw an error
    entry = ledger.entries["Ev1"]
    assert entry.status(60.0) == "lost" and entry.failure == "dispatch_failed"
    assert len(entry.attempts) == 1


def test_slash_command_with_no_connection_fails_at_once_but_events_wait_for_retries():
    engine, registry, ledger, regs = make()
    registry.closed(regs[0].id, 0.0, clean=True)
    assert engine.submit(event(1, type_="slash_commands", kind="slash_command"), now=1.0) == []
    assert ledger.entries["Ev1"].status(1.0) == "lost"
    assert ledger.entries["Ev1"].failure == "no_connections"
    (nowhere,) = engine.submit(event(2), now=1.0)
    assert nowhere.conn is None and nowhere.blackhole
    new = registry.admit(2.0)
    (retry,) = engine.tick(now=4.1)
    assert retry.conn == new.id and retry.frame["retry_attempt"] == 1


def test_routing_round_robin_spreads_attempts_over_every_registration():
    engine, _reg, _ledger, regs = make(EngineSettings(routing="round_robin"), conns=3)
    conns = [engine.submit(event(n), now=0.0)[0].conn for n in range(6)]
    assert conns == [r.id for r in regs] * 2


def test_routing_random_reaches_every_connection():
    engine, _reg, _ledger, regs = make(conns=3)
    conns = {engine.submit(event(n), now=0.0)[0].conn for n in range(60)}
    assert conns == {r.id for r in regs}


def test_ghost_swallows_the_attempt_and_the_retry_recovers_it():
    engine, registry, ledger, regs = make(EngineSettings(routing="round_robin"), conns=2)
    registry.closed(regs[0].id, 0.0, clean=False)  # vanished without a close frame: a ghost
    assert registry.regs[regs[0].id].state == GHOST
    (lost_attempt,) = engine.submit(event(), now=1.0)
    assert lost_attempt.conn == regs[0].id and lost_attempt.blackhole
    (retry,) = engine.tick(now=4.1)
    assert retry.conn == regs[1].id and not retry.blackhole
    engine.ack(retry.frame["envelope_id"], regs[1].id, now=4.2)
    card = ledger.scorecard(5.0, scenario="t", duration_s=5, gaps_ms=[])
    assert card.blackholed == 1 and card.retries == 1 and card.lost == 0


def test_ack_on_another_connection_is_accepted_by_default_and_refused_when_switched_off():
    engine, _reg, _ledger, regs = make(EngineSettings(routing="round_robin"), conns=2)
    (send,) = engine.submit(event(1), now=0.0)
    assert engine.ack(send.frame["envelope_id"], regs[1].id, now=0.1).in_time

    strict, _r, _l, sregs = make(EngineSettings(routing="round_robin", ack_any_connection=False), conns=2)
    (send,) = strict.submit(event(1), now=0.0)
    refused = strict.ack(send.frame["envelope_id"], sregs[1].id, now=0.1)
    assert refused.error == "wrong_connection" and not refused.counted
    assert strict.ack(send.frame["envelope_id"], sregs[0].id, now=0.2).in_time


def test_only_the_first_ack_counts_and_unknown_ids_are_reported():
    engine, _reg, _ledger, regs = make()
    (send,) = engine.submit(event(), now=0.0)
    assert engine.ack(send.frame["envelope_id"], regs[0].id, now=0.1).in_time
    assert engine.ack(send.frame["envelope_id"], regs[0].id, now=0.2).error == "duplicate_ack"
    assert engine.ack("nope", regs[0].id, now=0.2).error == "unknown_envelope"


def test_envelope_id_reused_across_retries_when_configured():
    engine, _reg, ledger, regs = make(EngineSettings(new_envelope_id_per_attempt=False))
    (first,) = engine.submit(event(), now=0.0)
    (retry,) = engine.tick(now=3.1)
    assert retry.frame["envelope_id"] == first.frame["envelope_id"]
    result = engine.ack(first.frame["envelope_id"], regs[0].id, now=3.2)
    assert result.attempt.number == 1 and result.in_time
    assert ledger.entries["Ev1"].status(4.0) == "acked"


def test_ack_payloads_are_validated_where_slack_reads_them():
    view = Event("I1", "interactive", {}, accepts_response_payload=True, kind="view_submission")
    assert check_ack_payload(view, None) is None
    assert check_ack_payload(view, {}) is None
    assert check_ack_payload(view, {"response_action": "clear"}) is None
    assert check_ack_payload(view, {"response_action": "explode"}) == "invalid_response_action"
    slash = Event("S1", "slash_commands", {}, accepts_response_payload=True, kind="slash_command")
    assert check_ack_payload(slash, {"text": "ok"}) is None
    assert check_ack_payload(slash, {"foo": 1}) == "missing_message_body"
    msg = Event("E1", "events_api", {}, accepts_response_payload=False)
    assert check_ack_payload(msg, {"text": "x"}) == "payload_ignored"


# -- registry ----------------------------------------------------------------------------------------------


def test_cap_counts_ghosts_until_they_age_out():
    registry = Registry(Timing(cap=3, ghost_ttl=100.0))
    a, b, _c = (registry.admit(0.0) for _ in range(3))
    assert registry.admit(1.0) is None
    registry.closed(a.id, 2.0, clean=False)
    registry.closed(b.id, 2.0, clean=True)
    assert registry.count(3.0) == 2  # one live, one ghost
    assert registry.admit(3.0) is not None
    assert registry.admit(3.0) is None  # the ghost still holds a slot
    assert registry.count(102.5) == 2
    assert a.id not in registry.regs  # aged out and pruned


def test_lifetime_warning_refresh_and_drop_in_order_with_pings():
    registry = Registry(Timing(lifetime=100.0, warning_lead=10.0, grace=5.0, ping_interval=30.0))
    reg = registry.admit(0.0)
    assert [c.action for c in registry.tick(30.0)] == ["ping"]
    assert [c.action for c in registry.tick(90.0)] == ["warning", "ping"]
    assert [c.action for c in registry.tick(100.0)] == ["refresh_requested"]
    assert registry.tick(104.0) == []
    assert [c.action for c in registry.tick(105.0)] == ["drop"]
    registry.forget(reg.id, 105.0)
    assert registry.live() == []


def test_debug_reconnects_shortens_the_lifetime_and_refresh_now_starts_the_sequence():
    registry = Registry(Timing(lifetime=18060.0, debug_lifetime=360.0, warning_lead=10.0, ping_interval=0.0))
    reg = registry.admit(0.0, debug=True)
    assert registry.lifetime_of(reg) == 360.0
    other = registry.admit(0.0)
    registry.refresh(other.id, 50.0)
    assert [c.action for c in registry.tick(50.0) if c.conn == other.id] == ["warning"]
    assert [c.action for c in registry.tick(60.0) if c.conn == other.id] == ["refresh_requested"]


def test_half_open_socket_gets_no_pings_but_stays_routable():
    registry = Registry(Timing(ping_interval=1.0))
    reg = registry.admit(0.0)
    reg.half_open = True
    assert registry.tick(5.0) == []
    assert [r.id for r in registry.routable(5.0)] == [reg.id] and reg.blackhole


def test_reconnect_gap_is_measured_between_last_close_and_next_open():
    registry = Registry()
    a = registry.admit(0.0)
    b = registry.admit(1.0)
    registry.closed(a.id, 2.0, clean=True)
    registry.closed(b.id, 3.0, clean=True)
    registry.admit(3.25)
    assert registry.gaps_ms == [250.0]


# -- ledger and traffic ------------------------------------------------------------------------------------


def test_replies_are_attributed_by_ts_and_two_replies_mean_processed_twice():
    ledger = Ledger()
    ledger.add(event(1, ts="1.000001"), 0.0)
    ledger.add(event(2, ts="1.000002"), 0.0)
    assert ledger.attribute("chat.postMessage", 1.0, channel="C1", ts="1.000001") is not None
    ledger.attribute("reactions.add", 1.0, channel="C1", ts="1.000001")
    ledger.attribute("chat.postMessage", 1.0, channel="C1", ts="1.000002")
    assert ledger.attribute("chat.postMessage", 1.0, channel="C1", ts="9.9") is None
    card = ledger.scorecard(1.0, scenario="t", duration_s=1, gaps_ms=[])
    assert (card.processed, card.processed_twice) == (2, 1)
    assert ledger.unattributed_replies == 1


def test_percentile_is_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0
    assert percentile(list(range(1, 101)), 99) == 99


def test_app_mention_comes_with_its_message_pair_sharing_ts():
    gen = TrafficGenerator(TrafficSettings(), random.Random(1))
    mention, plain = gen.make("app_mention", 1000.0)
    assert mention.payload["event"]["type"] == "app_mention"
    assert plain.payload["event"]["type"] == "message"
    assert mention.ts == plain.ts and mention.event_id != plain.event_id


def test_background_rate_is_evenly_spaced_and_deterministic_by_seed():
    settings = TrafficSettings(rate=10.0, mix={"message": 1, "block_actions": 1}, mention_pairs=False)
    a = TrafficGenerator(settings, random.Random(3))
    b = TrafficGenerator(settings, random.Random(3))
    a.start(0.0)
    b.start(0.0)
    assert len(a.due(0.55, 1000.0)) == 5
    assert len(a.due(1.0, 1000.0)) == 5
    b_events = b.due(1.0, 1000.0)
    assert {e.kind for e in b_events} <= {"message", "block_actions"}
    assert len(b_events) == 10


def test_ts_values_stay_unique_in_a_burst_at_one_instant():
    gen = TrafficGenerator(TrafficSettings(), random.Random(1))
    stamps = [gen.next_ts(1795331347.3899643) for _ in range(5000)]
    assert len(set(stamps)) == 5000
    assert stamps == sorted(stamps, key=float)
    assert all(len(s.split(".")[1]) == 6 for s in stamps)


def test_duplicate_retries_are_routed_independently_and_counted_apart():
    engine, _reg, ledger, regs = make(EngineSettings(duplicate_share=1.0, routing="round_robin"), conns=2)
    (first,) = engine.submit(event(), now=0.0)  # the first attempt is never doubled
    retry, copy = engine.tick(now=3.1)
    assert retry.frame["retry_attempt"] == copy.frame["retry_attempt"] == 1
    assert retry.frame["envelope_id"] != copy.frame["envelope_id"] and copy.attempt.duplicate
    assert {retry.conn, copy.conn} == {r.id for r in regs}
    engine.ack(retry.frame["envelope_id"], retry.conn, now=3.2)
    engine.ack(copy.frame["envelope_id"], copy.conn, now=3.3)
    assert engine.tick(now=100.0) == []
    card = ledger.scorecard(100.0, scenario="t", duration_s=1, gaps_ms=[])
    assert (card.retries, card.duplicate_sends, card.acked, card.lost) == (1, 1, 1, 0)
    assert first.frame["retry_attempt"] == 0


def test_an_unacked_duplicate_pair_still_gets_the_next_retry():
    engine, _reg, ledger, _regs = make(EngineSettings(duplicate_share=1.0, retry_delays=(0.0, 1.0)))
    engine.submit(event(), now=0.0)
    assert len(engine.tick(now=3.1)) == 2
    assert [s.frame["retry_attempt"] for s in engine.tick(now=7.2)] == [2, 2]
    assert engine.tick(now=20.0) == []
    assert ledger.entries["Ev1"].status(20.0) == "lost"
