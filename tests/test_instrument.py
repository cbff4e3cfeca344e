"""slackops.instrument() on real slack-sdk clients and a real Bolt app, talking to the simulator."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web import WebClient
from slack_sdk.web.async_client import AsyncWebClient

import slackops
from slackops.errors import UsageError
from slackops.simulator import Simulator, SimulatorThread, load_scenario
from slackops.store import iter_records
from tests.util import wait_for, wait_until

QUIET = logging.getLogger("test-instrument")
QUIET.setLevel(logging.CRITICAL)


class Collect:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def write(self, rec: dict) -> None:
        self.records.append(rec)

    def kinds(self, kind: str) -> list[dict]:
        return [r for r in self.records if r["kind"] == kind]


def scenario(**server):
    sc = load_scenario("steady")
    return dataclasses.replace(sc, server=dataclasses.replace(sc.server, **server)) if server else sc


ACK_NESTING_SLACK_MS = 4 * 5.0  # 4 x sys.getswitchinterval()


def server_ack_ms(sim) -> dict[str, float]:
    return {a.envelope_id: a.ack_ms for e in sim.ledger.entries.values() for a in e.attempts if a.ack_ms}


def check_acks(sink: Collect, sim, count: int) -> None:
    envelopes = {r["envelope_id"]: r.get("event_id") for r in sink.kinds("envelope")}
    acks = sink.kinds("ack")
    assert len(acks) >= count and {a["envelope_id"] for a in acks} <= set(envelopes)
    server = server_ack_ms(sim)
    for ack in acks:
        assert ack["ok"] and ack["ack_ms"] is not None
        assert ack.get("event_id") == envelopes[ack["envelope_id"]]
        # Receipt -> ack on the client nests inside sent -> ack read on the server (same host clock), up to
        # thread scheduling: the client stamps its ack after send() returns, and the simulator's thread may read
        # the frame first. Python hands the GIL over every 5 ms, so allow a few switch intervals per ack.
        assert 0 <= ack["ack_ms"] <= server[ack["envelope_id"]] + ACK_NESTING_SLACK_MS


def test_builtin_socket_mode_client():
    from slack_sdk.socket_mode.builtin import SocketModeClient

    with SimulatorThread(scenario(), time_scale=20.0, seed=21) as sim:
        sink = Collect()
        client = SocketModeClient(
            app_token=sim.app_token, web_client=WebClient(base_url=sim.api_url), logger=QUIET, ping_interval=1
        )

        def ack(client: SocketModeClient, req: SocketModeRequest) -> None:
            client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

        client.socket_mode_request_listeners.append(ack)
        inst = slackops.instrument(client, recorder=sink)
        try:
            client.connect()
            wait_until(lambda: sink.kinds("hello"), 10, "hello")
            for kind in ("message", "app_mention", "block_actions"):
                sim.send_event(kind)
            wait_until(lambda: len(sink.kinds("ack")) >= 4, 10, "acks")  # the mention comes with its message
            sim.refresh()
            wait_until(lambda: sink.kinds("reconnect"), 10, "a reconnect after the refresh")
            sim.send_event("message")
            wait_until(lambda: len(sink.kinds("ack")) >= 5, 10, "an ack on the new socket")
        finally:
            client.close()
            inst.close()
        check_acks(sink, sim, 5)
    kinds = {r["kind"] for r in sink.records}
    assert {"api_call", "connect", "hello", "envelope", "ack", "disconnect", "reconnect", "close"} <= kinds
    assert all(r["source"] == "bot" for r in sink.records)
    (call, *_) = sink.kinds("api_call")
    assert call["method"] == "apps.connections.open" and call["ok"] and call["latency_ms"] > 0
    (reconnect, *_) = sink.kinds("reconnect")
    # slack-sdk opens the new socket before closing the old one on a disconnect frame: no gap.
    assert reconnect["initiator"] == "server" and reconnect["cause"] == "warning" and reconnect["gap_ms"] == 0
    first, second = (r["conn"] for r in sink.kinds("hello"))
    assert first != second
    # Both sockets' closes are recorded once: the old one when slack-sdk replaced it, the new one at close().
    assert sorted(c["conn"] for c in sink.kinds("close") if c["by"] == "client") == sorted([first, second])
    assert "ticket" not in str(sink.records)
    # close() removed every hook.
    assert "send_message" not in client.__dict__ and "enqueue_message" not in client.__dict__


def test_aiohttp_socket_mode_client():
    from slack_sdk.socket_mode.aiohttp import SocketModeClient

    async def main():
        sim = Simulator(scenario(), time_scale=20.0, seed=22)
        await sim.start()
        sink = Collect()
        client = SocketModeClient(
            app_token=sim.app_token, web_client=AsyncWebClient(base_url=sim.api_url), logger=QUIET
        )

        async def ack(client: SocketModeClient, req: SocketModeRequest) -> None:
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

        client.socket_mode_request_listeners.append(ack)
        inst = slackops.instrument(client, recorder=sink)
        try:
            await client.connect()
            await wait_for(lambda: sink.kinds("hello"), 10, "hello")
            for _ in range(5):
                sim.send_event("message")
            await wait_for(lambda: len(sink.kinds("ack")) >= 5, 10, "acks")
            sim.refresh()
            await wait_for(lambda: sink.kinds("reconnect"), 10, "a reconnect after the refresh")
        finally:
            await client.close()
            inst.close()
            await sim.stop()
        check_acks(sink, sim, 5)
        assert sink.kinds("drift") == []
        # The asyncio client closes its old socket before opening the new one: break-before-make, a real gap.
        (reconnect,) = sink.kinds("reconnect")
        assert (
            reconnect["initiator"] == "server" and reconnect["cause"] == "warning" and reconnect["gap_ms"] > 0
        )
        first_conn = sink.kinds("hello")[0]["conn"]
        assert any(c["conn"] == first_conn and c["by"] == "client" for c in sink.kinds("close"))
        assert sink.kinds("close")[-1]["by"] == "client"
        summary = inst.summary()
        assert summary["acks"]["ok"] == 5 and summary["acks"]["p99"] is not None

    asyncio.run(asyncio.wait_for(main(), 60))


def test_drift_from_ghost_registrations():
    from slack_sdk.socket_mode.aiohttp import SocketModeClient

    async def main():
        sim = Simulator(scenario(), time_scale=20.0, seed=24)
        await sim.start()
        sim.add_ghosts(2)  # a crashed replica's sockets Slack still routes to
        sink = Collect()
        client = SocketModeClient(
            app_token=sim.app_token, web_client=AsyncWebClient(base_url=sim.api_url), logger=QUIET
        )
        inst = slackops.instrument(client, recorder=sink)
        try:
            await client.connect()
            await wait_for(lambda: sink.kinds("hello"), 10, "hello")
        finally:
            await client.close()
            inst.close()
            await sim.stop()
        (drift,) = sink.kinds("drift")  # Slack counts 3 connections; the client holds 1
        assert drift["num_connections"] == 3 and drift["own_connections"] == 1

    asyncio.run(asyncio.wait_for(main(), 60))


def test_bolt_socket_mode_handler_records_to_sqlite(tmp_path):
    from slack_bolt import App
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    db = tmp_path / "bot.db"
    with SimulatorThread(scenario(), time_scale=20.0, seed=23) as sim:
        app = App(client=WebClient(token=sim.bot_token, base_url=sim.api_url), logger=QUIET)
        handled: list[str] = []

        @app.event("message")
        def on_message(event, say):
            handled.append(event["ts"])

        handler = SocketModeHandler(app, sim.app_token, logger=QUIET)
        inst = slackops.instrument(handler, db=str(db))
        try:
            handler.connect()
            for _ in range(3):
                sim.send_event("message")
            wait_until(lambda: len(handled) >= 3, 15, "Bolt handled the messages")
            wait_until(lambda: inst.stats.acks_ok >= 3, 10, "acks recorded")
        finally:
            handler.close()
            inst.close()  # flushes and closes the SQLite recording
        server = server_ack_ms(sim)
    recs = list(iter_records(db))
    acks = [r for r in recs if r["kind"] == "ack"]
    assert len(acks) == 3 and all(r["source"] == "bot" for r in recs)
    assert all(0 <= a["ack_ms"] <= server[a["envelope_id"]] + 0.01 for a in acks)
    assert {r["kind"] for r in recs} >= {"api_call", "connect", "hello", "envelope", "ack", "close"}
    assert not any("text" in r for r in recs if r["kind"] == "envelope")


def test_instrument_rejects_what_it_cannot_hook():
    with pytest.raises(UsageError) as err:
        slackops.instrument(object(), recorder=Collect())
    assert "SocketModeClient" in err.value.message


def test_import_slackops_stays_light():
    import json
    import subprocess
    import sys

    code = (
        "import json, sys, slackops; print(json.dumps([m for m in sys.modules if m.startswith('slackops')]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["slackops"]
    assert callable(slackops.instrument)
