"""``slackops verify``: run a bot against the simulator under chaos and fail if it lost or duplicated events."""

from __future__ import annotations

from pathlib import Path

import typer

from slackops.cli.app import app, seed_option, stderr, stdout, time_scale_option


@app.command(
    "verify",
    context_settings={"allow_interspersed_args": False},
)
def verify(
    command: list[str] = typer.Argument(
        ..., metavar="COMMAND", help="The bot to run, after --: e.g. -- python bot.py"
    ),
    scenario: str = typer.Option(
        "refresh-churn",
        "--scenario",
        "-s",
        metavar="NAME|FILE",
        help="Built-in scenario or a scenario TOML file.",
    ),
    time_scale: float | None = time_scale_option(),
    duration: float | None = typer.Option(
        None,
        "--duration",
        metavar="S",
        help="Wall-clock seconds of traffic (default: the scenario's duration / time scale).",
    ),
    seed: int | None = seed_option(),
    stop_timeout: float = typer.Option(
        10.0, "--stop-timeout", metavar="S", help="Seconds the bot gets to exit after SIGTERM before SIGKILL."
    ),
    log: Path | None = typer.Option(
        None,
        "--log",
        metavar="PATH",
        help="Write the bot's output here (default: a temp file, path printed).",
    ),
    record: Path | None = typer.Option(
        None,
        "--record",
        metavar="PATH",
        help="Write the simulator's records (SQLite, or JSONL if .jsonl) for `slackops diagnose`.",
    ),
    show_output: bool = typer.Option(False, "--show-output", help="Pass the bot's output through to stderr."),
    no_shim: bool = typer.Option(
        False,
        "--no-shim",
        help="Do not put the slack-sdk shim on PYTHONPATH (the bot reads SLACKOPS_SIM_API_URL).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (for CI)."),
) -> None:
    """Run your bot against the simulator with chaos; score delivered, lost, processed twice, acked late.

    Exit status: 0 pass, 1 events only acked late, 2 events lost or processed twice.
    """
    from slackops.verify import VerifyOptions, run_verify
    from slackops.verify.report import render, to_json

    err = stderr()
    result = run_verify(
        VerifyOptions(
            command=command,
            scenario=scenario,
            time_scale=time_scale,
            duration=duration,
            seed=seed,
            stop_timeout=stop_timeout,
            log_path=log,
            sim_record=record,
            show_output=show_output,
            shim=not no_shim,
            progress=lambda line: err.print(
                f"slackops verify: {line}", markup=False, highlight=False, soft_wrap=True
            ),
        )
    )
    if as_json:
        stdout().file.write(to_json(result) + "\n")
    else:
        render(result, stdout())
    raise typer.Exit(int(result.exit_code))
