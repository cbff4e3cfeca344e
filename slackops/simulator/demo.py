"""The demo behind ``make demo``: the simulator plus a typical naive bot, ending with a scorecard.

The bot is slack-sdk's own aiohttp ``SocketModeClient`` with the handler many real bots start with: call the
"LLM" first, reply in the thread, *then* ack — and answer both the ``app_mention`` and the ``message`` Slack
sends for one mention. Against a refresh-churn scenario the scorecard shows what that costs: acks after the
3 s deadline, retried events answered twice, interactive payloads lost while the socket is being replaced.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from slackops.simulator.ledger import Scorecard
from slackops.simulator.scenario import Scenario, load_scenario
from slackops.simulator.server import Simulator

#: The naive bot's "LLM call": mostly quick, sometimes slower than Slack's 3 s ack deadline.
SLOW_SHARE = 0.15
SLOW_SECONDS = 3.5


async def _naive_bot(sim: Simulator, rng: random.Random) -> Any:
    from slack_sdk.socket_mode.aiohttp import SocketModeClient
    from slack_sdk.socket_mode.response import SocketModeResponse
    from slack_sdk.web.async_client import AsyncWebClient

    web = AsyncWebClient(token=sim.bot_token, base_url=sim.api_url)
    client = SocketModeClient(app_token=sim.app_token, web_client=web, ping_interval=2)

    async def handle(c: Any, req: Any) -> None:
        event = req.payload.get("event") or {}
        # Process first, ack last: the mistake the scorecard is about.
        await asyncio.sleep(SLOW_SECONDS if rng.random() < SLOW_SHARE else rng.uniform(0.05, 0.4))
        if event.get("type") in ("app_mention", "message") and not event.get("bot_id") and event.get("ts"):
            await web.chat_postMessage(channel=event["channel"], thread_ts=event["ts"], text="On it!")
        await c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    client.socket_mode_request_listeners.append(handle)
    await client.connect()
    return client


async def run_demo(
    scenario: Scenario | str = "refresh-churn",
    *,
    duration: float = 20.0,
    time_scale: float | None = None,
    seed: int = 7,
    recorder: Any = None,
    on_ready: Any = None,
    port: int = 0,
) -> Scorecard:
    """Run the simulator and the naive bot for ``duration`` wall seconds; return the scorecard."""
    loaded = load_scenario(scenario) if isinstance(scenario, str) else scenario
    sim = Simulator(
        loaded, time_scale=time_scale or loaded.time_scale, seed=seed, recorder=recorder, port=port
    )
    await sim.start()
    client = None
    try:
        if on_ready is not None:
            on_ready(sim)
        client = await _naive_bot(sim, random.Random(seed))
        sim.start_traffic()
        await asyncio.sleep(duration)  # the demo's run time, not a wait for a condition
        await sim.stop_traffic()
        await sim.drain(sim.engine.settings.ack_deadline + SLOW_SECONDS)
        return sim.scorecard()
    finally:
        if client is not None:
            await client.close()
        await sim.stop()
