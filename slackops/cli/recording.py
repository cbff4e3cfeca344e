"""``slackops export`` and ``slackops import``: move recordings between SQLite and JSONL."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from slackops.cli.app import app, stderr, stdout
from slackops.errors import ExitCode, InputError


@app.command("export")
def export_cmd(
    recording: Path = typer.Argument(
        ..., metavar="RECORDING", help="A recording: SQLite database or JSONL (plain or gzip)."
    ),
    output: Path | None = typer.Option(
        None,
        "-o",
        "--output",
        metavar="OUT",
        help="Write JSONL here (a .gz name writes gzip). Default: stdout.",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the summary as JSON (on stderr when data goes to stdout)."
    ),
) -> int:
    """Write a recording as JSONL, one record a line, ordered by time."""
    from slackops.store import export_jsonl

    if not recording.is_file():
        raise InputError(f"{recording}: no such file")
    if output is None:
        sys.stdout.flush()
        try:
            count = export_jsonl(recording, sys.stdout.buffer)
        except BrokenPipeError:
            # `slackops export rec.db | head`: the reader has what it wanted. Point stdout at /dev/null so the
            # interpreter's final flush does not raise again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return ExitCode.OK
    else:
        count = export_jsonl(recording, output)
    summary = {"exported": count, "source": str(recording), "output": str(output) if output else "-"}
    console = stdout() if output is not None else stderr()
    if as_json:
        console.print_json(json.dumps(summary))
    else:
        console.print(f"exported {count} records from {recording} to {summary['output']}", markup=False)
    return ExitCode.OK


@app.command("import")
def import_cmd(
    sources: list[Path] = typer.Argument(
        ..., metavar="JSONL...", help="JSONL recordings (plain or gzip) to load."
    ),
    db: Path = typer.Option(
        Path("slackops.db"),
        "--db",
        metavar="PATH",
        help="SQLite recording to add the records to (created if missing).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> int:
    """Load JSONL recordings into a SQLite recording. Malformed lines are counted and skipped."""
    from slackops.store import import_jsonl

    result = import_jsonl(sources, db)
    if as_json:
        stdout().print_json(json.dumps({**result.as_dict(), "db": str(db)}))
    else:
        stdout().print(f"imported {result.imported} records into {db}", markup=False)
        if result.skipped.count:
            err = stderr()
            err.print(f"skipped {result.skipped.count} malformed lines, e.g.:", markup=False)
            for sample in result.skipped.samples:
                err.print(f"  {sample}", markup=False, highlight=False)
    if result.imported == 0 and result.skipped.count:
        return ExitCode.UNUSABLE_INPUT
    return ExitCode.OK
