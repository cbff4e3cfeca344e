"""Command-line option parsing for ``diagnose`` that belongs in the library: times and the progress bar."""

from __future__ import annotations

import contextlib
import datetime as _dt
import sys
import time
from collections.abc import Iterator

from slackops.diagnose.readers.base import Progress
from slackops.errors import UsageError


def parse_time(text: str | None, now: float | None = None) -> float | None:
    """``--since``/``--until``: ISO-8601 (naive means UTC), epoch seconds, or an age like ``90m``/``2h``/``1d``."""
    if text is None:
        return None
    value = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[:-1].replace(".", "", 1).isdigit() and value[-1:] in units:
        now = _dt.datetime.now(_dt.UTC).timestamp() if now is None else now
        return now - float(value[:-1]) * units[value[-1]]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        dt = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"cannot read time {text!r}",
            hint="Use ISO-8601 (2024-02-15T14:30:00Z), epoch seconds, or an age like 2h.",
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.UTC)
    return dt.timestamp()


@contextlib.contextmanager
def progress_bar(enabled: bool | None = None) -> Iterator[Progress | None]:
    """A byte progress bar on stderr, only when stderr is a terminal (never in pipes or CI logs)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    # No auto-refresh: its thread would keep diagnose from forking its second worker (see diagnose.split), so
    # the bar is redrawn from the progress callback instead, at most ten times a second.
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=None,
        auto_refresh=False,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as bar:
        task = bar.add_task("reading", total=None)
        next_draw = 0.0

        def update(done: int, total: int) -> None:
            nonlocal next_draw
            bar.update(task, completed=done, total=total)
            now = time.monotonic()
            if now >= next_draw:
                next_draw = now + 0.1
                bar.refresh()

        yield update
