"""slackops watch against the simulator over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

import pytest

from slackops.errors import AuthError, UsageError
from slackops.protocol import Backoff, LivenessPolicy
from slackops.simulator import Simulator, load_scenario
from slackops.watch import EVENT_STEALING, Mode, Target, WatchConfig, Watcher, resolve_target
from tests.util import wait_for

FAST_LIVENESS = LivenessPolicy(ping_interval_s=0.1, pong_timeout_s=2.0)
FAST_BACKOFF = Backoff(base_s=0.05, cap_s=0.2)


class Collect:
    """A record sink that keeps everything in memory (and can run a hook inline, like the manager does)."""

    def __init__(self, hook=None) -> None:
        self.records: list[dict] = []
        self.hook = hook

    def write(self, rec: dict) -> None:
        self.records.append(rec)
        if self.hook is not None:
            self.hook(rec)

    def kinds(self, kind: str) -> list[dict]:
        return [r for r in self.records if r["kind"] == kind]


def run(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def scenario(name: str = "steady", **server):
    sc = load_scenario(name)
    return dataclasses.replace(sc, server=dataclasses.replace(sc.server, **server)) if server else sc


def loopback(sim: Simulator, token: str | None = None) -> Target:
    return Target(embedded=False, api_url=sim.api_url, app_token=token or sim.app_token, production=False)


def watcher_for(sim: Simulator, sink: Collect, **kw) -> Watcher:
    kw.setdefault("liveness", FAST_LIVENESS)
    kw.setdefault("backoff", FAST_BACKOFF)
    return Watcher(WatchConfig(loopback(sim, kw.pop("token", None)), **kw), writer=sink)


async def start(watcher: Watcher) -> asyncio.Task:
    task = asyncio.ensure_future(watcher.run())
    await wait_for(lambda: (watcher.manager is not None and watcher.manager.live) or task.done(), 10, "live")
    if task.done():
        task.result()
    return task


def test_records_every_kind():
    async def main():
        sim = Simulator(scenario(), time_scale=20.0, seed=1)
        await sim.start()
        sim.add_ghosts(2)
        sink = Collect()
        watcher = watcher_for(sim, sink, connections=2)
        seen: list[str] = []
        watcher.add_listener(lambda rec: seen.append(rec["kind"]))
        try:
            task = await start(watcher)
            await wait_for(lambda: watcher.manager.live_count == 2, 10, "two sockets")
            for kind in ("message", "app_mention", "block_actions", "slash_command"):
                sim.send_event(kind)
            await wait_for(lambda: len(sink.kinds("ack")) >= 4, 10, "acks")
            sim.refresh()
            await wait_for(lambda: len(sink.kinds("reconnect")) >= 2, 10, "reconnects after the refresh")
            await wait_for(lambda: sink.kinds("pong"), 10, "a pong")
            await wait_for(lambda: len(sink.kinds("close")) >= 2, 10, "the refreshed sockets closed")
            sim.drop([c.id for c in sim.connections() if c.state == "live"][-1])
            await wait_for(lambda: any(r["cause"] == "dropped" for r in sink.kinds("reconnect")), 10, "drop")
            await wait_for(lambda: watcher.manager.live_count == 2, 10, "two sockets again")
            watcher.request_stop("test")
            summary = await task
        finally:
            await sim.stop()
        kinds = {r["kind"] for r in sink.records}
        expected = {"api_call", "connect", "hello", "drift", "ping", "pong", "envelope", "ack"}
        assert expected | {"disconnect", "close", "reconnect"} <= kinds
        assert seen and set(seen) <= kinds  # listeners saw the same stream
        assert all(r["source"] == "probe" for r in sink.records)
        hello = sink.kinds("hello")[0]
        assert hello["host"] == "applink-sim-1" and hello["approximate_connection_time"] > 0
        assert any(r["direction"] == "received" for r in sink.kinds("ping"))  # the server's pings
        assert any(p.get("rtt_ms") is not None for p in sink.kinds("pong"))  # our ping round trips
        refresh = [r for r in sink.kinds("reconnect") if r["cause"] in ("warning", "refresh_requested")]
        assert refresh and all(r["initiator"] == "server" and r["gap_ms"] == 0.0 for r in refresh)
        dropped = next(r for r in sink.kinds("reconnect") if r["cause"] == "dropped")
        assert dropped["gap_ms"] > 0
        assert any(c["by"] == "network" and c["clean"] is False for c in sink.kinds("close"))
        assert any(c["by"] == "client" and c["clean"] for c in sink.kinds("close"))
        assert all(a["ok"] for a in sink.kinds("ack"))
        assert "text" not in str(sink.kinds("envelope"))  # no message text unless --record-text
        assert summary["stopped_by"] == "test" and summary["envelopes"] == len(sink.kinds("envelope"))
        assert summary["reconnects"]["total"] == len(sink.kinds("reconnect"))
        assert summary["drift"]["total"] >= 1

    run(main())


def test_drift_detected_with_ghost_registrations():
    async def main():
        sim = Simulator(scenario(), time_scale=20.0, seed=2)
        await sim.start()
        sim.add_ghosts(3)
        sink = Collect()
        watcher = watcher_for(sim, sink)
        try:
            task = await start(watcher)
            watcher.request_stop()
            summary = await task
        finally:
            await sim.stop()
        (drift,) = sink.kinds("drift")
        assert drift["num_connections"] == 4 and drift["own_connections"] == 1
        assert summary["drift"]["last"]["num_connections"] == 4

    run(main())


def test_ack_latency_agrees_with_the_simulator():
    """The probe's ack_ms (frame read -> ack written) and the simulator's (frame queued -> ack read) nest.

    Both sides run in this process on the same monotonic clock, so for every envelope the probe's interval lies
    inside the simulator's: probe <= sim. The difference is the loopback transit both ways plus event-loop
    scheduling between the two ends; TOLERANCE_MS bounds it for the median (a busy 2-core CI machine can stall
    one frame for longer, hence the median, plus a looser bound on every envelope).
    """
    TOLERANCE_MS = 5.0
    WORST_MS = 100.0

    async def main():
        sim = Simulator(scenario(), time_scale=20.0, seed=3)
        await sim.start()
        sink = Collect()
        watcher = watcher_for(sim, sink)
        try:
            task = await start(watcher)
            for _ in range(30):
                sim.send_event("message")
                await asyncio.sleep(0.01)  # spread them: one envelope at a time on the wire
            await wait_for(lambda: len(sink.kinds("ack")) >= 30, 10, "30 acks")
            watcher.request_stop()
            await task
        finally:
            await sim.stop()
        server = {
            a.envelope_id: a.ack_ms
            for e in sim.ledger.entries.values()
            for a in e.attempts
            if a.ack_ms is not None
        }
        diffs = []
        for ack in sink.kinds("ack"):
            sim_ms = server[ack["envelope_id"]]
            assert ack["ack_ms"] <= sim_ms + 0.01, (ack["ack_ms"], sim_ms)  # rounding to 3 decimals
            diffs.append(sim_ms - ack["ack_ms"])
        diffs.sort()
        assert len(diffs) == 30
        assert diffs[len(diffs) // 2] <= TOLERANCE_MS, diffs
        assert diffs[-1] <= WORST_MS, diffs

    run(main())


def refresh_run(make_before_break: bool, refreshes: int = 3) -> tuple[list[dict], object]:
    """Refresh the socket ``refreshes`` times with events arriving while the replacement is being opened."""

    async def main():
        # A 1 s warning and a 1 s grace (time scale 10): longer than the probe's 0.5 s drain, so with
        # make-before-break the old socket is closed by us, not dropped by the server. A 0.5 s ack deadline keeps
        # the retries of anything missed inside the test's time.
        sim = Simulator(scenario(ack_deadline=0.5), time_scale=10.0, seed=4)
        await sim.start()

        def inject(rec: dict) -> None:
            # Runs inline when the probe has its new WSS URL and is about to connect: events arrive *now*.
            if rec["kind"] == "connect" and sink.kinds("hello"):
                sim.send_event("message")
                sim.send_event("block_actions")

        sink = Collect(hook=inject)
        watcher = watcher_for(sim, sink, make_before_break=make_before_break)
        try:
            task = await start(watcher)
            sim.start_traffic()  # steady background traffic as well
            for n in range(1, refreshes + 1):
                sim.refresh()
                await wait_for(lambda n=n: len(sink.kinds("reconnect")) >= n, 10, f"reconnect {n}")
                await wait_for(lambda n=n: len(sink.kinds("close")) >= n, 10, f"old socket {n} closed")
                await wait_for(lambda: watcher.manager.live_count == 1, 10, "one live socket")
            await sim.stop_traffic()
            assert await sim.drain(10)
            watcher.request_stop()
            await task
        finally:
            await sim.stop()
        return sink.kinds("reconnect"), sim.scorecard()

    return run(main())


def test_make_before_break_loses_nothing_across_refreshes():
    reconnects, card = refresh_run(make_before_break=True)
    assert len(reconnects) == 3 and all(r["gap_ms"] == 0.0 for r in reconnects)
    assert card.events >= 6  # the injected ones at least
    assert card.lost == 0 and card.retries == 0 and card.acked_late == 0


def test_break_before_make_loses_or_delays_events():
    reconnects, card = refresh_run(make_before_break=False)
    assert len(reconnects) == 3 and all(r["gap_ms"] > 0 for r in reconnects)
    # Events that arrived while no socket was registered: interactive ones fail outright, events_api ones come
    # back as retries after the ack deadline.
    assert card.lost + card.retries > 0
    assert card.lost_by_type.get("interactive", 0) >= 1


def test_observe_mode_never_acks():
    async def main():
        sim = Simulator(scenario(ack_deadline=0.3), time_scale=20.0, seed=5)
        await sim.start()
        sink = Collect()
        watcher = watcher_for(sim, sink, mode=Mode.OBSERVE)
        try:
            task = await start(watcher)
            sim.send_event("message")
            # Unacked, Slack re-delivers after the deadline: watch sees the retry.
            await wait_for(lambda: any(r.get("retry_attempt") for r in sink.kinds("envelope")), 10, "a retry")
            watcher.request_stop()
            summary = await task
        finally:
            await sim.stop()
        assert sink.kinds("ack") == []
        assert summary["acks"]["unacked"] >= 2 and summary["mode"] == "observe"

    run(main())


@pytest.mark.parametrize(
    ("case", "error"),
    [("bogus", "invalid_auth"), ("noscope", "missing_scope"), ("link_disabled", "link_disabled")],
)
def test_bad_token_cases_from_the_server(case, error):
    async def main():
        sim = Simulator(scenario(), time_scale=20.0, seed=6)
        await sim.start()
        token = {"bogus": "xapp-1-A0-0-nothing", "noscope": sim.make_app_token(scopes=())}.get(case)
        if case == "link_disabled":
            sim.disable_link()
        sink = Collect()
        watcher = watcher_for(sim, sink, token=token)
        try:
            with pytest.raises(AuthError) as err:
                await watcher.run()
        finally:
            await sim.stop()
        assert err.value.error == error and err.value.hint
        assert len(sink.kinds("api_call")) == 1  # fatal: never retried
        return err.value

    exc = run(main())
    hints = {
        "invalid_auth": "does not recognise",
        "missing_scope": "connections:write",
        "link_disabled": "Settings > Socket Mode",
    }
    assert hints[error] in exc.hint


@pytest.mark.parametrize(("token", "what"), [("xoxb-1-2-abc", "bot token"), ("xoxp-1-2-abc", "user token")])
def test_wrong_token_type_is_named_before_connecting(token, what):
    with pytest.raises(AuthError) as err:
        resolve_target(token)
    assert what in err.value.message and "xapp-" in err.value.hint


def test_production_token_requires_ack_or_observe():
    token = "xapp-1-A1-1-abc"
    with pytest.raises(UsageError) as err:
        resolve_target(token)
    assert err.value.hint == EVENT_STEALING and "dedicated development app" in err.value.hint
    with pytest.raises(UsageError):
        resolve_target(token, ack=True, observe=True)
    target, mode = resolve_target(token, observe=True)
    assert target.production and target.api_url == "https://slack.com/api/" and mode is Mode.OBSERVE
    # A simulator on loopback is not production: no flag needed, and watch acks.
    target, mode = resolve_target(token, "http://127.0.0.1:8080/api/")
    assert not target.production and mode is Mode.ACK
    target, mode = resolve_target(None)
    assert target.embedded and mode is Mode.ACK


def test_embedded_default_and_stop_from_another_thread():
    async def main():
        target, mode = resolve_target(None)
        sink = Collect()
        watcher = Watcher(WatchConfig(target, mode=mode, liveness=FAST_LIVENESS), writer=sink)
        task = asyncio.ensure_future(watcher.run())
        await wait_for(lambda: len(sink.kinds("ack")) >= 2 or task.done(), 15, "acks from the simulator")
        threading.Thread(target=watcher.request_stop, args=("thread",)).start()
        return await task, sink

    summary, sink = run(main())
    assert summary["target"]["embedded"] and summary["target"]["scenario"] == "refresh-churn"
    assert summary["target"]["time_scale"] == 1200.0
    assert summary["stopped_by"] == "thread" and summary["simulator"]["lost"] == 0
    # Stopping closed our sockets with close frames, and those closes were recorded.
    assert sink.kinds("close") and sink.kinds("close")[-1]["by"] == "client"


def test_duration_stops_the_run():
    async def main():
        sim = Simulator(scenario(), time_scale=20.0, seed=7)
        await sim.start()
        try:
            watcher = watcher_for(sim, Collect(), duration_s=0.5)
            return await watcher.run()
        finally:
            await sim.stop()

    summary = run(main())
    assert summary["stopped_by"] == "duration" and summary["connections"][0]["state"] == "closed"


def test_a_slow_listener_never_delays_an_ack():
    """Listeners run after the ack is written: a 20 ms listener (a busy UI) leaves ack latency alone."""

    async def main():
        sim = Simulator(scenario(), time_scale=20.0, seed=8)
        await sim.start()
        sink = Collect()
        watcher = watcher_for(sim, sink)
        watcher.add_listener(lambda rec: time.sleep(0.02) if rec["kind"] == "envelope" else None)
        try:
            task = await start(watcher)
            for _ in range(10):
                sim.send_event("message")
                await asyncio.sleep(0.05)
            await wait_for(lambda: len(sink.kinds("ack")) >= 10, 10, "10 acks")
            watcher.request_stop()
            await task
        finally:
            await sim.stop()
        assert max(a["ack_ms"] for a in sink.kinds("ack")) < 10.0

    run(main())
