"""``slackops diagnose``: name what went wrong in recordings and logs, with evidence, cost and runbooks."""

from __future__ import annotations

import sys

import typer

from slackops.cli.app import app, stderr, stdout


@app.command(no_args_is_help=True)
def diagnose(
    paths: list[str] = typer.Argument(
        ..., metavar="PATH...", help="Recordings (.db, .jsonl) or logs; - for stdin; gzip is fine."
    ),
    fmt: str = typer.Option(
        None,
        "--format",
        help="Skip detection: slackops-jsonl, slackops-sqlite, python-sdk, node, java, app-json, access-log.",
    ),
    since: str = typer.Option(
        None, "--since", help="Only records at or after this time (ISO-8601, epoch, or an age like 2h)."
    ),
    until: str = typer.Option(None, "--until", help="Only records at or before this time."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    fail_on: str = typer.Option(
        "warning",
        "--fail-on",
        help="Lowest severity that makes the exit status non-zero: warning or critical.",
    ),
    threshold: list[str] = typer.Option(
        [],
        "--threshold",
        metavar="NAME=VALUE",
        help="Override a detector threshold (repeatable); see the README for names.",
    ),
    config: str = typer.Option(
        None,
        "--config",
        help="TOML file with \\[thresholds], \\[fields] and \\[diagnose] tables (see the README).",
    ),
) -> int:
    """Explain a Socket Mode incident: exit 0 nothing found, 1 warnings, 2 critical, 3 unusable input."""
    import orjson

    from slackops.diagnose import diagnose as run
    from slackops.diagnose.options import parse_time, progress_bar
    from slackops.diagnose.render import render
    from slackops.diagnose.thresholds import parse_assignment

    overrides = dict(parse_assignment(t) for t in threshold)
    with progress_bar() as progress:
        report = run(
            paths,
            fmt=fmt,
            since=parse_time(since),
            until=parse_time(until),
            thresholds=overrides,
            config=config,
            progress=progress,
        )
    code = report.exit_code(fail_on)
    if as_json:
        sys.stdout.buffer.write(
            orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS) + b"\n"
        )
        sys.stdout.flush()
    else:
        render(report, stdout())
    if report.overview["parse"]["unparsed"]:
        stderr().print(
            f"slackops: {report.overview['parse']['unparsed']:,} line(s) could not be parsed (see Inputs)",
            markup=False,
            highlight=False,
        )
    return int(code)
