"""The Textual app driven by pilots: from a recorded fixture (replay), from a test double of the watcher
interface, and from the real watcher against the built-in simulator."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import pytest
from textual.widgets import Markdown

from slackops.errors import AuthError
from slackops.findings import Finding
from slackops.store import iter_records
from slackops.tui import run_live
from slackops.tui.app import SlackopsApp
from slackops.tui.replay import open_recording
from slackops.tui.widgets import FindingsTable, RunbookScreen, runbook_markdown
from tests.test_tui_fixtures import SESSION, T0, T_END
from tests.util import wait_for

SIZE = (140, 42)
FIXTURE = list(iter_records(SESSION))


class FakeWatcher:
    """A test double of the watcher interface the live view relies on (``slackops.watch.Watcher``).

    ``run()`` emits ``records`` through the listeners on the event loop (in batches of ``batch`` per loop turn,
    or paced at ``rate`` records/s), then waits for :meth:`request_stop`; it "flushes" before returning.
    """

    def __init__(
        self, recs: list[dict], *, rate: float | None = None, batch: int = 50, fail: Exception | None = None
    ):
        self.recs = recs
        self.rate = rate
        self.batch = batch
        self.fail = fail
        self.listeners: list[Any] = []
        self.stop = asyncio.Event()
        self.stop_requests = 0
        self.emitted = 0
        self.flushed = False
        self.stop_when_done = False
        self.loop: asyncio.AbstractEventLoop | None = None

    def add_listener(self, callback) -> None:
        self.listeners.append(callback)

    def request_stop(self) -> None:
        # Thread-safe, like the real watcher's: the app may run us on a loop in another thread.
        self.stop_requests += 1
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.stop.set)

    def summary(self) -> dict:
        return {"records": self.emitted, "flushed": self.flushed}

    def emit(self, rec: dict) -> None:
        self.emitted += 1
        for cb in self.listeners:
            cb(rec)

    async def run(self) -> dict:
        loop = self.loop = asyncio.get_running_loop()
        if self.fail is not None:
            raise self.fail
        start = loop.time()
        for i, rec in enumerate(self.recs):
            if self.stop.is_set():
                break
            self.emit(rec)
            if self.rate is not None and (i + 1) % self.batch == 0:
                # Pace on the loop clock: the i-th record is due at start + i / rate.
                await asyncio.sleep(max(0.0, start + (i + 1) / self.rate - loop.time()))
            elif self.rate is None and (i + 1) % self.batch == 0:
                await asyncio.sleep(0)
        if not self.stop_when_done:
            await self.stop.wait()
        await asyncio.sleep(0.01)  # the flush a real watcher awaits
        self.flushed = True
        return self.summary()


class FixedFindings:
    """A findings source with fixed answers (keeps screenshots independent of detector tuning)."""

    def __init__(self, findings: list[Finding]) -> None:
        self._findings = findings
        self.fed = 0

    def feed(self, rec: dict) -> None:
        self.fed += 1

    def findings(self) -> list[Finding]:
        return list(self._findings) if self.fed else []


def fixed_findings() -> FixedFindings:
    return FixedFindings(
        [
            Finding("ack-late", "15 envelope(s) acked after the 3 s deadline", evidence={"count": 15}),
            Finding("open-ratelimited", "apps.connections.open was rate limited 1 time(s)"),
        ]
    )


class Mono:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def log_lines(app: SlackopsApp) -> list[str]:
    return list(app.frame_log.log_widget.lines)


# ---------------------------------------------------------------------------------------------- replay


def test_replay_follows_its_clock_and_the_keys_work():
    async def main() -> None:
        mono = Mono()
        app = SlackopsApp(replayer=open_recording(SESSION, speed=1.0), mono=mono, findings=fixed_findings())
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.model.counts.records > 0, what="first records")
            first = app.model.counts.records
            assert app.mode() == "REPLAY"
            mono.now = 30.0
            await wait_for(
                lambda: app.model.latest is not None and app.model.latest >= T0 + 29.0, what="30 s"
            )
            assert app.model.counts.records > first
            await pilot.press("space")
            assert app.paused and app.replayer.paused and app.mode() == "PAUSED"
            held = app.model.counts.records
            mono.now = 200.0
            await pilot.pause(0.25)
            assert app.model.counts.records == held  # the replay clock stopped
            await pilot.press("space")
            assert not app.replayer.paused
            await pilot.press("plus")
            assert app.replayer.speed == 2.0
            await pilot.press("minus", "minus")
            assert app.replayer.speed == 0.5
            await pilot.press("q")
        assert app.return_code == 0

    asyncio.run(main())


def test_replay_to_the_end_shows_findings_and_opens_a_runbook():
    async def main() -> None:
        mono = Mono()
        app = SlackopsApp(
            replayer=open_recording(SESSION, speed=1000.0), mono=mono, findings=fixed_findings()
        )
        async with app.run_test(size=SIZE) as pilot:
            mono.now = 1.0
            await wait_for(lambda: app.replayer.done and app.model.findings, what="the end of the replay")
            await pilot.pause()
            assert app.mode() == "ENDED" and app.model.counts.records == len(FIXTURE)
            table = app.query_one(FindingsTable)
            assert [f["code"] for f in table.findings] == ["ack-late", "open-ratelimited"]
            await pilot.press("r")
            assert isinstance(app.screen, RunbookScreen)
            assert app.screen.finding["runbook"] == "ack-timeout"
            await pilot.pause()
            if runbook_markdown("ack-timeout") is not None:
                assert app.screen.query(Markdown)  # the runbook itself, rendered
            else:
                assert "slackops runbook ack-timeout" in str(
                    app.screen.query_one("#runbook-body Static").render()
                )
            await pilot.press("escape")
            assert not isinstance(app.screen, RunbookScreen)
            await pilot.press("q")

    asyncio.run(main())


def test_filter_clear_and_switch_panel():
    async def main() -> None:
        app = SlackopsApp(replayer=open_recording(SESSION, speed=1.0), mono=Mono(), findings=False)
        async with app.run_test(size=SIZE) as pilot:
            app.ingest(app.replayer.advance_to(T_END, 0.0))
            app.repaint()
            await pilot.pause()
            await pilot.press("f")
            assert app.filter_box.display and app.filter_box.has_focus
            await pilot.press("!", "enter")
            await pilot.pause()
            lines = log_lines(app)
            assert app.filter == "!" and lines
            assert all(line.split()[2] == "!" for line in lines), lines
            # Remote text is shown literally: markup stays text, the escape character is gone.
            assert any("[bold red]remote[/] ?[31mtext" in line for line in lines)
            await pilot.press("f", "backspace", "x", " ", "c", "2", "enter")
            await pilot.pause()
            assert [line.split()[1:3] for line in log_lines(app)] == [["c2", "x"]]
            await pilot.press("c")
            await pilot.pause()
            assert log_lines(app) == [] and app.timeline_table.row_count == 0
            order = []
            for _ in range(4):
                await pilot.press("tab")
                order.append(app.focused.id if app.focused else None)
            assert order == ["connections", "timeline", "findings", "log-lines"]
            await pilot.press("q")

    asyncio.run(main())


def test_markup_in_remote_fields_is_not_interpreted():
    async def main() -> None:
        evil = dict(FIXTURE[2], host="[reverse]evil[/reverse]")  # the first hello
        watcher = FakeWatcher([evil])
        app = SlackopsApp(watcher=watcher, clock=lambda: T0 + 5, findings=False)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.connections_table.row_count == 1, what="the connection row")
            cell = app.connections_table.get_row_at(0)[3]
            assert cell.plain == "[reverse]evil[/reverse]" and not cell.spans
            await pilot.press("q")

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------- live


@pytest.mark.parametrize("threaded", [False, True], ids=["shared-loop", "own-thread"])
def test_live_view_buffers_the_watcher_and_quitting_stops_and_flushes_it(threaded):
    async def main() -> None:
        watcher = FakeWatcher(FIXTURE)
        app = SlackopsApp(watcher=watcher, clock=lambda: T_END, findings=fixed_findings(), threaded=threaded)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: app.model.counts.records == len(FIXTURE), what="every record")
            await wait_for(lambda: app.findings_table.row_count == 2, what="findings")
            assert not app.pending and app.mode() == "LIVE"
            assert app.connections_table.row_count == 4
            assert watcher.stop_requests == 0
            await pilot.press("space")
            assert app.mode() == "PAUSED"
            await pilot.press("q")
        assert watcher.stop_requests == 1 and watcher.flushed
        assert app.return_code == 0

    asyncio.run(main())


def test_live_view_keeps_counting_while_paused():
    async def main() -> None:
        watcher = FakeWatcher(FIXTURE, rate=2000.0, batch=20)
        app = SlackopsApp(watcher=watcher, clock=lambda: T_END, findings=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("space")
            await wait_for(lambda: watcher.emitted == len(FIXTURE), what="the fake watcher to finish")
            await wait_for(lambda: app.model.counts.records == len(FIXTURE), what="the model to catch up")
            await pilot.press("q")

    asyncio.run(main())


def test_run_live_returns_the_summary_and_reraises_watcher_errors():
    watcher = FakeWatcher(FIXTURE[:50])
    watcher.stop_when_done = True
    summary = run_live(watcher, headless=True, exit_when_done=True, findings=False, clock=lambda: T_END)
    assert summary == {"records": 50, "flushed": True}

    for threaded in (True, False):
        failing = FakeWatcher([], fail=AuthError("invalid_auth", error="invalid_auth"))
        with pytest.raises(AuthError):
            run_live(failing, headless=True, findings=False, threaded=threaded)


def test_throughput_2000_records_per_second_is_consumed_completely():
    """The app keeps up with 2,000 records/s from the fixture (counts, not timings: see bench/bench_tui.py)."""
    n = 2000
    recs = [dict(FIXTURE[i % len(FIXTURE)], t=T0 + i / 2000.0) for i in range(n)]

    async def main() -> None:
        watcher = FakeWatcher(recs, rate=2000.0, batch=20)
        app = SlackopsApp(watcher=watcher, clock=lambda: T0 + 1.0)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: watcher.emitted == n, timeout=20, what="2,000 records emitted")
            await wait_for(lambda: app.model.counts.records == n, timeout=5, what="the model to catch up")
            await pilot.pause(0.15)
            assert not app.pending
            assert app.ticks >= 2  # the screen kept repainting while records poured in
            # The log shows the latest lines; lines beyond a screenful per refresh are counted, not drawn.
            assert app.model.log.seq > len(log_lines(app))
            await pilot.press("q")

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------- the real watcher


@pytest.mark.skipif(
    importlib.util.find_spec("slackops.watch") is None, reason="slackops.watch not importable"
)
@pytest.mark.parametrize("threaded", [False, True], ids=["shared-loop", "own-thread"])
def test_live_view_of_the_real_watcher_against_the_simulator(tmp_path, threaded):
    from slackops.store import RecordWriter
    from slackops.watch import WatchConfig, Watcher, resolve_target

    target, mode = resolve_target(app_token=None)
    db = tmp_path / "watch.db"

    async def main() -> tuple[SlackopsApp, Watcher]:
        with RecordWriter(db=str(db)) as writer:
            watcher = Watcher(
                WatchConfig(target, mode=mode, scenario="steady", time_scale=10.0, seed=1), writer=writer
            )
            app = SlackopsApp(watcher=watcher, threaded=threaded)
            async with app.run_test(size=SIZE) as pilot:
                await wait_for(lambda: app.model.counts.envelopes >= 3, timeout=20, what="envelopes")
                await wait_for(lambda: app.connections_table.row_count >= 1, what="a connection row")
                await pilot.press("q")
            return app, watcher

    app, watcher = asyncio.run(main())
    assert app.error is None
    assert watcher.stopped_by == "requested"  # quitting stopped it (not the duration, not a crash)
    stored = list(iter_records(db))
    kinds = {r["kind"] for r in stored}
    assert {"hello", "envelope", "ack"} <= kinds
    assert len(stored) >= app.model.counts.records > 0


def test_runbook_screen_falls_back_to_the_command_when_runbooks_are_missing(monkeypatch):
    import slackops.runbooks

    def missing(name, books=None):
        raise slackops.runbooks.UsageError(f"no runbook named {name!r}")

    monkeypatch.setattr(slackops.runbooks, "find", missing)
    assert runbook_markdown("ack-timeout") is None

    async def main() -> None:
        app = SlackopsApp(replayer=open_recording(SESSION), mono=Mono(), findings=fixed_findings())
        async with app.run_test(size=SIZE) as pilot:
            app.ingest(app.replayer.advance_to(T0 + 70, 0.0))
            app.repaint()
            await pilot.press("r")
            assert isinstance(app.screen, RunbookScreen)
            text = str(app.screen.query_one("#runbook-body Static").render())
            assert "slackops runbook ack-timeout" in text
            await pilot.press("escape", "q")

    asyncio.run(main())
