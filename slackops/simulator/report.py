"""Rendering for people: how to connect to a running simulator, and the scorecard as a rich table."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from slackops.simulator.ledger import Scorecard
from slackops.simulator.server import Simulator


def render_ready(sim: Simulator, console: Console) -> None:
    """Where the simulator listens, the simulator-only tokens, and how to point slack-sdk at it."""

    def p(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    scale = f", time scale {sim.time_scale:g}x" if sim.time_scale != 1 else ""
    p(f"slackops simulator: scenario {sim.scenario.name}{scale}")
    p(f"  API base URL : {sim.api_url}")
    # The one place the simulator's tokens are printed: they are made up per run and only this process accepts
    # them, so showing them is safe and necessary. Records and logs never contain them.
    p(f"  app token    : {sim.app_token}   (simulator-only)")
    p(f"  bot token    : {sim.bot_token}   (simulator-only)")
    if sim.request_url:
        p(f"  Events API over HTTP: POSTing events to {sim.request_url}")
        p(f"  signing secret: {sim.signing_secret}   (simulator-only; verify X-Slack-Signature with it)")
        p("  Ctrl-C stops and prints the scorecard.")
        return
    p("  point slack-sdk at it:")
    p(f'    web = WebClient(token=BOT_TOKEN, base_url="{sim.api_url}")')
    p("    SocketModeClient(app_token=APP_TOKEN, web_client=web)")
    p("    Bolt: SocketModeHandler(App(client=web), APP_TOKEN)")
    p("  Ctrl-C stops and prints the scorecard.")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def render_scorecard(card: Scorecard, console: Console) -> None:
    """The scorecard as a table, worst news first."""
    table = Table(title=f"scorecard: {card.scenario} ({card.duration_s:g} s)", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    lost_detail = ", ".join(f"{n} {t}" for t, n in sorted(card.lost_by_type.items()))
    lost_detail = f" ({lost_detail})" if lost_detail else ""
    rows = [
        (
            "lost",
            str(card.lost),
            f"never acked in the retry budget, or interactive/slash not acked in time{lost_detail}",
        ),
        ("processed twice", str(card.processed_twice), "events with 2+ bot replies (paid twice)"),
        ("acked late", str(card.acked_late), "an attempt acked after the 3 s deadline"),
        ("self replies", str(card.self_replies), "replies to the bot's own messages (self-loop)"),
        ("events", str(card.events), "events the simulator generated"),
        ("delivered", str(card.delivered), "reached a live socket at least once"),
        ("acked", str(card.acked), "acked within the deadline"),
        ("pending", str(card.pending), "still in flight when the run ended"),
        ("retries", str(card.retries), "retry attempts sent (retry_attempt >= 1)"),
        ("duplicate sends", str(card.duplicate_sends), "retries Slack sent twice"),
        ("black-holed", str(card.blackholed), "attempts routed to a ghost / half-open socket / nowhere"),
        ("processed", str(card.processed), "events with at least one reply"),
        ("ack p50 / p99", f"{_ms(card.ack_p50_ms)} / {_ms(card.ack_p99_ms)}", "time from send to ack"),
        ("connections", f"{card.connections_opened} opened", f"{card.connections_refused} refused (cap)"),
        ("reconnect gaps", _gaps(card.reconnect_gaps_ms), "time with no live socket, server side"),
    ]
    for measure, value, meaning in rows:
        bad = measure in ("lost", "processed twice", "acked late", "self replies") and value != "0"
        table.add_row(measure, f"[bold red]{value}[/]" if bad else value, meaning)
    console.print(table)


def _gaps(gaps: list[float]) -> str:
    if not gaps:
        return "none"
    return f"{len(gaps)}, max {max(gaps):,.0f} ms"
