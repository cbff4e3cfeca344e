"""``slackops diagnose`` on the command line: report layout, --json, exit codes, options, escaping."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from slackops.cli import main
from slackops.diagnose.options import parse_time
from slackops.errors import UsageError
from slackops.records import make

LOGS = Path(__file__).parent / "fixtures" / "logs"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["diagnose", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_report_summary_first_then_findings_then_overview(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(LOGS / "recording_slow-consumer.jsonl"))
    assert code == 2
    lines = out.splitlines()
    assert lines[0].startswith("3 critical, 2 warning in 542 records")
    assert out.index("ack-late") < out.index("Overview") < out.index("Ack latency") < out.index("Inputs")
    assert "slackops runbook ack-timeout" in out
    assert "p99" in out and "█" in out


def test_healthy_recording_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(LOGS / "recording_steady.jsonl"))
    assert code == 0 and out.startswith("No problems found")


def test_json_output_and_fail_on(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(LOGS / "recording_competing.jsonl"), "--json")
    doc = json.loads(out)
    assert code == 1 == doc["exit_code"]
    assert {f["code"] for f in doc["findings"]} == {"competing-consumer", "delivery-share-drop"}
    code, _, _ = run(capsys, str(LOGS / "recording_competing.jsonl"), "--json", "--fail-on", "critical")
    assert code == 0


def test_threshold_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(
        capsys,
        str(LOGS / "recording_competing.jsonl"),
        "--threshold",
        "expected_connections=4",
        "--threshold",
        "share_drop_ratio=0",
        "--json",
    )
    assert code == 0
    code, _, err = run(capsys, str(LOGS / "recording_competing.jsonl"), "--threshold", "nope=3")
    assert code == 4 and "expected_connections" in err


def test_unusable_input_exits_3_naming_formats(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "x.txt"
    f.write_text("hello\nworld\n")
    code, _, err = run(capsys, str(f))
    assert code == 3 and "python-sdk" in err and "access-log" in err


def test_since_until_and_format_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, str(LOGS / "java_custom.log"), "--format", "java", "--since", "2023-12-24T01:47:25Z", "--json"
    )
    doc = json.loads(out)
    assert doc["overview"]["kinds"]["api_call"] == 2
    code, _, err = run(capsys, str(LOGS / "java_custom.log"), "--format", "cobol")
    assert code == 4 and "python-sdk" in err


def test_remote_text_cannot_inject_markup_or_escapes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    evil = "[bold red]pwned[/bold red]\x1b[2J xoxb-123-456-secret"
    f = tmp_path / "evil.jsonl"
    f.write_bytes(
        orjson.dumps(
            make("disconnect", t=1.0, source="x", conn=evil, reason="too_many_websockets", host=evil)
        )
        + b"\n"
    )
    code, out, _ = run(capsys, str(f))
    assert code == 2
    assert "[bold red]pwned[/bold red]" in out
    assert "\x1b" not in out and "secret" not in out


def test_parse_time() -> None:
    assert parse_time("1700000000") == 1700000000.0
    assert parse_time("2024-02-15T14:32:20Z") == 1708007540.0
    assert parse_time("2024-02-15 14:32:20") == 1708007540.0
    assert parse_time("2h", now=10000.0) == 10000.0 - 7200
    with pytest.raises(UsageError):
        parse_time("last tuesday")


def test_no_progress_bar_in_pipes_and_stdin() -> None:
    data = (LOGS / "recording_auth-errors.jsonl").read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "slackops", "diagnose", "-"], input=data, capture_output=True, timeout=60
    )
    assert proc.returncode == 2
    assert b"auth-error" in proc.stdout
    assert proc.stderr == b""
