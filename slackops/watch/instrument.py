"""``slackops.instrument(client)``: record the Socket Mode transport of a bot you already run.

One call hooks an existing slack-sdk ``SocketModeClient`` (builtin, aiohttp, websocket-client or websockets
flavour) or a Bolt ``SocketModeHandler`` (its ``handler.client``) and writes the same records ``slackops watch``
writes, with ``source="bot"``::

    handler = SocketModeHandler(app, app_token)
    slackops.instrument(handler, db="slackops.db")
    handler.start()

Where each record comes from:

- raw frames (``hello``, ``disconnect``, envelopes): the client's ``enqueue_message``, through which every TEXT
  frame passes the moment the receive loop reads it, before any listener or worker can see it. (The
  ``on_message_listeners`` hook runs *after* the frame is queued, so on the builtin client a worker thread could
  ack before the listener saw the frame; timing receipt here keeps ``ack_ms`` honest.)
- acks: the client's ``send_message``, wrapped; ``ack_ms`` runs from frame receipt to the ack handed to the
  socket, on a monotonic clock, in-process — the number to hold against Slack's 3 s deadline.
- ``apps.connections.open``: ``issue_new_wss_url``, wrapped (``api_call`` with latency, then ``connect``).
- lifecycle: ``on_close_listeners`` / ``on_error_listeners``, and ``close()`` for the client's own close.
- reconnects: a ``hello`` after an earlier session, with the gap during which no socket could receive (0 when
  the client opened the new socket before losing the old one, as slack-sdk does on ``disconnect`` frames).

Recording never blocks the bot: records go to an in-memory buffer that a background thread writes.
"""

from __future__ import annotations

import atexit
import inspect
import json
import threading
import time
from collections import OrderedDict
from typing import Any

from slackops import records
from slackops.errors import UsageError
from slackops.protocol import Disconnect, Envelope, FrameError, Hello, UnknownFrame, parse_frame
from slackops.redact import url_host
from slackops.watch.stats import WatchStats

#: Receipts kept for envelopes not yet acked (a bot that never acks must not grow memory without bound).
MAX_PENDING = 10_000


class Instrumentation:
    """The hooks :func:`instrument` installed on one client. :meth:`close` removes them and flushes.

    ``stats`` holds the same live numbers as ``slackops watch`` (:meth:`summary`).
    """

    def __init__(self, client: Any, recorder: Any, *, owns_recorder: bool, record_text: bool, source: str):
        self.client = client
        self.recorder = recorder
        self.record_text = record_text
        self.source = source
        self.stats = WatchStats()
        self.is_async = inspect.iscoroutinefunction(type(client).send_message)
        self._owns_recorder = owns_recorder
        self._lock = threading.Lock()
        self._received: OrderedDict[str, tuple[float, str | None, str | None]] = OrderedDict()
        self._sessions = 0
        self._down_since: float | None = None
        self._cause: tuple[str, str] | None = None
        self._replacing = False
        self._attempt = 0
        self._patched: list[str] = []
        self._listeners: list[tuple[list[Any], Any]] = []
        self._closed = False
        #: sockets whose close is already recorded (a server close, then the client's replacement)
        self._closed_conns: set[str] = set()

    # -- installing ---------------------------------------------------------------------------------------

    def install(self) -> Instrumentation:
        client = self.client
        if self.is_async:
            self._patch("enqueue_message", self._async_enqueue(client.enqueue_message))
            self._patch("send_message", self._async_send(client.send_message))
            self._patch("issue_new_wss_url", self._async_open(client.issue_new_wss_url))
            self._patch("close", self._async_close(client.close))
            self._patch("connect", self._async_connect(client.connect))
            self._listen("on_close_listeners", self._async_listener(self._on_close_args))
            self._listen("on_error_listeners", self._async_listener(self._on_error_args))
        else:
            self._patch("enqueue_message", self._sync_enqueue(client.enqueue_message))
            self._patch("send_message", self._sync_send(client.send_message))
            self._patch("issue_new_wss_url", self._sync_open(client.issue_new_wss_url))
            self._patch("close", self._sync_close(client.close))
            self._patch("connect", self._sync_connect(client.connect))
            self._listen("on_close_listeners", self._on_close_args)
            self._listen("on_error_listeners", self._on_error_args)
        if self._owns_recorder:
            atexit.register(self.close)
        return self

    def _patch(self, name: str, wrapper: Any) -> None:
        # Instance attributes shadow the class methods; the client calls ``self.name(...)`` so it finds them.
        setattr(self.client, name, wrapper)
        self._patched.append(name)

    def _listen(self, attr: str, listener: Any) -> None:
        listeners = getattr(self.client, attr, None)
        if isinstance(listeners, list):
            listeners.append(listener)
            self._listeners.append((listeners, listener))

    def close(self) -> None:
        """Remove the hooks and flush the recording (and close it, if :func:`instrument` opened it)."""
        if self._closed:
            return
        self._closed = True
        for name in self._patched:
            self.client.__dict__.pop(name, None)
        for listeners, listener in self._listeners:
            if listener in listeners:
                listeners.remove(listener)
        if self._owns_recorder:
            atexit.unregister(self.close)
            self.recorder.close()
        elif hasattr(self.recorder, "flush"):
            self.recorder.flush()

    def summary(self) -> dict[str, Any]:
        """Live numbers (envelopes, ack percentiles, reconnects ...) as in ``slackops watch``."""
        with self._lock:
            return self.stats.summary(time.time())

    # -- wrappers -----------------------------------------------------------------------------------------

    def _sync_enqueue(self, original: Any) -> Any:
        def enqueue_message(message: str) -> Any:
            self._on_frame(message, time.monotonic())
            return original(message)

        return enqueue_message

    def _async_enqueue(self, original: Any) -> Any:
        async def enqueue_message(message: str) -> Any:
            self._on_frame(message, time.monotonic())
            return await original(message)

        return enqueue_message

    def _sync_send(self, original: Any) -> Any:
        def send_message(message: str) -> Any:
            try:
                result = original(message)
            except Exception as exc:
                self._on_send(message, time.monotonic(), error=type(exc).__name__)
                raise
            self._on_send(message, time.monotonic())
            return result

        return send_message

    def _async_send(self, original: Any) -> Any:
        async def send_message(message: str) -> Any:
            try:
                result = await original(message)
            except Exception as exc:
                self._on_send(message, time.monotonic(), error=type(exc).__name__)
                raise
            self._on_send(message, time.monotonic())
            return result

        return send_message

    def _sync_open(self, original: Any) -> Any:
        def issue_new_wss_url(*args: Any, **kwargs: Any) -> str:
            started = time.monotonic()
            try:
                url = original(*args, **kwargs)
            except Exception as exc:
                self._on_open(started, None, exc)
                raise
            self._on_open(started, url, None)
            return url

        return issue_new_wss_url

    def _async_open(self, original: Any) -> Any:
        async def issue_new_wss_url(*args: Any, **kwargs: Any) -> str:
            started = time.monotonic()
            try:
                url = await original(*args, **kwargs)
            except Exception as exc:
                self._on_open(started, None, exc)
                raise
            self._on_open(started, url, None)
            return url

        return issue_new_wss_url

    def _sync_close(self, original: Any) -> Any:
        def close(*args: Any, **kwargs: Any) -> Any:
            self._on_client_close()
            return original(*args, **kwargs)

        return close

    def _async_close(self, original: Any) -> Any:
        async def close(*args: Any, **kwargs: Any) -> Any:
            self._on_client_close()
            return await original(*args, **kwargs)

        return close

    def _sync_connect(self, original: Any) -> Any:
        def connect(*args: Any, **kwargs: Any) -> Any:
            old = self._open_conn()
            result = original(*args, **kwargs)
            # The builtin client connects the new socket first, then closes the old one: no gap.
            if old is not None and old != self._conn():
                self._on_replaced(old)
            return result

        return connect

    def _async_connect(self, original: Any) -> Any:
        async def connect(*args: Any, **kwargs: Any) -> Any:
            old = self._open_conn()
            if old is not None:
                # slack-sdk's asyncio clients close the old socket *before* opening the new one (so that a
                # too_many_websockets refusal frees a slot): the app has no socket from here until the next hello.
                self._mark_down("client", "reconnect")
                self._on_replaced(old)
            return await original(*args, **kwargs)

        return connect

    @staticmethod
    def _async_listener(fn: Any) -> Any:
        async def listener(*args: Any) -> None:
            fn(*args)

        return listener

    # -- what the hooks record ----------------------------------------------------------------------------

    def _conn(self) -> str | None:
        """The client's id for its current socket (the one whose receive loop is running)."""
        client = self.client
        try:
            if not self.is_async and callable(getattr(client, "session_id", None)):
                sid = client.session_id()
            else:
                sid = client.build_session_id(client.current_session)
        except Exception:
            return None
        return str(sid) if sid else None

    def _open_conn(self) -> str | None:
        """The current socket's id if it is open and its close was not recorded yet."""
        session = getattr(self.client, "current_session", None)
        if session is None or getattr(session, "closed", False) is True:
            return None
        conn = self._conn()
        return None if conn is None or conn in self._closed_conns else conn

    def _on_replaced(self, conn: str) -> None:
        self._closed_conns.add(conn)
        self._write("close", conn=conn, code=1000, by="client", clean=True)

    def _write(self, kind: str, conn: str | None = None, **fields: Any) -> None:
        rec = records.make(kind, t=time.time(), source=self.source, conn=conn, **fields)
        with self._lock:
            self.stats.feed(rec)
        self.recorder.write(rec)

    def _on_frame(self, message: Any, received: float) -> None:
        try:
            frame = parse_frame(message)
            conn = self._conn()
            if isinstance(frame, Envelope):
                fields = frame.record_fields()
                if self.record_text and frame.type == "events_api":
                    event = frame.payload.get("event")
                    if isinstance(event, dict) and isinstance(event.get("text"), str):
                        fields["text"] = event["text"]
                with self._lock:
                    self._received[frame.envelope_id] = (received, conn, frame.event.event_id)
                    while len(self._received) > MAX_PENDING:
                        self._received.popitem(last=False)
                self._write("envelope", conn=conn, **fields)
            elif isinstance(frame, Hello):
                self._on_hello(frame, conn, received)
            elif isinstance(frame, Disconnect):
                with self._lock:
                    self._replacing = True
                    self._cause = ("server", frame.reason or "disconnect")
                self._write("disconnect", conn=conn, reason=frame.reason, host=frame.host)
            elif isinstance(frame, FrameError):
                self._write("error", conn=conn, where="frame", error=frame.problem, detail=frame.detail)
            elif isinstance(frame, UnknownFrame):
                self._write("error", conn=conn, where="frame", error="unknown_type", detail=str(frame.type))
        except Exception as exc:  # recording must never break the bot's receive loop
            self._safe_error("instrument", exc)

    def _on_hello(self, hello: Hello, conn: str | None, received: float) -> None:
        with self._lock:
            self._sessions += 1
            first = self._sessions == 1
            # While a replacement is being opened the old socket is still ours: two sockets are expected.
            own = 2 if self._replacing else 1
            down_since, cause = self._down_since, self._cause
            self._down_since, self._cause, self._replacing = None, None, False
        self._write(
            "hello",
            conn=conn,
            num_connections=hello.num_connections,
            own_connections=own,
            host=hello.host,
            build_number=hello.build_number,
            approximate_connection_time=hello.approximate_connection_time,
        )
        if hello.num_connections is not None and hello.num_connections > own:
            # Ghost registrations, another replica, or another consumer on this token: each takes a share.
            self._write("drift", conn=conn, num_connections=hello.num_connections, own_connections=own)
        if not first:
            gap_ms = 0.0 if down_since is None else max(0.0, (received - down_since) * 1000.0)
            initiator, why = cause or ("client", "reconnect")
            self._write("reconnect", conn=conn, initiator=initiator, cause=why, gap_ms=round(gap_ms, 3))

    def _on_send(self, message: Any, sent: float, error: str | None = None) -> None:
        try:
            if not isinstance(message, str) or '"envelope_id"' not in message:
                return
            obj = json.loads(message)
            envelope_id = obj.get("envelope_id") if isinstance(obj, dict) else None
            if not isinstance(envelope_id, str):
                return
            with self._lock:
                receipt = self._received.pop(envelope_id, None)
            received, conn, event_id = receipt if receipt is not None else (None, None, None)
            ack_ms = None if received is None else round((sent - received) * 1000.0, 3)
            self._write(
                "ack",
                conn=conn,
                envelope_id=envelope_id,
                event_id=event_id,
                ack_ms=ack_ms,
                ok=error is None,
                ack_conn=self._conn(),
                error=error,
            )
        except Exception as exc:
            self._safe_error("instrument", exc)

    def _on_open(self, started: float, url: str | None, exc: BaseException | None) -> None:
        try:
            latency_ms = round((time.monotonic() - started) * 1000.0, 3)
            error, status = None, None
            if exc is not None:
                response = getattr(exc, "response", None)
                try:
                    error = str(response["error"]) if response is not None else type(exc).__name__
                except Exception:
                    error = type(exc).__name__
                status = getattr(response, "status_code", None)
            self._write(
                "api_call",
                method="apps.connections.open",
                ok=exc is None,
                error=error,
                http_status=status if isinstance(status, int) else (200 if exc is None else None),
                latency_ms=latency_ms,
            )
            if url is not None:
                with self._lock:
                    self._attempt += 1
                    attempt = self._attempt
                self._write("connect", attempt=attempt, url_host=url_host(url))
        except Exception as err:
            self._safe_error("instrument", err)

    def _on_close_args(self, *args: Any) -> None:
        """Close listener of any client flavour: ``(code, reason)``, ``(ws, code, reason)`` or ``(WSMessage)``."""
        code: int | None = None
        reason: str | None = None
        if len(args) == 1 and hasattr(args[0], "data"):  # aiohttp WSMessage: data = code, extra = reason
            msg = args[0]
            code = msg.data if isinstance(msg.data, int) else None
            reason = msg.extra if isinstance(msg.extra, str) else None
        else:
            ints = [a for a in args if isinstance(a, int) and not isinstance(a, bool)]
            strs = [a for a in args if isinstance(a, str)]
            code = ints[0] if ints else None
            reason = strs[0] if strs else None
        self._mark_down("server", f"closed:{code}" if code is not None else "closed")
        conn = self._conn()
        if conn is not None:
            self._closed_conns.add(conn)
        self._write("close", conn=conn, code=code, reason=reason or None, by="server", clean=True)

    def _on_error_args(self, *args: Any) -> None:
        error = next((a for a in args if isinstance(a, BaseException)), None)
        if error is None and len(args) == 1 and hasattr(args[0], "data"):
            error = args[0].data if isinstance(args[0].data, BaseException) else None
        what = type(error).__name__ if error is not None else "error"
        self._mark_down("server", "dropped")
        self._write("error", conn=self._conn(), where="socket", error=what, detail=str(error or "")[:200])

    def _on_client_close(self) -> None:
        conn = self._open_conn()
        if conn is not None:
            self._on_replaced(conn)

    def _mark_down(self, initiator: str, cause: str) -> None:
        with self._lock:
            if self._down_since is None:
                self._down_since = time.monotonic()
            if self._cause is None or not self._replacing:
                self._cause = (initiator, cause)

    def _safe_error(self, where: str, exc: BaseException) -> None:
        try:
            self._write("error", where=where, error=type(exc).__name__, detail=str(exc)[:200])
        except Exception:
            pass


def _resolve_client(target: Any) -> Any:
    """The Socket Mode client behind ``target`` (a client, or a Bolt handler holding one in ``.client``)."""
    for candidate in (target, getattr(target, "client", None)):
        if candidate is not None and all(
            callable(getattr(candidate, name, None)) for name in ("send_message", "enqueue_message")
        ):
            return candidate
    raise UsageError(
        f"instrument() needs a slack_sdk SocketModeClient or a Bolt SocketModeHandler, got {type(target).__name__}",
        hint="Pass the handler you call .start() on, or its .client.",
    )


def instrument(
    client: Any,
    db: str | None = "slackops.db",
    *,
    jsonl: str | None = None,
    recorder: Any = None,
    record_text: bool = False,
    source: str = "bot",
    instance: str | None = None,
) -> Instrumentation:
    """Record the Socket Mode transport of ``client`` (a slack-sdk ``SocketModeClient`` or a Bolt handler).

    Records go to ``recorder`` if given (anything with ``write(record)``), else to a new
    :class:`~slackops.store.RecordWriter` on ``db`` and/or ``jsonl`` (closed by :meth:`Instrumentation.close`
    or at interpreter exit). Call before ``connect()`` / ``handler.start()`` to see the first ``hello``.
    """
    target = _resolve_client(client)
    owns = recorder is None
    if recorder is None:
        if db is None and jsonl is None:
            raise UsageError("instrument() needs db=, jsonl= or recorder= to know where records go")
        from slackops.store import RecordWriter

        recorder = RecordWriter(db=db, jsonl=jsonl, record_text=record_text, instance=instance)
    return Instrumentation(
        target, recorder, owns_recorder=owns, record_text=record_text, source=source
    ).install()
