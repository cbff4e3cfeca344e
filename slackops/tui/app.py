"""The Textual app: the live view of ``slackops watch --tui`` and the replay of ``slackops tui PATH``.

Records arrive either from a watcher's listener (live: called on the event loop for every record) or from a
:class:`~slackops.tui.replay.Replayer` (replay). Either way they are only *buffered* when they arrive; a timer
at a bounded rate (10 Hz by default) drains the buffer into the pure :class:`~slackops.tui.state.Dashboard`
and repaints. So the socket loop and the recorder never wait for rendering, and at 2,000 envelopes/s the
screen still repaints ten times a second, not two thousand.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.worker import Worker, WorkerState

from slackops.errors import StoreError
from slackops.tui import findings as live_findings
from slackops.tui.replay import Replayer
from slackops.tui.state import Dashboard, matches
from slackops.tui.widgets import (
    AckPanel,
    ConnectionsTable,
    FindingsTable,
    FrameLog,
    RatePanel,
    RunbookScreen,
    TimelineTable,
    status_text,
)


class Watcher(Protocol):
    """What the live view needs from ``slackops.watch`` (its watcher implements this)."""

    def add_listener(self, callback: Callable[[dict[str, Any]], None]) -> None: ...

    async def run(self) -> Any: ...

    def request_stop(self) -> None: ...

    def summary(self) -> dict[str, Any]: ...


#: Panels the switch-panel key cycles through, in order.
PANELS = ("connections", "timeline", "findings", "log")


class SlackopsApp(App[None]):
    """The terminal view. Give it a ``watcher`` (live) or a ``replayer`` (replay), not both.

    ``clock`` is the wall clock the live view shows and ages connections by, ``mono`` the monotonic clock the
    replay runs on; tests pass constants so screenshots never hold the time of day. ``findings``: ``None`` runs
    diagnose's detectors when diagnose is installed, ``False`` turns findings off, or pass any object with
    ``feed(record)`` and ``findings()``. ``exit_when_done`` quits once the watcher stops by itself (duration).

    ``threaded=False`` runs the watcher as a worker on Textual's own event loop: simple, and the watcher's
    listener runs on the same loop as the view. Each repaint then holds that loop for one compositor pass
    (tens of ms at 2,000 records/s, ten times a second). ``threaded=True`` gives the watcher an event loop of
    its own in a worker thread, so its sockets and acks only ever wait for the GIL's switch interval.
    """

    # Absolute, so subclasses defined elsewhere (tests, benchmarks) find the sibling stylesheet too.
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))
    TITLE = "slackops"
    BINDINGS = [
        Binding("space", "pause", "Pause"),
        Binding("f", "filter", "Filter"),
        Binding("c", "clear", "Clear"),
        Binding("tab", "switch_panel", "Switch panel", priority=True),
        Binding("r", "runbook", "Runbook"),
        Binding("plus,equals_sign", "faster", "Faster", show=False),
        Binding("minus", "slower", "Slower", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        *,
        watcher: Watcher | None = None,
        replayer: Replayer | None = None,
        clock: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        refresh_hz: float = 10.0,
        findings_every: float = 3.0,
        findings: Any = None,
        stop_timeout: float = 15.0,
        exit_when_done: bool = False,
        threaded: bool = False,
    ) -> None:
        super().__init__()
        if (watcher is None) == (replayer is None):
            raise ValueError("give exactly one of watcher= (live) or replayer= (replay)")
        self.watcher = watcher
        self.replayer = replayer
        self.clock = clock
        self.mono = mono
        self.refresh_hz = refresh_hz
        self.findings_every = findings_every
        self.stop_timeout = stop_timeout
        self.exit_when_done = exit_when_done
        self.threaded = threaded
        self.model = Dashboard()
        #: records received and not yet drained (a deque: the threaded watcher appends from its own thread)
        self.pending: deque[dict[str, Any]] = deque()
        self.paused = False
        self.filter = ""
        self.error: BaseException | None = None
        self.watch_ended = False
        self.ticks = 0
        if findings is None:
            findings = live_findings.available()
        if findings is True:
            findings = live_findings.LiveFindings()
        self.live_findings = findings or None
        self._findings_at: float | None = None
        self._findings_final = False
        self._log_seq = 0
        self._timeline_seq = 0
        self._findings_shown: list[dict[str, Any]] | None = None
        self._worker: Worker[Any] | None = None
        self._thread: threading.Thread | None = None
        self._thread_done = threading.Event()
        self._thread_error: BaseException | None = None
        self._note = ""
        self._status_shown: Any = None
        self.title = "slackops watch" if watcher is not None else "slackops tui (replay)"

    # ------------------------------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="status")
        with Horizontal(id="top"):
            yield ConnectionsTable(id="connections", classes="panel")
            yield AckPanel(id="acks", classes="panel")
        yield RatePanel(id="rate", classes="panel")
        with Horizontal(id="middle"):
            yield TimelineTable(id="timeline", classes="panel")
            yield FindingsTable(id="findings", classes="panel")
        yield FrameLog(id="log", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        titles = {
            "connections": "Connections",
            "acks": "Ack latency (budget 3 s)",
            "rate": "Envelopes/s",
            "timeline": "Reconnects & disconnects",
            "findings": "Findings"
            if self.live_findings is not None
            else "Findings (off: diagnose not installed)",
            "log": "Frames  > sent  < received  = state  x close  ! error",
        }
        for wid, title in titles.items():
            self.query_one(f"#{wid}").border_title = title
        # Held once: queries on the app go to the active screen, which is the runbook while it is open.
        self.status_bar = self.query_one("#status", Static)
        self.connections_table = self.query_one(ConnectionsTable)
        self.rate_panel = self.query_one(RatePanel)
        self.ack_panel = self.query_one(AckPanel)
        self.timeline_table = self.query_one(TimelineTable)
        self.findings_table = self.query_one(FindingsTable)
        self.frame_log = self.query_one(FrameLog)
        self.filter_box = self.query_one("#filter", Input)
        if self.watcher is not None:
            # The listener only appends: parsing, state updates and rendering happen on the refresh timer.
            self.watcher.add_listener(self.receive)
            if self.threaded:
                self._thread = threading.Thread(target=self._run_thread, name="slackops-watch", daemon=True)
                self._thread.start()
            else:
                self._worker = self.run_worker(self.watcher.run(), name="watcher", exit_on_error=False)
        self.set_interval(1.0 / self.refresh_hz, self.tick)
        self.query_one("#connections").focus()
        self.tick()

    # ------------------------------------------------------------------------------------------ updates

    def now(self) -> float | None:
        """The time the view shows: wall clock when live, the replay's virtual clock when replaying."""
        if self.replayer is not None:
            return self.replayer.virtual_now(self.mono())
        return self.clock()

    def receive(self, rec: dict[str, Any]) -> None:
        """The watcher's listener: buffer the record, nothing more (it runs on the socket loop's turn)."""
        self.pending.append(rec)

    def take(self) -> list[dict[str, Any]]:
        """Records that arrived (live) or came due (replay) since the last tick."""
        if self.replayer is not None:
            return self.replayer.due(self.mono(), limit=50_000)
        pending = self.pending
        return [pending.popleft() for _ in range(len(pending))]

    def ingest(self, batch: list[dict[str, Any]]) -> None:
        """Feed records to the model (and the live detectors), and refresh findings every few seconds."""
        self.model.feed_many(batch)
        if self.live_findings is None:
            return
        for rec in batch:
            self.live_findings.feed(rec)
        mono = self.mono()
        due = batch and (self._findings_at is None or mono - self._findings_at >= self.findings_every)
        # Once the data has ended (replay finished, watch stopped), report on all of it one last time.
        ended = self.replayer.done if self.replayer is not None else self.watch_ended
        if due or (ended and not self._findings_final):
            self.refresh_findings()
            self._findings_at = mono
            self._findings_final = ended

    def refresh_findings(self) -> None:
        """Ask the detectors for findings now (what diagnose would report if the data ended here)."""
        if self.live_findings is not None:
            self.model.set_findings(self.live_findings.findings())

    def tick(self) -> None:
        """One bounded-rate step: drain, feed, repaint (unless paused)."""
        if self._exit:
            return
        if self._thread is not None and self._thread_done.is_set() and not self.watch_ended:
            self.watcher_finished(self._thread_error)
        self.ticks += 1
        self.ingest(self.take())
        if not self.paused:
            self.repaint()
        if self.exit_when_done and self.replayer is not None and self.replayer.done:
            self.exit()

    def repaint(self) -> None:
        """Draw every panel from the model."""
        now = self.now()
        m = self.model
        at = now if now is not None else (m.latest or 0.0)
        rate = m.current_rate(at)
        self.update_status(now, rate)
        self.connections_table.show(m.connection_rows(at))
        self.rate_panel.show(m.rates(at), rate, m.counts.envelopes)
        self.ack_panel.show(m.ack_stats())
        self.timeline_table.append(m.timeline_since(self._timeline_seq))
        self._timeline_seq = m.timeline_seq
        if m.findings is not self._findings_shown:
            self.findings_table.show(m.findings)
            self._findings_shown = m.findings
        self.write_log()

    def write_log(self) -> None:
        """Append new frame-log lines (at most a screenful or so per repaint) that pass the filter."""
        new = self.model.log.since(self._log_seq)
        self._log_seq = self.model.log.seq
        if self.filter:
            new = [line for line in new if matches(line, self.filter)]
        cap = FrameLog.MAX_PER_REFRESH
        skipped = max(0, len(new) - cap)
        self.frame_log.write(new[-cap:], skipped)

    def mode(self) -> str:
        if self.paused:
            return "PAUSED"
        if self.replayer is not None:
            return "ENDED" if self.replayer.done else "REPLAY"
        return "ENDED" if self.watch_ended else "LIVE"

    def speed(self) -> float | None:
        return self.replayer.speed if self.replayer is not None else None

    def note(self) -> str:
        if self._note:
            return self._note
        if self.filter:
            return f"filter: {self.filter}"
        if self.replayer is not None and self.replayer.done:
            return "end of recording"
        return ""

    # ------------------------------------------------------------------------------------------ the watcher

    def _run_thread(self) -> None:
        """The threaded watcher: its own event loop; the tick notices when it ends (no cross-thread calls)."""
        assert self.watcher is not None
        try:
            asyncio.run(self.watcher.run())
        except BaseException as exc:
            self._thread_error = exc
        finally:
            self._thread_done.set()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._worker:
            return
        if event.state == WorkerState.ERROR:
            self.watcher_finished(event.worker.error)
        elif event.state in (WorkerState.SUCCESS, WorkerState.CANCELLED):
            self.watcher_finished(None)

    def watcher_finished(self, error: BaseException | None) -> None:
        """The watcher's ``run()`` returned (duration, stop) or raised."""
        if self.watch_ended:
            return
        self.watch_ended = True
        if error is not None:
            # Surface the watcher's error (bad token, no network …) to the CLI, which maps it to an exit code.
            self.error = error
            self.exit()
            return
        self._note = "watch ended: press q to quit"
        if self.exit_when_done:
            self.tick()
            self.exit()

    def watcher_running(self) -> bool:
        if self._thread is not None:
            return not self._thread_done.is_set()
        return self._worker is not None and not self._worker.is_finished

    async def stop_watcher(self) -> None:
        """Ask the watcher to stop and wait for it (it flushes the recording before returning)."""
        if self.watcher is None or not self.watcher_running():
            return
        self._note = "stopping: flushing the recording…"
        self.repaint()
        self.watcher.request_stop()
        deadline = time.monotonic() + self.stop_timeout
        while self.watcher_running() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self.watcher_running():
            self.error = StoreError(
                f"the watcher did not stop within {self.stop_timeout:g} s: the recording may be incomplete"
            )

    def join_watcher(self) -> None:
        """After the app has gone (whatever the exit path): make sure a threaded watcher stopped and flushed."""
        if self._thread is not None and self._thread.is_alive() and self.watcher is not None:
            self.watcher.request_stop()
            self._thread.join(self.stop_timeout)

    # ------------------------------------------------------------------------------------------ actions

    async def action_quit(self) -> None:
        """Quit; when live, stop the watcher first so the recording is flushed."""
        await self.stop_watcher()
        self.exit()

    def action_pause(self) -> None:
        """Freeze the screen (live: records keep being recorded and counted; replay: the clock stops)."""
        self.paused = not self.paused
        if self.replayer is not None:
            (self.replayer.pause if self.paused else self.replayer.resume)(self.mono())
        self.repaint() if not self.paused else self._repaint_status()

    def _repaint_status(self) -> None:
        m = self.model
        now = self.now()
        self.update_status(now, m.current_rate(now if now is not None else (m.latest or 0.0)))

    def update_status(self, now: float | None, rate: int) -> None:
        text = status_text(self.mode(), now, self.model.counts, rate, self.note(), self.speed())
        if text != self._status_shown:
            self._status_shown = text
            self.status_bar.update(text, layout=False)

    def action_filter(self) -> None:
        box = self.filter_box
        box.display = True
        box.value = self.filter
        box.focus()

    @on(Input.Submitted, "#filter")
    def apply_filter(self, event: Input.Submitted) -> None:
        self.set_filter(event.value)
        event.input.display = False
        self.frame_log.log_widget.focus()

    def set_filter(self, query: str) -> None:
        """Show only frame-log lines matching ``query`` (see :func:`slackops.tui.state.matches`)."""
        self.filter = query.strip()
        kept = [line for line in self.model.log.lines if not self.filter or matches(line, self.filter)]
        self.frame_log.replace(kept)
        self._log_seq = self.model.log.seq
        self._repaint_status()

    def action_clear(self) -> None:
        """Empty the frame log and the timeline (totals, rates and connections stay)."""
        self.model.clear()
        self.frame_log.replace([])
        self.timeline_table.reset()
        self._log_seq = self.model.log.seq
        self._timeline_seq = self.model.timeline_seq

    def action_switch_panel(self) -> None:
        focused = self.focused
        ids = [f"#{p}" for p in PANELS]
        current = next(
            (i for i, wid in enumerate(ids) if focused is not None and _within(focused, wid[1:])), -1
        )
        target = self.query_one(ids[(current + 1) % len(ids)])
        if isinstance(target, FrameLog):
            target.log_widget.focus()
        else:
            target.focus()

    def action_runbook(self) -> None:
        """Open the runbook of the selected finding (or the worst one)."""
        finding = self.findings_table.selected()
        if finding is None:
            self.notify("No findings yet.", timeout=3)
            return
        self.push_screen(RunbookScreen(finding))

    def action_faster(self) -> None:
        if self.replayer is not None:
            self.replayer.faster(self.mono())
            self._repaint_status()

    def action_slower(self) -> None:
        if self.replayer is not None:
            self.replayer.slower(self.mono())
            self._repaint_status()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, FindingsTable):
            self.action_runbook()


def _within(widget: Any, wid: str) -> bool:
    node = widget
    while node is not None:
        if getattr(node, "id", None) == wid:
            return True
        node = node.parent
    return False
