"""The terminal view: ``slackops watch --tui`` (live) and ``slackops tui PATH`` (replay of a recording).

::

    from slackops.tui import run_live, run_replay
    summary = run_live(watcher)            # runs the watcher inside the app; quitting stops it and flushes
    run_replay("slackops.db", speed=4.0)   # SQLite or JSONL recording

Textual is imported only when one of these runs (the CLI must stay Textual-free until the view is asked for).
:mod:`slackops.tui.state` and :mod:`slackops.tui.replay` are plain Python and hold everything the view shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_live(watcher: Any, *, headless: bool = False, **options: Any) -> dict[str, Any]:
    """Show ``watcher``'s records live until the user quits or the watcher stops; return its summary.

    The watcher runs on an event loop of its own in a thread (``threaded=False`` runs it as a worker on the
    app's loop instead: see :class:`~slackops.tui.app.SlackopsApp`), so repainting never holds up its sockets
    or acks; its listener only appends to a buffer the app drains at its refresh rate. Quitting calls
    ``watcher.request_stop()`` and waits for ``watcher.run()`` to return (the recording is flushed by then).
    An error raised by the watcher is re-raised here after the screen is restored, so the CLI maps it to an
    exit code as usual. ``options`` go to :class:`~slackops.tui.app.SlackopsApp` (``exit_when_done=True``
    quits when the watch's duration ends).
    """
    from slackops.tui.app import SlackopsApp

    options.setdefault("threaded", True)
    app = SlackopsApp(watcher=watcher, **options)
    try:
        app.run(headless=headless)
    finally:
        app.join_watcher()
    if app.error is not None:
        raise app.error
    return watcher.summary()


def run_replay(
    path: str | Path,
    *,
    speed: float = 1.0,
    max_idle: float | None = 30.0,
    headless: bool = False,
    **options: Any,
) -> None:
    """Replay a recording (SQLite or JSONL) in the terminal view at ``speed`` times its original pace."""
    from slackops.tui.app import SlackopsApp
    from slackops.tui.replay import open_recording

    replayer = open_recording(path, speed=speed, max_idle=max_idle)
    SlackopsApp(replayer=replayer, **options).run(headless=headless)


__all__ = ["run_live", "run_replay"]
