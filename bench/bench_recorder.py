"""Recorder overhead: ``slackops watch`` and ``slackops.instrument()`` with recording on vs off.

Four contenders, each its own process against the in-process simulator, acking every envelope and doing nothing
else:

- the watch probe with no recording, and with its SQLite recording (``slackops watch --db``);
- slack-sdk's aiohttp client bare, and with ``slackops.instrument(client, db=...)``.

For each: ack round trip p50/p99 at 200 envelopes/s (the simulator's clock), the highest envelope rate at which
every envelope is acked with p99 under 50 ms (each envelope is two frames on the wire: it and its ack), and,
with recording on, whether the recording holds every envelope once the process has flushed and exited. The
table shows medians over repetitions and what recording adds (on minus off).

Run: ``python -m bench recorder [--quick] [--reps N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from bench.bench_ack import FIXED_RATE, SCENARIO, search
from bench.common import (
    P99_CEILING_MS,
    BotProcess,
    Contender,
    Results,
    Workdir,
    fmt,
    machine,
    measure_step,
    print_table,
    rotation,
)
from slackops.simulator import Simulator, parse_scenario

PAIRS = (
    (Contender("watch", "watch"), Contender("watch --db", "watch", record=True)),
    (
        Contender("slack-sdk aiohttp", "sdk-aiohttp"),
        Contender("slack-sdk aiohttp + instrument()", "sdk-aiohttp", record=True),
    ),
)


async def measure(contender: Contender, fixed_s: float, step_s: float, seed: int) -> dict:
    """Fixed-rate latency, the throughput search and, when recording, how complete the recording is."""
    sim = Simulator(parse_scenario(SCENARIO, name="bench-recorder"), seed=seed)
    await sim.start()
    try:
        with Workdir() as workdir:
            bot = BotProcess(contender, sim, "ack", workdir)
            try:
                await bot.start()
                await measure_step(bot, 100.0, min(1.0, fixed_s))
                fixed = await measure_step(bot, FIXED_RATE, fixed_s)
                best, limit = await search(bot, step_s)
            finally:
                started = time.monotonic()
                await bot.stop()
                stop_s = time.monotonic() - started
            out = {"fixed": fixed, "max_rate": best, "limit": limit, "stop_s": stop_s}
            if contender.record:
                sent = sum(len(e.attempts) for e in sim.ledger.entries.values())
                out["recorded_share"] = _recorded(workdir / "rec.db") / sent if sent else None
            return out
    finally:
        await sim.stop()


def _recorded(path) -> int:
    """Distinct envelope ids in a recording (every delivery attempt has its own)."""
    from slackops.store import iter_records

    if not path.exists():
        return 0
    return len({r.get("envelope_id") for r in iter_records(path, kinds={"envelope"})})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench recorder", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one repetition, 1 s steps: a ~1-2 min smoke run (figures not comparable)",
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions per contender (default 3)")
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args(argv)
    reps, fixed_s, step_s = (1, 1.5, 1.0) if args.quick else (args.reps, 3.0, 2.0)
    contenders = [c for pair in PAIRS for c in pair]
    print(f"machine: {machine()}")
    print(
        f"ack round trip at {FIXED_RATE:g} envelopes/s for {fixed_s:g} s; max envelopes/s with p99 < "
        f"{P99_CEILING_MS:g} ms ({step_s:g} s steps); {reps} repetition(s), contenders alternating"
    )
    results = Results()
    for rep in range(reps):
        for contender in rotation(contenders, rep):
            out = asyncio.run(measure(contender, fixed_s, step_s, args.seed + rep))
            fixed = out["fixed"]
            name = contender.name
            results.add(name, "p50", fixed.ack_p50_ms)
            results.add(name, "p99", fixed.ack_p99_ms)
            results.add(name, "cpu", fixed.cpu_ms_per_1k)
            results.add(name, "max", out["max_rate"])
            results.add(name, "stop", out["stop_s"])
            if "recorded_share" in out:
                results.add(name, "recorded", out["recorded_share"])
            limit = out["limit"]
            print(
                f"  rep {rep + 1} {name}: p50 {fmt(fixed.ack_p50_ms, 2)} ms, p99 {fmt(fixed.ack_p99_ms, 2)} ms, "
                f"{fmt(fixed.cpu_ms_per_1k)} CPU ms/1k, max {fmt(out['max_rate'])}/s"
                + (f" (failed at {fmt(limit.rate)}/s)" if limit is not None else " (ladder exhausted)")
                + f", exit after SIGTERM {out['stop_s']:.2f} s"
                + (
                    f", recording holds {out['recorded_share'] * 100:.1f} % of envelopes"
                    if out.get("recorded_share") is not None
                    else ""
                ),
                file=sys.stderr,
            )
    rows = []
    for off, on in PAIRS:
        for contender in (off, on):
            med = {m: results.median(contender.name, m) for m in ("p50", "p99", "max", "cpu", "recorded")}
            added = ["", ""]
            if contender is on:
                base = {m: results.median(off.name, m) for m in ("p50", "p99")}
                added = [
                    _delta(med["p50"], base["p50"]),
                    _delta(med["p99"], base["p99"]),
                ]
            rows.append(
                [
                    contender.name,
                    fmt(med["p50"], 2),
                    added[0],
                    fmt(med["p99"], 2),
                    added[1],
                    fmt(med["max"], 0),
                    fmt(2 * med["max"], 0) if med["max"] is not None else "-",
                    fmt(med["cpu"], 0),
                    f"{med['recorded'] * 100:.1f} %" if med["recorded"] is not None else "n/a",
                ]
            )
    print()
    print_table(
        [
            "contender",
            f"ack p50 ms @{FIXED_RATE:g}/s",
            "added p50",
            "ack p99 ms",
            "added p99",
            f"max env/s (p99<{P99_CEILING_MS:g}ms)",
            "frames/s",
            "CPU ms/1k env",
            "recorded",
        ],
        rows,
    )
    return 0


def _delta(value: float | None, base: float | None) -> str:
    if value is None or base is None:
        return "-"
    return f"{value - base:+.2f}"
