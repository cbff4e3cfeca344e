"""The connection manager against the simulator over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from slackops.errors import AuthError
from slackops.protocol import Backoff, LivenessPolicy
from slackops.simulator import Simulator, load_scenario
from slackops.transport import ConnectionManager, ManagerConfig
from tests.util import wait_for


class Collect:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def write(self, rec: dict) -> None:
        self.records.append(rec)

    def kinds(self, kind: str) -> list[dict]:
        return [r for r in self.records if r["kind"] == kind]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def config(sim: Simulator, **kw) -> ManagerConfig:
    kw.setdefault("backoff", Backoff(base_s=0.05, cap_s=0.5))
    return ManagerConfig(api_url=sim.api_url, app_token=sim.app_token, **kw)


def test_records_every_kind_and_acks_envelopes():
    async def main():
        sim = Simulator(load_scenario("steady"), time_scale=50.0, seed=3)
        await sim.start()
        rec = Collect()
        mgr = ConnectionManager(
            config(sim, liveness=LivenessPolicy(ping_interval_s=0.2, pong_timeout_s=2.0)), recorder=rec
        )
        try:
            await mgr.start()
            assert mgr.live and mgr.live_count == 1
            for _ in range(5):
                sim.send_event("message")
            await wait_for(lambda: len(rec.kinds("ack")) >= 5, 10, "5 acks")
            await wait_for(lambda: rec.kinds("pong") and rec.kinds("ping"), 10, "pings and pongs")
            assert await sim.drain(5)
        finally:
            await mgr.close()
            await sim.stop()
        card = sim.scorecard()
        assert card.lost == 0 and card.acked_late == 0
        kinds = {r["kind"] for r in rec.records}
        assert {"api_call", "connect", "hello", "envelope", "ack", "ping", "pong", "close"} <= kinds
        assert all(a["ok"] and a["ack_ms"] < 3000 for a in rec.kinds("ack"))
        assert any(p.get("rtt_ms") is not None for p in rec.kinds("pong"))
        # Never a ticket in a record: the connect record keeps the host only.
        assert all("ticket" not in str(r) for r in rec.records)
        assert rec.kinds("close")[-1]["by"] == "client"

    run(main())


@pytest.mark.parametrize("make_before_break", [True, False])
def test_refresh_gap(make_before_break):
    async def main():
        sim = Simulator(load_scenario("steady"), time_scale=50.0, seed=5)
        await sim.start()
        rec = Collect()
        mgr = ConnectionManager(config(sim, make_before_break=make_before_break), recorder=rec)
        try:
            await mgr.start()
            sim.refresh()
            await wait_for(lambda: rec.kinds("reconnect"), 10, "a reconnect")
        finally:
            await mgr.close()
            await sim.stop()
        (reconnect,) = rec.kinds("reconnect")
        assert reconnect["initiator"] == "server"
        assert reconnect["cause"] in ("warning", "refresh_requested")
        if make_before_break:
            assert reconnect["gap_ms"] == 0.0
        else:
            assert reconnect["gap_ms"] > 0.0

    run(main())


def test_hard_drop_reconnects_with_a_recorded_gap():
    async def main():
        sim = Simulator(load_scenario("steady"), time_scale=50.0, seed=7)
        await sim.start()
        rec = Collect()
        mgr = ConnectionManager(config(sim), recorder=rec)
        try:
            await mgr.start()
            (first,) = mgr.sockets
            sim.drop()
            await wait_for(lambda: rec.kinds("reconnect"), 10, "a reconnect")
            await wait_for(lambda: mgr.live, 10, "live again")
            assert mgr.sockets[0] is not first
        finally:
            await mgr.close()
            await sim.stop()
        close = next(c for c in rec.kinds("close") if c["by"] == "network")
        assert close["clean"] is False
        (reconnect,) = rec.kinds("reconnect")
        assert reconnect["cause"] == "dropped" and reconnect["gap_ms"] > 0

    run(main())


def test_half_open_socket_is_replaced_by_liveness():
    async def main():
        sim = Simulator(load_scenario("steady"), time_scale=50.0, seed=9)
        await sim.start()
        rec = Collect()
        policy = LivenessPolicy(
            ping_interval_s=0.1, pong_timeout_s=0.3, server_ping_timeout_s=60, unhealthy_after_s=0.2
        )
        mgr = ConnectionManager(config(sim, liveness=policy), recorder=rec)
        try:
            await mgr.start()
            sim.half_open()
            await wait_for(lambda: rec.kinds("reconnect"), 10, "a reconnect after the pong timeout")
        finally:
            await mgr.close()
            await sim.stop()
        (reconnect,) = rec.kinds("reconnect")
        assert reconnect["initiator"] == "ping_timeout"

    run(main())


def test_ghost_registrations_are_recorded_as_drift():
    async def main():
        sim = Simulator(load_scenario("steady"), time_scale=50.0, seed=11)
        await sim.start()
        sim.add_ghosts(2)
        rec = Collect()
        mgr = ConnectionManager(config(sim), recorder=rec)
        try:
            await mgr.start()
        finally:
            await mgr.close()
            await sim.stop()
        (drift,) = rec.kinds("drift")
        assert drift["num_connections"] == 3 and drift["own_connections"] == 1

    run(main())


@pytest.mark.parametrize(
    ("token_kind", "error"),
    [("bot", "not_allowed_token_type"), ("bogus", "invalid_auth"), ("noscope", "missing_scope")],
)
def test_fatal_token_errors_stop_without_retrying(token_kind, error):
    async def main():
        sim = Simulator(load_scenario("steady"), time_scale=50.0, seed=13)
        await sim.start()
        token = {
            "bot": sim.bot_token,
            "bogus": "xapp-1-A0-0-nothing",
            "noscope": sim.make_app_token(scopes=()),
        }[token_kind]
        rec = Collect()
        mgr = ConnectionManager(ManagerConfig(api_url=sim.api_url, app_token=token), recorder=rec)
        try:
            with pytest.raises(AuthError) as err:
                await mgr.start()
        finally:
            await sim.stop()
        assert err.value.error == error and err.value.hint
        assert len(rec.kinds("api_call")) == 1  # no retry loop

    run(main())


def test_rate_limited_open_honours_retry_after():
    async def main():
        sim = Simulator(load_scenario("steady"), time_scale=50.0, seed=17)
        await sim.start()
        sim.ratelimit_open(retry_after=1, times=1)  # HTTP Retry-After is whole seconds
        rec = Collect()
        waits: list[float] = []
        mgr = ConnectionManager(
            config(sim, backoff=Backoff(base_s=0.01, cap_s=0.02)), recorder=rec, rand=lambda: 0.0
        )
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await mgr.start()
            waits.append(loop.time() - t0)
        finally:
            await mgr.close()
            await sim.stop()
        calls = rec.kinds("api_call")
        assert [c["ok"] for c in calls] == [False, True]
        assert calls[0]["http_status"] == 429 and calls[0]["retry_after"] == 1.0
        assert waits[0] >= 1.0  # never earlier than Slack asked

    run(main())


def test_unreachable_api_gives_up_at_start_with_a_hint():
    async def main():
        import socket

        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        rec = Collect()
        cfg = ManagerConfig(
            api_url=f"http://127.0.0.1:{port}/api/",
            app_token="xapp-1-A1-1-x",
            backoff=Backoff(base_s=0.01, cap_s=0.02),
            start_attempts=3,
        )
        mgr = ConnectionManager(cfg, recorder=rec)
        from slackops.errors import NetworkError

        with pytest.raises(NetworkError) as err:
            await mgr.start()
        assert "3 attempts" in err.value.message and err.value.hint
        assert len(rec.kinds("api_call")) == 3

    run(main())
