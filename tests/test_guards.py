"""Each cost guard with a case where it fires and one where it must not (pure: ``now`` is passed in)."""

from __future__ import annotations

import pytest

from slackops import records
from slackops.bot.guards import (
    Budget,
    ChannelLimiter,
    CircuitBreaker,
    EditFilter,
    LLMCall,
    MentionPairFilter,
    PostCeiling,
    Pricing,
    RetryPolicy,
    SelfLoopFilter,
    State,
    loop_reason,
    text_changed,
)
from slackops.protocol.policies import Backoff

BOT_USER, BOT_ID = "U0BOT", "B0BOT"


def guard_records(sink: list[dict], guard: str | None = None) -> list[dict]:
    out = [r for r in sink if r["kind"] == "guard" and (guard is None or r["guard"] == guard)]
    for rec in out:
        assert records.validate(rec) == []
    return out


def user_message(**extra) -> dict:
    return {"type": "message", "channel": "C1", "user": "U1", "ts": "1.000001", "text": "hi", **extra}


# -- self-loop ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (user_message(bot_id=BOT_ID, user=BOT_USER), "bot_id"),
        (user_message(subtype="bot_message", bot_id="B0OTHER"), "subtype=bot_message"),
        (user_message(user=BOT_USER), "own_user"),
        (user_message(bot_id="B0OTHER"), "bot_id"),
        (
            {
                "type": "message",
                "subtype": "message_changed",
                "channel": "C1",
                "message": {"user": BOT_USER, "bot_id": BOT_ID, "text": "edited"},
            },
            "bot_id",
        ),
    ],
)
def test_self_loop_skips_bot_and_own_messages(event, reason):
    sink: list[dict] = []
    f = SelfLoopFilter(emit=sink.append)
    f.learn({"ok": True, "user_id": BOT_USER, "bot_id": BOT_ID})
    assert f.admit(event, event_id="Ev1") is False
    (rec,) = guard_records(sink, "self_loop")
    assert (rec["action"], rec["detail"], rec["event_id"], rec["channel"]) == ("skip", reason, "Ev1", "C1")


def test_self_loop_admits_people_and_allowed_bots_but_never_itself():
    sink: list[dict] = []
    f = SelfLoopFilter(bot_user_id=BOT_USER, bot_id=BOT_ID, allow_bot_ids=["B0CI", BOT_ID], emit=sink.append)
    assert f.admit(user_message()) is True
    assert f.admit({"type": "app_mention", "user": "U2", "text": f"<@{BOT_USER}> help"}) is True
    assert f.admit(user_message(bot_id="B0CI", subtype="bot_message")) is True
    assert f.admit(user_message(bot_id=BOT_ID)) is False  # allow-listing ourselves cannot open a loop
    assert len(guard_records(sink)) == 1


def test_loop_reason_without_identity_still_catches_bot_ids():
    assert loop_reason(user_message(user=BOT_USER)) is None  # unknown identity: only bot_id/subtype work
    assert loop_reason(user_message(bot_id=BOT_ID)) == "bot_id"


# -- post ceiling -------------------------------------------------------------------------------------------


def test_post_ceiling_blocks_the_sixth_post_in_a_minute_per_channel():
    sink: list[dict] = []
    ceiling = PostCeiling(emit=sink.append)
    assert all(ceiling.allow("C1", now=float(i)) for i in range(5))
    assert ceiling.allow("C1", now=10.0, event_id="Ev6") is False
    assert ceiling.allow("C2", now=10.0) is True  # other channels have their own ceiling
    (rec,) = guard_records(sink, "post_ceiling")
    assert (rec["action"], rec["channel"], rec["event_id"]) == ("block", "C1", "Ev6")
    assert "5 posts in 60 s" in rec["detail"]


def test_post_ceiling_window_slides():
    ceiling = PostCeiling(limit=2, window=60.0)
    assert ceiling.allow("C1", 0.0) and ceiling.allow("C1", 30.0)
    assert not ceiling.allow("C1", 59.0)
    assert ceiling.allow("C1", 60.0)  # the post at t=0 left the window
    assert not ceiling.allow("C1", 61.0)


# -- fan-out ------------------------------------------------------------------------------------------------


def test_channel_limiter_skips_over_20_calls_an_hour_in_one_channel():
    sink: list[dict] = []
    limiter = ChannelLimiter(emit=sink.append)
    assert all(limiter.allow("C1", now=i * 60.0) for i in range(20))
    assert limiter.allow("C1", now=1300.0, event_id="Ev21") is False
    assert limiter.allow("C9", now=1300.0) is True
    assert limiter.allow("C1", now=3600.0) is True  # the first call aged out of the hour
    (rec,) = guard_records(sink, "fan_out")
    assert rec["event_id"] == "Ev21" and "limit 20" in rec["detail"]


def test_mention_pair_handles_one_of_app_mention_and_message_in_either_order():
    sink: list[dict] = []
    pairs = MentionPairFilter(emit=sink.append)
    mention = {"type": "app_mention", "channel": "C1", "ts": "5.000001", "user": "U1"}
    plain = {"type": "message", "channel": "C1", "ts": "5.000001", "user": "U1"}
    assert pairs.admit(plain, 0.0, event_id="EvM") is True
    assert pairs.admit(mention, 0.1, event_id="EvA") is False
    (rec,) = guard_records(sink, "mention_pair")
    assert rec["event_id"] == "EvA" and "EvM" in rec["detail"]


def test_mention_pair_admits_distinct_messages_redeliveries_and_expired_keys():
    pairs = MentionPairFilter(ttl=600.0)
    a = {"type": "message", "channel": "C1", "ts": "1.0"}
    assert pairs.admit(a, 0.0, event_id="Ev1")
    assert pairs.admit({**a, "ts": "2.0"}, 0.0, event_id="Ev2")  # another message
    assert pairs.admit({**a, "channel": "C2"}, 0.0, event_id="Ev3")  # same ts, other channel
    assert pairs.admit(a, 1.0, event_id="Ev1")  # the same event again is dedup's business, not a pair
    assert pairs.admit({"type": "message", "subtype": "message_changed", "channel": "C1", "ts": "1.0"}, 2.0)
    assert pairs.admit({**a, "type": "app_mention"}, 700.0, event_id="Ev9")  # remembered 10 min only


def test_edit_filter_skips_unchanged_text_only():
    sink: list[dict] = []
    edits = EditFilter(emit=sink.append)
    unfurl = {
        "type": "message",
        "subtype": "message_changed",
        "channel": "C1",
        "message": {"text": "see https://x", "attachments": [{"title": "x"}]},
        "previous_message": {"text": "see https://x"},
    }
    real = {**unfurl, "message": {"text": "see https://y"}}
    assert text_changed(unfurl) is False and text_changed(real) is True
    assert text_changed(user_message()) is None
    assert edits.admit(unfurl, event_id="EvU") is False
    assert edits.admit(real, event_id="EvR") is True
    assert edits.admit(user_message()) is True
    assert [r["event_id"] for r in guard_records(sink, "unchanged_edit")] == ["EvU"]


# -- circuit breaker and retries ----------------------------------------------------------------------------


def test_breaker_opens_after_three_consecutive_429s_then_probes_after_cooldown():
    sink: list[dict] = []
    b = CircuitBreaker("llm", emit=sink.append)
    for t in (0.0, 1.0):
        assert b.allow(t)
        b.failure(t, 429)
    assert b.state is State.CLOSED
    b.failure(2.0, 429)
    assert b.state is State.OPEN
    assert b.allow(50.0) is False
    assert b.retry_in(50.0) == pytest.approx(42.0)
    assert b.allow(92.0) is True  # the one half-open probe
    assert b.state is State.HALF_OPEN
    assert b.allow(92.1) is False  # everyone else waits for the probe
    b.success(93.0)
    assert b.state is State.CLOSED and b.allow(93.1)
    actions = [r["action"] for r in guard_records(sink, "breaker")]
    assert actions == ["open", "reject", "half_open", "reject", "close"]


def test_breaker_failed_probe_reopens_for_a_full_cooldown():
    b = CircuitBreaker("llm", threshold=1, cooldown=10.0)
    b.failure(0.0, 429)
    assert b.allow(10.0)
    b.failure(10.5, 429)
    assert b.state is State.OPEN and not b.allow(20.0) and b.allow(20.5)


def test_breaker_ignores_non_rate_limit_errors_and_resets_on_success():
    b = CircuitBreaker("llm")
    b.failure(0.0, 429)
    b.failure(0.1, 429)
    b.failure(0.2, 400)  # a bad request says nothing about load
    b.failure(0.3, None)
    assert b.state is State.CLOSED
    b.success(0.4)
    b.failure(0.5, 429)
    b.failure(0.6, 429)
    assert b.state is State.CLOSED  # not 3 in a row: the success reset the count


class _HTTPError(Exception):
    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.retry_after = retry_after


def test_retry_policy_jitters_and_honours_retry_after():
    policy = RetryPolicy(attempts=3, backoff=Backoff(base_s=1.0, cap_s=30.0, retry_after_jitter_s=1.0))
    delays = [policy.delay(1, _HTTPError(429), rand=lambda v=v: v) for v in (0.1, 0.5, 0.9)]
    assert delays == pytest.approx([0.2, 1.0, 1.8])  # spread over [0, 2 s], not aligned on one delay
    assert policy.delay(0, _HTTPError(429, retry_after=5.0), rand=lambda: 0.5) == pytest.approx(5.5)
    assert policy.delay(0, _HTTPError(503), rand=lambda: 0.5) == pytest.approx(0.5)


def test_retry_policy_does_not_retry_client_errors_or_past_the_last_attempt():
    policy = RetryPolicy(attempts=2)
    assert policy.delay(0, _HTTPError(400)) is None
    assert policy.delay(0, ValueError("no status")) is None
    assert policy.delay(1, _HTTPError(429)) is None


# -- budget -------------------------------------------------------------------------------------------------


def test_budget_trips_once_with_the_numbers_then_resets_when_the_window_frees():
    sink: list[dict] = []
    budget = Budget(max_calls=2, window=100.0, emit=sink.append)
    assert budget.allow(0.0) and budget.allow(1.0)
    assert not budget.allow(2.0, event_id="Ev3", channel="C1")
    assert not budget.allow(3.0, event_id="Ev4")
    assert budget.allow(100.5)  # the call at t=0 left the window
    actions = [(r["action"], r.get("event_id")) for r in guard_records(sink, "budget")]
    assert actions == [("trip", "Ev3"), ("skip", "Ev3"), ("skip", "Ev4"), ("reset", None)]
    assert "2 calls in 100 s (limit 2)" in guard_records(sink)[0]["detail"]


def test_budget_counts_tokens_and_unlimited_budget_never_trips():
    budget = Budget(max_tokens=1000, window=60.0)
    assert budget.allow(0.0)
    budget.spend(0.0, 999)
    assert budget.allow(1.0)
    budget.spend(1.0, 5)
    assert budget.exhausted(2.0) == "1004 tokens in 60 s (limit 1000)"
    assert not budget.allow(2.0)
    free = Budget()
    assert all(free.allow(float(i)) for i in range(1000))


# -- llm record ---------------------------------------------------------------------------------------------


def test_llm_call_records_latency_tokens_and_cost():
    sink: list[dict] = []
    ticks = iter([10.0, 10.25])
    with LLMCall(
        sink.append,
        resource="openai:gpt-4o-mini",
        event_id="Ev1",
        channel="C1",
        pricing=Pricing(input_per_mtok=0.15, output_per_mtok=0.60),
        clock=lambda: next(ticks),
    ) as call:
        call.usage(1000, 500)
    (rec,) = sink
    assert records.validate(rec) == []
    assert rec["kind"] == "llm" and rec["http_status"] == 200 and rec["latency_ms"] == 250.0
    assert (rec["tokens_in"], rec["tokens_out"], rec["event_id"]) == (1000, 500, "Ev1")
    assert rec["cost_usd"] == pytest.approx(0.00045)
    assert "error" not in rec


def test_llm_call_records_failures_and_reraises():
    sink: list[dict] = []
    with pytest.raises(_HTTPError), LLMCall(sink.append, resource="anthropic", event_id="Ev2"):
        raise _HTTPError(429)
    (rec,) = sink
    assert (rec["http_status"], rec["error"]) == (429, "_HTTPError")
    assert "cost_usd" not in rec
