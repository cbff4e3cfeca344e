"""The simulator as a real server on 127.0.0.1:0, driven by slack-sdk's own clients and by raw aiohttp sockets.

Deadlines and lifetimes are shortened through scenario settings (or a high time scale) only where the test is
about them; everything else waits on conditions with timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading

import aiohttp
from slack_sdk.socket_mode import SocketModeClient as BuiltinSocketModeClient
from slack_sdk.socket_mode.aiohttp import SocketModeClient as AiohttpSocketModeClient
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web import WebClient
from slack_sdk.web.async_client import AsyncWebClient

from slackops.errors import UsageError
from slackops.simulator import Simulator, SimulatorThread, load_scenario, parse_scenario
from tests.util import wait_for, wait_until


class ListRecorder:
    """The recorder interface (``.write(record)``), keeping records in memory."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.lock = threading.Lock()

    def write(self, rec: dict) -> None:
        with self.lock:
            self.records.append(rec)

    def kinds(self, kind: str) -> list[dict]:
        with self.lock:
            return [r for r in self.records if r["kind"] == kind]


def scenario(server: str = "", traffic: str = "") -> object:
    return parse_scenario(f"[server]\n{server}\n[traffic]\n{traffic}\n", path="<test>", name="test")


async def open_url(sim: Simulator, session: aiohttp.ClientSession, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token or sim.app_token}"}
    async with session.post(sim.api_url + "apps.connections.open", headers=headers) as resp:
        body = await resp.json()
    assert body["ok"], body
    return body["url"]


async def connect_raw(sim: Simulator, session: aiohttp.ClientSession, suffix: str = ""):
    url = await open_url(sim, session)
    ws = await session.ws_connect(url + suffix, autoping=False, autoclose=False)
    first = await ws.receive(timeout=5)
    return ws, json.loads(first.data)


async def next_text(ws, timeout: float = 5.0) -> dict:
    while True:
        msg = await ws.receive(timeout=timeout)
        if msg.type == aiohttp.WSMsgType.TEXT:
            return json.loads(msg.data)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            raise AssertionError(f"socket ended: {msg}")


# -- slack-sdk's aiohttp client ----------------------------------------------------------------------------


def test_aiohttp_client_receives_acks_and_reconnects_after_refresh_and_hard_drop():
    async def main():
        rec = ListRecorder()
        sim = Simulator(scenario("warning_lead = 0.2\ngrace = 0.5\nghosts = false"), seed=1, recorder=rec)
        await sim.start()
        got = []
        client = AiohttpSocketModeClient(
            app_token=sim.app_token,
            web_client=AsyncWebClient(token=sim.bot_token, base_url=sim.api_url),
            ping_interval=1,
        )

        async def on_request(c, req):
            got.append(req)
            await c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

        client.socket_mode_request_listeners.append(on_request)
        try:
            await client.connect()
            await wait_for(lambda: len(sim.registry.live()) == 1, what="first socket")
            sim.send_event("message")
            sim.send_event("slash_command")
            sim.send_event("block_actions")
            await wait_for(lambda: len(got) == 3, what="three envelopes")
            assert {r.type for r in got} == {"events_api", "slash_commands", "interactive"}

            sim.refresh()
            await wait_for(lambda: sim.ledger.connections_opened >= 2, what="reconnect after refresh")
            assert [r["reason"] for r in rec.kinds("disconnect")] == ["warning"]  # it left on the warning
            await wait_for(lambda: len(sim.registry.live()) == 1, what="old socket gone")

            sim.drop(sim.registry.live()[0].id)
            await wait_for(
                lambda: sim.ledger.connections_opened >= 3, timeout=15, what="reconnect after drop"
            )
            await wait_for(lambda: len(sim.registry.live()) == 1, what="one live socket after the drop")
            sim.send_event("app_mention")
            await wait_for(lambda: len(got) == 5, what="events after reconnecting")
            assert await sim.drain(5)
            card = sim.scorecard()
            assert card.events == 5 and card.acked == 5 and card.lost == 0
            assert card.connections_opened == 3
            closes = rec.kinds("close")
            assert any(c["by"] == "network" and not c["clean"] for c in closes)
            assert any(c["by"] == "client" and c["clean"] for c in closes)
        finally:
            await client.close()
            await sim.stop()

    asyncio.run(main())


# -- slack-sdk's builtin client ----------------------------------------------------------------------------


def test_builtin_client_receives_acks_and_reconnects_after_refresh_requested_and_hard_drop():
    sc = scenario("warning_lead = 0\ngrace = 0.5\nghosts = false")
    with SimulatorThread(sc, seed=2) as sim:
        got: list = []
        client = BuiltinSocketModeClient(
            app_token=sim.app_token,
            web_client=WebClient(token=sim.bot_token, base_url=sim.api_url),
            ping_interval=1,
        )

        def on_request(c, req):
            got.append(req)
            c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

        client.socket_mode_request_listeners.append(on_request)
        try:
            client.connect()
            wait_until(lambda: len(sim.call(sim.sim.registry.live)) == 1, what="first socket")
            sim.send_event("message")
            sim.send_event("view_submission")
            wait_until(lambda: len(got) == 2, what="two envelopes")

            sim.refresh()  # no warning: refresh_requested straight away
            wait_until(lambda: sim.ledger.connections_opened >= 2, what="reconnect after refresh_requested")
            wait_until(lambda: len(sim.call(sim.sim.registry.live)) == 1, what="old socket gone")

            sim.drop(sim.call(sim.sim.registry.live)[0].id)
            wait_until(lambda: sim.ledger.connections_opened >= 3, timeout=20, what="reconnect after drop")
            sim.send_event("message")
            wait_until(lambda: len(got) == 3, timeout=10, what="an event after the drop")
            assert sim.drain(5)
            card = sim.scorecard()
            assert card.acked == 3 and card.lost == 0
        finally:
            client.close()


# -- deadlines, retries, losses ----------------------------------------------------------------------------


def test_late_ack_is_scored_late_and_retried_with_retry_attempt_and_reason():
    async def main():
        rec = ListRecorder()
        sim = Simulator(scenario("ack_deadline = 0.3\nretry_schedule = [0, 0.2]"), seed=3, recorder=rec)
        await sim.start()
        seen = []
        client = AiohttpSocketModeClient(
            app_token=sim.app_token, web_client=AsyncWebClient(token=sim.bot_token, base_url=sim.api_url)
        )

        async def slow_then_fast(c, req):
            seen.append((req.retry_attempt, req.retry_reason))
            if req.retry_attempt == 0:
                await asyncio.sleep(0.5)  # the slow handler being rehearsed: ack after the deadline
            await c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

        client.socket_mode_request_listeners.append(slow_then_fast)
        try:
            await client.connect()
            await wait_for(lambda: sim.registry.live(), what="socket")
            (event,) = sim.send_event("message")
            await wait_for(lambda: len(seen) >= 2, what="the retry")
            assert await sim.drain(5)
            assert seen[:2] == [(0, ""), (1, "timeout")]
            entry = sim.entry(event.event_id)
            await wait_for(lambda: entry.acked_late, what="the late ack of attempt 0")
            assert entry.acked_late and entry.acked
            card = sim.scorecard()
            assert (card.acked_late, card.retries, card.lost) == (1, 1, 0)
            assert card.ack_p99_ms >= 300
            # Records say what every producer says: the ack arrived (ok), late by its ack_ms; retries are marked.
            acks = sorted(rec.kinds("ack"), key=lambda r: r["ack_ms"])
            assert [a["ok"] for a in acks] == [True, True] and acks[-1]["ack_ms"] >= 300
            retried = [r for r in rec.kinds("envelope") if r.get("retry_attempt")]
            assert [(r["retry_attempt"], r["retry_reason"]) for r in retried] == [(1, "timeout")]
        finally:
            await client.close()
            await sim.stop()

    asyncio.run(main())


def test_interactive_not_acked_in_time_is_lost_and_never_retried():
    async def main():
        sim = Simulator(scenario("ack_deadline = 0.2"), seed=4)
        await sim.start()
        async with aiohttp.ClientSession() as session:
            ws, hello = await connect_raw(sim, session)
            assert hello["type"] == "hello"
            (event,) = sim.send_event("shortcut")
            envelope = await next_text(ws)
            assert envelope["type"] == "interactive" and "retry_attempt" not in envelope
            assert await sim.drain(3)
            await ws.send_str(json.dumps({"envelope_id": envelope["envelope_id"]}))  # too late
            await wait_for(lambda: sim.entry(event.event_id).attempts[0].acked, what="late ack recorded")
            card = sim.scorecard()
            assert card.lost == 1 and card.lost_by_type == {"interactive": 1} and card.retries == 0
            assert sim.entry(event.event_id).failure == "dispatch_failed"
            await ws.close()
        await sim.stop()

    asyncio.run(main())


# -- connection registry -----------------------------------------------------------------------------------


def test_connection_cap_sends_too_many_websockets_instead_of_hello():
    async def main():
        sim = Simulator(scenario(), seed=5)
        await sim.start()
        async with aiohttp.ClientSession() as session:
            sockets = []
            for n in range(10):
                ws, hello = await connect_raw(sim, session)
                assert hello["type"] == "hello" and hello["num_connections"] == n + 1
                sockets.append(ws)
            ws, first = await connect_raw(sim, session)
            assert first["type"] == "disconnect" and first["reason"] == "too_many_websockets"
            assert first["num_connections"] == 10
            closing = await ws.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert sim.scorecard().connections_refused == 1
            for s in sockets:
                await s.close()
        await sim.stop()

    asyncio.run(main())


def test_ghost_registration_counts_in_hello_and_swallows_deliveries_until_it_ages_out():
    async def main():
        sc = scenario('routing = "round_robin"\nack_deadline = 0.2\nretry_schedule = [0]\nghost_ttl = 1.5')
        sim = Simulator(sc, seed=6)
        await sim.start()
        async with aiohttp.ClientSession() as session:
            old, _ = await connect_raw(sim, session)
            first_id = sim.registry.live()[0].id
            sim.drop(first_id)  # no close frame: Slack keeps the registration
            await wait_for(lambda: not sim.registry.live(), what="drop noticed")
            assert [(c.id, c.state) for c in sim.connections()] == [(first_id, "ghost")]
            ws, hello = await connect_raw(sim, session)
            assert hello["num_connections"] == 2  # the ghost is counted, like python-slack-sdk#1940
            (event,) = sim.send_event("message")
            # Round robin: the first attempt goes to the ghost and vanishes; the retry reaches the live socket.
            received = await next_text(ws)
            assert (received["retry_attempt"], received["retry_reason"]) == (1, "timeout")
            await ws.send_str(json.dumps({"envelope_id": received["envelope_id"]}))
            assert await sim.drain(3)
            card = sim.scorecard()
            assert card.blackholed == 1 and card.retries == 1 and card.lost == 0 and card.acked == 1
            assert [a.conn for a in sim.entry(event.event_id).attempts] == [
                first_id,
                sim.registry.live()[0].id,
            ]
            await wait_for(lambda: len(sim.connections()) == 1, what="ghost aged out")
            await ws.close()
            await old.close()
        await sim.stop()

    asyncio.run(main())


def test_hello_fields_debug_reconnects_pings_and_pong_echo():
    async def main():
        rec = ListRecorder()
        sim = Simulator(scenario("ping_interval = 0.5"), seed=7, recorder=rec)
        await sim.start()
        async with aiohttp.ClientSession() as session:
            ws, hello = await connect_raw(sim, session, "&debug_reconnects=true")
            assert hello["debug_info"]["approximate_connection_time"] == 360
            assert hello["debug_info"]["host"] == "applink-sim-1" and hello["debug_info"]["build_number"]
            assert hello["connection_info"]["app_id"] == sim.identity.app_id
            await ws.ping(b"client-ping-123")
            got_pong = got_ping = None
            while got_pong is None or got_ping is None:
                msg = await ws.receive(timeout=5)
                if msg.type == aiohttp.WSMsgType.PONG:
                    got_pong = msg.data
                elif msg.type == aiohttp.WSMsgType.PING:
                    got_ping = msg.data
                    await ws.pong(msg.data)
            assert got_pong == b"client-ping-123"
            assert got_ping == b"Ping from applink-sim-1"
            await wait_for(
                lambda: any(r["direction"] == "received" for r in rec.kinds("pong")), what="pong rec"
            )
            await ws.close()
        await sim.stop()

    asyncio.run(main())


def test_half_open_socket_stops_ponging_and_ignores_close_frames():
    async def main():
        sim = Simulator(scenario("ping_interval = 0"), seed=8)
        await sim.start()
        async with aiohttp.ClientSession() as session:
            mute, _ = await connect_raw(sim, session)
            sim.half_open(sim.registry.live()[0].id)
            await mute.ping(b"anyone?")
            sim.send_event("message")
            with contextlib.suppress(TimeoutError):
                msg = await mute.receive(timeout=0.5)
                raise AssertionError(f"a half-open socket sent {msg}")  # no pong, no envelope
            assert sim.scorecard().blackholed == 1

            # A second socket: our close frame gets no reply, so the client gives up after its own timeout,
            # and the server, which never saw a close handshake, keeps a ghost registration.
            url = await open_url(sim, session)
            deaf = await session.ws_connect(
                url, autoping=False, timeout=aiohttp.ClientWSTimeout(ws_close=0.3)
            )
            assert json.loads((await deaf.receive(timeout=5)).data)["type"] == "hello"
            second = sim.registry.live()[-1].id
            sim.half_open(second)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await deaf.close(code=1000)
            assert loop.time() - started >= 0.25
            await wait_for(
                lambda: {c.id: c.state for c in sim.connections()}.get(second) == "ghost", what="ghost"
            )
        await sim.stop()

    asyncio.run(main())


def test_half_open_socket_can_still_be_dropped():
    async def main():
        sim = Simulator(scenario("ping_interval = 0"), seed=24)
        await sim.start()
        async with aiohttp.ClientSession() as session:
            ws, _ = await connect_raw(sim, session)
            conn = sim.registry.live()[0].id
            sim.half_open(conn)
            sim.drop(conn)
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        await sim.stop()

    asyncio.run(main())


# -- HTTP: apps.connections.open, tickets, upgrade failures, link_disabled ----------------------------------


def test_each_bad_token_gets_its_documented_error_as_http_200():
    async def main():
        sim = Simulator(scenario(), seed=9)
        await sim.start()
        no_scope = sim.make_app_token(scopes=())
        cases = [
            (None, "not_authed"),
            (sim.bot_token, "not_allowed_token_type"),
            ("xoxp-1-2-3-abc", "not_allowed_token_type"),
            ("xapp-1-A1-1-doesnotexist", "invalid_auth"),
            (no_scope, "missing_scope"),
        ]
        async with aiohttp.ClientSession() as session:
            for token, error in cases:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                async with session.post(sim.api_url + "apps.connections.open", headers=headers) as resp:
                    body = await resp.json()
                    assert resp.status == 200 and body == {**body, "ok": False, "error": error}, (token, body)
            # The docs: the token goes in the Authorization header; as a POST parameter it is an error.
            async with session.post(
                sim.api_url + "apps.connections.open", data={"token": sim.app_token}
            ) as resp:
                assert resp.status == 200 and (await resp.json())["error"] == "not_authed"
            sim.fail_open("internal_error")
            sim.ratelimit_open(retry_after=2)
            async with session.post(
                sim.api_url + "apps.connections.open", headers={"Authorization": f"Bearer {sim.app_token}"}
            ) as resp:
                assert resp.status == 429 and resp.headers["Retry-After"] == "2"
                assert (await resp.json())["error"] == "ratelimited"
            async with session.post(
                sim.api_url + "apps.connections.open", headers={"Authorization": f"Bearer {sim.app_token}"}
            ) as resp:
                assert resp.status == 200 and (await resp.json())["error"] == "internal_error"
            async with session.post(
                sim.api_url + "apps.connections.open", headers={"Authorization": f"Bearer {sim.app_token}"}
            ) as resp:
                body = await resp.json()
                assert body["ok"] and body["url"].startswith(f"ws://127.0.0.1:{sim.port}/link/?ticket=")
                assert body["response_metadata"]["acceptedScopes"] == ["connections:write"]
                assert (
                    "x-slack-req-id" in resp.headers and "connections:write" in resp.headers["x-oauth-scopes"]
                )
        await sim.stop()

    asyncio.run(main())


def test_slack_sdk_web_client_sees_the_same_errors():
    with SimulatorThread(scenario(), seed=10) as sim:
        client = WebClient(base_url=sim.api_url)
        from slack_sdk.errors import SlackApiError

        for token, error in (("xoxb-1-2", "not_allowed_token_type"), ("xapp-1-bogus", "invalid_auth")):
            try:
                client.apps_connections_open(app_token=token)
            except SlackApiError as exc:
                assert exc.response["error"] == error
            else:
                raise AssertionError("expected an error")
        assert client.apps_connections_open(app_token=sim.app_token)["ok"]


def test_ticket_is_single_use_and_expires():
    async def main():
        sim = Simulator(scenario("ticket_ttl = 0.05"), seed=11)
        await sim.start()
        async with aiohttp.ClientSession() as session:
            url = await open_url(sim, session)
            ws = await session.ws_connect(url)
            await ws.close()
            try:
                await session.ws_connect(url)
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 401
            else:
                raise AssertionError("ticket reuse was accepted")
            stale = await open_url(sim, session)
            await asyncio.sleep(0.1)  # let the 50 ms ticket expire: the expiry itself is under test
            try:
                await session.ws_connect(stale)
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 401
            else:
                raise AssertionError("expired ticket was accepted")
        await sim.stop()

    asyncio.run(main())


def test_injected_409_on_upgrade_then_success():
    async def main():
        sim = Simulator(scenario(), seed=12)
        await sim.start()
        sim.reject_upgrade(times=1, status=409)
        async with aiohttp.ClientSession() as session:
            try:
                await session.ws_connect(await open_url(sim, session))
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 409
            else:
                raise AssertionError("expected 409")
            ws, hello = await connect_raw(sim, session)
            assert hello["type"] == "hello"
            await ws.close()
        await sim.stop()

    asyncio.run(main())


def test_link_disabled_disconnects_live_sockets_and_refuses_new_ones():
    async def main():
        sim = Simulator(scenario(), seed=13)
        await sim.start()
        async with aiohttp.ClientSession() as session:
            ws, _ = await connect_raw(sim, session)
            sim.disable_link()
            frame = await next_text(ws)
            assert frame["type"] == "disconnect" and frame["reason"] == "link_disabled"
            again, first = await connect_raw(sim, session)
            assert first["reason"] == "link_disabled"
            sim.enable_link()
            ok, hello = await connect_raw(sim, session)
            assert hello["type"] == "hello"
            for s in (ws, again, ok):
                await s.close()
        await sim.stop()

    asyncio.run(main())


# -- replies, self-loops, records --------------------------------------------------------------------------


def test_replies_are_attributed_and_echoes_expose_a_self_loop_without_leaking_tokens():
    async def main():
        rec = ListRecorder()
        sc = scenario(traffic="echo_bot_posts = true\necho_depth_limit = 3")
        sim = Simulator(sc, seed=14, recorder=rec)
        await sim.start()
        web = AsyncWebClient(token=sim.bot_token, base_url=sim.api_url)
        assert (await web.auth_test())["user_id"] == sim.identity.bot_user_id
        client = AiohttpSocketModeClient(app_token=sim.app_token, web_client=web)

        async def naive_bot(c, req):
            await c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            event = req.payload.get("event", {})
            if event.get("type") == "message":  # answers everything, its own posts included
                await web.chat_postMessage(channel=event["channel"], thread_ts=event["ts"], text="echo")
                await web.reactions_add(channel=event["channel"], timestamp=event["ts"], name="eyes")

        client.socket_mode_request_listeners.append(naive_bot)
        try:
            await client.connect()
            await wait_for(lambda: sim.registry.live(), what="socket")
            sim.send_event("message")
            await wait_for(lambda: sim.scorecard().events == 4, what="three echo generations")
            assert await sim.drain(5)
            # a post and a reaction for each of the four events
            await wait_for(lambda: sim.scorecard().processed_twice == 4, what="replies")
            card = sim.scorecard()
            assert card.self_replies == 6  # three bot-authored events, each answered twice
        finally:
            await client.close()
            await sim.stop()
        blob = json.dumps(rec.records)
        for secret in (sim.app_token, sim.bot_token, "ticket="):
            assert secret not in blob
        kinds = {r["kind"] for r in rec.records}
        assert {"api_call", "connect", "hello", "envelope", "ack", "post", "close"} <= kinds
        assert all(r["source"] == "sim" for r in rec.records)

    asyncio.run(main())


def test_scenario_traffic_and_chaos_run_at_a_time_scale():
    async def main():
        sim = Simulator(load_scenario("disconnect-storm"), time_scale=20.0, seed=15)
        await sim.start()
        client = AiohttpSocketModeClient(
            app_token=sim.app_token,
            web_client=AsyncWebClient(token=sim.bot_token, base_url=sim.api_url),
            ping_interval=1,
        )

        async def ack(c, req):
            await c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

        client.socket_mode_request_listeners.append(ack)
        try:
            await client.connect()
            await wait_for(lambda: sim.registry.live(), what="socket")
            sim.start_traffic()
            # First drop at scenario t=10 s, i.e. 0.5 s real at scale 20.
            await wait_for(
                lambda: sim.ledger.connections_opened >= 2, timeout=15, what="a chaos drop + reconnect"
            )
            await sim.stop_traffic()
            card = sim.scorecard()
            assert card.events > 0 and card.reconnect_gaps_ms
        finally:
            await client.close()
            await sim.stop()

    asyncio.run(main())


def test_client_survives_garbage_frames_and_delayed_pongs_arrive_late():
    async def main():
        sim = Simulator(scenario("ping_interval = 0"), seed=16)
        await sim.start()
        got = []
        client = AiohttpSocketModeClient(
            app_token=sim.app_token, web_client=AsyncWebClient(token=sim.bot_token, base_url=sim.api_url)
        )

        async def ack(c, req):
            got.append(req)
            await c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

        client.socket_mode_request_listeners.append(ack)
        try:
            await client.connect()
            await wait_for(lambda: sim.registry.live(), what="socket")
            sim.inject_frame(None, "{not json")
            sim.inject_frame(None, b"\x00\x01")
            sim.send_event("message")
            await wait_for(lambda: len(got) == 1, what="an event after garbage frames")
        finally:
            await client.close()
        async with aiohttp.ClientSession() as session:
            ws, _ = await connect_raw(sim, session)
            sim.delay_pongs(0.3)
            loop = asyncio.get_running_loop()
            sent = loop.time()
            await ws.ping(b"slow?")
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.PONG and msg.data == b"slow?"
            assert loop.time() - sent >= 0.25
            await ws.close()
        await sim.stop()

    asyncio.run(main())


def test_bolt_app_runs_against_the_simulator_as_printed_by_the_cli():
    from slack_bolt import App
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    with SimulatorThread(scenario(), seed=17) as sim:
        app = App(client=WebClient(token=sim.bot_token, base_url=sim.api_url))  # auth.test runs here
        answered = []

        @app.event("app_mention")
        def on_mention(event, say):
            say(text="on it", thread_ts=event["ts"])
            answered.append(event["ts"])

        @app.event("message")
        def on_message(event):
            pass

        handler = SocketModeHandler(app, sim.app_token)
        handler.connect()
        try:
            wait_until(lambda: sim.call(sim.sim.registry.live), what="bolt socket")
            mention, _message = sim.send_event("app_mention")
            wait_until(lambda: answered, what="bolt answered")
            assert sim.drain(5)
            wait_until(lambda: sim.scorecard().processed == 1, what="reply attributed")
            card = sim.scorecard()
            assert card.acked == 2 and card.processed_twice == 0
            assert sim.call(lambda: sim.sim.entry(mention.event_id).replies[0].method) == "chat.postMessage"
        finally:
            handler.close()


def test_refresh_sends_warning_then_refresh_requested_then_drops_without_a_close_frame():
    async def main():
        rec = ListRecorder()
        sim = Simulator(scenario("warning_lead = 0.1\ngrace = 0.2\nghosts = true"), seed=18, recorder=rec)
        await sim.start()
        async with aiohttp.ClientSession() as session:
            ws, _ = await connect_raw(sim, session)  # a client that ignores disconnect frames
            sim.refresh()
            assert (await next_text(ws))["reason"] == "warning"
            assert (await next_text(ws))["reason"] == "refresh_requested"
            msg = await ws.receive(timeout=5)
            while msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.TEXT):
                msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)  # TCP gone, no CLOSE frame
            await wait_for(lambda: rec.kinds("close"), what="close record")
            (close,) = rec.kinds("close")
            assert close["by"] == "server" and not close["clean"]
            assert sim.connections() == []  # the server dropped it itself: no ghost
        await sim.stop()

    asyncio.run(main())


def test_refresh_close_option_ends_with_a_clean_close_frame():
    async def main():
        sim = Simulator(scenario('warning_lead = 0\ngrace = 0.1\nrefresh_close = "close"'), seed=19)
        await sim.start()
        async with aiohttp.ClientSession() as session:
            ws, _ = await connect_raw(sim, session)
            sim.refresh()
            assert (await next_text(ws))["reason"] == "refresh_requested"
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1000
            await ws.close()
        await sim.stop()

    asyncio.run(main())


def test_tier1_rate_limit_on_open():
    async def main():
        sim = Simulator(scenario("open_rate_limit = 2\nopen_retry_after = 30"), time_scale=10.0, seed=20)
        await sim.start()
        headers = {"Authorization": f"Bearer {sim.app_token}"}
        async with aiohttp.ClientSession() as session:
            statuses = []
            for _ in range(3):
                async with session.post(sim.api_url + "apps.connections.open", headers=headers) as resp:
                    statuses.append((resp.status, resp.headers.get("Retry-After")))
            assert statuses == [(200, None), (200, None), (429, "3")]  # 30 s at time scale 10
        await sim.stop()

    asyncio.run(main())


def test_builtin_client_reassembles_a_large_fragmented_payload():
    with SimulatorThread(scenario(), seed=21) as sim:
        got: list = []
        client = BuiltinSocketModeClient(
            app_token=sim.app_token,
            web_client=WebClient(token=sim.bot_token, base_url=sim.api_url),
            receive_buffer_size=1024,
        )

        def on_request(c, req):
            got.append(req)
            c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

        client.socket_mode_request_listeners.append(on_request)
        try:
            client.connect()
            wait_until(lambda: sim.call(sim.sim.registry.live), what="socket")
            sim.send_event("block_actions", pad_bytes=60_000)
            wait_until(lambda: got, timeout=10, what="the 60 KB envelope")
            assert len(got[0].payload["blocks"][-1]["text"]["text"]) == 60_000
            assert sim.drain(5) and sim.scorecard().acked == 1
        finally:
            client.close()


def test_port_in_use_is_a_usage_error():
    async def main():
        first = Simulator(scenario(), seed=22)
        await first.start()
        second = Simulator(scenario(), seed=23, port=first.port)
        try:
            await second.start()
        except UsageError as exc:
            assert str(first.port) in str(exc) and exc.hint
        else:
            raise AssertionError("expected a UsageError")
        finally:
            await first.stop()

    asyncio.run(main())


def test_every_chaos_action_in_a_schedule_fires_and_is_recorded():
    from slackops.simulator.scenario import CHAOS_ACTIONS

    steps = "\n".join(f'[[chaos]]\nat = {n}\naction = "{a}"\n' for n, a in enumerate(sorted(CHAOS_ACTIONS)))
    sc = parse_scenario(f"[server]\nghosts = true\n{steps}", path="<t>", name="all-chaos")

    async def main():
        rec = ListRecorder()
        sim = Simulator(sc, time_scale=100.0, seed=25, recorder=rec)
        await sim.start()
        async with aiohttp.ClientSession() as session:
            ws, _ = await connect_raw(sim, session)
            sim.start_traffic()
            await wait_for(lambda: len(rec.kinds("chaos")) == len(CHAOS_ACTIONS), what="every chaos step")
            assert {r["action"] for r in rec.kinds("chaos")} == CHAOS_ACTIONS
            await sim.stop_traffic()
            await ws.close()
        await sim.stop()

    asyncio.run(main())


def test_an_ack_on_the_wrong_socket_is_refused_and_recorded_as_an_error_when_acks_are_strict():
    async def main():
        rec = ListRecorder()
        sc = scenario(
            'ack_any_connection = false\nrouting = "round_robin"\nack_deadline = 0.3\nretry_schedule = []'
        )
        sim = Simulator(sc, seed=26, recorder=rec)
        await sim.start()
        async with aiohttp.ClientSession() as session:
            first, _ = await connect_raw(sim, session)
            second, _ = await connect_raw(sim, session)
            (event,) = sim.send_event("message")
            envelope = await next_text(first)  # round robin: the first socket carries it
            await second.send_str(json.dumps({"envelope_id": envelope["envelope_id"]}))
            await wait_for(lambda: rec.kinds("error"), what="refused ack")
            (refused,) = [r for r in rec.kinds("error") if r["where"] == "ack"]
            assert refused["error"] == "wrong_connection" and rec.kinds("ack") == []
            assert await sim.drain(3)
            assert sim.entry(event.event_id).status(sim._now()) == "lost"
            for ws in (first, second):
                await ws.close()
        await sim.stop()

    asyncio.run(main())
