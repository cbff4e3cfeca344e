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
    """Let tables scroll their cursor into view (done after a refresh) before the screenshot is taken.

    DataTable scrolls to its cursor after the next refresh; on a loaded machine that can take more than a fixed
    number of pauses, so wait until the timeline's cursor row is actually in view, then give every table the
    same extra pauses.
    """
    app = pilot.app
    table = app.timeline_table

    def cursor_visible() -> bool:
        if table.row_count == 0:
            return True
        row_top = table.cursor_row  # one line per row in this table
        return table.scroll_y <= row_top < table.scroll_y + table.scrollable_content_region.height

    for _ in range(50):
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()
        if cursor_visible():
            break
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
