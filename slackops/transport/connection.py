"""One Socket Mode WebSocket: the ``websockets`` library doing I/O around a sans-I/O :class:`Session`.

The session decides; this class only moves bytes and reads the clock. Control frames matter here: Slack's
keepalive is WebSocket PING/PONG, which the library normally handles invisibly, so a small subclass of its
connection reports them to the session (liveness and round-trip times are judged from them).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode

from slackops.protocol import (
    AckFailed,
    AckSent,
    Event,
    LivenessPolicy,
    Opened,
    SendClose,
    SendPing,
    SendPong,
    SendText,
    Session,
    State,
)
from slackops.protocol.session import Closed, DisconnectRequested

#: Slack payloads (large block_actions, view submissions) can exceed websockets' 1 MiB default.
MAX_FRAME_BYTES = 16 * 1024 * 1024
#: A half-open peer never answers our close frame; stop waiting after this and drop the TCP connection.
CLOSE_TIMEOUT_S = 2.0

EventHandler = Callable[["SocketConnection", Event], Awaitable[None]]


class _ControlFrameConnection(ClientConnection):
    """The library's connection, reporting PING and PONG frames to a callback."""

    on_control: Callable[[Opcode, bytes], None] | None = None

    def process_event(self, event) -> None:  # type: ignore[no-untyped-def]
        super().process_event(event)
        opcode = getattr(event, "opcode", None)
        if self.on_control is not None and opcode in (Opcode.PING, Opcode.PONG):
            self.on_control(opcode, bytes(event.data))


class SocketConnection:
    """A Socket Mode WebSocket with its session.

    ``on_event`` receives every session event except the frames to send, which this class sends itself
    (:class:`SendPing` is also passed on after sending, so it can be recorded).
    """

    def __init__(
        self,
        conn_id: str,
        url: str,
        *,
        slot: int,
        generation: int,
        on_event: EventHandler,
        liveness: LivenessPolicy,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conn_id = conn_id
        self.slot = slot
        self.generation = generation
        self._url = url
        self._on_event = on_event
        self._clock = clock
        self.session = Session(conn_id, created_at=clock(), liveness_policy=liveness)
        self._ws: _ControlFrameConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        #: set once ``hello`` arrives (or the socket is refused / closed before it)
        self.settled = asyncio.Event()
        self.closed = asyncio.Event()
        #: a replacement took over this socket's slot: its close must not trigger another reconnect
        self.retired = False
        self.refused: DisconnectRequested | None = None
        self._pending_control: list[Event] = []
        self._wake = asyncio.Event()

    # -- life cycle ---------------------------------------------------------------------------------------

    async def connect(self, open_timeout: float = 10.0) -> None:
        """Open the WebSocket and start reading. Raises ``OSError``/``websockets`` errors on failure."""
        ws = await connect(
            self._url,
            ping_interval=None,  # the session pings (we need the payloads to time round trips)
            close_timeout=CLOSE_TIMEOUT_S,
            max_size=MAX_FRAME_BYTES,
            compression=None,
            open_timeout=open_timeout,
            create_connection=_ControlFrameConnection,
            user_agent_header="slackops",
        )
        ws.on_control = self._control
        self._ws = ws
        self._tasks = [
            asyncio.create_task(self._receive(), name=f"slackops-recv-{self.conn_id}"),
            asyncio.create_task(self._tick(), name=f"slackops-tick-{self.conn_id}"),
        ]

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close cleanly with a close frame; give up waiting after :data:`CLOSE_TIMEOUT_S`."""
        events = self.session.close(self._clock(), code, reason)
        await self._dispatch(events)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.closed.wait(), CLOSE_TIMEOUT_S * 2)
        if not self.closed.is_set():
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection without a close handshake (the peer is not answering)."""
        if self._ws is not None and self._ws.transport is not None:
            self._ws.transport.abort()

    async def wait_closed(self) -> None:
        await self.closed.wait()
        for task in self._tasks:
            if task is not asyncio.current_task():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    @property
    def buffered(self) -> int:
        """Frames already read off the network and not yet handed to the session (0 when unknown).

        The receive loop takes these without yielding to the event loop, so a consumer can batch work across
        them (the reference bot commits them in one transaction) and finish the batch when this reaches 0.
        """
        assembler = getattr(self._ws, "recv_messages", None)
        frames = getattr(assembler, "frames", None)
        try:
            return len(frames) if frames is not None else 0
        except TypeError:  # another websockets version's internals: report nothing, so nobody waits
            return 0

    @property
    def can_send(self) -> bool:
        return self._ws is not None and self.session.state is not State.CLOSED and not self.closed.is_set()

    # -- acks ---------------------------------------------------------------------------------------------

    async def ack(self, envelope_id: str, payload: dict | str | None = None) -> AckSent | AckFailed:
        """Send the ack frame now. The latency is taken when the frame has been handed to the socket."""
        if not self.can_send:
            return AckFailed(envelope_id, "socket closed")
        events = self.session.ack(envelope_id, self._clock(), payload)
        result: AckSent | AckFailed = AckFailed(envelope_id, "socket closed")
        for event in events:
            if isinstance(event, SendText):
                assert self._ws is not None
                try:
                    await self._ws.send(event.data)
                except ConnectionClosed:
                    return AckFailed(envelope_id, "socket closed while sending")
            elif isinstance(event, (AckSent, AckFailed)):
                result = event
        return result

    # -- loops --------------------------------------------------------------------------------------------

    def _control(self, opcode: Opcode, data: bytes) -> None:
        # Runs inside the library's frame parser: no awaiting here. The session answers are queued and
        # flushed by the receive/tick loops (the library already replied to PING with PONG).
        now = self._clock()
        if opcode is Opcode.PING:
            self._pending_control.extend(self.session.receive_ping(data, now))
        else:
            self._pending_control.extend(self.session.receive_pong(data, now))
        # Wake the ticker so pings/pongs are recorded promptly even on a socket with no text traffic.
        self._wake.set()

    async def _flush_control(self) -> None:
        if self._pending_control:
            events, self._pending_control = self._pending_control, []
            await self._dispatch(events)

    async def _receive(self) -> None:
        assert self._ws is not None
        ws = self._ws
        code: int | None = None
        reason = ""
        try:
            async for message in ws:
                await self._flush_control()
                now = self._clock()
                if isinstance(message, str):
                    events = self.session.receive_text(message, now)
                else:
                    events = self.session.receive_binary(message, now)
                await self._dispatch(events)
        except ConnectionClosed as exc:
            if exc.rcvd is not None:
                code, reason = exc.rcvd.code, exc.rcvd.reason
        except Exception:  # a bug in a handler must not leave a zombie socket behind
            self.abort()
            raise
        else:
            # A normal close (1000/1001) ends the iteration instead of raising.
            rcvd = ws.protocol.close_rcvd
            if rcvd is not None:
                code, reason = rcvd.code, rcvd.reason
        finally:
            await self._flush_control()
            events = self.session.connection_closed(self._clock(), code, reason)
            self.closed.set()
            self.settled.set()
            try:
                await self._dispatch(events)
            finally:
                self._wake.set()

    async def _tick(self) -> None:
        while not self.closed.is_set():
            delay = max(0.0, min(1.0, self.session.next_deadline() - self._clock()))
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            if self.closed.is_set():
                return
            await self._flush_control()
            await self._dispatch(self.session.tick(self._clock()))

    async def _dispatch(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, SendText):
                await self._send(event.data)
            elif isinstance(event, SendPing):
                if self._ws is not None:
                    with contextlib.suppress(ConnectionClosed):
                        await self._ws.ping(event.payload)
                await self._on_event(self, event)
            elif isinstance(event, SendPong):
                continue  # the websockets library already answered the PING with the same payload
            elif isinstance(event, SendClose):
                if self._ws is not None:
                    # Not awaited here: closing waits for the peer, and this may run on the read loop.
                    task = asyncio.create_task(self._close_ws(event.code, event.reason))
                    self._tasks.append(task)
            else:
                if isinstance(event, Opened):
                    self.settled.set()
                elif isinstance(event, DisconnectRequested) and event.before_hello:
                    self.refused = event
                    self.settled.set()
                elif isinstance(event, Closed):
                    self.settled.set()
                await self._on_event(self, event)

    async def _send(self, data: str) -> None:
        if self._ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(data)

    async def _close_ws(self, code: int, reason: str) -> None:
        assert self._ws is not None
        with contextlib.suppress(Exception):
            await self._ws.close(code, reason)
