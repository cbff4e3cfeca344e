"""``slackops demo``: the embedded default end to end — the built-in simulator, watched, summarised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from slackops.watch.session import WatchOptions, run_watch


def fresh_recording(db: Path) -> None:
    """Remove ``db`` and its WAL files, so the demo's diagnosis covers this run only."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def run_demo(*, db: Path, duration_s: float, scenario: str, console: Console) -> dict[str, Any]:
    """Watch the built-in simulator for ``duration_s`` seconds, recording to ``db``; return the summary."""
    fresh_recording(db)
    console.print(
        f"slackops demo: {duration_s:g} s against the built-in simulator (no Slack app, no network), "
        f"recording to {db}. Ctrl-C stops early.",
        markup=False,
        highlight=False,
    )
    return run_watch(WatchOptions(duration_s=duration_s, db=str(db), scenario=scenario), console)
