"""Rendering of a verify result: the simulator's scorecard, LLM calls per event, the verdict, and what to read next."""

from __future__ import annotations

import json

from rich.console import Console

from slackops.errors import ExitCode
from slackops.simulator.report import render_scorecard
from slackops.verify.runner import VerifyResult

#: Event ids listed in the text report per problem (all of them are in --json).
SHOW_IDS = 5


def to_json(result: VerifyResult) -> str:
    """The result as one JSON document (``--json``): scorecard without the per-event ledger, ids of bad events."""
    return json.dumps(result.to_dict())


def render(result: VerifyResult, console: Console) -> None:
    """Scorecard table, LLM multiplier, notes and a one-line verdict naming the runbook to read."""

    def p(text: str, style: str | None = None) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True, style=style)

    render_scorecard(result.scorecard, console)
    llm = result.llm
    if llm is not None:
        p(
            f"LLM calls: {llm.calls} for {llm.events} events = {llm.per_event:g} per event "
            f"(max {llm.max_per_event}; {len(llm.repeated)} events called more than once"
            + (f"; {llm.errors} failed calls" if llm.errors else "")
            + ")"
        )
    else:
        p("LLM calls: not recorded (write `llm` records to $SLACKOPS_RECORD to see calls per event)")
    for label, ids in (("lost", result.lost_events), ("processed twice", result.twice_events)):
        if ids:
            more = f" and {len(ids) - SHOW_IDS} more" if len(ids) > SHOW_IDS else ""
            p(f"{label}: {', '.join(ids[:SHOW_IDS])}{more}")
    for note in result.notes:
        p(f"note: {note}", style="yellow")
    if result.log_path is not None:
        p(f"bot output: {result.log_path}")
    p(verdict_line(result), style="bold green" if result.passed else "bold red")


def verdict_line(result: VerifyResult) -> str:
    """PASS/WARN/FAIL with the reason and the runbook that explains the fix."""
    card = result.scorecard
    if result.exit_code == ExitCode.OK:
        return f"PASS: {card.events} events, none lost, none processed twice, none acked late"
    if result.exit_code == ExitCode.WARNING:
        return f"WARN: {card.acked_late} events acked late (see `slackops runbook ack-timeout`)"
    reasons = []
    if card.lost:
        reasons.append(f"{card.lost} lost (`slackops runbook lost-in-flight`, `ack-timeout`)")
    if card.processed_twice:
        reasons.append(f"{card.processed_twice} processed twice (`slackops runbook retry-duplication`)")
    if card.acked_late:
        # Late acks are what Slack retries: usually the cause of the duplicates above, so name it too.
        reasons.append(f"{card.acked_late} acked late (`slackops runbook ack-timeout`)")
    return "FAIL: " + "; ".join(reasons)
