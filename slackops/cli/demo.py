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
    from slackops.watch.demo import run_demo

    console = stderr()
    run_demo(db=db, duration_s=duration, scenario=scenario, console=console)
    if any(_name(c) == "diagnose" for c in app.registered_commands):
        console.rule("slackops diagnose " + str(db))
        main(["diagnose", str(db)])  # findings are the point of the demo, not a failure of it
    else:
        console.print(f"Next: slackops runbook --db {db}", markup=False, highlight=False)
    return 0


def _name(command: typer.models.CommandInfo) -> str:
    return command.name or (command.callback.__name__ if command.callback else "")
