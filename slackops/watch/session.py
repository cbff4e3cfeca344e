"""One ``slackops watch`` session from options to final summary: what the CLI and ``slackops demo`` call.

Kept out of the command bodies so they stay thin: resolve the target (and say which it is on the first line of
stderr), open the recording, run the watcher under the live view (or the TUI), close the recording, print the
final summary. Returns the summary ``dict`` (what ``--json`` prints).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from slackops.errors import UsageError
from slackops.protocol import LivenessPolicy
from slackops.watch.render import final_view, run_with_live_view
from slackops.watch.watcher import DEFAULT_SCENARIO, Mode, WatchConfig, Watcher, resolve_target


@dataclass
class WatchOptions:
    """The watch command's options, as the user gave them."""

    app_token: str | None = None
    api_url: str | None = None
    connections: int = 1
    duration_s: float | None = None
    db: str | None = "slackops.db"
    jsonl: str | None = None
    record_text: bool = False
    ack: bool = False
    observe: bool = False
    scenario: str = DEFAULT_SCENARIO
    time_scale: float | None = None
    seed: int | None = None
    debug_reconnects: bool = False
    tui: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def build_watcher(opts: WatchOptions, writer: Any) -> Watcher:
    """A :class:`Watcher` for ``opts`` (raises :class:`UsageError` / ``AuthError`` for what must be fixed)."""
    target, mode = resolve_target(opts.app_token, opts.api_url, ack=opts.ack, observe=opts.observe)
    extra = dict(opts.extra)
    if target.embedded:
        # The simulator runs Slack's clock fast; ping more often than the 10 s default so round trips show.
        extra.setdefault("liveness", LivenessPolicy(ping_interval_s=2.0))
    config = WatchConfig(
        target=target,
        mode=mode,
        connections=opts.connections,
        duration_s=opts.duration_s,
        record_text=opts.record_text,
        debug_reconnects=opts.debug_reconnects,
        scenario=opts.scenario,
        time_scale=opts.time_scale,
        seed=opts.seed,
        **extra,
    )
    return Watcher(config, writer=writer)


def announce(watcher: Watcher, console: Console) -> None:
    """The first lines on stderr: which target this is, and what watching it costs."""
    cfg = watcher.config
    if cfg.target.embedded:
        from slackops.simulator import load_scenario

        scale = cfg.time_scale or load_scenario(cfg.scenario).time_scale
        console.print(
            f"slackops watch: watching the built-in simulator, not Slack (no --app-token / SLACK_APP_TOKEN): "
            f"scenario {cfg.scenario} at time scale {scale:g}.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    elif cfg.target.production:
        what = (
            "watch acks what it receives: those events never reach your bot"
            if cfg.mode is Mode.ACK
            else "watch never acks: events routed here reach your bot >= 3 s late, interactive ones fail"
        )
        console.print(
            f"slackops watch: warning: watching a production app ({cfg.target.label}) with --{cfg.mode}; "
            f"{what}. A dedicated development app avoids this.",
            style="yellow",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(f"slackops watch: watching the {cfg.target.label}", markup=False, highlight=False)


def run_watch(opts: WatchOptions, console: Console) -> dict[str, Any]:
    """Run one watch session to the end (duration, Ctrl-C, SIGTERM); return the final summary."""
    from slackops.store import RecordWriter

    if opts.db is None and opts.jsonl is None:
        raise UsageError("nowhere to record: give --db or --jsonl (or both)")
    # Validate the token before creating a database file for a run that cannot start.
    resolve_target(opts.app_token, opts.api_url, ack=opts.ack, observe=opts.observe)
    run_live = _tui_runner() if opts.tui else None
    writer = RecordWriter(db=opts.db, jsonl=opts.jsonl, record_text=opts.record_text)
    try:
        watcher = build_watcher(opts, writer)
        announce(watcher, console)
        if run_live is not None:
            summary = run_live(watcher)
        else:
            try:
                summary = asyncio.run(run_with_live_view(watcher, console))
            except asyncio.CancelledError:
                raise KeyboardInterrupt from None  # a second Ctrl-C: stopped without waiting (exit 130)
    finally:
        writer.close(timeout=30)
    summary["recording"] = watcher.recording_info()
    console.print(final_view(summary))
    return summary


def _tui_runner() -> Any:
    try:
        from slackops.tui import run_live
    except ImportError as exc:
        raise UsageError(
            f"--tui needs the terminal UI (slackops.tui), which could not be imported: {exc}",
            hint="Run without --tui for the headless live summary, or reinstall slackops with textual.",
        ) from None
    return run_live
