"""Three bot processes share one Redis (dedup + stream work queue) against one simulator: exactly once, together.

Acceptance for several instances (issue 11). Each replica is a real ``python -m slackops bot run`` subprocess
with 3 sockets (9 of Slack's 10 per app) under refresh churn; the simulator in this process serves them all and
its scorecard spans every replica. Then: one replica is killed with SIGKILL while it holds work (the others
reclaim it after the visibility timeout), or the replicas are restarted one at a time with SIGTERM (each hands
its unfinished work back). Either way: 0 lost, 0 processed twice, and every replica did part of the work.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import redis

from slackops.simulator import SimulatorThread, parse_scenario
from slackops.store import iter_records
from tests.redis_server import RedisServer, redis_fixture  # noqa: F401  (fixture)
from tests.test_bot_sim import Outcome, _settled_and_answered
from tests.util import wait_until

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "fixtures" / "bot" / "replicas.toml"
STREAM = "slackops:{default}:work"
#: short, so the test sees a dead replica's work reclaimed; each replica heartbeats every third of it
VISIBILITY_S = 3.0


class Fleet:
    """The replicas of one bot: start, stop, read their summaries and recordings."""

    def __init__(self, sim: SimulatorThread, store: RedisServer, tmp: Path) -> None:
        self.sim, self.store, self.tmp = sim, store, tmp
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.summaries: dict[str, dict] = {}

    def start(self, name: str) -> None:
        env = {
            **os.environ,
            "SLACK_APP_TOKEN": self.sim.app_token,
            "SLACK_BOT_TOKEN": self.sim.bot_token,
            "SLACK_API_URL": self.sim.api_url,
            "ECHO_LLM_MIN_S": "0.3",
            "ECHO_LLM_MAX_S": "1.2",
        }
        cmd = [
            sys.executable, "-m", "slackops", "bot", "run", "examples.echo_llm_bot:handle",
            "--responder", "examples.echo_llm_bot:respond", "--instance", name, "--connections", "3",
            "--store", self.store.url,
            "--db", str(self.tmp / f"{name}.db"), "--record", str(self.tmp / f"{name}.rec.db"),
            "--drain-timeout", "0.3", "--visibility-timeout", str(VISIBILITY_S), "--json",
        ]  # fmt: skip
        self.procs[name] = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def live_sockets(self) -> int:
        """Live registrations of the app, all replicas together (the simulator does not know which is whose)."""
        return sum(1 for c in self.sim.connections() if c.state == "live")

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert "xapp-" not in err and "xoxb-" not in err, "a token reached the bot's stderr"
        if sig == signal.SIGKILL:
            assert proc.returncode == -signal.SIGKILL
            return
        assert proc.returncode == 0, err
        self.summaries[name] = json.loads(out)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def kill_leftovers(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait(timeout=10)

    def records(self, name: str, kinds: set[str]) -> list[dict]:
        return list(iter_records(self.tmp / f"{name}.rec.db", kinds=kinds))

    def reconnects(self, names: list[str]) -> int:
        return sum(len(self.records(name, {"reconnect"})) for name in names)

    def handled_by(self, names: list[str]) -> Counter[str]:
        """Finished handler runs per replica, from each one's own recording (tagged with ``instance``)."""
        share: Counter[str] = Counter()
        for name in names:
            for r in self.records(name, {"process"}):
                if r.get("phase") == "end":
                    assert r.get("instance") == name
                    share[name] += 1
        return share


def held_by(store: RedisServer, name: str) -> int:
    client = redis.Redis.from_url(store.url)
    try:
        return len(client.xpending_range(STREAM, "workers", "-", "+", 100, consumername=name))
    finally:
        client.close()


def acked(sim: SimulatorThread) -> int:
    return sim.scorecard().acked


def run_fleet(tmp_path: Path, store: RedisServer, middle) -> tuple[Outcome, Fleet]:
    """Start i1-i3, run traffic, call ``middle(fleet)`` mid-traffic, settle, stop everyone, judge."""
    scenario = parse_scenario(SCENARIO.read_text(), path=str(SCENARIO), name="replicas")
    with SimulatorThread(scenario, time_scale=scenario.time_scale, seed=11) as sim:
        fleet = Fleet(sim, store, tmp_path)
        try:
            for name in ("i1", "i2", "i3"):
                fleet.start(name)
            wait_until(lambda: fleet.live_sockets() >= 9, timeout=20, what="9 sockets from 3 replicas")
            sim.start_traffic()
            wait_until(lambda: acked(sim) >= 25, timeout=20, what="25 events acked")
            middle(fleet)
            base = acked(sim)
            wait_until(lambda: acked(sim) >= base + 20, timeout=20, what="20 more events acked")
            sim.stop_traffic()
            wait_until(lambda: _settled_and_answered(sim), timeout=30, what="every acked event answered")
            fleet.stop_all()
            return Outcome.of("replicas", "redis", sim), fleet
        finally:
            fleet.kill_leftovers()


@pytest.mark.timeout(90)
def test_three_replicas_under_churn_survive_a_kill_9(tmp_path, redis_server):
    def kill_one(fleet: Fleet) -> None:
        wait_until(lambda: held_by(fleet.store, "i2") >= 2, timeout=10, what="i2 holding work")
        fleet.stop("i2", signal.SIGKILL)

    outcome, fleet = run_fleet(tmp_path, redis_server, kill_one)
    print(outcome, fleet.summaries)
    assert outcome.reached >= 30
    assert fleet.reconnects(["i1", "i2", "i3"]) > 0  # the refresh churn happened and the replicas rode it
    assert (outcome.bot_lost, outcome.unanswered, outcome.processed_twice) == (0, 0, 0), outcome.problems
    # The survivors took over what i2 held when it died, and say from whom.
    orphans = [
        r
        for name in ("i1", "i3")
        for r in fleet.records(name, {"process"})
        if r.get("phase") == "requeue" and r.get("error") == "orphan"
    ]
    assert orphans and sum(fleet.summaries[n]["orphans"] for n in ("i1", "i3")) == len(orphans)
    assert {r.get("owner") for r in orphans} <= {"i2", None}
    share = fleet.handled_by(["i1", "i2", "i3"])
    assert share["i1"] > 0 and share["i3"] > 0 and share["i2"] > 0, share
    assert held_by(redis_server, "i2") == 0  # nothing left stuck with the dead consumer


@pytest.mark.timeout(90)
def test_rolling_restart_of_three_replicas_loses_nothing(tmp_path, redis_server):
    def roll(fleet: Fleet) -> None:
        for old, new in (("i1", "i4"), ("i2", "i5"), ("i3", "i6")):
            fleet.stop(old, signal.SIGTERM)  # close sockets, drain 0.3 s, hand back the rest
            fleet.start(new)
            wait_until(lambda: fleet.live_sockets() >= 9, timeout=20, what=f"{new} connected")

    outcome, fleet = run_fleet(tmp_path, redis_server, roll)
    print(outcome, fleet.summaries)
    assert outcome.reached >= 30
    assert (outcome.bot_lost, outcome.unanswered, outcome.processed_twice) == (0, 0, 0), outcome.problems
    for name in ("i1", "i2", "i3"):
        signals = fleet.records(name, {"signal"})
        assert [(r["name"], r["action"]) for r in signals] == [("SIGTERM", "drain")]
    # A clean hand-back is not an orphan: nobody had to wait for a visibility timeout.
    assert all(s["orphans"] == 0 for s in fleet.summaries.values()), fleet.summaries
    share = fleet.handled_by(["i1", "i2", "i3", "i4", "i5", "i6"])
    assert len([n for n in share if share[n] > 0]) >= 5, share
