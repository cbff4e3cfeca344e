"""``slackops demo`` (what ``make demo`` runs): simulator + watch + summary (+ diagnose when present)."""

from __future__ import annotations

from slackops.cli import main
from slackops.errors import ExitCode
from slackops.store import iter_records


def test_demo_runs_end_to_end_without_slack(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    db = tmp_path / "demo.db"
    db.write_text("an old recording the demo replaces")
    # Long enough for a refresh of the built-in refresh-churn scenario (every ~15 s at its time scale).
    code = main(["demo", "--duration", "17", "--db", str(db)])
    out, err = capsys.readouterr()
    assert code == ExitCode.OK
    assert "built-in simulator" in err.splitlines()[0]
    assert "simulator ground truth" in err and "0 lost" in err
    kinds = {r["kind"] for r in iter_records(db)}
    assert {"hello", "envelope", "ack", "close", "reconnect"} <= kinds
    # A healthy make-before-break run diagnoses clean once the refresh windows account for the time scale.
    assert "No problems found" in out + err
    assert "slackops simulate --demo" in err  # the next steps
    assert "Traceback" not in out + err
