"""The reference bot on the Redis store, in-process: Redis lost mid-run means no acks, an error record, 503."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import examples.echo_llm_bot as example
from slackops.bot.app import Bot, BotConfig
from slackops.errors import ExitCode
from slackops.simulator import Simulator, parse_scenario
from tests.redis_server import free_port, redis_fixture  # noqa: F401  (fixture)
from tests.test_bot_sim import FAST_LIVENESS
from tests.util import wait_for

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "fixtures" / "bot" / "replicas.toml"


class Records:
    """An in-memory recorder: the bot writes every record here."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def write(self, rec: dict[str, Any]) -> None:
        self.rows.append(dict(rec))

    def of(self, kind: str, since: float = 0.0) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["kind"] == kind and r["t"] >= since]


@pytest.mark.timeout(60)
def test_redis_lost_mid_run_stops_acks_and_says_so(redis_server, tmp_path, monkeypatch):
    monkeypatch.setattr(example, "LATENCY_S", (0.05, 0.1))
    scenario = parse_scenario(SCENARIO.read_text(), path=str(SCENARIO), name="replicas")
    recs = Records()

    async def main() -> None:
        sim = Simulator(scenario, time_scale=scenario.time_scale, seed=3)
        await sim.start()
        cfg = BotConfig(
            app_token=sim.app_token,
            bot_token=sim.bot_token,
            api_url=sim.api_url,
            connections=2,
            store=redis_server.url,
            instance="solo",
            visibility_timeout_s=3.0,
            liveness=FAST_LIVENESS,
        )
        bot = Bot(cfg, example.handle, recorder=recs)
        try:
            await bot.start()
            sim.start_traffic()
            await wait_for(lambda: len(recs.of("ack")) >= 5, timeout=10, what="5 acks")
            assert bot.readiness() == (True, "ok")
            labels = {"instance": "solo", "store": "redis"}
            assert bot.metrics.registry.get_sample_value("slackops_bot_instance", labels) == 1

            redis_server.stop()
            killed = time.time()
            await wait_for(
                lambda: any(r["where"] == "enqueue" for r in recs.of("error", killed)),
                timeout=10,
                what="an enqueue error record",
            )
            await wait_for(lambda: len(recs.of("envelope", killed)) >= 4, timeout=10, what="envelopes")
            ready, reason = bot.readiness()
            assert not ready and reason.startswith("work store unavailable"), reason
            after = {r["envelope_id"] for r in recs.of("envelope", killed)}
            acked = {r["envelope_id"] for r in recs.of("ack", killed)}
            assert not after & acked, "an envelope was acked that could not be persisted"
            error = next(r for r in recs.of("error", killed) if r["where"] == "enqueue")
            assert "not acked" in error["detail"] and "Redis" in error["detail"]

            # Redis back (empty: no persistence): the group is recreated and acks resume.
            redis_server.start()
            back = time.time()
            await wait_for(
                lambda: len(recs.of("ack", back)) >= 3, timeout=15, what="acks after Redis is back"
            )
            await wait_for(lambda: bot.readiness()[0], timeout=5, what="ready again")
            await sim.stop_traffic()
        finally:
            await bot.stop()
            await sim.stop()

    asyncio.run(main())
    assert any(r["kind"] == "process" and r.get("phase") == "end" for r in recs.rows)
    assert all(r.get("instance") == "solo" for r in recs.rows if r["kind"] in {"ack", "process", "dedup"})


@pytest.mark.timeout(30)
def test_redis_down_at_start_is_a_clear_error_and_exit_code(tmp_path):
    env = {**os.environ, "SLACKOPS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    cmd = [
        sys.executable, "-m", "slackops", "bot", "run", "examples.echo_llm_bot:handle",
        "--db", str(tmp_path / "q.db"), "--instance", "i1",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=25)
    assert proc.returncode == ExitCode.STORE, proc.stderr
    assert "cannot reach Redis at redis://127.0.0.1:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_store_must_be_a_redis_url(tmp_path):
    cmd = [
        sys.executable, "-m", "slackops", "bot", "run", "examples.echo_llm_bot:handle",
        "--db", str(tmp_path / "q.db"), "--store", "postgres://db:5432/x",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=25)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert "--store must be a Redis URL" in proc.stderr and "postgres" in proc.stderr
