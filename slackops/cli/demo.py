"""``slackops demo``: the whole product in one command, with no Slack app and no network."""

from __future__ import annotations

from pathlib import Path

import typer

from slackops.cli.app import app, stderr


@app.command("demo")
def demo(
    duration: float = typer.Option(30, "--duration", help="Seconds to watch the built-in simulator."),
    db: Path = typer.Option(
        Path("slackops-demo.db"), "--db", help="Recording to write (replaced if present)."
    ),
    scenario: str = typer.Option("refresh-churn", "--scenario", help="Simulator scenario to watch."),
) -> int:
    """Start the built-in simulator, watch it (refreshes, gaps, ack latency), then diagnose the recording."""
    from slackops.cli import main
    from slackops.watch.demo import NEXT_STEPS, diagnose_args, run_demo

    console = stderr()
    summary = run_demo(db=db, duration_s=duration, scenario=scenario, console=console)
    args, scale = diagnose_args(summary, db)
    note = f" (refresh windows divided by the simulator's time scale, {scale:g}x)" if scale > 1 else ""
    console.rule(f"slackops diagnose {db}{note}")
    main(args)  # findings are the point of the demo, not a failure of it
    console.print(NEXT_STEPS.format(db=db), markup=False, highlight=False)
    return 0
