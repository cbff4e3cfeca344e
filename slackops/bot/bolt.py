"""Run an existing Bolt for Python ``App`` on the slackops runtime: change one import, keep every handler.

Before::

    from slack_bolt.adapter.socket_mode import SocketModeHandler
    SocketModeHandler(app, os.environ["SLACK_APP_TOKEN"]).start()

After::

    from slackops.bot.bolt import SocketModeHandler
    SocketModeHandler(app, os.environ["SLACK_APP_TOKEN"]).start()

What changes underneath (the listeners do not):

- **transport**: slackops' connection manager instead of slack-sdk's client — make-before-break reconnects,
  liveness judged by pings/pongs, one reconnect at a time, jittered backoff honouring ``Retry-After``.
- **ack-then-process, durably**: each envelope is deduplicated on ``event_id``, persisted (SQLite, WAL) and
  acked in milliseconds, *then* dispatched to Bolt. Slack's retries (and the same event on two sockets) are
  acked and dropped, so a listener runs once per event.
- **drain**: SIGTERM closes the sockets first, waits for running listeners up to ``drain_timeout_s``, and leaves
  unfinished events in the queue for the next start (crash or kill: re-dispatched on start).
- **guards**: bot and self messages (the self-loop) and edits that did not change the text never reach the
  listeners; a ``guard`` record says so. LLM guards need one call in the listener: ``handler.guards.call_llm_sync``.

How the dispatch works: Bolt normally runs listeners on its thread pool and returns as soon as ``ack()`` is
called. The drop-in wraps that pool so each dispatch also waits for the listener work it started; the durable
queue therefore marks an event done only when its listener really finished. Envelopes that take a response in
the ack (slash commands, ``view_submission``) are dispatched on the fast path: Bolt's ``ack(...)`` answer goes
into the socket ack (within 2 s of receipt), and the rest of the listener is still waited for before the event
counts as done.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from slackops.bot.app import SLACK_API_URL, Bot, BotConfig
from slackops.bot.guards import GuardConfig, Guards
from slackops.bot.handler import Context
from slackops.errors import UsageError

#: The durable queue + dedup store when neither ``db=`` nor ``SLACKOPS_BOT_DB`` is given (the runtime's default).
DEFAULT_DB = BotConfig.__dataclass_fields__["db"].default

log = logging.getLogger("slackops.bot.bolt")


class _TrackingExecutor(concurrent.futures.Executor):
    """Bolt's listener pool, remembering which futures the current thread's dispatch submitted."""

    def __init__(self, inner: concurrent.futures.Executor) -> None:
        self.inner = inner
        self._local = threading.local()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        future = self.inner.submit(fn, *args, **kwargs)
        pending = getattr(self._local, "pending", None)
        if pending is not None:
            pending.append(future)
        return future

    def shutdown(self, wait: bool = True, **kwargs: Any) -> None:
        self.inner.shutdown(wait=wait, **kwargs)

    def collect(self) -> list[concurrent.futures.Future]:
        """Start collecting the futures submitted from this thread; returns the (live) list."""
        self._local.pending = []
        return self._local.pending

    def stop_collecting(self) -> None:
        self._local.pending = None


class _Dispatch:
    """One Bolt dispatch and the listener work it started."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.response: Any = None
        self.pending: list[concurrent.futures.Future] = []
        self.error: BaseException | None = None

    def wait_listeners(self) -> None:
        self.done.wait()
        if self.pending:
            concurrent.futures.wait(self.pending)


class SocketModeHandler:
    """A drop-in for ``slack_bolt.adapter.socket_mode.SocketModeHandler`` that runs the app on slackops.

    ``app_token`` defaults to ``SLACK_APP_TOKEN``. Extra keyword arguments of Bolt's handler (``proxy``,
    ``ping_interval``, ``concurrency`` ...) are accepted and ignored: the slackops transport has its own.

    ``connections`` sockets are held (1-10); ``db`` is the durable queue and dedup store (default:
    ``SLACKOPS_BOT_DB``, else ``slackops-bot.db`` in the working directory — keep it on a volume that survives
    restarts, or unfinished events are lost with the container); ``record`` a recording path
    (``SLACKOPS_RECORD``) for ``slackops diagnose``.
    """

    def __init__(
        self,
        app: Any,
        app_token: str | None = None,
        logger: logging.Logger | None = None,
        web_client: Any = None,
        *,
        connections: int = 1,
        db: str | None = None,
        record: str | None = None,
        drain_timeout_s: float = 20.0,
        guards: Guards | None = None,
        **_bolt_options: Any,
    ) -> None:
        from slack_bolt import App

        if not isinstance(app, App):
            raise UsageError(
                f"slackops.bot.bolt.SocketModeHandler runs a slack_bolt.App, not {type(app).__name__}",
                hint="AsyncApp is not supported yet: keep slack_bolt's AsyncSocketModeHandler for it.",
            )
        self.app = app
        self.app_token = app_token or os.environ["SLACK_APP_TOKEN"]
        self.logger = logger or log
        client = web_client or app.client
        base_url = getattr(client, "base_url", None)
        record = record if record is not None else os.environ.get("SLACKOPS_RECORD")
        self._writer = _open_writer(record) if record else None
        self.guards = guards or Guards(GuardConfig(), emit=self._writer.write if self._writer else None)
        self.config = BotConfig(
            app_token=self.app_token,
            bot_token=getattr(client, "token", None),
            api_url=base_url if base_url and base_url != SLACK_API_URL else None,
            connections=connections,
            db=db or os.environ.get("SLACKOPS_BOT_DB") or DEFAULT_DB,
            drain_timeout_s=drain_timeout_s,
        )
        runner = app.listener_runner
        self._executor = _TrackingExecutor(runner.listener_executor)
        runner.listener_executor = self._executor
        lazy = getattr(runner, "lazy_listener_runner", None)
        if lazy is not None and hasattr(lazy, "executor"):
            # Lazy listeners (process_before_response apps) are listener work too: wait for them as well.
            lazy.executor = self._executor
        self._inflight: dict[str, _Dispatch] = {}
        self._lock = threading.Lock()
        self.bot: Bot | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- Bolt's handler API ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect and block until SIGTERM/SIGINT, then drain (like Bolt's ``start()``)."""
        try:
            asyncio.run(self._serve())
        finally:
            self._close_writer()

    def connect(self) -> None:
        """Connect in a background thread and return (like Bolt's ``connect()``); :meth:`close` stops it."""
        started = threading.Event()

        def run() -> None:
            async def main() -> None:
                self._loop = asyncio.get_running_loop()
                self.bot = self._make_bot()
                started.set()  # after the Bot exists, so close() right after connect() can stop it
                await self.bot.serve()

            try:
                asyncio.run(main())
            finally:
                started.set()

        self._thread = threading.Thread(target=run, name="slackops-bolt", daemon=True)
        self._thread.start()
        started.wait()

    def close(self, timeout: float | None = None) -> None:
        """Stop receiving, drain, and wait for the background thread started by :meth:`connect`."""
        if self._loop is not None and self.bot is not None:
            self._loop.call_soon_threadsafe(self.bot.signals.trigger, "close")
        if self._thread is not None:
            self._thread.join(timeout)
        self._close_writer()

    disconnect = close

    # -- the runtime side -----------------------------------------------------------------------------------

    def _make_bot(self) -> Bot:
        return Bot(self.config, self._handle, responder=self._respond, recorder=self._writer)

    async def _serve(self) -> None:
        self.bot = self._make_bot()
        await self.bot.serve()

    def _handle(self, ctx: Context) -> None:
        """The runtime's handler (a worker thread): dispatch to Bolt, wait for the listeners it started."""
        with self._lock:
            started = self._inflight.pop(ctx.event_id, None)
        if started is None:
            if not self._admit(ctx):
                return
            started = self._dispatch(ctx)
        started.wait_listeners()
        if started.error is not None:
            raise started.error

    async def _respond(self, ctx: Context) -> dict[str, Any] | str | None:
        """Fast path for envelopes that take a response in the ack: Bolt's ``ack(...)`` body goes into it."""
        dispatch = _Dispatch()
        with self._lock:
            self._inflight[ctx.event_id] = dispatch
        threading.Thread(target=self._run_dispatch, args=(ctx, dispatch), daemon=True).start()
        # The runtime bounds this wait (fast_path_timeout_s); on timeout it sends a plain ack and the handler
        # above still waits for this same dispatch — the listener never runs twice.
        await asyncio.to_thread(dispatch.done.wait)
        return _ack_payload(dispatch.response)

    def _dispatch(self, ctx: Context) -> _Dispatch:
        dispatch = _Dispatch()
        self._run_dispatch(ctx, dispatch)
        return dispatch

    def _run_dispatch(self, ctx: Context, dispatch: _Dispatch) -> None:
        from slack_bolt.request import BoltRequest

        headers = None
        if ctx.envelope.retry_attempt:
            # Mirror Bolt's own adapter: listeners may look at x-slack-retry-num.
            headers = {"x-slack-retry-num": str(ctx.envelope.retry_attempt)}
        dispatch.pending = self._executor.collect()
        try:
            dispatch.response = self.app.dispatch(
                BoltRequest(mode="socket_mode", body=ctx.payload, headers=headers)
            )
        except BaseException as exc:  # surfaced by the handler as a failed run (recorded, retried)
            dispatch.error = exc
        finally:
            self._executor.stop_collecting()
            dispatch.done.set()

    def _admit(self, ctx: Context) -> bool:
        """Event-level guards (self-loop, unchanged edits) before Bolt sees an events_api envelope."""
        if ctx.envelope.type != "events_api":
            return True
        if ctx.bot_user_id and self.guards.self_loop.bot_user_id is None:
            self.guards.learn_identity({"user_id": ctx.bot_user_id})
        event = ctx.event
        return self.guards.self_loop.admit(event, event_id=ctx.event_id) and self.guards.edits.admit(
            event, event_id=ctx.event_id
        )

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _ack_payload(response: Any) -> dict[str, Any] | str | None:
    """What Bolt's socket-mode adapter would put in the ack for this ``BoltResponse``."""
    if response is None or getattr(response, "status", None) != 200 or not response.body:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if content_type.startswith("application/json"):
        body = json.loads(response.body)
        return body if isinstance(body, dict) else None
    return {"text": response.body}


def _open_writer(path: str) -> Any:
    from slackops.store import RecordWriter

    is_jsonl = path.endswith((".jsonl", ".jsonl.gz"))
    return RecordWriter(db=None if is_jsonl else path, jsonl=path if is_jsonl else None)
