"""``slackops simulate``: --list, a short run with --json and --record, and a bad scenario file's exit code."""

from __future__ import annotations

import json
from pathlib import Path

from slackops.cli import main
from slackops.errors import ExitCode
from slackops.simulator import list_scenarios

FIXTURES = Path(__file__).parent / "fixtures" / "scenarios"


def test_list_prints_every_scenario_with_its_description(capsys):
    assert main(["simulate", "--list"]) == ExitCode.OK
    out = capsys.readouterr().out
    for name, description in list_scenarios():
        assert name in out and description[:30] in out


def test_short_run_prints_connection_details_a_json_scorecard_and_a_readable_recording(capsys, tmp_path):
    from slackops.store import iter_records

    recording = tmp_path / "sim.jsonl"
    scenario = FIXTURES / "burst-no-client.toml"
    code = main(
        ["simulate", "--scenario", str(scenario), "--seed", "1", "--json", "--record", str(recording)]
    )
    assert code == ExitCode.OK
    captured = capsys.readouterr()
    card = json.loads(captured.out)
    assert card["scenario"] == "burst-no-client" and card["events"] == 3
    assert card["lost"] == 3 and card["lost_by_type"] == {"interactive": 3}
    assert [e["failure"] for e in card["ledger"]] == ["no_connections"] * 3
    assert "API base URL : http://127.0.0.1:" in captured.err
    assert "xapp-1-" in captured.err and "simulator-only" in captured.err
    recs = list(iter_records(recording))
    assert [r["error"] for r in recs if r["kind"] == "error"] == ["no_connections"] * 3
    assert all(r["source"] == "sim" for r in recs)
    assert "xapp-" not in recording.read_text() and "xoxb-" not in recording.read_text()


def test_scenario_file_with_an_error_exits_usage_naming_the_line(capsys):
    bad = FIXTURES / "unknown-key.toml"
    assert main(["simulate", "--scenario", str(bad)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"{bad}:5:" in err and "pingg_interval" in err


def test_demo_runs_a_naive_slack_sdk_bot_and_scores_it():
    import asyncio

    from slackops.simulator.demo import run_demo

    card = asyncio.run(run_demo("steady", duration=1.6, seed=3))
    assert card.events >= 2 and card.connections_opened == 1
    assert card.delivered == card.events and card.pending == 0
    # The naive bot answers both halves of an app_mention pair; the scorecard must be able to see that.
    assert card.processed >= 1
