"""``slackops watch``: open instrumented Socket Mode connections and record every frame with timing."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from slackops.cli.app import app, app_token_option, seed_option, stderr, stdout, time_scale_option


@app.command("watch")
def watch(
    app_token: str | None = app_token_option(),
    api_url: str | None = typer.Option(
        None,
        "--api-url",
        help="Web API base URL. Default: https://slack.com/api/ (a loopback URL = a simulator).",
    ),
    connections: int = typer.Option(
        1, "-n", "--connections", min=1, max=10, help="Sockets to hold (Slack allows 10 per app)."
    ),
    duration: float = typer.Option(0, "--duration", help="Stop after this many seconds (0: until Ctrl-C)."),
    db: Path | None = typer.Option(Path("slackops.db"), "--db", help="SQLite recording to write."),
    no_db: bool = typer.Option(False, "--no-db", help="Do not write SQLite (use with --jsonl)."),
    jsonl: Path | None = typer.Option(None, "--jsonl", help="Also (or instead) write records as JSONL here."),
    record_text: bool = typer.Option(False, "--record-text", help="Record message text (off by default)."),
    ack: bool = typer.Option(
        False, "--ack", help="Ack what watch receives (those events never reach your bot)."
    ),
    observe: bool = typer.Option(
        False,
        "--observe",
        help="Never ack (Slack re-delivers events elsewhere after 3 s; interactive ones fail).",
    ),
    scenario: str = typer.Option(
        "refresh-churn", "--scenario", help="Built-in simulator scenario (no token)."
    ),
    time_scale: float | None = time_scale_option(),
    seed: int | None = seed_option(),
    debug_reconnects: bool = typer.Option(
        False, "--debug-reconnects", help="Ask Slack for 360 s connection lifetimes to see refreshes sooner."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON on stdout."),
    tui: bool = typer.Option(False, "--tui", help="Full-screen live view (Textual)."),
) -> None:
    """Open N instrumented Socket Mode connections; record hello, pings, envelopes, acks, disconnects, closes.

    Watching a production app takes a share of its events (Slack spreads deliveries over every socket), so a
    real token needs --ack or --observe; a dedicated development app is best. Ctrl-C or SIGTERM stops cleanly.
    """
    from slackops.watch.session import WatchOptions, run_watch

    opts = WatchOptions(
        app_token=app_token,
        api_url=api_url,
        connections=connections,
        duration_s=duration or None,
        db=None if no_db else (str(db) if db else None),
        jsonl=str(jsonl) if jsonl else None,
        record_text=record_text,
        ack=ack,
        observe=observe,
        scenario=scenario,
        time_scale=time_scale,
        seed=seed,
        debug_reconnects=debug_reconnects,
        tui=tui,
    )
    summary = run_watch(opts, stderr())
    if as_json:
        stdout().file.write(json.dumps(summary, indent=2) + "\n")
