"""``slackops tui PATH``: replay a recording in the full-screen terminal view."""

from __future__ import annotations

from pathlib import Path

import typer

from slackops.cli.app import app
from slackops.errors import UsageError


@app.command("tui")
def tui(
    recording: Path = typer.Argument(
        ..., metavar="PATH", help="A slackops recording: SQLite database or JSONL (plain or gzip)."
    ),
    speed: float = typer.Option(
        1.0,
        "--speed",
        metavar="X",
        help="Replay X times as fast as recorded (+ and - change it while playing).",
    ),
    max_idle: float = typer.Option(
        30.0,
        "--max-idle",
        metavar="SECONDS",
        help="Skip quiet stretches longer than this (recording time). 0 keeps every pause as recorded.",
    ),
) -> None:
    """Replay a recording in the live view: connections, envelope rate, ack latency, reconnects, frames, findings."""
    if speed <= 0:
        raise UsageError(
            f"--speed must be positive, got {speed:g}", hint="For example --speed 10 plays 10x fast."
        )
    from slackops.tui import run_replay

    run_replay(recording, speed=speed, max_idle=max_idle or None)
