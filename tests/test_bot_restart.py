"""SIGTERM and kill -9 mid-traffic, then a restart: the reference bot (a real subprocess) loses nothing.

The bot runs as ``python -m slackops bot run examples.echo_llm_bot:handle`` against a simulator on its own thread.
Traffic runs until the bot has acked a good number of events and has model calls in flight; then traffic stops
(interactive payloads sent while *no* process is connected fail in Slack too, whatever the bot) and the bot is
signalled. A second process on the same queue file must answer every event the first one acked, exactly once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slackops.simulator import SimulatorThread, parse_scenario
from slackops.store import iter_records
from tests.test_bot_sim import Outcome, _settled_and_answered
from tests.util import wait_until

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "fixtures" / "bot" / "restart.toml"


def start_bot(sim: SimulatorThread, tmp: Path, run: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "SLACK_APP_TOKEN": sim.app_token,
        "SLACK_BOT_TOKEN": sim.bot_token,
        "SLACK_API_URL": sim.api_url,
        # Model calls take longer than the drain deadline, so SIGTERM always has work to requeue.
        "ECHO_LLM_MIN_S": "0.6",
        "ECHO_LLM_MAX_S": "1.5",
    }
    cmd = [
        sys.executable, "-m", "slackops", "bot", "run", "examples.echo_llm_bot:handle",
        "--responder", "examples.echo_llm_bot:respond",
        "--db", str(tmp / "queue.db"), "--record", str(tmp / f"run{run}.db"),
        "--connections", "2", "--drain-timeout", "0.3", "--json",
    ]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def own_sockets(sim: SimulatorThread) -> int:
    return sum(1 for c in sim.connections() if c.state == "live")


def summary(proc: subprocess.Popen[str]) -> dict:
    out, err = proc.communicate(timeout=30)
    assert "xapp-" not in err and "xoxb-" not in err, "a token reached the bot's stderr"
    assert proc.returncode == 0, err
    return json.loads(out)


def stop(proc: subprocess.Popen[str], sig: int) -> None:
    proc.send_signal(sig)
    proc.wait(timeout=30)


def claimed_rows(db: Path) -> int:
    """Work rows the running bot has durably claimed (read through WAL from another connection)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as conn:
            return conn.execute("SELECT count(*) FROM work WHERE state = 'claimed'").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
@pytest.mark.timeout(60)
def test_restart_mid_traffic_loses_nothing(tmp_path, sig, monkeypatch):
    scenario = parse_scenario(SCENARIO.read_text(), path=str(SCENARIO), name="restart")
    with SimulatorThread(scenario, time_scale=scenario.time_scale, seed=7) as sim:
        first = start_bot(sim, tmp_path, 1)
        wait_until(lambda: own_sockets(sim) == 2, timeout=15, what="first bot connected")
        sim.start_traffic()
        wait_until(lambda: sim.scorecard().acked >= 20, timeout=15, what="20 events acked")
        sim.stop_traffic()
        time.sleep(0.05)  # acks of envelopes already on the wire; model calls are still running
        if sig == signal.SIGTERM:
            stop(first, sig)
            before = summary(first)
            assert before["requeued"] > 0  # work that missed the drain deadline went back to the queue
        else:
            # Claims of started handlers reach disk with the next commit (at most DEFERRED_FLUSH_S later): kill
            # only once some are durable, so the restart has orphans to re-dispatch (what this case is about).
            wait_until(lambda: claimed_rows(tmp_path / "queue.db") > 0, timeout=5, what="durable claims")
            stop(first, sig)
            assert first.returncode == -signal.SIGKILL

        second = start_bot(sim, tmp_path, 2)
        wait_until(lambda: _settled_and_answered(sim), timeout=20, what="every acked event answered")
        stop(second, signal.SIGTERM)
        after = summary(second)
        outcome = Outcome.of("restart", sig.name, sim)

    assert after["recovered"] > 0
    if sig == signal.SIGKILL:
        assert after["orphans"] > 0  # handlers the killed process had started were re-dispatched
        orphans = [
            r for r in iter_records(tmp_path / "run2.db", kinds={"process"})
            if r.get("phase") == "requeue" and r.get("error") == "orphan"
        ]  # fmt: skip
        assert len(orphans) == after["orphans"]
    else:
        assert after["orphans"] == 0  # SIGTERM requeued cleanly: nothing was left claimed
        signals = list(iter_records(tmp_path / "run1.db", kinds={"signal"}))
        assert [(r["name"], r["action"]) for r in signals] == [("SIGTERM", "drain")]
    assert outcome.reached >= 15
    assert (outcome.bot_lost, outcome.unanswered, outcome.processed_twice) == (0, 0, 0), outcome
