"""Reliability under churn: slackops.bot against the same bot on each of slack-sdk's Socket Mode clients.

Every contender runs the same work (``bench.contenders``: ack, then a 0.3 s "model call", then a threaded reply)
as its own process against the in-process simulator, with the same scenario and seed: connections refreshed
every 5 s (warning -> refresh_requested -> hard drop after the grace, as Slack does every few hours) plus a
random socket dropped without a close frame every 4 s. The simulator's ground-truth scorecard says what each
lost (never acked in time: Events API retries ran out, or a slash command / button press the user saw fail),
processed twice (two replies to one event), how fast acks were, and how long the app had no socket.

Contenders alternate across repetitions; the table shows medians and ratios against slack-sdk's aiohttp client.

Run: ``python -m bench reliability [--quick] [--reps N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from bench.common import (
    BASELINE,
    BotProcess,
    Contender,
    Results,
    Workdir,
    client_contenders,
    fmt,
    machine,
    print_table,
    ratio,
    rotation,
)
from slackops.simulator import Scenario, Scorecard, Simulator, parse_scenario

#: Scenario seconds at time scale 120: 1200 s of churn is 10 s of wall time; Slack's retry schedule (at once,
#: +1 min, +5 min) becomes at once, +0.5 s, +2.5 s. The ack deadline stays 3 real seconds, as in production.
SCENARIO = """
description = "bench: refresh churn every 5 s plus a hard drop every 4 s"
duration = 1200
time_scale = 120

[server]
lifetime = 600        # 5 s per connection, then warning -> refresh_requested -> drop
warning_lead = 60     # 0.5 s of warning
grace = 120           # 1 s to reconnect before the hard drop
ghosts = false        # drops leave no ghost registrations: losses come from the clients, not from routing

[traffic]
rate = 10.0
mix = { message = 4, app_mention = 2, block_actions = 1, slash_command = 1 }

[[chaos]]
at = 180
every = 480
action = "drop"
target = "random"
"""

#: After traffic stops: how long acks, retries (up to 5 s at this scale) and replies may take to settle.
SETTLE_S = 15.0
#: Replies have stopped once none arrived for this long.
QUIET_S = 1.0


def scenario(duration: float | None = None) -> Scenario:
    scen = parse_scenario(SCENARIO, name="bench-churn")
    if duration is not None:
        scen = Scenario(**{**scen.__dict__, "duration": duration})
    return scen


async def run_once(contender: Contender, scen: Scenario, seed: int) -> tuple[Scorecard, float]:
    """One contender through the scenario: the simulator's scorecard once everything settled, and the
    milliseconds of traffic time during which the app had no live socket (an open gap counts too)."""
    sim = Simulator(scen, time_scale=scen.time_scale, seed=seed)
    await sim.start()
    try:
        with Workdir() as workdir:
            bot = BotProcess(contender, sim, "reply", workdir)
            try:
                await bot.start()
                sim.start_traffic()
                dark_ms = await _dark_time(sim, scen.duration / scen.time_scale)
                await sim.stop_traffic()
                await sim.drain(SETTLE_S)
                await _replies_quiet(sim)
                return sim.scorecard(), dark_ms
            finally:
                await bot.stop()
    finally:
        await sim.stop()


async def _dark_time(sim: Simulator, seconds: float) -> float:
    """Sample every 20 ms for ``seconds`` whether the app holds a live socket; return the dark time in ms."""
    dark = 0.0
    start = last = time.monotonic()
    while last - start < seconds:
        await asyncio.sleep(0.02)
        now = time.monotonic()
        if not any(c.state == "live" for c in sim.connections()):
            dark += now - last
        last = now
    return dark * 1000.0


async def _replies_quiet(sim: Simulator) -> None:
    # Acked is not answered: an ack-then-process bot replies after the ack. Wait until replies stop arriving.
    def count() -> int:
        return sum(len(e.replies) for e in sim.ledger.entries.values())

    deadline = time.monotonic() + SETTLE_S
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < QUIET_S:
        await asyncio.sleep(0.05)
        if count() != last:
            last, since = count(), time.monotonic()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench reliability", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="one repetition of a 4 s scenario: a ~1 min smoke run"
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions per contender (default 3)")
    parser.add_argument("--seed", type=int, default=10, help="simulator seed (the same for every contender)")
    args = parser.parse_args(argv)
    reps = 1 if args.quick else args.reps
    scen = scenario(480.0 if args.quick else None)
    contenders = client_contenders()
    print(f"machine: {machine()}")
    print(
        f"scenario: {scen.description}; {scen.duration / scen.time_scale:g} s of traffic at "
        f"{scen.traffic.rate:g} events/s, seed {args.seed}; {reps} repetition(s), contenders alternating"
    )
    results = Results()
    for rep in range(reps):
        for contender in rotation(contenders, rep):
            card, dark_ms = asyncio.run(run_once(contender, scen, args.seed))
            name = contender.name
            gaps = card.reconnect_gaps_ms
            results.add(name, "events", card.events)
            results.add(name, "lost", card.lost)
            results.add(name, "twice", card.processed_twice)
            results.add(name, "late", card.acked_late)
            results.add(name, "p50", card.ack_p50_ms)
            results.add(name, "p99", card.ack_p99_ms)
            results.add(name, "lost_pct", 100.0 * card.lost / card.events if card.events else None)
            results.add(name, "dark", dark_ms)
            results.add(name, "gap_max", max(gaps) if gaps else 0.0)
            print(
                f"  rep {rep + 1} {name}: {card.events} events, lost {card.lost} {card.lost_by_type or ''}, "
                f"replied to {card.processed}, processed twice {card.processed_twice}, acked late {card.acked_late}, "
                f"ack p50/p99 {fmt(card.ack_p50_ms)}/{fmt(card.ack_p99_ms)} ms, "
                f"{card.connections_opened} sockets opened, {len(gaps)} reconnect gaps (max "
                f"{fmt(max(gaps) if gaps else 0)} ms), no live socket for {fmt(dark_ms, 0)} ms",
                file=sys.stderr,
            )
    metrics = ("events", "lost", "lost_pct", "twice", "late", "p50", "p99", "dark", "gap_max")
    base = {m: results.median(BASELINE, m) for m in metrics}
    rows = []
    for contender in contenders:
        med = {m: results.median(contender.name, m) for m in metrics}
        rows.append(
            [
                contender.name,
                fmt(med["events"], 0),
                f"{fmt(med['lost'])} ({fmt(med['lost_pct'])} %)",
                fmt(med["twice"]),
                fmt(med["late"]),
                fmt(med["p50"]),
                fmt(med["p99"]),
                ratio(med["p99"], base["p99"]),
                fmt(med["gap_max"], 0),
                fmt(med["dark"], 0),
            ]
        )
    print()
    print_table(
        [
            "contender",
            "events",
            "lost",
            "processed twice",
            "acked late",
            "ack p50 ms",
            "ack p99 ms",
            "p99 vs aiohttp",
            "reconnect gap ms (max)",
            "no live socket ms",
        ],
        rows,
    )
    return 0
