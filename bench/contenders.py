"""The bots the benchmarks pit against each other, each run as its own process so its CPU is attributable.

``python -m bench.contenders CLIENT [--work reply|ack] [--instrument DB]`` runs one slack-sdk Socket Mode client
(``sdk-builtin``, ``sdk-aiohttp``, ``sdk-websockets``) or the watch probe (``watch`` with ``--record DB`` or
none) against the Web API at ``SLACK_API_URL`` with ``SLACK_APP_TOKEN`` / ``SLACK_BOT_TOKEN``, until SIGTERM.
The slackops reference runtime is started through its own CLI with :func:`handle_reply` or :func:`handle_ack`.

Every contender runs the same work, so the numbers compare clients, not handlers:

- ``reply``: ack first (what slack-sdk's docs and Bolt do), then, for a human's ``message`` / ``app_mention``
  event, wait :data:`LLM_S` (a model call) and answer in the thread with ``chat.postMessage``. Slack sends an
  @-mention twice (``app_mention`` + ``message``, same ``ts``): only the ``app_mention`` is answered, so a
  reply counted twice by the simulator is a real duplicate. Slash commands and interactive payloads are only
  acked: for them the ack is what the user sees.
- ``ack``: ack and nothing else (the receive path alone, for the latency and throughput benchmarks).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
import time
from typing import Any

#: The simulated model call before each reply (seconds): long next to an ack, short next to a benchmark run.
LLM_S = float(os.environ.get("BENCH_LLM_S", "0.3"))

SDK_CLIENTS = ("sdk-builtin", "sdk-aiohttp", "sdk-websockets")


def wants_reply(payload: dict[str, Any], bot_user_id: str | None) -> tuple[str, str] | None:
    """``(channel, ts)`` to answer in a thread, or ``None`` when the envelope only needs its ack."""
    event = payload.get("event") if isinstance(payload, dict) else None
    if not isinstance(event, dict):
        return None  # slash commands and interactive payloads: the ack is the answer
    kind = event.get("type")
    if kind not in ("message", "app_mention") or event.get("bot_id") or event.get("subtype"):
        return None  # never answer bots (self-loops) or edits/joins
    if kind == "message" and bot_user_id and f"<@{bot_user_id}>" in (event.get("text") or ""):
        return None  # the app_mention twin of this message is the one we answer
    channel, ts = event.get("channel"), event.get("ts")
    if not channel or not ts:
        return None
    return channel, ts


# -- the slackops reference runtime (started with `python -m slackops bot run bench.contenders:handle_*`) -----


async def handle_reply(ctx: Any) -> None:
    """The ``reply`` work on the slackops runtime (already persisted, deduplicated and acked when it runs)."""
    if wants_reply(ctx.payload, ctx.bot_user_id) is None:
        return
    await asyncio.sleep(LLM_S)
    await ctx.reply("done")


async def handle_ack(ctx: Any) -> None:
    """The ``ack`` work on the slackops runtime: nothing beyond what the runtime does before and after the ack."""
    return None


# -- slack-sdk clients ------------------------------------------------------------------------------------------


def _env() -> tuple[str, str, str]:
    return os.environ["SLACK_APP_TOKEN"], os.environ["SLACK_BOT_TOKEN"], os.environ["SLACK_API_URL"]


def _stop_event_sync() -> threading.Event:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def run_builtin(work: str, instrument_db: str | None) -> None:
    """slack-sdk's builtin client: a reader thread, listeners on a thread pool (sync code)."""
    from slack_sdk import WebClient
    from slack_sdk.socket_mode import SocketModeClient
    from slack_sdk.socket_mode.response import SocketModeResponse

    app_token, bot_token, api_url = _env()
    web = WebClient(token=bot_token, base_url=api_url)
    bot_user = web.auth_test().get("user_id") if work == "reply" else None
    client = SocketModeClient(app_token=app_token, web_client=WebClient(base_url=api_url))

    def listener(c: SocketModeClient, req: Any) -> None:
        c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
        target = wants_reply(req.payload, bot_user) if work == "reply" else None
        if target is not None:
            time.sleep(LLM_S)
            web.chat_postMessage(channel=target[0], thread_ts=target[1], text="done")

    client.socket_mode_request_listeners.append(listener)
    inst = _instrument(client, instrument_db)
    stop = _stop_event_sync()
    client.connect()
    stop.wait()
    client.close()
    if inst is not None:
        inst.close()


async def run_async(flavour: str, work: str, instrument_db: str | None) -> None:
    """slack-sdk's asyncio clients (aiohttp or websockets): listeners run as tasks on the event loop."""
    from slack_sdk.socket_mode.response import SocketModeResponse
    from slack_sdk.web.async_client import AsyncWebClient

    if flavour == "sdk-aiohttp":
        from slack_sdk.socket_mode.aiohttp import SocketModeClient
    else:
        from slack_sdk.socket_mode.websockets import SocketModeClient

    app_token, bot_token, api_url = _env()
    web = AsyncWebClient(token=bot_token, base_url=api_url)
    bot_user = (await web.auth_test()).get("user_id") if work == "reply" else None
    client = SocketModeClient(app_token=app_token, web_client=AsyncWebClient(base_url=api_url))

    async def listener(c: Any, req: Any) -> None:
        await c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
        target = wants_reply(req.payload, bot_user) if work == "reply" else None
        if target is not None:
            await asyncio.sleep(LLM_S)
            await web.chat_postMessage(channel=target[0], thread_ts=target[1], text="done")

    client.socket_mode_request_listeners.append(listener)
    inst = _instrument(client, instrument_db)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await client.connect()
    await stop.wait()
    await client.close()
    if inst is not None:
        inst.close()


def _instrument(client: Any, db: str | None) -> Any:
    if not db:
        return None
    import slackops

    return slackops.instrument(client, db=db)


# -- the watch probe --------------------------------------------------------------------------------------------


async def run_watch(record_db: str | None) -> None:
    """``slackops watch`` acking on one socket, recording to SQLite (``record_db``) or nowhere."""
    from slackops.watch import Mode, Target, WatchConfig, Watcher

    app_token, _bot_token, api_url = _env()
    writer = None
    if record_db:
        from slackops.store import RecordWriter

        writer = RecordWriter(db=record_db)
    target = Target(embedded=False, api_url=api_url, app_token=app_token, production=False)
    watcher = Watcher(WatchConfig(target, mode=Mode.ACK), writer=writer)
    try:
        await watcher.run(handle_signals=True)
    finally:
        if writer is not None:
            writer.close(timeout=30)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.contenders")
    parser.add_argument("client", choices=(*SDK_CLIENTS, "watch"))
    parser.add_argument("--work", choices=("reply", "ack"), default="ack")
    parser.add_argument("--instrument", metavar="DB", help="slackops.instrument(client, db=DB)")
    parser.add_argument("--record", metavar="DB", help="watch: record to this SQLite file")
    args = parser.parse_args(argv)
    if os.environ.get("BENCH_DEBUG"):
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    if args.client == "sdk-builtin":
        run_builtin(args.work, args.instrument)
    elif args.client == "watch":
        asyncio.run(run_watch(args.record))
    else:
        asyncio.run(run_async(args.client, args.work, args.instrument))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
