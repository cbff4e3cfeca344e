"""The reference bot against the simulator over real sockets, beside a naive slack-sdk bot in the same scenarios.

Acceptance (issue 8): across refresh-churn, disconnect-storm, half-open, ghost-connections and slow-consumer the
reference bot processes every event that reached it exactly once, with ack p99 far under 3 s, while a bot built
on slack-sdk's SocketModeClient that processes *before* acking loses or duplicates events. Both bots run the same
handler logic (the README example: reply in thread after a slow simulated LLM call).

"Reached it": an interactive payload that Slack routes to a ghost or half-open registration is lost whatever the
bot does (Slack never retries those); such events are counted as ``unreachable`` and reported, not blamed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

import examples.echo_llm_bot as example
from slackops.bot.app import Bot, BotConfig
from slackops.protocol import LivenessPolicy
from slackops.simulator import Simulator, load_scenario, parse_scenario
from tests.util import wait_for

ACK_DEADLINE_MS = 3000.0  # Slack retries (events) or fails (interactive) an envelope not acked in 3 s

ROOT = Path(__file__).resolve().parents[1]

#: Simulated model latency for both bots: often past Slack's 3 s deadline, as real LLM calls are.
THINK_S = (0.2, 4.0)
#: The transport judges liveness fast in tests (production defaults: 10 s pings, 15 s pong timeout).
FAST_LIVENESS = LivenessPolicy(
    ping_interval_s=0.5, pong_timeout_s=1.0, server_ping_timeout_s=5.0, unhealthy_after_s=0.5
)
REPLYABLE = {"message", "app_mention", "block_actions", "slash_command"}

#: scenario -> (time scale, seconds of traffic). Scales squeeze each scenario's chaos into a few seconds.
SCENARIOS = {
    "refresh-churn": (3000.0, 8.0),
    "disconnect-storm": (5.0, 10.0),
    "half-open": (10.0, 9.0),
    "ghost-connections": (5.0, 9.0),
    "slow-consumer": (2.0, 6.0),
}


def expected(ledger: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events a correct bot must answer exactly once: not bot echoes, not the message twin of an @-mention."""
    mentions = {(e["channel"], e["ts"]) for e in ledger if e["kind"] == "app_mention"}
    return [
        e
        for e in ledger
        if e["kind"] in REPLYABLE
        and e["origin"] != "echo"
        and not (e["kind"] == "message" and (e["channel"], e["ts"]) in mentions)
    ]


@dataclass
class Outcome:
    scenario: str
    bot: str
    events: int
    reached: int
    unreachable: int
    bot_lost: int
    unanswered: int
    processed_twice: int
    acked_late: int
    ack_p99_ms: float | None
    #: ledger lines of the events behind a non-zero count, to read when an assertion fails
    problems: list[dict[str, Any]]
    #: the reference bot's own view, from its Prometheus registry (None for the naive bot)
    reconnects: float | None = None
    dedup_hits: float | None = None

    @classmethod
    def of(cls, scenario: str, bot: str, sim: Simulator) -> Outcome:
        card = sim.scorecard()
        want = expected(card.ledger)
        lost = [e for e in card.ledger if e["status"] == "lost"]
        unreachable = [e for e in lost if all(a["blackhole"] for a in e["attempts"])]
        reached = [e for e in want if any(not a["blackhole"] for a in e["attempts"])]
        unanswered = [e for e in reached if e["status"] == "acked" and not e["replies"]]
        twice = [e for e in card.ledger if len(e["replies"]) >= 2]
        return cls(
            scenario=scenario,
            bot=bot,
            events=card.events,
            reached=len(reached),
            unreachable=len(unreachable),
            bot_lost=len(lost) - len(unreachable),
            unanswered=len(unanswered),
            processed_twice=card.processed_twice,
            acked_late=card.acked_late,
            ack_p99_ms=card.ack_p99_ms,
            problems=[e for e in lost if e not in unreachable] + unanswered + twice,
        )


# -- the naive bot: slack-sdk's asyncio SocketModeClient, processing before acking -------------------------


class NaiveBot:
    """What many tutorials write: do the work in the listener, then ack. No dedup, no queue."""

    def __init__(self, sim: Simulator) -> None:
        self.web = AsyncWebClient(token=sim.bot_token, base_url=sim.api_url)
        self.client = SocketModeClient(app_token=sim.app_token, web_client=self.web, ping_interval=1)
        self.client.socket_mode_request_listeners.append(self.on_request)
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.http = aiohttp.ClientSession()
        await self.client.connect()

    async def stop(self) -> None:
        await self.client.close()
        if self.http is not None:
            await self.http.close()
            self.http = None

    async def on_request(self, client: SocketModeClient, req: SocketModeRequest) -> None:
        try:
            await self.process(req)
        finally:
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    async def process(self, req: SocketModeRequest) -> None:
        payload = req.payload
        if req.type == "events_api":
            ev = payload.get("event", {})
            if ev.get("bot_id") or ev.get("subtype") or ev.get("type") not in {"message", "app_mention"}:
                return
            if ev.get("type") == "message" and "<@U0SIMBOT01>" in ev.get("text", ""):
                return
            await asyncio.sleep(random.uniform(*THINK_S))
            await self.web.chat_postMessage(channel=ev["channel"], thread_ts=ev["ts"], text="answer")
        elif req.type == "slash_commands":
            await asyncio.sleep(random.uniform(*THINK_S))
            assert self.http is not None
            async with self.http.post(payload["response_url"], json={"text": "answer"}) as r:
                await r.read()
        elif payload.get("type") == "block_actions":
            await asyncio.sleep(random.uniform(*THINK_S))
            ts = payload["message"]["ts"]
            await self.web.chat_postMessage(channel=payload["channel"]["id"], thread_ts=ts, text="answer")


# -- running both --------------------------------------------------------------------------------------------


async def run_scenario(name: str, kind: str, tmp_path, seed: int) -> Outcome:
    scale, seconds = SCENARIOS[name]
    sim = Simulator(load_scenario(name), time_scale=scale, seed=seed)
    await sim.start()
    if kind == "reference":
        cfg = BotConfig(
            app_token=sim.app_token,
            bot_token=sim.bot_token,
            api_url=sim.api_url,
            connections=2,
            db=str(tmp_path / f"{name}.db"),
            concurrency=256,
            drain_timeout_s=THINK_S[1] + 2.0,
            liveness=FAST_LIVENESS,
        )
        bot: Any = Bot(cfg, example.handle, responder=example.respond)
        stop = bot.stop
    else:
        bot = NaiveBot(sim)
        stop = bot.stop
    try:
        await bot.start()
        sim.start_traffic()
        await asyncio.sleep(seconds)
        await sim.stop_traffic()
        # Settled = every event acked or out of retries; replies trail acks by up to THINK_S.
        try:
            await wait_for(lambda: _settled_and_answered(sim), timeout=12.0, what="settled and answered")
        except AssertionError:
            pass  # some events still wait for Slack's later retries: they are reported as pending
        # Stop the bot before judging: its drain finishes every handler it admitted (the reference bot gets a
        # deadline longer than any model call), and no ack can arrive after the verdict.
        await stop()
        outcome = Outcome.of(name, kind, sim)
        if kind == "reference":
            reg = bot.metrics.registry
            outcome.reconnects = sum(
                reg.get_sample_value("slackops_bot_reconnects_total", {"initiator": i}) or 0.0
                for i in ("server", "ping_timeout", "client", "watchdog")
            )
            outcome.dedup_hits = reg.get_sample_value("slackops_bot_dedup_hits_total")
        return outcome
    finally:
        await stop()  # idempotent for both bots
        await sim.stop()


def _settled_and_answered(sim: Simulator) -> bool:
    ledger = sim.scorecard().ledger
    if any(e["status"] == "pending" for e in ledger):
        return False
    return all(e["replies"] for e in expected(ledger) if e["status"] == "acked")


@pytest.fixture
def quiet_sdk(monkeypatch):
    """slack-sdk logs a traceback for every ack the naive bot tries on a dead socket: expected here."""
    monkeypatch.setattr(logging.getLogger("slack_sdk"), "level", logging.CRITICAL)


@pytest.mark.timeout(90)
def test_reference_bot_is_exactly_once_where_the_naive_bot_is_not(tmp_path, monkeypatch, quiet_sdk):
    monkeypatch.setattr(example, "LATENCY_S", THINK_S)

    async def main() -> list[Outcome]:
        jobs = [
            run_scenario(name, kind, tmp_path / kind, seed=11 + i)
            for i, name in enumerate(SCENARIOS)
            for kind in ("reference", "naive")
        ]
        return list(await asyncio.gather(*jobs))

    (tmp_path / "reference").mkdir()
    (tmp_path / "naive").mkdir()
    outcomes = asyncio.run(main())
    # The table is shown when the test fails (captured output) or with -s.
    for o in outcomes:
        print(
            f"  {o.scenario:18} {o.bot:9} events={o.events:4} reached={o.reached:4} lost={o.bot_lost:3} "
            f"unreachable={o.unreachable:2} unanswered={o.unanswered:3} twice={o.processed_twice:3} "
            f"late={o.acked_late:3} ack_p99={o.ack_p99_ms}ms reconnects={o.reconnects} dedup={o.dedup_hits}"
        )
        if o.bot == "reference":
            for e in o.problems:
                print("    problem:", e)
    ref = [o for o in outcomes if o.bot == "reference"]
    naive = [o for o in outcomes if o.bot == "naive"]
    for o in ref:
        assert o.reached > 10, o
        assert (o.bot_lost, o.unanswered, o.processed_twice, o.acked_late) == (0, 0, 0, 0), o
        # Ten bots and ten simulators share this one event loop (and two cores with whatever else runs), so the
        # simulator-side p99 here includes their contention: alone, the reference bot's p99 is a few ms. Half
        # the deadline still proves acks never wait on handler work (the naive bot's p99 is past 3 s).
        assert o.ack_p99_ms is not None and o.ack_p99_ms < ACK_DEADLINE_MS / 2, o
        if o.scenario in {"refresh-churn", "disconnect-storm", "half-open"}:
            assert o.reconnects, o  # the chaos happened and the bot rode through it
    assert sum(o.bot_lost + o.processed_twice for o in naive) > 0, naive


@pytest.mark.timeout(30)
def test_retries_and_duplicate_attempts_are_deduplicated_on_the_wire(tmp_path, monkeypatch, quiet_sdk):
    """Every attempt of every event reaches the bot (attempts 0-3, some twice): each event is answered once."""
    monkeypatch.setattr(example, "LATENCY_S", (0.05, 0.2))
    path = ROOT / "tests" / "fixtures" / "bot" / "retry-storm.toml"
    scenario = parse_scenario(path.read_text(), path=str(path), name="retry-storm")

    async def main() -> tuple[Any, float]:
        sim = Simulator(scenario, seed=5)
        await sim.start()
        cfg = BotConfig(
            app_token=sim.app_token,
            bot_token=sim.bot_token,
            api_url=sim.api_url,
            connections=2,
            db=str(tmp_path / "q.db"),
        )
        bot = Bot(cfg, example.handle)
        try:
            await bot.start()
            sim.start_traffic()
            await asyncio.sleep(2.0)
            await sim.stop_traffic()
            await wait_for(lambda: _settled_and_answered(sim), timeout=10, what="settled and answered")
            await bot.stop()
            hits = bot.metrics.registry.get_sample_value("slackops_bot_dedup_hits_total") or 0.0
            return sim.scorecard(), hits
        finally:
            await bot.stop()
            await sim.stop()

    card, hits = asyncio.run(main())
    print(f"events={card.events} retries={card.retries} dedup_hits={hits} processed={card.processed}")
    assert card.events >= 10 and card.retries > card.events
    assert hits >= card.retries  # every retry (and every doubled attempt) was recognised
    assert card.processed == card.events and card.processed_twice == 0
