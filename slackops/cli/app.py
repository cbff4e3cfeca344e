"""The typer application every command module registers on, and the console helpers they share.

Data goes to stdout, diagnostics to stderr. ``NO_COLOR`` and non-TTY output are honoured by rich itself;
commands never print spinners or progress bars into a pipe.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from rich.console import Console

from slackops import __version__

app = typer.Typer(
    name="slackops",
    help=(
        "See, diagnose and rehearse Slack Socket Mode failures.\n\n"
        "With no Slack token every command runs against the built-in simulator and a local SQLite file."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
)


# -- option bundles: flags shared by several commands are spelled (and explained) the same everywhere ----------


def app_token_option() -> Any:
    return typer.Option(
        None,
        "--app-token",
        envvar="SLACK_APP_TOKEN",
        show_envvar=True,
        help="App-level token (xapp-...) with connections:write. Without one: the built-in simulator.",
    )


def time_scale_option() -> Any:
    return typer.Option(
        None,
        "--time-scale",
        metavar="X",
        help="Simulator: divide lifetimes, retries and chaos times by X (default: the scenario's).",
    )


def seed_option() -> Any:
    return typer.Option(None, "--seed", help="Simulator: seed for reproducible traffic and routing.")


def stdout() -> Console:
    """Console for data (stdout). Rebuilt on each call so tests that swap ``sys.stdout`` see output."""
    return Console(file=sys.stdout, no_color=bool(os.environ.get("NO_COLOR")), soft_wrap=True)


def stderr() -> Console:
    """Console for progress, warnings and errors (stderr)."""
    return Console(file=sys.stderr, no_color=bool(os.environ.get("NO_COLOR")), stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"slackops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """See, diagnose and rehearse Slack Socket Mode failures."""
