"""The simulator's network shell: an aiohttp HTTP + WebSocket server on loopback that behaves like Slack.

Endpoints:

- ``POST /api/apps.connections.open`` — app-level token from ``Authorization: Bearer``; errors are HTTP 200
  ``{"ok": false, "error": ...}`` (``not_authed``, ``invalid_auth``, ``not_allowed_token_type``,
  ``missing_scope``, injected ``internal_error`` ...), ``ratelimited`` is HTTP 429 with ``Retry-After``. Success
  returns ``ws://.../link/?ticket=<uuid>&app_id=<hash>``: the ticket is single-use and expires.
- ``POST /api/auth.test``, ``chat.postMessage``, ``chat.update``, ``reactions.add`` — the bot's calls, so replies
  can be attributed to the events that caused them (bot token required).
- ``POST /commands/<id>`` — the ``response_url`` of slash commands and block actions.
- ``GET /link/`` — the Socket Mode WebSocket: ``hello`` on open, ``Ping from <host>`` control pings, pongs echoing
  client pings, the refresh lifecycle, the cap, ghosts, half-open sockets, 409 on upgrade.

The HTTP handlers live in :mod:`slackops.simulator.webapi` (mixed into :class:`Simulator`). All decisions live
in the pure modules (:mod:`registry`, :mod:`engine`, :mod:`ledger`); this module feeds them
frames and clock ticks and carries out what they return. Tokens the simulator issues are simulator-only and never
written to records or logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

from slackops import records
from slackops.errors import UsageError
from slackops.simulator.engine import AckResult, DeliveryEngine, EngineSettings, Send
from slackops.simulator.ledger import Event, EventEntry, Ledger, Scorecard
from slackops.simulator.registry import GHOST, LIVE, Registry, Timing
from slackops.simulator.scenario import ChaosStep, Scenario, load_scenario
from slackops.simulator.traffic import Identity, TrafficGenerator
from slackops.simulator.webapi import CONNECTIONS_WRITE, HTTP_ENDPOINT, WebApi

log = logging.getLogger(__name__)

#: How often the server clock ticks (deadlines, lifetimes, pings, traffic, chaos). Small against the 3 s deadline.
TICK_SECONDS = 0.02

#: Floor of the scaled server ping interval (real seconds).
MIN_PING_SECONDS = 0.5


@dataclass(frozen=True)
class ConnectionInfo:
    """A registration as :meth:`Simulator.connections` reports it."""

    id: str
    state: str  # live | half_open | ghost
    age_s: float
    debug: bool
    synthetic: bool


class _Socket:
    """One accepted WebSocket and its writer queue (frames go out in order, one writer per socket)."""

    def __init__(self, conn_id: str, ws: web.WebSocketResponse, transport: Any) -> None:
        self.id = conn_id
        self.ws = ws
        self.transport = transport
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.half_open = False
        #: who ended it: None while open; "client", "server" (refresh/close; no ghost), "network" (drop; ghost)
        self.ended_by: str | None = None
        self.last_ping_sent: float | None = None
        self.writer: asyncio.Task | None = None


class Simulator(WebApi):
    """A local Slack for Socket Mode clients. See the module docstring and README "slackops simulate"."""

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        time_scale: float = 1.0,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        recorder: Any = None,
        request_url: str | None = None,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.scenario = scenario or load_scenario("steady")
        self.time_scale = time_scale
        self.host = host
        self.port = port
        self.recorder = recorder
        self.rng = random.Random(seed)
        s = self.scenario.server
        self.settings = s
        self.registry = Registry(
            Timing(
                lifetime=self._scaled(s.lifetime),
                debug_lifetime=self._scaled(s.debug_lifetime),
                warning_lead=self._scaled(s.warning_lead),
                grace=self._scaled(s.grace),
                # Scaled, but no more often than twice a second: pings are for liveness, which clients
                # judge in real time, and a 10 s ping at scale 1200 would be a busy loop.
                ping_interval=max(self._scaled(s.ping_interval), MIN_PING_SECONDS)
                if s.ping_interval
                else 0.0,
                ghost_ttl=self._scaled(s.ghost_ttl),
                ghosts=s.ghosts,
                cap=s.cap,
            )
        )
        self.ledger = Ledger()
        self.engine = DeliveryEngine(
            EngineSettings(
                ack_deadline=self._scaled(s.ack_deadline) if s.scale_ack_deadline else s.ack_deadline,
                retry_delays=tuple(self._scaled(d) for d in s.retry_schedule),
                routing=s.routing,
                ack_any_connection=s.ack_any_connection,
                new_envelope_id_per_attempt=s.new_envelope_id_per_attempt,
                duplicate_share=s.duplicate_share,
                timeout_reason="http_timeout" if request_url else "timeout",
            ),
            self.ledger,
            self.registry,
            self.rng,
        )
        self.identity = Identity()
        self.traffic = TrafficGenerator(self.scenario.traffic, self.rng, identity=self.identity)
        # Simulator-only credentials: random per run, accepted by this process and nothing else.
        self.app_token = f"xapp-1-{self.identity.app_id}-{self.rng.randrange(10**12)}-{secrets.token_hex(16)}"
        self.bot_token = f"xoxb-{self.rng.randrange(10**12)}-{secrets.token_hex(12)}"
        self._app_tokens: dict[str, tuple[str, ...]] = {
            self.app_token: (CONNECTIONS_WRITE, "authorizations:read")
        }
        self.app_hash = hashlib.sha256(self.identity.app_id.encode()).hexdigest()
        self._tickets: dict[str, float] = {}
        self._sockets: dict[str, _Socket] = {}
        self._open_failures: deque[str] = deque()
        self._ratelimits: deque[float] = deque()
        self._upgrade_rejections: deque[int] = deque()
        self._open_calls: deque[float] = deque()
        self.link_disabled = False
        #: Events API over HTTP (for comparison): deliveries are POSTed here instead of sent on a socket
        self.request_url = request_url
        #: signs HTTP deliveries (X-Slack-Signature); simulator-only, like the tokens
        self.signing_secret = secrets.token_hex(16)
        self.subscriptions_disabled = False
        self._http: Any = None
        self._http_tasks: set[asyncio.Task] = set()
        self._http_outcomes: deque[tuple[float, bool]] = deque()
        #: answer client pings this many real seconds late (0 = at once)
        self.pong_delay = 0.0
        self._refused = 0
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started_at: float | None = None
        self._traffic_on = False
        self._traffic_started: float | None = None
        self._chaos_fired: dict[int, int] = {}
        self._last_close_by = "client"
        self._chaos_rng = random.Random(self.rng.random())

    # -- lifecycle -------------------------------------------------------------------------------------------

    def _scaled(self, seconds: float) -> float:
        return seconds / self.time_scale

    async def start(self) -> None:
        """Bind the server (port 0 picks a free port) and start the clock."""
        self._loop = asyncio.get_running_loop()
        app = web.Application()
        app.router.add_post("/api/apps.connections.open", self._connections_open)
        app.router.add_post("/api/{method}", self._web_api)
        app.router.add_get("/api/{method}", self._web_api)
        app.router.add_post("/commands/{event_id}", self._response_url)
        app.router.add_get("/link/", self._link)
        app.router.add_get("/link", self._link)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise UsageError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}",
                hint="Pick another --port, or 0 for any free port.",
            ) from None
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        self.traffic.response_base = f"http://{self.host}:{self.port}/commands/"
        self._started_at = self._loop.time()
        if self.request_url:
            # HTTP mode: Socket Mode is off for this app, and the Request URL is the one delivery target.
            self._http = aiohttp.ClientSession()
            self.registry.add_endpoint(HTTP_ENDPOINT, self._started_at)
            self.link_disabled = True
        self._ticker = asyncio.create_task(self._tick_forever())

    @property
    def api_url(self) -> str:
        """The Web API base URL, in slack-sdk's form (trailing slash): ``WebClient(base_url=sim.api_url)``."""
        return f"http://{self.host}:{self.port}/api/"

    async def stop(self) -> None:
        """Close every socket (clean close) and the server."""
        self._traffic_on = False
        if self._ticker:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for sock in list(self._sockets.values()):
            sock.ended_by = sock.ended_by or "server"
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sock.ws.close(code=1001, message=b"simulator stopping"), 1.0)
            if sock.transport is not None:
                sock.transport.abort()
        for task in list(self._http_tasks):
            task.cancel()
        if self._http is not None:
            await self._http.close()
        if self._runner:
            await self._runner.cleanup()

    def start_traffic(self) -> None:
        """Start the scenario's background traffic and its chaos schedule (times count from now)."""
        now = self._now()
        self._traffic_on = True
        self._traffic_started = now
        self._chaos_fired.clear()
        self.traffic.start(now)

    async def stop_traffic(self) -> None:
        """Stop generating traffic and chaos; events already in flight keep their deadlines and retries."""
        self._traffic_on = False

    def _now(self) -> float:
        assert self._loop is not None, "call await sim.start() first"
        return self._loop.time()

    # -- test and chaos controls -----------------------------------------------------------------------------

    def send_event(
        self,
        kind: str = "message",
        *,
        channel: str | None = None,
        user: str | None = None,
        text: str | None = None,
        thread_ts: str | None = None,
        pad_bytes: int = 0,
    ) -> list[Event]:
        """Inject one occurrence of ``kind`` (see ``TRAFFIC_KINDS``); returns the events (an app_mention may pair).

        ``pad_bytes`` grows the payload (Slack sends >50 KB block_actions; clients must reassemble fragments).
        """
        events = self.traffic.make(
            kind, time.time(), channel=channel, user=user, text=text, thread_ts=thread_ts, pad_bytes=pad_bytes
        )
        for event in events:
            event.origin = "injected"
            self._submit(event)
        return events

    def refresh(self, conn_id: str | None = None) -> None:
        """warning -> refresh_requested -> hard drop after the grace, on one socket or all live ones."""
        now = self._now()
        for reg in self._targets(conn_id):
            self.registry.refresh(reg.id, now)
        self._tick(now)

    def drop(self, conn_id: str | None = None) -> None:
        """Hard TCP drop without a close frame; the registration lingers as a ghost (if ghosts are on)."""
        for reg in self._targets(conn_id):
            sock = self._sockets.get(reg.id)
            if sock is not None:
                sock.ended_by = sock.ended_by or "network"
                sock.queue.put_nowait(("drop", None))

    def close(self, conn_id: str | None = None, code: int = 1000) -> None:
        """Close cleanly with a close frame (no ghost)."""
        for reg in self._targets(conn_id):
            sock = self._sockets.get(reg.id)
            if sock is not None:
                sock.ended_by = sock.ended_by or "server"
                sock.queue.put_nowait(("close", code))

    def half_open(self, conn_id: str | None = None) -> None:
        """The socket goes deaf and mute: no reading, no pongs, no writes, close frames ignored; still routable."""
        for reg in self._targets(conn_id):
            reg.half_open = True
            sock = self._sockets.get(reg.id)
            if sock is not None:
                sock.half_open = True

    def disable_link(self) -> None:
        """Socket Mode turned off: every socket gets disconnect/link_disabled and new sockets are refused so."""
        self.link_disabled = True
        for reg in self.registry.live():
            sock = self._sockets.get(reg.id)
            if sock is not None:
                self._send_control(sock, "link_disabled")
                sock.ended_by = sock.ended_by or "server"
                sock.queue.put_nowait(("close", 1000))

    def enable_link(self) -> None:
        self.link_disabled = False

    def fail_open(self, error: str = "internal_error", times: int = 1) -> None:
        """The next ``times`` apps.connections.open calls return HTTP 200 ``{"ok": false, "error": error}``."""
        self._open_failures.extend([error] * times)

    def ratelimit_open(self, retry_after: float = 30.0, times: int = 1) -> None:
        """The next ``times`` apps.connections.open calls get HTTP 429 with ``Retry-After`` (scenario seconds)."""
        self._ratelimits.extend([retry_after] * times)

    def reject_upgrade(self, times: int = 1, status: int = 409) -> None:
        """The next ``times`` WebSocket upgrades fail with HTTP ``status`` (Slack's envoy returned 409 Conflict)."""
        self._upgrade_rejections.extend([status] * times)

    def delay_pongs(self, seconds: float) -> None:
        """Answer client pings ``seconds`` (real) late; 0 restores prompt pongs."""
        self.pong_delay = max(0.0, seconds)

    def inject_frame(self, conn_id: str | None = None, data: str | bytes = "{not json") -> None:
        """Write a raw frame (malformed JSON text, or binary) to one or all live sockets: clients must survive it."""
        for reg in self._targets(conn_id):
            sock = self._sockets.get(reg.id)
            if sock is not None:
                sock.queue.put_nowait(("binary", data) if isinstance(data, bytes) else ("text", data))

    def stop_pings(self) -> None:
        self.registry.pings_enabled = False

    def start_pings(self) -> None:
        now = self._now()
        self.registry.pings_enabled = True
        for reg in self.registry.live():
            reg.next_ping = now + self.registry.timing.ping_interval

    def add_ghosts(self, count: int = 1) -> list[str]:
        """Plant ghost registrations (a crashed replica's sockets Slack still believes in)."""
        now = self._now()
        return [self.registry.plant_ghost(now).id for _ in range(count)]

    def make_app_token(self, scopes: tuple[str, ...] = (CONNECTIONS_WRITE,)) -> str:
        """Issue another simulator-only app-level token with the given scopes (e.g. none, for missing_scope)."""
        token = f"xapp-1-{self.identity.app_id}-{self.rng.randrange(10**12)}-{secrets.token_hex(16)}"
        self._app_tokens[token] = tuple(scopes)
        return token

    def connections(self) -> list[ConnectionInfo]:
        """Live, half-open and ghost registrations, oldest first."""
        now = self._now()
        out = []
        for reg in self.registry.routable(now):
            state = GHOST if reg.state == GHOST else ("half_open" if reg.half_open else LIVE)
            out.append(ConnectionInfo(reg.id, state, round(reg.age(now), 3), reg.debug, reg.synthetic))
        return out

    async def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every event is settled (acked, lost or retried out); ``False`` if ``timeout`` passed first."""
        deadline = self._now() + timeout
        while not self.engine.settled(self._now()):
            if self._now() > deadline:
                return False
            await asyncio.sleep(TICK_SECONDS)
        return True

    def scorecard(self) -> Scorecard:
        """The ground-truth scorecard so far."""
        now = self._now()
        elapsed = now - (self._started_at or now)
        return self.ledger.scorecard(
            now, scenario=self.scenario.name, duration_s=elapsed, gaps_ms=self.registry.gaps_ms
        )

    def entry(self, event_id: str) -> EventEntry | None:
        """The ledger entry of one event."""
        return self.ledger.entries.get(event_id)

    def _targets(self, conn_id: str | None) -> list:
        live = self.registry.live()
        if conn_id is None:
            return live
        return [r for r in live if r.id == conn_id]

    # -- the clock -------------------------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            try:
                self._tick(self._now())
            except Exception:  # pragma: no cover - a bug; keep the server alive and visible
                log.exception("simulator tick failed")
                self._rec("error", where="tick", error="exception")
            await asyncio.sleep(TICK_SECONDS)

    def _tick(self, now: float) -> None:
        if self._traffic_on:
            self._run_chaos(now)
            for event in self.traffic.due(now, time.time()):
                self._submit(event)
        for control in self.registry.tick(now):
            sock = self._sockets.get(control.conn)
            if sock is None:
                # A registration without a socket (its handler already ended): nothing to write.
                if control.action == "drop":
                    self.registry.forget(control.conn, now)
                continue
            if control.action == "ping":
                payload = f"Ping from {self.settings.host}".encode()
                sock.queue.put_nowait(("ping", payload))
            elif control.action == "drop":
                sock.ended_by = sock.ended_by or "server"
                if self.settings.refresh_close == "close":
                    sock.queue.put_nowait(("close", 1000))
                else:
                    sock.queue.put_nowait(("drop", None))
            elif not sock.half_open:  # a mute socket cannot tell its client anything
                self._send_control(sock, control.action)
        for send in self.engine.tick(now):
            self._deliver(send)
        self._report_failures()

    def _run_chaos(self, now: float) -> None:
        assert self._traffic_started is not None
        elapsed = (now - self._traffic_started) * self.time_scale
        for index, step in enumerate(self.scenario.chaos):
            due = step.times_fired(elapsed)
            while self._chaos_fired.get(index, 0) < due:
                self._chaos_fired[index] = self._chaos_fired.get(index, 0) + 1
                self._apply(step)

    def _apply(self, step: ChaosStep) -> None:
        """Carry out one chaos step (the schedule is data: see scenario.py)."""
        self._rec("chaos", action=step.action, target=step.target, detail=_chaos_detail(step))
        action = step.action
        if action in ("refresh", "drop", "close", "half_open"):
            for conn_id in self._pick(step.target):
                getattr(self, action)(conn_id)
        elif action == "disable_link":
            self.disable_link()
        elif action == "enable_link":
            self.enable_link()
        elif action == "fail_open":
            self.fail_open(step.error, step.times)
        elif action == "ratelimit_open":
            self.ratelimit_open(step.retry_after, step.times)
        elif action == "reject_upgrade":
            self.reject_upgrade(step.times, step.status)
        elif action == "stop_pings":
            self.stop_pings()
        elif action == "start_pings":
            self.start_pings()
        elif action == "delay_pongs":
            self.delay_pongs(step.delay)
        elif action == "garbage":
            self.inject_frame(None, "{not json")
            self.inject_frame(None, b"\x00\x01binary")
        elif action == "ghosts":
            self.add_ghosts(step.count)
        elif action == "burst":
            wall = time.time()
            for _ in range(step.count):
                for event in self.traffic.make(step.kind, wall):
                    self._submit(event)

    def _pick(self, target: str) -> list[str]:
        live = [r.id for r in self.registry.live() if not r.refreshed]
        if not live:
            return []
        if target == "all":
            return live
        if target == "oldest":
            return live[:1]
        if target == "newest":
            return live[-1:]
        return [self._chaos_rng.choice(live)]

    # -- delivery --------------------------------------------------------------------------------------------

    def _submit(self, event: Event) -> None:
        for send in self.engine.submit(event, self._now()):
            self._deliver(send)
        self._report_failures()

    def _deliver(self, send: Send) -> None:
        event = send.entry.event
        inner = event.payload.get("event", {}) if event.type == "events_api" else {}
        text = json.dumps(send.frame, separators=(",", ":"))
        self._rec(
            "envelope",
            conn=send.conn,
            envelope_id=send.attempt.envelope_id,
            type=event.type,
            event_id=event.event_id,
            event_type=inner.get("type") or event.payload.get("type") or event.kind,
            subtype=event.subtype,
            channel=event.channel,
            user=event.user,
            bot_id=event.bot_id,
            ts=event.ts,
            event_ts=inner.get("event_ts"),
            thread_ts=inner.get("thread_ts"),
            retry_attempt=send.frame.get("retry_attempt"),
            retry_reason=send.frame.get("retry_reason"),
            accepts_response_payload=event.accepts_response_payload,
            bytes=len(text.encode()),
        )
        if send.conn == HTTP_ENDPOINT:
            task = asyncio.create_task(self._post_http(send))
            self._http_tasks.add(task)
            task.add_done_callback(self._http_tasks.discard)
            return
        if send.blackhole or send.conn is None:
            return  # a ghost, a half-open socket or no socket at all: the attempt vanishes
        sock = self._sockets.get(send.conn)
        if sock is not None:
            sock.queue.put_nowait(("text", text))

    def _report_failures(self) -> None:
        while self.engine.failures:
            entry, reason = self.engine.failures.pop(0)
            self._rec("error", where="delivery", error=reason, detail=entry.event.event_id)

    def _send_control(self, sock: _Socket, reason: str) -> None:
        frame = {"type": "disconnect", "reason": reason, "debug_info": {"host": self.settings.host}}
        sock.queue.put_nowait(("text", json.dumps(frame)))
        self._rec("disconnect", conn=sock.id, reason=reason, host=self.settings.host)

    # -- WebSocket -------------------------------------------------------------------------------------------

    async def _link(self, request: web.Request) -> web.StreamResponse:
        now = self._now()
        if self._upgrade_rejections:
            status = self._upgrade_rejections.popleft()
            self._rec("error", where="link", error=f"http_{status}", detail="injected upgrade failure")
            return web.Response(status=status, text="Conflict" if status == 409 else "Rejected")
        ticket = request.query.get("ticket", "")
        expiry = self._tickets.pop(ticket, None)
        if expiry is None or now > expiry:
            # Tickets are single-use and short-lived: all SDKs call apps.connections.open before every connect.
            reason = "ticket_expired" if expiry is not None else "invalid_ticket"
            self._rec("error", where="link", error=reason)
            return web.Response(status=401, text=reason)
        debug = request.query.get("debug_reconnects") == "true"
        ws = web.WebSocketResponse(autoping=False, autoclose=False, max_msg_size=0, compress=False)
        await ws.prepare(request)
        if self.link_disabled:
            return await self._refuse(ws, "link_disabled")
        reg = self.registry.admit(now, debug=debug)
        if reg is None:
            return await self._refuse(ws, "too_many_websockets")
        sock = _Socket(reg.id, ws, request.transport)
        self._sockets[reg.id] = sock
        self.ledger.connections_opened += 1
        gaps_before = len(self.registry.gaps_ms)
        self._rec("connect", conn=reg.id, attempt=self.ledger.connections_opened, url_host=request.host)
        if len(self.registry.gaps_ms) > gaps_before:
            self._rec(
                "reconnect",
                conn=reg.id,
                initiator=self._last_close_by,
                cause="new_socket",
                gap_ms=round(self.registry.gaps_ms[-1], 1),
            )
        hello = {
            "type": "hello",
            "num_connections": self.registry.count(now),
            "debug_info": {
                "host": self.settings.host,
                "build_number": self.settings.build_number,
                "approximate_connection_time": round(self.registry.lifetime_of(reg) * self.time_scale),
            },
            "connection_info": {"app_id": self.identity.app_id},
        }
        sock.queue.put_nowait(("text", json.dumps(hello)))
        self._rec(
            "hello",
            conn=reg.id,
            num_connections=hello["num_connections"],
            host=self.settings.host,
            build_number=self.settings.build_number,
            approximate_connection_time=hello["debug_info"]["approximate_connection_time"],
        )
        sock.writer = asyncio.create_task(self._write_forever(sock))
        code, clean = None, False
        try:
            code, clean = await self._read_forever(sock)
        finally:
            await self._finish(sock, code, clean)
        return ws

    async def _refuse(self, ws: web.WebSocketResponse, reason: str) -> web.WebSocketResponse:
        """Send a disconnect instead of hello and close (python-slack-sdk#1940 wire log: no hello first)."""
        self._refused += 1
        conn_id = f"refused{self._refused}"
        if reason == "too_many_websockets":
            self.ledger.connections_refused += 1
        frame = {
            "type": "disconnect",
            "reason": reason,
            "num_connections": self.registry.count(self._now()),
            "debug_info": {"host": self.settings.host},
            "connection_info": {"app_id": self.identity.app_id},
        }
        self._rec("disconnect", conn=conn_id, reason=reason, host=self.settings.host)
        with contextlib.suppress(Exception):
            await ws.send_str(json.dumps(frame))
            await asyncio.wait_for(ws.close(code=1000), 1.0)
        self._rec("close", conn=conn_id, code=1000, by="server", clean=True)
        return ws

    async def _read_forever(self, sock: _Socket) -> tuple[int | None, bool]:
        """Read frames until the socket ends; return (close code, whether a close handshake happened)."""
        ws = sock.ws
        while True:
            msg = await ws.receive()
            if sock.half_open:
                if msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR):
                    return None, False
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING):
                    # Deaf: the close frame is ignored. Wait for the client to give up and drop TCP.
                    await self._wait_transport_closed(sock)
                    return None, False
                continue
            if msg.type == WSMsgType.TEXT:
                self._on_text(sock, msg.data)
            elif msg.type == WSMsgType.BINARY:
                self._rec("error", conn=sock.id, where="frame", error="binary_frame")
            elif msg.type == WSMsgType.PING:
                # python-slack-sdk's staleness check needs the ping payload echoed back.
                if self.pong_delay > 0:
                    sock.queue.put_nowait(("pong_later", msg.data))
                else:
                    await ws.pong(msg.data)
                self._rec("ping", conn=sock.id, direction="received", payload_kind=_payload_kind(msg.data))
                self._rec("pong", conn=sock.id, direction="sent", payload_kind=_payload_kind(msg.data))
            elif msg.type == WSMsgType.PONG:
                rtt = None
                if sock.last_ping_sent is not None:
                    rtt = round((self._now() - sock.last_ping_sent) * 1000.0, 3)
                self._rec("pong", conn=sock.id, direction="received", rtt_ms=rtt, payload_kind="server")
            elif msg.type == WSMsgType.CLOSE:
                # The client said goodbye: stop routing deliveries here now, not after the closing handshake
                # (a delivery sent while our reply is in flight could never be acked: the client has already
                # sent its close frame and may send no more data frames).
                self.registry.closed(sock.id, self._now(), clean=True)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(code=1000), 1.0)
                return msg.data, True
            else:  # CLOSING, CLOSED, ERROR: the socket ended without (or after) a handshake
                return ws.close_code, False

    async def _wait_transport_closed(self, sock: _Socket) -> None:
        while sock.transport is not None and not sock.transport.is_closing() and sock.ended_by is None:
            await asyncio.sleep(0.1)

    def _on_text(self, sock: _Socket, data: str) -> None:
        try:
            frame = json.loads(data)
        except ValueError:
            self._rec("error", conn=sock.id, where="frame", error="not_json")
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("envelope_id"), str):
            self._rec("error", conn=sock.id, where="frame", error="not_an_ack")
            return
        result = self.engine.ack(frame["envelope_id"], sock.id, self._now(), frame.get("payload"))
        self._rec_ack(result, sock.id)

    def _rec_ack(self, result: AckResult, arrived_on: str) -> None:
        """One ``ack`` record per ack Slack took (``ok`` true; lateness shows in ``ack_ms``, a payload problem in
        ``error``), as every producer writes them; acks Slack ignores become ``error`` records instead."""
        if not result.counted:
            self._rec("error", conn=arrived_on, where="ack", error=result.error, detail=result.envelope_id)
            return
        assert result.attempt is not None and result.entry is not None
        self._rec(
            "ack",
            conn=result.attempt.conn,
            envelope_id=result.envelope_id,
            event_id=result.entry.event.event_id,
            ack_ms=round(result.ack_ms, 3) if result.ack_ms is not None else None,
            ok=True,
            ack_conn=arrived_on,
            error=result.error,
        )

    async def _write_forever(self, sock: _Socket) -> None:
        ws = sock.ws
        while True:
            what, data = await sock.queue.get()
            if sock.half_open:
                if what not in ("drop", "close"):
                    continue  # a half-open socket: nothing reaches the client
                what = "drop"  # and a mute socket cannot send a close frame either
            try:
                if what == "text":
                    await ws.send_str(data)
                elif what == "binary":
                    await ws.send_bytes(data)
                elif what == "pong_later":
                    asyncio.get_running_loop().call_later(
                        self.pong_delay, sock.queue.put_nowait, ("pong", data)
                    )
                elif what == "pong":
                    await ws.pong(data)
                elif what == "ping":
                    sock.last_ping_sent = self._now()
                    await ws.ping(data)
                    self._rec("ping", conn=sock.id, direction="sent", payload_kind="server")
                elif what == "close":
                    await asyncio.wait_for(ws.close(code=data), 2.0)
                    if sock.transport is not None:
                        sock.transport.abort()
                    return
                elif what == "drop":
                    # Hard drop: no close frame, the TCP connection just ends (what Slack does after a refresh).
                    if sock.transport is not None:
                        sock.transport.abort()
                    return
            except (TimeoutError, ConnectionError, RuntimeError):
                if sock.transport is not None:
                    sock.transport.abort()
                return

    async def _finish(self, sock: _Socket, code: int | None, clean: bool) -> None:
        now = self._now()
        if sock.writer is not None:
            sock.writer.cancel()
        self._sockets.pop(sock.id, None)
        if sock.ended_by == "server":
            self.registry.forget(sock.id, now)
            by = "server"
            clean = clean or self.settings.refresh_close == "close"
        elif sock.ended_by == "network":
            self.registry.closed(sock.id, now, clean=False)
            by, clean = "network", False
        else:
            self.registry.closed(sock.id, now, clean=clean)
            by = "client" if clean else "network"
        self._last_close_by = "server" if by == "server" else "client"
        self._rec("close", conn=sock.id, code=code, by=by, clean=clean)

    # -- records ---------------------------------------------------------------------------------------------

    def _rec(self, kind: str, conn: str | None = None, **fields: Any) -> None:
        if self.recorder is None:
            return
        try:
            self.recorder.write(records.make(kind, t=time.time(), source="sim", conn=conn, **fields))
        except Exception:  # pragma: no cover - a broken sink must not take the simulator down
            log.exception("could not write a %s record", kind)


def _chaos_detail(step: ChaosStep) -> str | None:
    if step.action == "fail_open":
        return f"{step.error} x{step.times}"
    if step.action in ("ratelimit_open", "reject_upgrade"):
        return f"x{step.times}"
    if step.action in ("burst", "ghosts"):
        return f"{step.count} {step.kind if step.action == 'burst' else 'ghosts'}"
    if step.action == "delay_pongs":
        return f"{step.delay:g}s"
    return None


def _payload_kind(data: bytes) -> str:
    if not data:
        return "empty"
    return "sdk" if data[:1].isalnum() else "other"


class SimulatorThread:
    """Run a :class:`Simulator` on its own event-loop thread, for synchronous code (slack-sdk's builtin client).

    ``with SimulatorThread(scenario, time_scale=60) as sim: ...`` — attributes are read from the simulator;
    methods are called on the simulator's loop (coroutines are awaited there) and their results returned.
    """

    def __init__(self, scenario: Scenario | None = None, **kwargs: Any) -> None:
        self._scenario = scenario
        self._kwargs = kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="slackops-simulator", daemon=True)
        self.sim: Simulator | None = None

    def __enter__(self) -> SimulatorThread:
        self._thread.start()

        async def build() -> Simulator:
            sim = Simulator(self._scenario, **self._kwargs)
            await sim.start()
            return sim

        self.sim = asyncio.run_coroutine_threadsafe(build(), self._loop).result(30)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.sim is not None:
            asyncio.run_coroutine_threadsafe(self.sim.stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)`` on the simulator's loop and return its result (awaiting coroutines)."""

        async def run() -> Any:
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(120)

    def __getattr__(self, name: str) -> Any:
        sim = self.__dict__.get("sim")
        if sim is None:
            raise AttributeError(name)
        value = getattr(sim, name)
        if callable(value):
            return lambda *a, **kw: self.call(value, *a, **kw)
        return value
