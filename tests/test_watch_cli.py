"""The ``slackops watch`` command: first line, token errors, JSON summary, SIGTERM in a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from slackops.cli import main
from slackops.errors import ExitCode
from slackops.store import iter_records
from tests.util import scaled, wait_until


def test_no_token_says_simulator_on_the_first_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    db = tmp_path / "w.db"
    code = main(["watch", "--duration", "1.5", "--db", str(db), "--json"])
    out, err = capsys.readouterr()
    assert code == ExitCode.OK
    first = err.splitlines()[0]
    assert "built-in simulator" in first and "not Slack" in first
    summary = json.loads(out)
    assert summary["target"]["embedded"] and summary["acks"]["ok"] == summary["envelopes"] > 0
    recs = list(iter_records(db))
    assert {r["kind"] for r in recs} >= {"api_call", "connect", "hello", "envelope", "ack", "close"}
    assert summary["recording"]["written"] == len(recs)


def test_bot_token_is_refused_with_what_to_do(tmp_path, capsys):
    db = tmp_path / "w.db"
    code = main(["watch", "--app-token", "xoxb-1-2-abcdef", "--db", str(db)])
    err = capsys.readouterr().err
    assert code == ExitCode.AUTH
    assert "bot token" in err and "App-Level Tokens" in err
    assert "abcdef" not in err  # the token itself is never echoed
    assert not db.exists()  # nothing recorded for a run that could not start


def test_real_token_needs_ack_or_observe(tmp_path, capsys):
    code = main(["watch", "--app-token", "xapp-1-A1-1-abc", "--db", str(tmp_path / "w.db")])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert "--ack or --observe" in err and "dedicated development app" in err


def test_jsonl_only(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    out = tmp_path / "w.jsonl"
    code = main(["watch", "--duration", "1", "--no-db", "--jsonl", str(out)])
    capsys.readouterr()
    assert code == ExitCode.OK and out.stat().st_size > 0
    assert not (tmp_path / "slackops.db").exists()
    assert any(r["kind"] == "hello" for r in iter_records(out))


def _count(db: Path, sql: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute(sql).fetchone()[0]
    except sqlite3.Error:
        return 0  # not created yet


def test_sigterm_stops_cleanly_and_flushes_every_record(tmp_path):
    db = tmp_path / "w.db"
    env = {k: v for k, v in os.environ.items() if k != "SLACK_APP_TOKEN"}
    env["NO_COLOR"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "slackops", "watch", "--duration", "60", "--db", str(db), "-n", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: (
                _count(db, "select count(*) from records where kind = 'ack'") >= 3 or proc.poll() is not None
            ),
            30,
            "acks in the database",
        )
        assert proc.poll() is None, proc.communicate()
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=scaled(20))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    assert time.monotonic() - stopped_at < scaled(10)
    assert "stopped by SIGTERM" in err.decode()
    recs = [r for r in iter_records(db) if r["source"] == "probe"]
    hellos = {r["conn"] for r in recs if r["kind"] == "hello"}
    closes = {r["conn"] for r in recs if r["kind"] == "close"}
    assert len(hellos) >= 2 and hellos == closes  # every socket we opened was closed, and that was recorded
    envelopes = sorted(r["envelope_id"] for r in recs if r["kind"] == "envelope")
    acks = sorted(r["envelope_id"] for r in recs if r["kind"] == "ack")
    assert envelopes and envelopes == acks


def test_tui_missing_is_said_clearly(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "slackops.tui", None)  # import slackops.tui now raises ImportError
    code = main(["watch", "--tui", "--duration", "1", "--db", str(tmp_path / "w.db")])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE and "--tui needs the terminal UI" in err
    assert not (tmp_path / "w.db").exists()
