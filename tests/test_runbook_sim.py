"""Runbook checks evaluated against real simulator recordings: a real client, a real server, real timing.

Each test drives the simulator the way its scenario does (healthy traffic; a reconnect storm with a throttled
``apps.connections.open``; a consumer that processes before acking), records the simulator's own records, and
checks that ``slackops runbook SLUG --db`` marks the matching checks — and that the healthy run marks none.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from slackops import runbooks, simulator
from slackops.diagnose import diagnose
from slackops.findings import SLUGS
from slackops.records import dumps
from tests.util import wait_for

BOOKS = {b.slug: b for b in runbooks.load_all(Path(__file__).resolve().parents[1] / "runbooks")}
#: Slack's ack deadline is real time in the simulator (clients ack in real time); a handler this slow misses it.
SLOW_HANDLER_S = 3.5


class Recorder:
    """The simulator's recorder interface, keeping records in memory."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.lock = threading.Lock()

    def write(self, rec: dict) -> None:
        with self.lock:
            self.records.append(rec)

    def save(self, path: Path) -> Path:
        with self.lock, path.open("wb") as fh:
            for rec in sorted(self.records, key=lambda r: r["t"]):
                fh.write(dumps(rec) + b"\n")
        return path


async def record(mode: str, path: Path) -> Path:
    rec = Recorder()
    # time_scale=60: Slack's +1 min / +5 min retries come after 1 s / 5 s, so the run drains quickly.
    sim = simulator.Simulator(simulator.load_scenario("steady"), seed=7, recorder=rec, time_scale=60)
    await sim.start()
    got: list = []
    client = SocketModeClient(
        app_token=sim.app_token,
        web_client=AsyncWebClient(token=sim.bot_token, base_url=sim.api_url),
        ping_interval=1,
    )

    async def on_request(c, req):
        got.append(req)
        if mode == "slow-consumer" and req.retry_attempt in (None, 0) and len(got) % 4 == 0:
            await asyncio.sleep(SLOW_HANDLER_S)  # the handler's work, done before the ack: the bug under test
        await c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    client.socket_mode_request_listeners.append(on_request)
    try:
        await client.connect()
        await wait_for(lambda: len(sim.registry.live()) == 1, what="first socket")
        if mode == "disconnect-storm":
            sim.ratelimit_open(retry_after=1, times=1)
            for _ in range(4):
                opened = sim.ledger.connections_opened
                sim.refresh()
                await wait_for(
                    lambda n=opened: sim.ledger.connections_opened > n, timeout=10, what="reconnect"
                )
                sim.send_event("app_mention")
        else:
            for i in range(24 if mode == "steady" else 12):
                sim.send_event("app_mention" if i % 2 else "message")
        await wait_for(
            lambda: len(got) >= (4 if mode == "disconnect-storm" else 12), timeout=10, what="events"
        )
        assert await sim.drain(15)
    finally:
        await client.close()
        await sim.stop()
    return rec.save(path)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    where = tmp_path_factory.mktemp("sim")
    made = {}

    def get(mode: str) -> Path:
        if mode not in made:
            made[mode] = asyncio.run(record(mode, where / f"{mode}.jsonl"))
        return made[mode]

    return get


def applies(slug: str, path: Path) -> dict[str, runbooks.CheckResult]:
    ev = runbooks.evaluate(BOOKS[slug], [path], diagnose_fn=diagnose)
    return {r.code: r for r in ev.applies}


def test_a_healthy_simulator_run_marks_no_check(recordings):
    path = recordings("steady")
    for slug in SLUGS:
        assert applies(slug, path) == {}, slug


def test_a_reconnect_storm_marks_disconnect_storm(recordings):
    marked = applies("disconnect-storm", recordings("disconnect-storm"))
    assert "open-ratelimited" in marked
    # The simulator's recording shows the loop as new sessions (no reconnect records): still a storm.
    assert "reconnect-burst" in marked
    assert marked["open-ratelimited"].findings[0]["evidence"]["count"] >= 1


def test_a_slow_consumer_marks_ack_timeout(recordings):
    marked = applies("ack-timeout", recordings("slow-consumer"))
    assert "timeout-retries" in marked
    assert marked["timeout-retries"].findings[0]["evidence"]["count"] >= 1
