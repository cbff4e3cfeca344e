"""Snapshot tests of the terminal view at a fixed size, fed fixed fixture data with fixed clocks.

Update after an intended change of the view: ``.venv/bin/python -m pytest tests/test_tui_snapshot.py
--snapshot-update`` and review the SVGs under ``tests/__snapshots__/``.
"""

from __future__ import annotations

from slackops.tui.app import SlackopsApp
from slackops.tui.replay import open_recording
from tests.test_tui_app import FIXTURE, SIZE, FakeWatcher, fixed_findings
from tests.test_tui_fixtures import SESSION, T0, T_END
from tests.util import wait_for


async def settled(pilot) -> None:
    """Let the tables and the frame log finish scrolling before the screenshot is taken.

    DataTable scrolls to its cursor after the next refresh, and the frame log's scroll to its end depends on its
    laid-out height: on a loaded machine either can land a few frames late. Wait until both are where the view
    puts them (timeline cursor in view, log at its end), then give everything a few more pauses.
    """
    app = pilot.app
    table = app.timeline_table
    log = app.frame_log.log_widget

    def in_place() -> bool:
        # The timeline's cursor is on its last row, so the table belongs scrolled to its end, like the log.
        return table.scroll_y == table.max_scroll_y and log.scroll_y == log.max_scroll_y

    for _ in range(100):
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        if in_place():
            break
        table.scroll_end(animate=False, immediate=True)
        log.scroll_end(animate=False, immediate=True)
    for _ in range(3):
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()


def test_live_main_screen(snap_compare):
    """The live view after the two-minute session: four sockets, a late-ack tail, a gap, findings."""
    app = SlackopsApp(
        watcher=FakeWatcher(FIXTURE, batch=len(FIXTURE)), clock=lambda: T_END, findings=fixed_findings()
    )

    async def settle(pilot) -> None:
        await wait_for(lambda: app.model.counts.records == len(FIXTURE), what="every record")
        await wait_for(lambda: app.findings_table.row_count == 2, what="findings")
        app.set_filter("")  # rebuild the log from the model: independent of how ticks batched the records
        app.repaint()
        await settled(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_replay_mid_gap(snap_compare):
    """The replay at ×4, stopped in the gap after both sockets dropped and before the 429'd reopen."""
    app = SlackopsApp(
        replayer=open_recording(SESSION, speed=4.0), mono=lambda: 0.0, findings=fixed_findings()
    )

    async def settle(pilot) -> None:
        app.ingest(app.replayer.advance_to(T0 + 101.0, 0.0))
        app.refresh_findings()
        app.set_filter("")
        app.repaint()
        await settled(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


async def _readme_screenshot(path: str) -> None:
    """The README's picture: the live view after the session fixture, with diagnose's real detectors."""
    app = SlackopsApp(watcher=FakeWatcher(FIXTURE, batch=len(FIXTURE)), clock=lambda: T_END)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(lambda: app.model.counts.records == len(FIXTURE), what="every record")
        app.refresh_findings()
        app.set_filter("")
        app.repaint()
        await settled(pilot)
        directory, _, name = path.rpartition("/")
        app.save_screenshot(name, path=directory or ".")
        await pilot.press("q")


if __name__ == "__main__":
    import asyncio

    # Regenerate the README screenshot: python -m tests.test_tui_snapshot
    asyncio.run(_readme_screenshot("docs/tui.svg"))
    print("wrote docs/tui.svg")
