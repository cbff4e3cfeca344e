"""The reference bot runtime: one receive path, one dispatch path, durable in between.

The receive path, for every envelope, in arrival order on its socket (:meth:`Bot.on_envelope`)::

    backpressure decision -> dedup claim + durable enqueue (one SQLite transaction) -> ack -> submit

Nothing else happens between the envelope arriving and its ack: no handler code, no network call, no await on
anything but the ack itself (records are in-memory appends). So acks take milliseconds whatever the handlers do,
and Slack never retries for lateness. A duplicate delivery (a Slack retry, an attempt-0 re-send, the same event
on two sockets) is acked and dropped with a ``dedup`` record; an ack that fails to send costs nothing, because
the event is already queued and its retry will be a dedup hit.

**Group commit** (SQLite store, envelopes from the transport): frames that arrive together (already buffered
on a socket when the first is read) are staged in one open transaction; one commit makes them all durable, then
each is acked, and only then are their records written and their work submitted (:meth:`Bot._receive`,
:meth:`Bot._flush`). Persist-before-ack holds for every envelope, duplicates included (the claim they hit may be
in the same batch); under load the commit's cost is shared instead of paid per envelope. A single frame is
committed and acked in the same event-loop step it was read in, as before. :meth:`Bot.on_envelope` (one
envelope: commit, ack) serves the Redis store and envelopes whose ack carries a responder's answer.

**Fast path.** Envelopes with ``accepts_response_payload`` (slash commands, ``view_submission``,
``block_suggestion``) can carry an answer in the ack. If the bot has a *responder*, it runs after the durable
enqueue and before the ack, bounded by ``fast_path_timeout_s`` measured from receipt (default 2 s: Slack's
deadline is 3 s and the ack still has to travel). On timeout or error the bot sends a plain ack. The trade-off:
the responder's answer is not durable — if the process dies while it runs, the user sees ``dispatch_failed``
(Slack never retries these) — but the envelope's handler work is already queued and still runs.

Handler work runs on the :class:`~slackops.bot.dispatcher.Dispatcher` (bounded concurrency, retries, drain).
Shutdown (:meth:`Bot.stop`): close sockets first, drain within ``drain_timeout_s``, requeue the rest; on start,
rows left by a dead process are re-dispatched (:meth:`WorkQueue.recover`).

**Several instances** (``BotConfig.store="redis://..."``): dedup and the queue live in Redis
(:mod:`slackops.bot.redis_backend`). The receive path is the same (claim + persist in one Lua script, then ack),
but admitted work is not run where it arrived: every instance pulls from the shared stream when it has room
(:meth:`Bot._consume`), reclaims the work of dead instances, and on shutdown hands back what it did not finish.
If the store cannot persist an envelope, the bot does not ack it (Slack retries events_api envelopes), writes an
``error`` record saying so, and ``/readyz`` answers 503 until the store works again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import inspect
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from slackops import records
from slackops.bot.backpressure import Action, BackpressurePolicy, classify
from slackops.bot.conversation import ConversationStore
from slackops.bot.dedup import DEFAULT_TTL_S
from slackops.bot.dispatcher import Dispatcher, DrainReport
from slackops.bot.handler import Context, Handler, Responder
from slackops.bot.metrics import BotMetrics, HealthServer
from slackops.bot.ordering import Resequencer
from slackops.bot.queue import WorkBackend, WorkItem, WorkQueue, settle
from slackops.bot.shutdown import ShutdownSignals, unless_forced
from slackops.bot.webapi import make_web_client
from slackops.errors import StoreError, UsageError
from slackops.protocol import Envelope, LivenessPolicy

log = logging.getLogger("slackops.bot")

SLACK_API_URL = "https://slack.com/api/"

#: How often expired dedup keys and conversation state are swept.
HOUSEKEEPING_S = 60.0
#: Store URL schemes that select the shared Redis backend.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass
class BotConfig:
    """Everything the runtime needs besides the handler. Durations in seconds."""

    app_token: str
    bot_token: str | None = None
    #: Web API base (``http://127.0.0.1:PORT/api/`` for the simulator); ``None`` means Slack
    api_url: str | None = None
    #: sockets to hold open (1-10): more sockets, fewer events lost to one bad socket
    connections: int = 1
    #: the durable work queue + dedup store (SQLite, WAL)
    db: str = "slackops-bot.db"
    concurrency: int = 8
    max_attempts: int = 3
    retry_base_s: float = 1.0
    #: how long running handlers get after SIGTERM; keep it below the platform's grace period
    drain_timeout_s: float = 20.0
    dedup_ttl_s: float = DEFAULT_TTL_S
    #: resequence per channel/thread on event_ts (off: handlers must be order-tolerant)
    ordering: bool = False
    hold_window_s: float = 0.5
    backpressure: BackpressurePolicy = field(default_factory=BackpressurePolicy)
    fast_path_timeout_s: float = 2.0
    conversation_ttl_s: float = 3600.0
    #: how the transport judges a socket alive (pings, pong timeout, unhealthy threshold); None: defaults
    liveness: LivenessPolicy | None = None
    metrics_host: str = "127.0.0.1"
    #: serve /metrics, /healthz, /readyz on this port (0: any free port; ``None``: no server)
    metrics_port: int | None = None
    instance: str | None = None
    source: str = "bot"
    #: a shared store for several instances (``redis://host:6379/0``); ``None``: the SQLite file ``db``
    store: str | None = None
    #: replicas of one app share a queue name; different bots on one Redis use different names
    queue_name: str = "default"
    #: shared store: work a dead instance held is reclaimed after this long without its heartbeat
    visibility_timeout_s: float = 30.0
    #: once the sockets are open, hide everything allocated so far from the garbage collector (``gc.freeze``):
    #: a full collection over the start-up heap stalls the receive path for tens of ms. Process-wide, so only
    #: for a process that exists to run this bot (``slackops bot run`` turns it on).
    freeze_gc: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.connections <= 10:
            raise UsageError(
                f"--connections must be 1-10, not {self.connections}",
                hint="Slack allows at most 10 sockets per app; extra ones get too_many_websockets.",
            )
        if self.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        if self.drain_timeout_s < 0:
            raise UsageError("--drain-timeout must be >= 0")
        if not 0 < self.fast_path_timeout_s < 3.0:
            raise UsageError("the fast-path timeout must be under Slack's 3 s ack deadline")
        if self.store is not None and not self.store.startswith(REDIS_SCHEMES):
            raise UsageError(
                f"--store must be a Redis URL (redis://, rediss://, unix://), not {self.store.split(':')[0]!r}",
                hint="For example --store redis://localhost:6379/0; leave it out for the embedded SQLite queue.",
            )
        if self.store is not None and not self.instance:
            # Each replica is a consumer in the group under this name: two with one name would share a
            # pending list and hand back each other's work.
            self.instance = default_instance()
        if self.visibility_timeout_s <= 0:
            raise UsageError("the visibility timeout must be positive")


def default_instance() -> str:
    """``hostname-pid``: unique per process, readable in records and in ``XINFO CONSUMERS``."""
    import socket

    return f"{socket.gethostname()}-{os.getpid()}"


def open_queue(config: BotConfig) -> WorkBackend:
    """The work queue ``config`` asks for: Redis when ``store`` is set, else the SQLite file ``db``."""
    if config.store is None:
        return WorkQueue(config.db, dedup_ttl_s=config.dedup_ttl_s)
    from slackops.bot.redis_backend import RedisWorkQueue

    assert config.instance is not None
    return RedisWorkQueue(
        config.store,
        app=config.queue_name,
        instance=config.instance,
        dedup_ttl_s=config.dedup_ttl_s,
        visibility_s=config.visibility_timeout_s,
    )


class Bot:
    """The reference Socket Mode bot: connection manager + ack-then-process + durable queue + drain.

    >>> bot = Bot(BotConfig(app_token="xapp-..."), handle)          # doctest: +SKIP
    >>> asyncio.run(bot.serve())     # until SIGTERM/SIGINT             # doctest: +SKIP
    """

    def __init__(
        self,
        config: BotConfig,
        handler: Handler,
        *,
        responder: Responder | None = None,
        recorder: Any | None = None,
        web_client: Any | None = None,
        manager_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.config = config
        self.handler = handler
        self.responder = responder
        self.metrics = BotMetrics()
        self._recorder = recorder
        self.queue: Any = open_queue(config)
        self.metrics.identify(config.instance, "redis" if config.store else "sqlite")
        self.client = web_client or make_web_client(
            config.bot_token, base_url=config.api_url, emit=self.write, source=config.source
        )
        self.conversations = ConversationStore(ttl_s=config.conversation_ttl_s)
        self.policy = config.backpressure
        self.dispatcher = Dispatcher(
            self.queue,
            self._run_handler,
            concurrency=config.concurrency,
            max_attempts=config.max_attempts,
            retry_base_s=config.retry_base_s,
            resequencer=Resequencer(config.hold_window_s) if config.ordering else None,
            emit=self.write,
            source=config.source,
        )
        self.signals = ShutdownSignals(emit=self.write, source=config.source)
        self.health: HealthServer | None = None
        self.mgr: Any = None
        self._manager_factory = manager_factory
        self._accepting = False
        self._stopping: asyncio.Task[DrainReport | None] | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._beats: asyncio.Task[None] | None = None
        self._consuming = False
        #: why the work store last failed (None while it works): /readyz reports it
        self.store_error: str | None = None
        #: shared store: unfinished work of all replicas, refreshed by the consumer loop
        self.backlog = 0
        self.orphans = 0
        self.recovered = 0
        self.bot_user_id: str | None = None
        #: staged (not yet committed) admissions awaiting the group commit, and the task that will commit them
        self._batch: list[_Staged] = []
        self._flusher: asyncio.Task[None] | None = None

    # -- records: one seam for the recording and the metrics -------------------------------------------------

    def write(self, rec: dict[str, Any]) -> None:
        """Take one record: update metrics and pass it to the recorder. The transport writes here too."""
        if self.config.instance and "instance" not in rec:
            rec["instance"] = self.config.instance
        self.metrics.observe(rec)
        if self._recorder is not None:
            self._recorder.write(rec)

    def _record(self, kind: str, **fields: Any) -> None:
        self.write(records.make(kind, t=time.time(), source=self.config.source, **fields))

    # -- health -----------------------------------------------------------------------------------------------

    @property
    def live(self) -> bool:
        """At least one socket is open (``/healthz``)."""
        return bool(self.mgr is not None and self.mgr.live)

    def readiness(self) -> tuple[bool, str]:
        """Whether the bot accepts work (``/readyz``) and, if not, why."""
        if self._stopping is not None or self.dispatcher.draining:
            return False, "draining"
        if not self._accepting:
            return False, "starting"
        if self.store_error is not None:
            return False, f"work store unavailable: {self.store_error}"
        if not self.live:
            return False, "no open socket"
        depth = self.depth
        if not self.policy.ready(depth):
            return False, f"queue depth {depth} >= soft limit {self.policy.soft_limit}"
        return True, "ok"

    @property
    def depth(self) -> int:
        """Unfinished work the backpressure policy judges: here, or (shared store) of every replica."""
        return max(self.dispatcher.depth, self.backlog) if self.queue.shared else self.dispatcher.depth

    # -- lifecycle --------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the work store, re-dispatch work left by a previous process, start /metrics, open the sockets.

        Raises :class:`~slackops.errors.StoreError` when the store cannot be reached (Redis down): a bot that
        cannot persist must not ack, so it does not start.
        """
        opener = getattr(self.queue, "open", None)
        if opener is not None:
            await opener()
        await self._identify()
        await self._redispatch_recovered()
        loop = asyncio.get_running_loop()
        self._housekeeping = loop.create_task(self._housekeep())
        if self.queue.shared:
            self._consuming = True
            self._consumer = loop.create_task(self._consume(), name="slackops-consume")
            self._beats = loop.create_task(self._heartbeat(), name="slackops-heartbeat")
        if self.config.metrics_port is not None:
            self.health = HealthServer(
                self.metrics,
                live=lambda: self.live,
                ready=self.readiness,
                depth=lambda: self.depth,
            )
            port = await self.health.start(self.config.metrics_host, self.config.metrics_port)
            log.info("metrics on http://%s:%d/metrics", self.config.metrics_host, port)
        self.mgr = self._make_manager()
        self._accepting = True
        await self.mgr.start()
        if self.config.freeze_gc:
            # Modules, the web client, the sockets: alive for the whole run. Frozen, they are never scanned
            # again, so a full collection costs microseconds instead of a stalled event loop.
            gc.collect()
            gc.freeze()

    async def _identify(self) -> None:
        """Learn our own bot user id (``auth.test``), so handlers can skip their own messages. Best effort."""
        if not self.config.bot_token:
            return
        try:
            response = await self.client.auth_test()
        except Exception as exc:  # handlers still run; they just cannot recognise their own posts by user id
            self._record("error", where="auth.test", error=type(exc).__name__, detail=str(exc)[:200])
            return
        user_id = response.get("user_id")
        self.bot_user_id = user_id if isinstance(user_id, str) else None

    def _make_manager(self) -> Any:
        if self._manager_factory is not None:
            return self._manager_factory(self)
        from slackops.transport import ConnectionManager, ManagerConfig

        cfg = ManagerConfig(
            api_url=self.config.api_url or SLACK_API_URL,
            app_token=self.config.app_token,
            connections=self.config.connections,
            source=self.config.source,
            instance=self.config.instance,
            liveness=self.config.liveness or LivenessPolicy(),
        )
        on_envelope = self._receive if hasattr(self.queue, "stage") else self.on_envelope
        return ConnectionManager(cfg, on_envelope=on_envelope, recorder=self)

    async def _redispatch_recovered(self) -> None:
        for item in await settle(self.queue.recover()):
            self._take(item)

    def _take(self, item: WorkItem) -> None:
        """Submit recovered or fetched work; an orphan (its owner died holding it) gets a record first."""
        if item.orphaned:
            # A previous process (or, shared, another instance) held it and died (kill -9, OOM): run it again.
            self.recovered += 1
            self.orphans += 1
            self.write(
                records.make(
                    "process",
                    t=time.time(),
                    source=self.config.source,
                    event_id=item.dedup_key,
                    envelope_id=item.envelope.envelope_id,
                    channel=item.envelope.event.channel,
                    phase="requeue",
                    error="orphan",
                    owner=item.owner,
                )
            )
        elif not self.queue.shared:
            self.recovered += 1
        self.dispatcher.submit(item)

    async def _consume(self) -> None:
        """Shared store: pull work when there is room, reclaim dead instances' work, keep held work owned.

        Pull, not push: an instance takes at most ``concurrency`` items at a time, so work queues in Redis
        where any instance that frees a slot takes it, rather than behind one busy instance.
        """
        limit = self.config.concurrency
        next_measure = 0.0
        while self._consuming:
            try:
                if time.monotonic() >= next_measure:
                    next_measure = time.monotonic() + 0.5
                    self.backlog = await self.queue.backlog()
                room = limit - self.dispatcher.depth
                if room <= 0:
                    await self.dispatcher.wait_below(limit, 0.5)
                    continue
                items = await self.queue.fetch(room, block_s=0.5)
            except StoreError as exc:
                self._store_failed("fetch", exc)
                await asyncio.sleep(0.5)
                continue
            self._store_ok()
            for item in items:
                self._take(item)

    async def _heartbeat(self) -> None:
        """Shared store: keep the work held here owned (3 beats per visibility timeout), drain included."""
        every = self.config.visibility_timeout_s / 3
        while True:
            await asyncio.sleep(every)
            try:
                lost = await self.queue.heartbeat(self.dispatcher.held)
            except StoreError as exc:
                self._store_failed("heartbeat", exc)
                continue
            for item_id in lost:
                self._record(
                    "error",
                    where="heartbeat",
                    error="reclaimed",
                    detail=f"entry {item_id} was reclaimed by another instance (stalled past the "
                    f"{self.config.visibility_timeout_s:g}s visibility timeout); it may run twice",
                )

    def _store_failed(self, where: str, exc: Exception) -> None:
        # Once per outage (the loop retries every 0.5 s); each unacked envelope gets its own record in
        # on_envelope, which is what diagnose counts.
        if self.store_error is None:
            log.error("work store unavailable (%s): %s", where, exc)
            self._record("error", where=where, error=type(exc).__name__, detail=str(exc)[:300])
        self.store_error = type(exc).__name__

    def _store_ok(self) -> None:
        if self.store_error is not None:
            log.info("work store reachable again: persisting and acking envelopes")
            self.store_error = None

    async def serve(self, before_stop: Callable[[], Awaitable[Any]] | None = None) -> DrainReport | None:
        """Run until SIGTERM/SIGINT (or :meth:`ShutdownSignals.trigger`), then shut down gracefully.

        ``before_stop`` runs after the signal and before the sockets close (the demo mode stops the simulator's
        traffic there, so nothing is sent to an app with no socket).

        Raises :class:`~slackops.errors.AuthError` if Slack refuses the token, at start or later (a revoked
        token, Socket Mode turned off): retrying those never helps, so the bot stops with the reason.
        """
        self.signals.install()
        report = None
        try:
            await self.start()
            stopped = asyncio.ensure_future(self.mgr.stopped.wait())
            requested = asyncio.ensure_future(self.signals.requested.wait())
            try:
                await asyncio.wait({stopped, requested}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
                requested.cancel()
            if before_stop is not None:
                await before_stop()
        finally:
            report = await self.stop()
            self.signals.uninstall()
        if self.mgr is not None and getattr(self.mgr, "fatal", None) is not None:
            raise self.mgr.fatal
        return report

    async def stop(self) -> DrainReport | None:
        """Stop receiving (close sockets), drain within the deadline, requeue the rest. Idempotent."""
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(self._stop())
        return await asyncio.shield(self._stopping)

    async def _stop(self) -> DrainReport | None:
        self._accepting = False
        if self._flusher is not None:
            # Envelopes already staged: commit and ack them while the sockets are still open.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._flusher)
        if self.mgr is not None:
            # First: no new envelopes. Slack routes to other sockets/replicas, or retries later.
            try:
                await self.mgr.stop_receiving()
            except Exception as exc:  # a failing close must not skip the drain
                self._record("error", where="stop_receiving", error=type(exc).__name__, detail=str(exc)[:200])
        if self._consumer is not None:
            # Shared store: take no more work. Let a read in flight finish (it is bounded to 0.5 s) rather than
            # cancel it, so entries Redis handed us are ours and are handed back below, not left to time out.
            self._consuming = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._consumer), 3.0)
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._consumer
        report = await unless_forced(self.dispatcher.drain(self.config.drain_timeout_s), self.signals.forced)
        later = "handed back to the other instances" if self.queue.shared else "requeued for the next start"
        if report is not None:
            log.info("drained: %d finished, %d %s", report.finished, report.requeued, later)
        else:
            cut = self.dispatcher.abandon()
            log.info("second signal: %d handler runs cut short and %s", cut, later)
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        if self.health is not None:
            await self.health.stop()
        if self.mgr is not None and hasattr(self.mgr, "close"):
            with contextlib.suppress(Exception):
                await self.mgr.close()
        if self._beats is not None:
            self._beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beats
        # Shared store: hands back every entry still held here, for the other instances to run now.
        try:
            await settle(self.queue.close())
        except Exception as exc:
            self._record("error", where="queue_close", error=type(exc).__name__, detail=str(exc)[:200])
        return report

    async def _housekeep(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            try:
                await settle(self.queue.purge())
            except StoreError as exc:
                self._record("error", where="dedup_purge", error="StoreError", detail=str(exc)[:200])
            self.conversations.sweep()

    # -- the receive path -------------------------------------------------------------------------------------

    async def on_envelope(self, env: Envelope, received_at: float, conn: Any) -> None:
        """Backpressure -> dedup + persist (one transaction) -> ack -> submit, for one envelope."""
        depth = await self._admit_gate(env, conn)
        if depth is None:
            return
        try:
            admission = await settle(self.queue.admit(env, time.time()))
        except (StoreError, sqlite3.Error) as exc:
            self._not_persisted(exc, 1)
            return
        if self.store_error is not None:
            self._store_ok()
        if admission.duplicate or admission.item is None:
            await self.mgr.ack(env.envelope_id, via=conn)
            self._record("dedup", event_id=env.dedup_key, envelope_id=env.envelope_id, duplicate=True)
            return
        self._record("dedup", event_id=env.dedup_key, envelope_id=env.envelope_id, duplicate=False)
        payload = None
        if env.accepts_response_payload and self.responder is not None:
            payload = await self._respond(admission.item, received_at)
        await self.mgr.ack(env.envelope_id, payload=payload, via=conn)
        self._record(
            "queue", depth=depth + 1, action="enqueue", event_id=env.dedup_key, envelope_id=env.envelope_id
        )
        if not self.queue.shared:  # shared: whichever instance has room pulls it (_consume)
            self.dispatcher.submit(admission.item)

    async def _receive(self, env: Envelope, received_at: float, conn: Any) -> None:
        """The transport's entry (SQLite store): stage the envelope for the group commit and return.

        While the socket has more frames buffered, the receive loop goes on to the next one; at the last,
        :meth:`_flush` commits everything staged, then acks and submits it. Envelopes whose ack can carry a
        responder's answer take the one-at-a-time path (the responder runs between the commit and the ack).
        """
        if env.accepts_response_payload and self.responder is not None:
            await self.on_envelope(env, received_at, conn)
            return
        depth = await self._admit_gate(env, conn)
        if depth is None:
            return
        t = time.time()
        try:
            admission = self.queue.stage(env, t)
        except (StoreError, sqlite3.Error) as exc:
            # The rollback dropped everything staged with it: none of those may be acked either.
            dropped, self._batch = self._batch, []
            self._not_persisted(exc, len(dropped) + 1)
            return
        self._batch.append(_Staged(env, conn, admission, t))
        if not getattr(conn, "buffered", 0):
            # The last frame this socket has read: commit and ack now, in this task (no extra loop turn).
            await self._flush()
        elif self._flusher is None:
            # More frames are waiting and the receive loop takes them without yielding; this task commits the
            # batch if the last of them is not an envelope (a hello, a disconnect) or it went to another socket.
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), name="slackops-commit")

    async def _flush(self) -> None:
        """Commit what was staged, then ack, record and submit each envelope (in arrival order)."""
        batch, self._batch = self._batch, []
        self._flusher = None  # a fallback task still scheduled finds an empty batch, or commits a newer one
        if not batch:
            return
        try:
            self.queue.commit()
        except (StoreError, sqlite3.Error) as exc:
            self._not_persisted(exc, len(batch))
            return
        if self.store_error is not None:
            self._store_ok()
        try:
            ack = self.mgr.ack
            for staged in batch:
                await ack(staged.env.envelope_id, via=staged.conn)
        finally:
            # Records and dispatch after every ack of the batch: nothing but the commit sits before an ack. In a
            # finally: the work is durable, so it runs here even if an ack could not be sent.
            self._admitted(batch)

    def _admitted(self, batch: list[_Staged]) -> None:
        """Write each committed envelope's ``dedup`` / ``queue`` records and submit its work (after the acks)."""
        source = self.config.source
        for staged in batch:
            env, admission = staged.env, staged.admission
            duplicate = admission.duplicate or admission.item is None
            self.write(
                records.make(
                    "dedup",
                    t=staged.t,
                    source=source,
                    event_id=env.dedup_key,
                    envelope_id=env.envelope_id,
                    duplicate=duplicate,
                )
            )
            if duplicate:
                continue
            self.write(
                records.make(
                    "queue",
                    t=staged.t,
                    source=source,
                    depth=self.depth + 1,
                    action="enqueue",
                    event_id=env.dedup_key,
                    envelope_id=env.envelope_id,
                )
            )
            self.dispatcher.submit(admission.item)

    async def _admit_gate(self, env: Envelope, conn: Any) -> int | None:
        """The backpressure decision: the queue depth to admit at, or ``None`` if the envelope was shed."""
        depth = self.depth + len(self._batch)
        event_class = classify(env)
        action = self.policy.decide(event_class, depth)
        if action is Action.SHED:
            # Ack so Slack does not retry it into the same overload; say what was shed.
            await self.mgr.ack(env.envelope_id, via=conn)
            self._record(
                "queue", depth=depth, action="shed", event_id=env.dedup_key, envelope_id=env.envelope_id
            )
            self._record(
                "process",
                event_id=env.dedup_key,
                envelope_id=env.envelope_id,
                channel=env.event.channel,
                phase="shed",
                error=event_class,
            )
            return None
        if action is Action.BLOCK:
            self._record(
                "queue", depth=depth, action="block", event_id=env.dedup_key, envelope_id=env.envelope_id
            )
            await self.dispatcher.wait_below(self.policy.hard_limit, self.policy.block_timeout_s)
        return depth

    def _not_persisted(self, exc: BaseException, count: int) -> None:
        """``count`` envelopes could not be persisted, so they are not acked: one ``error`` record each."""
        # Not persisted, so not acked: Slack retries events_api envelopes; better late than lost.
        if self.store_error is None:
            log.error("cannot persist envelopes, so not acking them (Slack retries events): %s", exc)
        self.store_error = type(exc).__name__
        for _ in range(count):
            self._record(
                "error",
                where="enqueue",
                error=type(exc).__name__,
                detail=f"not acked (Slack retries events_api): {str(exc)[:200]}",
            )

    async def _respond(self, item: WorkItem, received_at: float) -> dict[str, Any] | str | None:
        """Run the responder for the ack payload, within what is left of the fast-path budget."""
        assert self.responder is not None
        budget = self.config.fast_path_timeout_s - max(0.0, time.monotonic() - received_at)
        if budget <= 0:
            return None
        # Its own effect names: a post made by the responder must not make the handler skip its first post.
        ctx = self._context(item, effect_prefix="fast")
        try:
            result = self.responder(ctx)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, budget)
        except TimeoutError:
            self._record("error", where="fast_path", error="timeout", detail=f"responder over {budget:.2f}s")
            return None
        except Exception as exc:
            self._record("error", where="fast_path", error=type(exc).__name__, detail=str(exc)[:200])
            return None
        return result if isinstance(result, (dict, str)) else None

    # -- handler runs -----------------------------------------------------------------------------------------

    def _context(self, item: WorkItem, effect_prefix: str = "post") -> Context:
        return Context(
            item,
            self.client,
            emit=self.write,
            conversations=self.conversations,
            mark_effect=lambda effect: self.queue.mark_effect(item.id, effect, item.effects),
            source=self.config.source,
            bot_user_id=self.bot_user_id,
            effect_prefix=effect_prefix,
        )

    async def _run_handler(self, item: WorkItem) -> None:
        ctx = self._context(item)
        if inspect.iscoroutinefunction(self.handler):
            await self.handler(ctx)
            return
        # A plain function runs in a worker thread so it cannot stall the receive path (and the acks).
        result = await asyncio.to_thread(self.handler, ctx)
        if inspect.isawaitable(result):
            await result


@dataclass(slots=True)
class _Staged:
    """An envelope staged for the group commit: acked, recorded and submitted once the commit is done."""

    env: Envelope
    conn: Any
    admission: Any
    t: float


def load_app(spec: str) -> Callable[..., Any]:
    """Import ``module:function`` (the current directory is importable, like ``python -m``)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(
            f"APP must look like module:function, not {spec!r}",
            hint="For example: slackops bot run examples.echo_llm_bot:handle",
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(
            f"cannot import {module_name!r}: {exc}",
            hint="Run from the directory that holds the module, or install it into this environment.",
        ) from None
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise UsageError(f"{module_name} has no attribute {attr!r}")
    if not callable(target):
        raise UsageError(f"{spec} is not callable")
    return target


@dataclass
class RunResult:
    """What ``slackops bot run`` reports when the bot stops."""

    drain: DrainReport | None
    recovered: int
    orphans: int
    #: the built-in simulator's scorecard, when the bot ran against it (no token given)
    scorecard: Any = None

    def summary(self) -> dict[str, Any]:
        """Flat numbers for the CLI: drain outcome, recovered work and, with the simulator, its scorecard."""
        out: dict[str, Any] = {"recovered": self.recovered, "orphans": self.orphans}
        if self.drain is not None:
            out.update(finished_in_drain=self.drain.finished, requeued=self.drain.requeued)
        if self.scorecard is not None:
            card = self.scorecard
            out.update(
                events=card.events,
                lost=card.lost,
                processed=card.processed,
                processed_twice=card.processed_twice,
                ack_p99_ms=card.ack_p99_ms,
            )
        return out


async def serve(
    handler: Handler,
    config: BotConfig,
    *,
    responder: Responder | None = None,
    recorder: Any = None,
    scenario: str | None = None,
    time_scale: float | None = None,
    seed: int | None = None,
) -> RunResult:
    """Run a bot until SIGTERM/SIGINT. With ``scenario``, first start the built-in simulator and point the bot at it."""
    sim = None
    if scenario is not None:
        from slackops.simulator import Simulator, load_scenario

        scen = load_scenario(scenario)
        sim = Simulator(scen, time_scale=time_scale or scen.time_scale, seed=seed)
        await sim.start()
        config.app_token, config.bot_token, config.api_url = sim.app_token, sim.bot_token, sim.api_url
        log.info(
            "no token given: running against the built-in simulator (scenario %s) at %s",
            scenario,
            sim.api_url,
        )
    try:
        bot = Bot(config, handler, responder=responder, recorder=recorder)
        if sim is not None:
            sim.start_traffic()
        report = await bot.serve(before_stop=sim.stop_traffic if sim is not None else None)
        card = None
        if sim is not None:
            await sim.drain(2.0)  # acks of the last events: the scorecard should not count them as in flight
            card = sim.scorecard()
        return RunResult(report, bot.recovered, bot.orphans, card)
    finally:
        if sim is not None:
            await sim.stop()


def run(
    handler: Handler | str,
    config: BotConfig,
    *,
    responder: Responder | str | None = None,
    record: str | None = None,
    record_text: bool = False,
    scenario: str | None = None,
    time_scale: float | None = None,
    seed: int | None = None,
) -> RunResult:
    """The library side of ``slackops bot run``: load ``module:function`` specs, record, serve until a signal.

    ``record`` is a SQLite recording path (``.jsonl`` / ``.jsonl.gz``: JSONL) that ``slackops diagnose`` reads.
    """
    fn = load_app(handler) if isinstance(handler, str) else handler
    resp = load_app(responder) if isinstance(responder, str) else responder
    config.freeze_gc = True  # this process exists to run the bot (see BotConfig.freeze_gc)
    writer = None
    if record:
        from slackops.store import RecordWriter

        is_jsonl = record.endswith((".jsonl", ".jsonl.gz"))
        writer = RecordWriter(
            db=None if is_jsonl else record,
            jsonl=record if is_jsonl else None,
            record_text=record_text,
            instance=config.instance,
        )
    try:
        return asyncio.run(
            serve(
                fn,
                config,
                responder=resp,
                recorder=writer,
                scenario=scenario,
                time_scale=time_scale,
                seed=seed,
            )
        )
    finally:
        if writer is not None:
            writer.close()
