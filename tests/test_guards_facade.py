"""``Guards``: the guards wired in handler order, driven with a fake clock and fake sleeps."""

from __future__ import annotations

import asyncio

import pytest

from slackops.bot.guards import GuardBlocked, GuardConfig, Guards, Pricing, RetryPolicy, State
from slackops.protocol.policies import Backoff


class RateLimited(Exception):
    status_code = 429


class BadRequest(Exception):
    status_code = 400


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleep_sync(seconds)

    def sleep_sync(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def make(config: GuardConfig | None = None, rand: float = 0.5) -> tuple[Guards, list[dict], Clock]:
    sink: list[dict] = []
    clock = Clock()
    guards = Guards(
        config,
        emit=sink.append,
        clock=clock,
        rand=lambda: rand,
        sleep=clock.sleep,
        sleep_sync=clock.sleep_sync,
        pricing={"m": Pricing(input_per_mtok=1.0, output_per_mtok=2.0)},
    )
    return guards, sink, clock


def kinds(sink: list[dict], kind: str) -> list[dict]:
    return [r for r in sink if r["kind"] == kind]


def test_call_llm_success_emits_one_llm_record_with_cost():
    guards, sink, _ = make()

    async def ask(call):
        call.usage(100, 50)
        return "answer"

    assert asyncio.run(guards.call_llm("m", ask, event_id="Ev1", channel="C1")) == "answer"
    (rec,) = kinds(sink, "llm")
    assert (rec["event_id"], rec["channel"], rec["resource"], rec["http_status"]) == ("Ev1", "C1", "m", 200)
    assert rec["cost_usd"] == pytest.approx(0.0002)
    assert kinds(sink, "guard") == []


def test_thundering_herd_opens_the_breaker_and_answers_degraded_until_a_probe_succeeds():
    config = GuardConfig(retry=RetryPolicy(attempts=3, backoff=Backoff(base_s=1.0, cap_s=8.0)))
    guards, sink, clock = make(config)
    calls = 0

    def overloaded(call):
        nonlocal calls
        calls += 1
        raise RateLimited()

    answer = asyncio.run(guards.call_llm("m", overloaded, event_id="Ev1", channel="C1", degraded="busy"))
    assert answer == "busy" and calls == 3
    assert clock.slept == [0.5, 1.0]  # jittered exponential delays (rand fixed at 0.5 here)
    assert guards.breakers.get("m").state is State.OPEN
    # While open nothing reaches the provider: degraded answers, one record each.
    assert guards.call_llm_sync(
        "m", overloaded, event_id="Ev2", channel="C2", degraded=lambda b: b.guard
    ) == ("breaker")
    assert calls == 3
    clock.now += 90.0
    assert guards.call_llm_sync("m", lambda call: "ok", event_id="Ev3", channel="C3") == "ok"
    assert guards.breakers.get("m").state is State.CLOSED
    assert [r["http_status"] for r in kinds(sink, "llm")] == [429, 429, 429, 200]
    actions = [r["action"] for r in kinds(sink, "guard")]
    assert actions == ["open", "reject", "half_open", "close"]


def test_errors_that_are_not_rate_limits_propagate_after_no_retries():
    guards, sink, clock = make()

    def broken(call):
        raise BadRequest()

    with pytest.raises(BadRequest):
        guards.call_llm_sync("m", broken, event_id="Ev1", channel="C1", degraded="busy")
    assert clock.slept == [] and len(kinds(sink, "llm")) == 1


def test_channel_limiter_and_budget_refuse_before_the_provider_is_called():
    guards, sink, _ = make(GuardConfig(llm_calls_per_channel=2, budget_calls=3))
    ok = lambda call: "ok"  # noqa: E731
    assert [guards.call_llm_sync("m", ok, channel="C1", degraded="x") for _ in range(3)] == ["ok", "ok", "x"]
    assert guards.call_llm_sync("m", ok, channel="C2") == "ok"
    with pytest.raises(GuardBlocked) as blocked:
        guards.call_llm_sync("m", ok, channel="C3", event_id="Ev5")
    assert blocked.value.guard == "budget"
    assert len(kinds(sink, "llm")) == 3
    assert [(r["guard"], r["action"]) for r in kinds(sink, "guard")] == [
        ("fan_out", "skip"),
        ("budget", "trip"),
        ("budget", "skip"),
    ]


def test_admit_runs_self_loop_then_edits_then_pairs_and_may_post_is_the_ceiling():
    guards, sink, _ = make(GuardConfig(posts_per_channel=1))
    guards.learn_identity({"user_id": "U0BOT", "bot_id": "B0BOT"})
    mention = {"type": "app_mention", "channel": "C1", "ts": "1.0", "user": "U1"}
    assert guards.admit(mention, event_id="EvA")
    assert not guards.admit({**mention, "type": "message"}, event_id="EvM")
    assert not guards.admit({**mention, "type": "message", "user": "U0BOT", "ts": "2.0"}, event_id="EvS")
    assert guards.may_post("C1") and not guards.may_post("C1")
    assert [r["guard"] for r in kinds(sink, "guard")] == ["mention_pair", "self_loop", "post_ceiling"]


def test_refused_calls_do_not_use_up_the_channel_limit():
    guards, _, _ = make(
        GuardConfig(llm_calls_per_channel=1, breaker_threshold=1, retry=RetryPolicy(attempts=1))
    )

    def overloaded(call):
        raise RateLimited()

    assert guards.call_llm_sync("m", overloaded, channel="C1", degraded="busy") == "busy"  # opens the breaker
    guards.limiter.window = type(guards.limiter.window)(3600.0)  # forget that first call
    for _ in range(3):
        assert guards.call_llm_sync("m", lambda call: "ok", channel="C1", degraded="busy") == "busy"
    assert guards.limiter.window.total("C1", 0.0) == 0  # breaker refusals were not counted as LLM calls
