"""``slackops runbook``: list the runbooks, read one, or check one against a recording."""

from __future__ import annotations

from pathlib import Path

import typer

from slackops.cli.app import app, stdout
from slackops.errors import UsageError


@app.command("runbook")
def runbook(
    slug: str | None = typer.Argument(
        None,
        metavar="SLUG",
        help="Runbook to show (a slug like ack-timeout, or a finding code). Omit to list them all.",
    ),
    db: Path | None = typer.Option(
        None,
        "--db",
        metavar="PATH",
        help="Check the runbook against this slackops recording (SQLite or JSONL).",
    ),
    log: list[Path] | None = typer.Option(
        None,
        "--log",
        metavar="FILE",
        help="Check the runbook against this log file (repeatable); any format diagnose reads.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the structured content as JSON."),
) -> None:
    """What to do about a failure mode: symptoms, how to confirm, causes, fixes, how to prove the fix."""
    from slackops import runbooks

    out = stdout()
    paths = [p for p in [db, *(log or [])] if p is not None]
    if slug is None and paths:
        raise UsageError(
            "--db and --log need a runbook: slackops runbook SLUG --db PATH",
            hint=f"To check every failure mode at once, run: slackops diagnose {paths[0]}",
        )
    if slug is None:
        books = runbooks.load_all()
        if as_json:
            out.file.write(runbooks.to_json(books) + "\n")
        else:
            runbooks.render_list(books, out)
        return
    book = runbooks.find(slug)
    evaluation = runbooks.evaluate(book, paths) if paths else None
    if as_json:
        out.file.write(runbooks.to_json(book, evaluation) + "\n")
    else:
        runbooks.render(book, out, evaluation)
