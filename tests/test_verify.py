"""slackops verify end to end: real bots as child processes against the simulator, scored from its ledger.

The broken bot (processes before acking, no dedup) must fail deterministically: its handler takes 1.5 s and the
test scenario's ack deadline is 1 s, so every mention is retried and every retry answered again. The unmodified
Bolt script must pass, talking to the simulator only through the zero-code shim.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from slackops import records
from slackops.cli import main
from slackops.errors import ExitCode, InputError, UsageError
from slackops.simulator.ledger import Scorecard
from slackops.verify import VerifyOptions, run_verify
from slackops.verify.report import render, verdict_line
from slackops.verify.runner import read_llm_stats, verdict
from tests.util import scaled

BOTS = Path(__file__).parent / "fixtures" / "bots"
QUICK = str(BOTS / "verify-quick.toml")


def options(bot: str, tmp_path: Path, **kw) -> VerifyOptions:
    kw.setdefault("log_path", tmp_path / "bot.log")
    return VerifyOptions(
        command=[sys.executable, str(BOTS / bot)],
        scenario=QUICK,
        seed=7,
        startup_timeout=scaled(30),
        stop_timeout=scaled(5),
        **kw,
    )


def test_broken_bot_fails_with_events_processed_twice_and_llm_calls_multiplied(tmp_path):
    result = run_verify(options("broken_bot.py", tmp_path))
    card = result.scorecard
    assert result.exit_code == ExitCode.CRITICAL and not result.passed
    mentions = [e for e in card.ledger if e["kind"] == "app_mention"]
    assert mentions and card.processed_twice == len(mentions)
    assert sorted(result.twice_events) == sorted(e["event_id"] for e in mentions)
    assert card.acked_late == len(mentions) and card.retries >= len(mentions)
    assert result.llm is not None and result.llm.events == len(mentions)
    assert result.llm.per_event > 1 and set(result.llm.repeated) == set(result.twice_events)
    assert "FAIL" in verdict_line(result) and "retry-duplication" in verdict_line(result)
    assert (tmp_path / "bot.log").exists()


def test_unmodified_bolt_script_passes_through_the_zero_code_shim(capsys, tmp_path):
    sim_record = tmp_path / "sim.jsonl"
    argv = ["verify", "--json", "--scenario", QUICK, "--seed", "7", "--record", str(sim_record)]
    argv += ["--log", str(tmp_path / "bot.log")]
    code = main([*argv, "--", sys.executable, str(BOTS / "bolt_app.py")])
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    card = data["scorecard"]
    assert code == ExitCode.OK and data["passed"] is True, data
    assert card["connections_opened"] >= 1 and card["processed"] > 0
    assert card["lost"] == card["processed_twice"] == card["acked_late"] == 0
    # The simulator's side of the run is a recording diagnose can read.
    from slackops.store import iter_records

    acks = list(iter_records(sim_record, kinds={"ack"}))
    assert len(acks) == card["events"] and all(r["source"] == "sim" for r in acks)
    # The simulator's tokens are handed to the bot, never printed or recorded.
    everything = captured.out + captured.err + sim_record.read_text()
    assert "xapp-" not in everything and "xoxb-" not in everything


def test_reference_bot_passes_with_one_llm_call_per_answered_event(tmp_path):
    result = run_verify(options("reference_bot.py", tmp_path))
    card = result.scorecard
    assert result.exit_code == ExitCode.OK, result.to_dict()
    mentions = [e for e in card.ledger if e["kind"] == "app_mention"]
    assert card.processed == len(mentions) > 0
    # The guards let one of each app_mention + message pair through, and dedup keeps retries out.
    assert result.llm is not None and result.llm.per_event == 1.0 and result.llm.events == len(mentions)


def test_a_bot_that_exits_before_connecting_is_reported_with_its_log(tmp_path):
    log = tmp_path / "bot.log"
    opts = VerifyOptions(
        command=[sys.executable, "-c", "print('boom'); raise SystemExit(3)"], scenario=QUICK, log_path=log
    )
    with pytest.raises(InputError) as err:
        run_verify(opts)
    assert "status 3 before it connected" in err.value.message and str(log) in (err.value.hint or "")
    assert log.read_text().strip() == "boom"


def test_missing_command_and_unknown_executable_are_usage_errors():
    with pytest.raises(UsageError):
        run_verify(VerifyOptions(command=[], scenario=QUICK))
    with pytest.raises(UsageError, match="cannot start"):
        run_verify(VerifyOptions(command=["/nonexistent/bot"], scenario=QUICK))


def card(**kw) -> Scorecard:
    base = dict(
        scenario="s", duration_s=1.0, events=3, delivered=3, acked=3, acked_late=0, lost=0, pending=0,
        processed=3, processed_twice=0, self_replies=0, retries=0, blackholed=0, ack_p50_ms=1.0,
        ack_p99_ms=2.0, connections_opened=1, connections_refused=0, reconnect_gaps_ms=[], lost_by_type={},
    )  # fmt: skip
    base.update(kw)
    return Scorecard(**base)


def test_verdict_exit_codes():
    assert verdict(card()) == ExitCode.OK
    assert verdict(card(acked_late=1)) == ExitCode.WARNING
    assert verdict(card(acked_late=1, lost=1)) == ExitCode.CRITICAL
    assert verdict(card(processed_twice=1)) == ExitCode.CRITICAL


def test_llm_stats_count_calls_per_event(tmp_path):
    path = tmp_path / "rec.jsonl"
    recs = [
        records.make("llm", t=1.0, source="bot", event_id="Ev1", http_status=200),
        records.make("llm", t=2.0, source="bot", event_id="Ev1", http_status=429, error="RateLimited"),
        records.make("llm", t=3.0, source="bot", event_id="Ev2", http_status=200),
        records.make("ack", t=3.5, source="bot", envelope_id="x"),
    ]
    path.write_bytes(b"".join(records.dumps(r) + b"\n" for r in recs))
    stats = read_llm_stats(path)
    assert stats is not None
    assert (stats.calls, stats.events, stats.per_event, stats.max_per_event) == (3, 2, 1.5, 2)
    assert (stats.repeated, stats.errors) == (["Ev1"], 1)
    assert read_llm_stats(tmp_path / "missing.jsonl") is None


def test_text_report_names_the_problem_and_the_runbook(tmp_path):
    from rich.console import Console

    from slackops.verify.runner import LLMStats, VerifyResult

    result = VerifyResult(
        scorecard=card(lost=2, lost_by_type={"slash_commands": 2}),
        exit_code=ExitCode.CRITICAL,
        llm=LLMStats(calls=4, events=2, per_event=2.0, max_per_event=3, repeated=["Ev1"], errors=0),
        bot_returncode=0,
        killed=True,
        log_path=tmp_path / "bot.log",
        notes=["the bot did not exit within 5 s of SIGTERM and was killed"],
        lost_events=["Sc1", "Sc2"],
        twice_events=[],
    )
    console = Console(record=True, width=120, no_color=True)
    render(result, console)
    text = console.export_text()
    assert "2 per event" in text and "lost: Sc1, Sc2" in text and "was killed" in text
    assert "FAIL: 2 lost" in text and str(tmp_path / "bot.log") in text


def test_a_scenario_without_an_end_needs_a_duration():
    with pytest.raises(UsageError, match="runs until stopped"):
        run_verify(VerifyOptions(command=["true"], scenario=str(BOTS / "quiet.toml")))


def test_a_bot_that_ignores_sigterm_is_killed_after_the_stop_deadline(tmp_path):
    opts = options("stubborn_bot.py", tmp_path, duration=0.5)
    opts.stop_timeout = 0.5
    result = run_verify(opts)
    assert result.killed and any("was killed" in note for note in result.notes)
    assert result.bot_returncode == -9
    # It acked everything and answered nothing: nothing lost, nothing twice — but nothing was scored either.
    assert result.exit_code == ExitCode.OK and any("no reply was attributed" in n for n in result.notes)
