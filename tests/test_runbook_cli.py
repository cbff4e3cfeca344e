"""``slackops runbook``: the list, one runbook (rich on a TTY, plain in a pipe, JSON), suggestions, evaluation."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from slackops import runbooks
from slackops.cli import main
from slackops.errors import ExitCode
from slackops.findings import SLUGS, Finding

RECORDINGS = Path(__file__).parent / "fixtures" / "recordings"
ANSI = "\x1b["


def run(capsys, *args):
    code = main(["runbook", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_is_plain_lines_in_a_pipe(capsys):
    code, out, _ = run(capsys)
    assert code == ExitCode.OK
    lines = out.splitlines()
    assert [line.split("\t")[0] for line in lines] == list(SLUGS)
    assert lines[1].split("\t")[1:] == [
        "critical",
        "Ack timeout — envelopes acked after Slack's 3 s deadline",
    ]
    assert ANSI not in out


def test_list_as_json(capsys):
    code, out, _ = run(capsys, "--json")
    data = json.loads(out)
    assert code == 0 and [d["slug"] for d in data] == list(SLUGS)
    assert {"slug", "severity", "title", "codes"} == set(data[0])


def test_list_is_a_table_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    code, out, _ = run(capsys)
    assert code == 0 and ANSI in out and "slackops runbooks" in out and "thundering-herd" in out


def test_one_runbook_in_a_pipe_is_plain_text(capsys):
    code, out, _ = run(capsys, "ack-timeout")
    assert code == 0
    assert ANSI not in out
    assert out.startswith("Ack timeout — envelopes acked after Slack's 3 s deadline\n")
    assert "## Confirm" in out and "slackops runbook ack-timeout --db slackops.db" in out
    assert "rehearse: slackops verify --scenario slow-consumer -- python bot.py" in out
    assert not out.startswith("---")  # front matter is shown as the header, not as YAML


def test_one_runbook_on_a_terminal_is_rich_markdown(capsys, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    code, out, _ = run(capsys, "disconnect-storm")
    assert code == 0 and ANSI in out
    assert "## Symptoms" not in out  # rendered as a heading, not as source
    assert "refresh_requested" in out


def test_render_on_a_terminal_console_keeps_code_lines_whole():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100, soft_wrap=True)
    book = runbooks.find("retry-duplication")
    runbooks.render(book, console)
    text = buf.getvalue()
    assert ANSI in text
    assert "SET dedup:{event_id} 1 NX EX 900" in _strip_ansi(text)


def test_finding_code_leads_to_its_runbook(capsys):
    code, out, _ = run(capsys, "too-many-websockets")
    assert code == 0 and out.startswith("Disconnect storm")


def test_json_has_front_matter_sections_and_checks(capsys):
    code, out, _ = run(capsys, "retry-duplication", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["slug"] == "retry-duplication" and data["severity"] == "critical"
    assert [s["title"] for s in data["sections"]] == list(runbooks.SECTIONS)
    assert [c["code"] for c in data["checks"]] == data["codes"]
    assert "evaluation" not in data


def test_unknown_slug_is_a_usage_error_with_suggestions(capsys):
    code, out, err = run(capsys, "ack-timout")
    assert code == ExitCode.USAGE and out == ""
    assert "no runbook named 'ack-timout'; did you mean ack-timeout?" in err


def _fake_diagnose(paths, **options):
    class Report:
        findings = [
            Finding("reconnect-burst", "9 reconnects in 2 min", evidence={"reconnects": 9, "window_s": 120})
        ]

    return Report()


def test_db_marks_the_checks_that_apply(capsys, monkeypatch):
    monkeypatch.setattr("slackops.diagnose.diagnose", _fake_diagnose, raising=False)
    code, out, _ = run(capsys, "disconnect-storm", "--db", str(RECORDINGS / "disconnect-storm.jsonl"))
    assert code == 0 and ANSI not in out
    assert "[APPLIES] reconnect-burst: 9 reconnects in 2 min" in out
    assert "reconnects: 9" in out
    assert "[clear] too-many-websockets" in out


def test_log_and_json_carry_the_evaluation(capsys, monkeypatch):
    monkeypatch.setattr("slackops.diagnose.diagnose", _fake_diagnose, raising=False)
    path = str(RECORDINGS / "disconnect-storm.jsonl")
    code, out, _ = run(capsys, "disconnect-storm", "--log", path, "--json")
    data = json.loads(out)
    assert code == 0
    assert data["evaluation"]["applies"] == ["reconnect-burst"]
    assert data["evaluation"]["inputs"] == [path]
    assert data["evaluation"]["checks"][0]["findings"][0]["evidence"] == {"reconnects": 9, "window_s": 120}


def test_evaluation_table_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr("slackops.diagnose.diagnose", _fake_diagnose, raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    code, out, _ = run(capsys, "disconnect-storm", "--db", str(RECORDINGS / "disconnect-storm.jsonl"))
    plain = _strip_ansi(out)
    assert code == 0 and "Checks against" in plain and "APPLIES" in plain and "reconnects: 9" in plain


def test_missing_recording_is_unusable_input(capsys, tmp_path):
    code, _, err = run(capsys, "ack-timeout", "--db", str(tmp_path / "nope.db"))
    assert code == ExitCode.UNUSABLE_INPUT and "no such file" in err


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_db_without_a_slug_points_at_diagnose(capsys):
    code, out, err = run(capsys, "--db", "slackops.db")
    err = " ".join(err.split())  # the error console wraps long lines
    assert code == ExitCode.USAGE and out == ""
    assert "slackops runbook SLUG --db PATH" in err and "slackops diagnose slackops.db" in err
