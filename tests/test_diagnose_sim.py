"""Live recordings of the simulator's chaos scenarios produce their matching findings (and steady traffic none).

Each case runs the real simulator and a real client over loopback sockets, records both sides, and diagnoses
the recording: the simulator's own (``slackops simulate --record``) and the probe's (``slackops watch``).
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from slackops.diagnose.engine import diagnose_records
from slackops.protocol import Backoff, LivenessPolicy
from slackops.simulator import Simulator, load_scenario
from slackops.simulator.demo import run_demo
from slackops.transport import ConnectionManager, ManagerConfig


class Collect:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def write(self, rec: dict) -> None:
        self.records.append(rec)


def codes(records: list[dict]) -> set[str]:
    return {f.code for f in diagnose_records(sorted(records, key=lambda r: r["t"])).findings}


async def probe_run(scenario: str, time_scale: float, seconds: float) -> tuple[set[str], set[str], object]:
    """Run ``scenario`` against a well-behaved probe (acks at once); return sim and probe findings."""
    sim_rec, probe_rec = Collect(), Collect()
    sim = Simulator(load_scenario(scenario), time_scale=time_scale, seed=5, recorder=sim_rec)
    await sim.start()
    mgr = ConnectionManager(
        ManagerConfig(
            api_url=sim.api_url,
            app_token=sim.app_token,
            connections=2,
            backoff=Backoff(base_s=0.05, cap_s=0.5),
            liveness=LivenessPolicy(ping_interval_s=0.5, pong_timeout_s=2.0, unhealthy_after_s=0.5),
        ),
        recorder=probe_rec,
    )
    try:
        sim.start_traffic()
        await mgr.start()
        # The scenario's chaos runs on the simulator's clock; this is the length of the recording.
        await asyncio.sleep(seconds)
        await sim.stop_traffic()
        await sim.drain(3.0)
    finally:
        await mgr.close()
        await sim.stop()
    return codes(sim_rec.records), codes(probe_rec.records), sim.scorecard()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


def test_steady_traffic_raises_nothing_on_either_side():
    sim_codes, probe_codes, card = run(probe_run("steady", 50.0, 4.0))
    assert card.lost == 0
    assert sim_codes == set() and probe_codes == set()


def test_disconnect_storm_recording_names_the_storm():
    # The simulator's side has no reconnect records, only new sessions: the detector counts those instead.
    sim_codes, probe_codes, _ = run(probe_run("disconnect-storm", 20.0, 5.0))
    assert "reconnect-burst" in sim_codes and "reconnect-burst" in probe_codes


def test_ghost_connections_recording_names_the_ghosts():
    _, probe_codes, _ = run(probe_run("ghost-connections", 20.0, 5.0))
    assert "ghost-connections" in probe_codes


def test_rate_limited_open_is_seen_from_both_sides():
    sim_codes, probe_codes, _ = run(probe_run("rate-limited-open", 20.0, 5.0))
    assert "open-ratelimited" in sim_codes and "open-ratelimited" in probe_codes


@pytest.fixture
def quiet_sdk():
    # The naive demo bot's slack-sdk client logs tracebacks for acks on dead sockets: expected here.
    logging.getLogger("slack_sdk").setLevel(logging.CRITICAL)
    yield
    logging.getLogger("slack_sdk").setLevel(logging.NOTSET)


def test_slow_consumer_recording_names_late_acks_and_retries(quiet_sdk):
    rec = Collect()
    card = run(run_demo("slow-consumer", duration=4.0, recorder=rec, seed=3))
    assert card.acked_late > 0
    assert {"ack-late", "timeout-retries"} <= codes(rec.records)
