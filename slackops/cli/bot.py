"""``slackops bot run APP``: run a handler on the reference bot runtime (ack-then-process, durable queue, drain)."""

from __future__ import annotations

import json
import logging
import sys

import typer

from slackops.cli.app import app, app_token_option, stdout

bot_app = typer.Typer(help="The reference Socket Mode bot runtime.", no_args_is_help=True)
app.add_typer(bot_app, name="bot")


@bot_app.command("run")
def run_cmd(
    target: str = typer.Argument(
        ..., metavar="APP", help="Your handler as module:function (async def f(ctx))."
    ),
    app_token: str | None = app_token_option(),
    bot_token: str | None = typer.Option(
        None,
        "--bot-token",
        envvar="SLACK_BOT_TOKEN",
        show_envvar=True,
        help="Bot token (xoxb-...) for replies.",
    ),
    api_url: str | None = typer.Option(
        None, "--api-url", envvar="SLACK_API_URL", help="Web API base URL. Default: https://slack.com/api/."
    ),
    connections: int = typer.Option(2, "-n", "--connections", min=1, max=10, help="Sockets to hold (1-10)."),
    db: str = typer.Option(
        "slackops-bot.db", "--db", help="Durable work queue + dedup store (SQLite, WAL); unused with --store."
    ),
    concurrency: int = typer.Option(8, "--concurrency", min=1, help="Handler runs at once."),
    drain_timeout: float = typer.Option(
        20.0,
        "--drain-timeout",
        min=0,
        help="Seconds running handlers get after SIGTERM (below the grace period).",
    ),
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", help="Serve /metrics, /healthz, /readyz on this port (0: any free port)."
    ),
    responder: str | None = typer.Option(
        None, "--responder", metavar="module:function", help="Fast path: its return value goes into the ack."
    ),
    ordering: bool = typer.Option(False, "--ordering", help="Resequence each channel/thread on event_ts."),
    record: str | None = typer.Option(
        None, "--record", metavar="PATH", help="Write records here (SQLite, or .jsonl) for slackops diagnose."
    ),
    instance: str | None = typer.Option(
        None,
        "--instance",
        envvar="SLACKOPS_INSTANCE",
        help="Name of this replica in records and in the Redis consumer group. Default with --store: hostname-pid.",
    ),
    store: str | None = typer.Option(
        None,
        "--store",
        envvar="SLACKOPS_REDIS_URL",
        show_envvar=True,
        metavar="redis://HOST:PORT/DB",
        help="Share dedup and the work queue with other replicas in Redis. Default: the SQLite --db file.",
    ),
    queue_name: str = typer.Option(
        "default",
        "--queue-name",
        envvar="SLACKOPS_QUEUE_NAME",
        help="With --store: replicas of one app share a name; other bots on the same Redis use another.",
    ),
    visibility_timeout: float = typer.Option(
        30.0,
        "--visibility-timeout",
        min=0.1,
        help="With --store: seconds before a dead replica's unfinished work is taken over by the others.",
    ),
    scenario: str = typer.Option("steady", "--scenario", help="Built-in simulator scenario (no token)."),
    as_json: bool = typer.Option(False, "--json", help="Print the final summary as JSON on stdout."),
) -> None:
    """Run APP on the reference runtime until SIGTERM/SIGINT, then drain and requeue what is unfinished."""
    from slackops.bot.app import BotConfig, run
    from slackops.hints import check_app_token

    _log_to_stderr()

    token = check_app_token(app_token) if app_token else ""
    config = BotConfig(
        app_token=token,
        bot_token=bot_token,
        api_url=api_url,
        connections=connections,
        db=db,
        concurrency=concurrency,
        drain_timeout_s=drain_timeout,
        metrics_port=metrics_port,
        ordering=ordering,
        instance=instance,
        store=store,
        queue_name=queue_name,
        visibility_timeout_s=visibility_timeout,
    )
    result = run(target, config, responder=responder, record=record, scenario=None if app_token else scenario)
    summary = result.summary()
    if as_json:
        stdout().print_json(json.dumps(summary))
    else:
        stdout().print(" ".join(f"{k}={v}" for k, v in summary.items()), markup=False)


def _log_to_stderr() -> None:
    # Progress lines (metrics URL, drain outcome) on stderr, through the one redaction filter.
    from slackops.redact import RedactingFilter

    logger = logging.getLogger("slackops.bot")
    if any(getattr(h, "_slackops_cli", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("slackops bot: %(message)s"))
    handler.addFilter(RedactingFilter())
    handler._slackops_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
