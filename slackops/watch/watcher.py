"""The watch probe: instrumented Socket Mode connections, every observation recorded, live numbers kept.

:class:`Watcher` wires three things together: a :class:`~slackops.transport.ConnectionManager` (N sockets with
make-before-break, liveness, backoff), a record sink (:class:`~slackops.store.RecordWriter`: SQLite and/or JSONL,
written on a background thread) and :class:`~slackops.watch.stats.WatchStats`. Every record the manager produces
passes through :meth:`Watcher.write`, which only appends to memory: an ack never waits on disk or on a listener.

Targets, decided by :func:`resolve_target`:

- no token: the *embedded default* — the built-in simulator, started in this process (scenario
  ``refresh-churn`` at a time scale where a refresh happens every ~15 s). Nothing leaves the machine.
- a token for a loopback API URL (``slackops simulate`` in another terminal): a non-production target.
- a real Slack token: watch competes with the app's own bot for events (:data:`EVENT_STEALING`), so the user
  must choose ``--ack`` or ``--observe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from slackops.errors import UsageError
from slackops.hints import check_app_token
from slackops.protocol import Backoff, LivenessPolicy
from slackops.redact import url_host
from slackops.watch.stats import WatchStats

log = logging.getLogger("slackops.watch")

SLACK_API_URL = "https://slack.com/api/"
DEFAULT_SCENARIO = "refresh-churn"

#: Why watching a production app is not free. Shown when a real token comes without --ack/--observe.
EVENT_STEALING = (
    "Watching a production app takes a share of its events: Slack spreads deliveries over every Socket Mode "
    "connection of the app, so this watch's sockets receive events your bot would otherwise get.\n"
    "  --ack      watch acks what it receives (Slack is satisfied), but those events never reach your bot.\n"
    "  --observe  watch never acks: Slack re-delivers events_api envelopes to another socket after 3 s "
    "(your bot sees them late, as retries), and interactive payloads or slash commands routed to watch fail "
    "for the user.\n"
    "Best: create a dedicated development app (its own app-level token) and watch that."
)


class Mode(enum.StrEnum):
    """What watch does with the envelopes it receives."""

    #: ack at once, as a well-behaved client would (the default against the simulator)
    ACK = "ack"
    #: never ack: record only; Slack retries events elsewhere after 3 s
    OBSERVE = "observe"


@dataclass(frozen=True)
class Target:
    """Where watch connects. ``embedded`` means: start the built-in simulator in this process."""

    embedded: bool
    api_url: str | None
    app_token: str | None
    production: bool

    @property
    def label(self) -> str:
        if self.embedded:
            return "simulator (built in)"
        host = url_host(self.api_url or "")
        return f"simulator at {host}" if not self.production else f"Slack ({host})"


def is_loopback(api_url: str) -> bool:
    """True when ``api_url`` points at this machine (a simulator), where stealing events costs nobody."""
    host = urlsplit(api_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_target(
    app_token: str | None,
    api_url: str | None = None,
    *,
    ack: bool = False,
    observe: bool = False,
) -> tuple[Target, Mode]:
    """Decide where to connect and in which mode; raise what the user must fix first.

    With no token: the embedded simulator, acking. With a token: it must look like an app-level token
    (:func:`~slackops.hints.check_app_token` names the xoxb-/xoxp- mistake); a production target needs exactly
    one of ``ack`` / ``observe`` (see :data:`EVENT_STEALING`).
    """
    if ack and observe:
        raise UsageError("--ack and --observe exclude each other: choose one", hint=EVENT_STEALING)
    mode = Mode.OBSERVE if observe else Mode.ACK
    if not app_token:
        return Target(embedded=True, api_url=None, app_token=None, production=False), mode
    token = check_app_token(app_token)
    url = api_url or SLACK_API_URL
    production = not is_loopback(url)
    if production and not (ack or observe):
        raise UsageError(
            "watching a real Slack app needs --ack or --observe (watch takes a share of the app's events)",
            hint=EVENT_STEALING,
        )
    return Target(embedded=False, api_url=url, app_token=token, production=production), mode


@dataclass
class WatchConfig:
    """Settings of one watch run."""

    target: Target
    mode: Mode = Mode.ACK
    #: sockets to hold (Slack allows 10 per app, across every replica)
    connections: int = 1
    #: stop after this many seconds; ``None`` = until :meth:`Watcher.request_stop` (Ctrl-C, SIGTERM)
    duration_s: float | None = None
    record_text: bool = False
    make_before_break: bool = True
    debug_reconnects: bool = False
    #: embedded simulator only
    scenario: str = DEFAULT_SCENARIO
    time_scale: float | None = None
    seed: int | None = None
    liveness: LivenessPolicy = field(default_factory=LivenessPolicy)
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        # ``connections`` is checked (1-10, with Slack's reason) by the transport's ManagerConfig.
        if self.duration_s is not None and self.duration_s <= 0:
            self.duration_s = None


Listener = Callable[[dict[str, Any]], None]


class Watcher:
    """One watch run: open the sockets, record everything, keep live stats; stop on request.

    The interface the headless view and the TUI share:

    - :meth:`add_listener` — ``callback(record)`` for every record, on the event loop thread, shortly after the
      record is written (never on the ack path; keep it quick).
    - :meth:`run` — connect and watch until the duration passes, :meth:`request_stop` is called, or a fatal
      token error (raised as :class:`~slackops.errors.AuthError`). Returns the final :meth:`summary`.
    - :meth:`request_stop` — thread-safe; closes sockets with close frames, flushes the recording.
    - :meth:`summary` — JSON-able live numbers (see :meth:`WatchStats.summary`) plus the target and recording.

    ``writer`` is anything with ``write(record)`` and, optionally, ``flush(timeout)`` and ``stats``: normally a
    :class:`~slackops.store.RecordWriter`. The watcher does not close it (its owner does).
    """

    def __init__(
        self,
        config: WatchConfig,
        *,
        writer: Any = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.writer = writer
        self.stats = WatchStats()
        self.simulator: Any = None
        self.manager: Any = None
        self.stopped_by: str | None = None
        self.started_t: float | None = None
        self._wall = wall
        self._listeners: list[Listener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = False

    # -- the interface ------------------------------------------------------------------------------------

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(record)`` with every record from now on (on the event loop thread)."""
        self._listeners.append(callback)

    def request_stop(self, reason: str = "requested") -> None:
        """Ask :meth:`run` to stop cleanly. Safe from any thread and from signal handlers."""
        if self.stopped_by is None:
            self.stopped_by = reason
        self._stop_requested = True
        loop, stop = self._loop, self._stop
        if loop is None or stop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            stop.set()
        else:
            loop.call_soon_threadsafe(stop.set)

    @property
    def scenario_time_scale(self) -> float | None:
        return self.simulator.time_scale if self.simulator is not None else None

    def summary(self) -> dict[str, Any]:
        """The live numbers, the target and the recording, as JSON-native data."""
        data = self.stats.summary(self._wall())
        cfg = self.config
        data["target"] = {
            "kind": "simulator" if not cfg.target.production else "slack",
            "label": cfg.target.label,
            "embedded": cfg.target.embedded,
            "scenario": cfg.scenario if cfg.target.embedded else None,
            "time_scale": self.scenario_time_scale,
        }
        data["mode"] = str(cfg.mode)
        data["requested_connections"] = cfg.connections
        data["make_before_break"] = cfg.make_before_break
        data["stopped_by"] = self.stopped_by
        data["recording"] = self.recording_info()
        if self.simulator is not None:
            card = self.simulator.scorecard()
            data["simulator"] = {
                "events": card.events,
                "acked": card.acked,
                "acked_late": card.acked_late,
                "lost": card.lost,
                "pending": card.pending,
                "retries": card.retries,
            }
        return data

    # -- the recorder the manager writes to ---------------------------------------------------------------

    def write(self, rec: dict[str, Any]) -> None:
        """Take one record from the manager: count it, queue it for disk, notify listeners later.

        Runs inline on the socket's read loop, before the ack is sent: everything here only touches memory.
        """
        self.stats.feed(rec)
        if self.writer is not None:
            try:
                self.writer.write(rec)
            except Exception:  # a broken sink must not break the probe (the writer reports its own errors)
                log.exception("could not queue a %s record", rec.get("kind"))
        if self._listeners and self._loop is not None:
            self._loop.call_soon(self._notify, rec)

    def _notify(self, rec: dict[str, Any]) -> None:
        for callback in list(self._listeners):
            try:
                callback(rec)
            except Exception:
                log.exception("a watch listener failed")

    # -- running ------------------------------------------------------------------------------------------

    async def run(self, *, handle_signals: bool = False) -> dict[str, Any]:
        """Watch until the duration passes or a stop is requested; return the final summary.

        ``handle_signals`` turns SIGINT and SIGTERM into :meth:`request_stop` (a second one cancels at once).
        Raises :class:`~slackops.errors.AuthError` for token problems retrying cannot fix.
        """
        from slackops.transport import ConnectionManager, ManagerConfig

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        self.started_t = self._wall()
        main = asyncio.current_task()
        installed = self._install_signals(main) if handle_signals else []
        try:
            api_url, token = await self._open_target()
            cfg = self.config
            self.manager = ConnectionManager(
                ManagerConfig(
                    api_url=api_url,
                    app_token=token,
                    connections=cfg.connections,
                    source="probe",
                    liveness=cfg.liveness,
                    backoff=cfg.backoff,
                    debug_reconnects=cfg.debug_reconnects,
                    make_before_break=cfg.make_before_break,
                    record_text=cfg.record_text,
                ),
                recorder=self,
                auto_ack=cfg.mode is Mode.ACK,
            )
            try:
                if await self._until_stopped(self.manager.start()):
                    await self._until_stopped(self.manager.run(), timeout=cfg.duration_s)
            finally:
                if self.simulator is not None and self.manager.live:
                    # Stop the built-in traffic and let what is in flight settle while our sockets are still
                    # open; otherwise events sent in the last instant count as lost against this watch.
                    await self.simulator.stop_traffic()
                    await self.simulator.drain(5.0)
                await self.manager.close()
        finally:
            await self._close_target()
            await self._flush()
            for sig in installed:
                self._loop.remove_signal_handler(sig)
        if self.stopped_by is None:
            self.stopped_by = "duration"
        return self.summary()

    async def _until_stopped(self, coro: Any, timeout: float | None = None) -> bool:
        """Run ``coro`` until it finishes (its errors propagate), a stop is requested, or ``timeout`` passes.

        Returns True when ``coro`` finished by itself.
        """
        assert self._stop is not None
        work = asyncio.ensure_future(coro)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait({work, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
        if work in done:
            work.result()
            return True
        return False

    async def _open_target(self) -> tuple[str, str]:
        target = self.config.target
        if not target.embedded:
            assert target.api_url is not None and target.app_token is not None
            return target.api_url, target.app_token
        from slackops.simulator import Simulator, load_scenario

        scenario = load_scenario(self.config.scenario)
        scale = self.config.time_scale or scenario.time_scale or 1.0
        self.simulator = Simulator(scenario, time_scale=scale, seed=self.config.seed)
        await self.simulator.start()
        self.simulator.start_traffic()
        return self.simulator.api_url, self.simulator.app_token

    async def _close_target(self) -> None:
        if self.simulator is not None:
            # The summary keeps reading the scorecard, which works on a stopped simulator.
            await self.simulator.stop_traffic()
            await self.simulator.stop()

    async def _flush(self) -> None:
        flush = getattr(self.writer, "flush", None)
        if flush is not None:
            # flush() blocks on the writer's thread; do not block the event loop meanwhile.
            await asyncio.to_thread(flush, 30.0)

    def _install_signals(self, main: asyncio.Task[Any] | None) -> list[int]:
        assert self._loop is not None
        installed = []

        def on_signal(name: str) -> None:
            if self._stop_requested and main is not None:
                main.cancel()  # a second Ctrl-C: stop waiting for a clean shutdown
                return
            self.request_stop(name)

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._loop.add_signal_handler(sig, on_signal, sig.name)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
                pass
        return installed

    def recording_info(self) -> dict[str, Any]:
        writer = self.writer
        out: dict[str, Any] = {}
        for attr, key in (("db_path", "db"), ("jsonl_path", "jsonl")):
            path = getattr(writer, attr, None)
            out[key] = str(path) if path is not None else None
        stats = getattr(writer, "stats", None)
        if stats is not None and not callable(stats):
            out.update(
                {
                    "received": stats.received,
                    "written": stats.written,
                    "spilled": stats.spilled,
                    "dropped": stats.dropped,
                }
            )
        return out
