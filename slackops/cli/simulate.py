"""``slackops simulate``: a local Socket Mode server that behaves like Slack, with chaos and a scorecard."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from slackops.cli.app import app, seed_option, stderr, stdout, time_scale_option


@app.command("simulate")
def simulate(
    scenario: str | None = typer.Option(
        None,
        "--scenario",
        "-s",
        metavar="NAME|FILE",
        help="Built-in scenario name or a scenario TOML file (default: steady; refresh-churn with --demo).",
    ),
    port: int = typer.Option(0, "--port", help="Port on 127.0.0.1 (0 picks a free one)."),
    time_scale: float | None = time_scale_option(),
    duration: float | None = typer.Option(
        None,
        "--duration",
        metavar="S",
        help="Wall-clock seconds to run (default: scenario's; 0 = until Ctrl-C).",
    ),
    record: Path | None = typer.Option(
        None, "--record", metavar="PATH", help="Write the simulator's records to SQLite (or JSONL if .jsonl)."
    ),
    seed: int | None = seed_option(),
    as_json: bool = typer.Option(
        False, "--json", help="Print the scorecard (with the per-event ledger) as JSON."
    ),
    list_: bool = typer.Option(False, "--list", help="List the built-in scenarios and exit."),
    request_url: str | None = typer.Option(
        None,
        "--request-url",
        metavar="URL",
        help="Events API over HTTP: POST events to your app here instead.",
    ),
    demo: bool = typer.Option(
        False, "--demo", help="Also run a naive slack-sdk bot (process, then ack) against it, for a demo."
    ),
) -> None:
    """Run a local Slack (Socket Mode + Web API) with scripted chaos; print a scorecard at the end."""
    import asyncio

    from slackops.simulator import demo as demo_mod
    from slackops.simulator import list_scenarios, load_scenario, runner
    from slackops.simulator.report import render_ready, render_scorecard

    if list_:
        for name, description in list_scenarios():
            stdout().print(f"{name:<20} {description}", markup=False, highlight=False)
        return
    loaded = load_scenario(scenario or ("refresh-churn" if demo else "steady"))
    recorder = _open_recorder(record) if record else None
    try:
        if demo:
            job = demo_mod.run_demo(
                loaded,
                duration=duration or 20.0,
                time_scale=time_scale,
                seed=seed or 7,
                port=port,
                recorder=recorder,
                on_ready=lambda sim: render_ready(sim, stderr()),
            )
        else:
            job = runner.run(
                loaded,
                request_url=request_url,
                time_scale=time_scale,
                duration=duration,
                port=port,
                seed=seed,
                recorder=recorder,
                on_ready=lambda sim: render_ready(sim, stderr()),
            )
        card = asyncio.run(job)
    finally:
        if recorder is not None:
            recorder.close()
    if as_json:
        stdout().file.write(json.dumps(card.to_dict()) + "\n")
    else:
        render_scorecard(card, stdout())


def _open_recorder(path: Path):
    from slackops.store import RecordWriter

    if path.suffix in (".jsonl", ".gz"):
        return RecordWriter(jsonl=path)
    return RecordWriter(db=path)
