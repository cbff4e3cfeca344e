"""The connection manager: N Socket Mode sockets kept alive the way Slack's behaviour demands.

Guards, each tied to a failure mode:

- **make-before-break** (disconnect-storm, lost events): on ``warning`` / ``refresh_requested`` a replacement is
  opened and its ``hello`` awaited *before* the old socket is closed, so there is always a registered socket for
  Slack to route to. The old socket keeps delivering and acking what was already in flight.
- **transport liveness** (stale-watchdog, silent-deafness): a socket is replaced only when the session says it
  has been continuously unhealthy (no pong / no server ping) past a threshold — never because no events came.
- **generation guards**: every socket belongs to a slot and a generation; a superseded (retired) socket's close
  or errors cannot trigger another reconnect or change which socket a slot points at.
- **one reconnect at a time** and **full-jitter backoff honouring Retry-After** (429 herds, too_many_websockets).
- **fatal auth errors stop** with a message saying what to do, instead of looping (auth-failure).

Every step emits records (``connect``, ``hello``, ``drift``, ``disconnect``, ``close``, ``ping``, ``pong``,
``envelope``, ``ack``, ``reconnect``, ``api_call``, ``error``) through ``recorder.write``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from websockets.exceptions import InvalidStatus, WebSocketException

from slackops import records
from slackops.errors import AuthError, NetworkError, SlackopsError
from slackops.hints import auth_error_for
from slackops.protocol import (
    AckFailed,
    AckOverdue,
    AckSent,
    Backoff,
    Closed,
    DisconnectRequested,
    Envelope,
    EnvelopeReceived,
    Event,
    LivenessLost,
    LivenessPolicy,
    Opened,
    PongReceived,
    ProtocolError,
    SendPing,
    ServerPingReceived,
    Unrecognized,
)
from slackops.redact import url_host
from slackops.transport.connection import SocketConnection
from slackops.transport.webapi import OpenFailed, open_socket_url

EnvelopeHandler = Callable[[Envelope, float, SocketConnection], Awaitable[None]]


class Recorder(Protocol):
    def write(self, rec: dict[str, Any]) -> None: ...


@dataclass
class ManagerConfig:
    """Settings of a :class:`ConnectionManager`."""

    api_url: str
    app_token: str
    #: sockets to hold (Slack allows up to 10 per app, counting every replica)
    connections: int = 1
    #: ``source`` of the records: ``probe`` for watch, ``bot`` for the reference bot
    source: str = "probe"
    instance: str | None = None
    liveness: LivenessPolicy = field(default_factory=LivenessPolicy)
    backoff: Backoff = field(default_factory=Backoff)
    #: ask Slack for 360 s connection lifetimes (rehearse refreshes against real Slack)
    debug_reconnects: bool = False
    #: False only to demonstrate what break-before-make loses (tests, benchmarks)
    make_before_break: bool = True
    open_timeout_s: float = 10.0
    hello_timeout_s: float = 10.0
    #: after the replacement's hello, keep the old socket this long so in-flight envelopes arrive and get acked
    drain_grace_s: float = 0.5
    #: record message text (opt-in)
    record_text: bool = False
    #: at start, give up after this many failed attempts (an unreachable API URL is a config problem); once
    #: running, reconnects retry for as long as it takes
    start_attempts: int = 6

    def __post_init__(self) -> None:
        if not 1 <= self.connections <= 10:
            from slackops.errors import UsageError

            raise UsageError(
                f"connections must be between 1 and 10, got {self.connections}",
                hint="Slack allows at most 10 Socket Mode connections per app, across all replicas.",
            )


class _Refused(Exception):
    """The new socket was refused (``too_many_websockets`` instead of ``hello``) or never said hello."""


@dataclass
class ManagerStats:
    envelopes: int = 0
    acks: int = 0
    acks_failed: int = 0
    reconnects: int = 0
    protocol_errors: int = 0
    #: per-reconnect gap (ms) during which the slot had no socket able to receive
    gaps_ms: list[float] = field(default_factory=list)


class ConnectionManager:
    """Hold ``config.connections`` live Socket Mode sockets; hand every envelope to ``on_envelope``.

    ``on_envelope(envelope, received_at, conn)`` runs inline on the receiving socket's read loop, in arrival
    order; it should ack quickly (``await manager.ack(envelope.envelope_id, via=conn)``) and hand real work
    elsewhere. With no ``on_envelope`` every envelope is acked at once (what ``watch --ack`` does).
    """

    def __init__(
        self,
        config: ManagerConfig,
        *,
        on_envelope: EnvelopeHandler | None = None,
        recorder: Recorder | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        auto_ack: bool = True,
    ) -> None:
        self.config = config
        self._on_envelope = on_envelope
        self._recorder = recorder
        self._clock = clock
        self._wall = wall
        self._rand = rand
        self._auto_ack = auto_ack
        self._slots: list[SocketConnection | None] = [None] * config.connections
        self._generation = 0
        self._sockets: set[SocketConnection] = set()
        self._reconnect_lock = asyncio.Lock()
        #: slot -> monotonic time its previous socket stopped being able to receive, until the next hello
        self._gap_start: dict[int, float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._stopping = False
        self.fatal: SlackopsError | None = None
        self.stopped = asyncio.Event()
        self.stats = ManagerStats()
        self._envelope_events: dict[str, str] = {}

    # -- public -------------------------------------------------------------------------------------------

    @property
    def live(self) -> bool:
        """At least one socket is registered and receiving (for ``/healthz``)."""
        return any(s.session.is_live for s in self._sockets)

    @property
    def live_count(self) -> int:
        return sum(1 for s in self._sockets if s.session.is_live)

    @property
    def sockets(self) -> list[SocketConnection]:
        return sorted(self._sockets, key=lambda s: (s.slot, s.generation))

    async def start(self) -> None:
        """Open every slot's socket and wait for its ``hello``. Raises :class:`AuthError` on token problems."""
        self._http = aiohttp.ClientSession()
        try:
            for slot in range(self.config.connections):
                await self._replace(slot, None, initiator="client", cause="start")
                if self.fatal is not None:
                    raise self.fatal
        except BaseException:
            await self.close()
            raise

    async def ack(
        self,
        envelope_id: str,
        payload: dict[str, Any] | str | None = None,
        via: SocketConnection | None = None,
    ) -> bool:
        """Ack on ``via`` if it can still send, else on any other open socket (Slack accepts acks on any of the
        app's sockets, and slack-sdk relies on that after every reconnect)."""
        reason = "no open socket"
        for conn in self._ack_candidates(via):
            result = await conn.ack(envelope_id, payload)
            if isinstance(result, AckSent):
                self.stats.acks += 1
                self._write(
                    "ack",
                    conn=via.conn_id if via is not None else conn.conn_id,
                    envelope_id=envelope_id,
                    event_id=self._envelope_events.pop(envelope_id, None),
                    ack_ms=None if result.ack_ms is None else round(result.ack_ms, 3),
                    ok=True,
                    ack_conn=conn.conn_id,
                )
                return True
            reason = result.reason
        self.stats.acks_failed += 1
        self._write(
            "ack",
            conn=via.conn_id if via is not None else None,
            envelope_id=envelope_id,
            event_id=self._envelope_events.pop(envelope_id, None),
            ok=False,
            error=reason,
        )
        return False

    def _ack_candidates(self, via: SocketConnection | None) -> Iterator[SocketConnection]:
        """``via`` if it can send, then the other open sockets, newest first (sorted only if ``via`` failed)."""
        if via is not None and via.can_send:
            yield via
        for s in sorted(self._sockets, key=lambda s: -s.generation):
            if s is not via and s.can_send:
                yield s

    async def run(self) -> None:
        """Wait until :meth:`stop_receiving` (or a fatal error). Raises the fatal :class:`AuthError` if any."""
        await self.stopped.wait()
        if self.fatal is not None:
            raise self.fatal

    async def stop_receiving(self) -> None:
        """Close every socket cleanly (close frames, so Slack does not keep ghost registrations).

        The first step of a graceful shutdown: nothing new arrives after this returns.
        """
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(s.close() for s in list(self._sockets)), return_exceptions=True)
        await asyncio.gather(*(s.wait_closed() for s in list(self._sockets)), return_exceptions=True)
        self.stopped.set()

    async def close(self) -> None:
        await self.stop_receiving()
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- reconnecting -------------------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replace(self, slot: int, old: SocketConnection | None, *, initiator: str, cause: str) -> None:
        """Give ``slot`` a new socket in place of ``old``. One reconnect at a time, across all slots."""
        async with self._reconnect_lock:
            if self._stopping or self._slots[slot] is not old:
                return  # generation guard: this slot was already replaced (or we are shutting down)
            if old is not None and not self.config.make_before_break:
                # Break-before-make, kept only to show what it costs: the slot is deaf until the next hello.
                old.retired = True
                self._gap_start.setdefault(slot, self._clock())
                await old.close()
            attempt = 0
            while not self._stopping:
                try:
                    new = await self._connect(slot, attempt)
                    break
                except AuthError as exc:
                    await self._fail(exc)
                    return
                except (TimeoutError, OpenFailed, _Refused, OSError, WebSocketException) as exc:
                    retry_after = exc.retry_after if isinstance(exc, OpenFailed) else None
                    delay = self.config.backoff.delay(attempt, retry_after=retry_after, rand=self._rand)
                    self._write(
                        "error", where="reconnect", error=_describe(exc), detail=f"retry in {delay:.2f}s"
                    )
                    attempt += 1
                    if old is None and attempt >= self.config.start_attempts:
                        await self._fail(
                            NetworkError(
                                f"could not open a Socket Mode connection after {attempt} attempts: "
                                f"{_describe(exc)}",
                                hint=f"Check that {self.config.api_url} is reachable from here "
                                "(proxy, DNS, firewall) and that Slack's status page shows no incident.",
                            )
                        )
                        return
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self.stopped.wait(), delay)
            else:
                return
            if self._stopping:
                await new.close()
                return
            self._slots[slot] = new
            gap_start = self._gap_start.pop(slot, None)
            gap_ms = 0.0 if gap_start is None else (self._clock() - gap_start) * 1000.0
            if old is not None:
                self.stats.reconnects += 1
                self.stats.gaps_ms.append(gap_ms)
                self._write(
                    "reconnect", conn=new.conn_id, initiator=initiator, cause=cause, gap_ms=round(gap_ms, 3)
                )
                old.retired = True
                if not old.closed.is_set():
                    self._spawn(self._drain(old))

    async def _drain(self, old: SocketConnection) -> None:
        # The replacement already said hello: Slack can route there. Give envelopes already in flight on the
        # old socket a moment to arrive and be acked, then close it with a close frame.
        await asyncio.sleep(self.config.drain_grace_s)
        await old.close()

    async def _connect(self, slot: int, attempt: int) -> SocketConnection:
        assert self._http is not None
        opened = await open_socket_url(
            self._http,
            self.config.api_url,
            self.config.app_token,
            record=self._write_record,
            source=self.config.source,
            debug_reconnects=self.config.debug_reconnects,
            timeout_s=self.config.open_timeout_s,
        )
        self._generation += 1
        prefix = f"{self.config.instance}." if self.config.instance else ""
        conn = SocketConnection(
            f"{prefix}s{slot}.{self._generation}",
            opened.url,
            slot=slot,
            generation=self._generation,
            on_event=self._on_event,
            liveness=self.config.liveness,
            clock=self._clock,
        )
        self._write("connect", conn=conn.conn_id, attempt=attempt, url_host=url_host(opened.url))
        try:
            await conn.connect(self.config.open_timeout_s)
        except InvalidStatus as exc:
            # e.g. HTTP 409 Conflict during the upgrade when several instances connect at once.
            raise _Refused(f"handshake refused: HTTP {exc.response.status_code}") from None
        self._sockets.add(conn)
        try:
            await asyncio.wait_for(conn.settled.wait(), self.config.hello_timeout_s)
        except TimeoutError:
            conn.retired = True
            await conn.close()
            raise _Refused("no hello within the timeout") from None
        if conn.refused is not None or not conn.session.is_live:
            conn.retired = True
            await conn.close()
            reason = conn.refused.disconnect.reason if conn.refused is not None else "closed before hello"
            if reason == "link_disabled":
                raise auth_error_for("link_disabled")
            raise _Refused(reason)
        return conn

    async def _fail(self, exc: SlackopsError) -> None:
        self.fatal = exc
        where = "auth" if isinstance(exc, AuthError) else "start"
        code = exc.error if isinstance(exc, AuthError) and exc.error else type(exc).__name__
        self._write("error", where=where, error=code, detail=exc.message)
        if not self._stopping:
            self._spawn(self.stop_receiving())

    # -- session events -----------------------------------------------------------------------------------

    async def _on_event(self, conn: SocketConnection, event: Event) -> None:
        if isinstance(event, EnvelopeReceived):
            env = event.envelope
            self.stats.envelopes += 1
            if env.event.event_id:
                self._envelope_events[env.envelope_id] = env.event.event_id
            fields = env.record_fields()
            if self.config.record_text and env.type == "events_api":
                ev = env.payload.get("event")
                if isinstance(ev, dict) and isinstance(ev.get("text"), str):
                    fields["text"] = ev["text"]
            self._write("envelope", conn=conn.conn_id, **fields)
            if self._on_envelope is not None:
                await self._on_envelope(env, event.received_at, conn)
            elif self._auto_ack:
                await self.ack(env.envelope_id, via=conn)
        elif isinstance(event, Opened):
            own = sum(1 for s in self._sockets if not s.closed.is_set())
            hello = event.hello
            self._write(
                "hello",
                conn=conn.conn_id,
                num_connections=hello.num_connections,
                own_connections=own,
                host=hello.host,
                build_number=hello.build_number,
                approximate_connection_time=hello.approximate_connection_time,
            )
            if hello.num_connections is not None and hello.num_connections > own:
                # Ghost registrations or another consumer on this token: both swallow deliveries.
                self._write(
                    "drift", conn=conn.conn_id, num_connections=hello.num_connections, own_connections=own
                )
        elif isinstance(event, DisconnectRequested):
            d = event.disconnect
            self._write("disconnect", conn=conn.conn_id, reason=d.reason, host=d.host)
            if d.is_fatal:
                await self._fail(auth_error_for("link_disabled"))
            elif not event.before_hello and not conn.retired:
                self._spawn(self._replace(conn.slot, conn, initiator="server", cause=d.reason))
        elif isinstance(event, Closed):
            self._write(
                "close",
                conn=conn.conn_id,
                code=event.code,
                reason=event.reason or None,
                by=event.by,
                clean=event.clean,
            )
            self._sockets.discard(conn)
            if not conn.retired and not self._stopping and self._slots[conn.slot] is conn:
                self._gap_start.setdefault(conn.slot, self._clock())
                cause = "dropped" if event.by == "network" else f"closed:{event.code}"
                self._spawn(self._replace(conn.slot, conn, initiator="server", cause=cause))
        elif isinstance(event, LivenessLost):
            self._write(
                "error",
                conn=conn.conn_id,
                where="liveness",
                error=event.reason,
                detail=f"silent {event.silent_for_s:.1f}s",
            )
            if not conn.retired and self._slots[conn.slot] is conn:
                self._spawn(self._replace_dead(conn, event.reason))
        elif isinstance(event, SendPing):
            self._write("ping", conn=conn.conn_id, direction="sent", payload_kind="client")
        elif isinstance(event, ServerPingReceived):
            self._write("ping", conn=conn.conn_id, direction="received", payload_kind="server")
        elif isinstance(event, PongReceived):
            rtt = None if event.rtt_ms is None else round(event.rtt_ms, 3)
            self._write("pong", conn=conn.conn_id, direction="received", rtt_ms=rtt)
        elif isinstance(event, AckOverdue):
            self._write(
                "error", conn=conn.conn_id, where="ack_deadline", error="overdue", detail=event.envelope_id
            )
        elif isinstance(event, ProtocolError):
            self.stats.protocol_errors += 1
            self._write(
                "error",
                conn=conn.conn_id,
                where="frame",
                error=event.error.problem,
                detail=event.error.detail,
            )
        elif isinstance(event, Unrecognized):
            self._write(
                "error", conn=conn.conn_id, where="frame", error="unknown_type", detail=str(event.frame.type)
            )
        elif isinstance(event, (AckSent, AckFailed)):
            pass  # recorded by ack()

    async def _replace_dead(self, conn: SocketConnection, reason: str) -> None:
        # The socket is unresponsive: treat the slot as deaf from now, replace it, and drop the old TCP
        # connection (a close frame would never be answered by a half-open peer).
        self._gap_start.setdefault(conn.slot, self._clock())
        await self._replace(conn.slot, conn, initiator="ping_timeout", cause=reason)
        conn.abort()

    # -- records ------------------------------------------------------------------------------------------

    def _write(self, kind: str, conn: str | None = None, **fields: Any) -> None:
        if self._recorder is None:
            return
        self._recorder.write(
            records.make(
                kind,
                t=self._wall(),
                source=self.config.source,
                conn=conn,
                instance=self.config.instance,
                **fields,
            )
        )

    def _write_record(self, rec: dict[str, Any]) -> None:
        if self._recorder is not None:
            if self.config.instance:
                rec["instance"] = self.config.instance
            self._recorder.write(rec)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]
