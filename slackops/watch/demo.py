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


#: Thresholds that count refreshes in wall-clock time. The simulator compresses Slack's ~5 h connection lifetime
#: by its time scale, so a healthy demo refreshes every few seconds: scale these windows the same way, or the
#: diagnosis would call a healthy run a disconnect storm.
TIME_SCALED_THRESHOLDS = ("reconnect_window_s", "burst_window_s")


def diagnose_args(summary: dict[str, Any], db: Path) -> tuple[list[str], float]:
    """The ``slackops diagnose`` arguments for the demo's recording, and the time scale they account for."""
    from slackops.diagnose.thresholds import THRESHOLDS

    scale = float((summary.get("target") or {}).get("time_scale") or 1.0)
    args = ["diagnose", str(db)]
    if scale > 1.0:
        for name in TIME_SCALED_THRESHOLDS:
            args += ["--threshold", f"{name}={THRESHOLDS[name].default / scale:g}"]
    return args, scale


NEXT_STEPS = """Next:
  slackops simulate --demo              a naive bot (process, then ack) under the same churn: see what it loses
  slackops tui {db}       replay this recording in the live view
  slackops runbook                      the runbooks, one per failure mode
  slackops watch --help                 watch a real app (use a dedicated dev app: watch takes a share of events)"""
