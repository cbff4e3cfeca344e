"""How many records per second the terminal view keeps up with, and what it costs the watcher's event loop.

Runs the app headless at a fixed size, fed by a stand-in watcher that emits the TUI fixture's records (retimed)
through the listener at a target rate — once on Textual's own event loop (as ``slackops watch --tui`` runs by
default) and once on a loop of its own in a worker thread (``threaded=True``). For each it prints: the rate
achieved, whether the view kept up (its buffer drained), the cost of one refresh tick (drain + model +
repaint), and the lag a 5 ms sleeper saw *on the watcher's loop* (what a socket read or an ack would wait
behind the view).

    .venv/bin/python bench/bench_tui.py            # 2,000, 5,000 and 10,000 records/s, 3 s each
    .venv/bin/python bench/bench_tui.py 2000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slackops.store import iter_records  # noqa: E402
from slackops.tui.app import SlackopsApp  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "recordings" / "tui_session.jsonl"


class PacedWatcher:
    """Emits ``records`` at ``rate`` per second on the running loop, in small batches, then waits to be stopped."""

    def __init__(self, records: list[dict[str, Any]], rate: float, seconds: float) -> None:
        self.records, self.rate, self.seconds = records, rate, seconds
        self.listeners: list[Any] = []
        self.stop = asyncio.Event()
        self.emitted = 0
        self.done = False
        self.lag: list[float] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def add_listener(self, callback: Any) -> None:
        self.listeners.append(callback)

    def request_stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.stop.set)

    def summary(self) -> dict[str, Any]:
        return {"emitted": self.emitted}

    async def run(self) -> dict[str, Any]:
        loop = self._loop = asyncio.get_running_loop()
        probe = asyncio.create_task(lag_probe(self.lag, self.stop))
        start = loop.time()
        total = int(self.rate * self.seconds)
        batch = max(1, int(self.rate / 500))  # a socket delivers in bursts; 2 ms worth at a time
        n = len(self.records)
        base = time.time()
        while self.emitted < total and not self.stop.is_set():
            for _ in range(min(batch, total - self.emitted)):
                i = self.emitted
                rec = dict(self.records[i % n], t=base + i / self.rate)
                for cb in self.listeners:
                    cb(rec)
                self.emitted += 1
            await asyncio.sleep(max(0.0, start + self.emitted / self.rate - loop.time()))
        self.done = True
        await self.stop.wait()
        await probe
        return self.summary()


class TimedApp(SlackopsApp):
    """The app with its refresh tick timed and its buffer size sampled."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tick_ms: list[float] = []
        self.max_pending = 0

    def tick(self) -> None:
        self.max_pending = max(self.max_pending, len(self.pending))
        t0 = time.perf_counter()
        super().tick()
        self.tick_ms.append((time.perf_counter() - t0) * 1000)


async def lag_probe(samples: list[float], stop: asyncio.Event, period: float = 0.005) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t0 = loop.time()
        await asyncio.sleep(period)
        samples.append((loop.time() - t0 - period) * 1000)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def measure(
    rate: float, seconds: float, records: list[dict[str, Any]], threaded: bool
) -> dict[str, Any]:
    watcher = PacedWatcher(records, rate, seconds)
    app = TimedApp(watcher=watcher, threaded=threaded)
    async with app.run_test(size=(140, 42)) as pilot:
        t0 = time.perf_counter()
        while not watcher.done:
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - t0
        deadline = time.perf_counter() + 5.0
        while app.model.counts.records < watcher.emitted and time.perf_counter() < deadline:
            await asyncio.sleep(0.02)
        drained_after = time.perf_counter() - t0 - elapsed
        await pilot.press("q")
    lag = watcher.lag
    return {
        "mode": "thread" if threaded else "shared",
        "target": rate,
        "achieved": watcher.emitted / elapsed,
        "kept_up": app.model.counts.records == watcher.emitted,
        "drain_s": drained_after,
        "max_pending": app.max_pending,
        "ticks_per_s": len(app.tick_ms) / (elapsed + drained_after),
        "tick_p50": pct(app.tick_ms, 50),
        "tick_p99": pct(app.tick_ms, 99),
        "tick_max": max(app.tick_ms),
        "lag_p50": pct(lag, 50),
        "lag_p99": pct(lag, 99),
        "lag_max": max(lag) if lag else float("nan"),
        "findings": len(app.model.findings),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("rates", nargs="*", type=float, default=[2000.0, 5000.0, 10000.0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    records = list(iter_records(FIXTURE))
    print(
        f"terminal view throughput: {len(records)} fixture records replayed as a live feed, 140x42, headless"
    )
    header = (
        f"{'loop':>6} {'target/s':>9} {'achieved/s':>10} {'kept up':>7} {'drain s':>7} {'max buf':>7} {'ticks/s':>7} "
        f"{'tick p50':>8} {'tick p99':>8} {'tick max':>8} {'lag p50':>7} {'lag p99':>7} {'lag max':>7}"
    )
    print(header)
    runs = [(rate, threaded) for rate in args.rates for threaded in (False, True)]
    all_kept_up = True
    for rate, threaded in runs:
        r = asyncio.run(measure(rate, args.seconds, records, threaded))
        all_kept_up = all_kept_up and r["kept_up"]
        print(
            f"{r['mode']:>6} {r['target']:>9,.0f} {r['achieved']:>10,.0f} {'yes' if r['kept_up'] else 'NO':>7} "
            f"{r['drain_s']:>7.2f} {r['max_pending']:>7,} {r['ticks_per_s']:>7.1f} "
            f"{r['tick_p50']:>6.1f}ms {r['tick_p99']:>6.1f}ms {r['tick_max']:>6.1f}ms "
            f"{r['lag_p50']:>5.1f}ms {r['lag_p99']:>5.1f}ms {r['lag_max']:>5.1f}ms"
        )
    print("tick = drain buffer + feed model + live detectors + repaint (on the app's loop)")
    print(
        "lag = extra delay of a 5 ms sleep on the watcher's loop; loop = shared with Textual, or own thread"
    )
    return 0 if all_kept_up else 1


if __name__ == "__main__":
    raise SystemExit(main())
