"""Run a simulator for a while (a duration, or until Ctrl-C / SIGTERM) and return its scorecard.

This is what ``slackops simulate`` calls; the CLI only parses flags and renders the result.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from typing import Any

from slackops.simulator.ledger import Scorecard
from slackops.simulator.scenario import Scenario
from slackops.simulator.server import Simulator

#: After traffic stops, wait this long (real seconds, on top of the ack deadline) for in-flight acks.
SETTLE_SECONDS = 1.0


async def run(
    scenario: Scenario,
    *,
    time_scale: float | None = None,
    duration: float | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int | None = None,
    recorder: Any = None,
    on_ready: Callable[[Simulator], None] | None = None,
    stop: asyncio.Event | None = None,
    request_url: str | None = None,
) -> Scorecard:
    """Serve ``scenario`` with traffic and chaos, then return the scorecard.

    ``duration`` is wall-clock seconds; ``None`` means the scenario's own duration at this time scale, ``0``
    means until ``stop`` is set (SIGINT and SIGTERM set it when running on the main thread). With
    ``request_url`` events are POSTed there (Events API over HTTP) instead of sent on sockets.
    """
    scale = time_scale or scenario.time_scale
    sim = Simulator(
        scenario,
        time_scale=scale,
        seed=seed,
        host=host,
        port=port,
        recorder=recorder,
        request_url=request_url,
    )
    await sim.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
    try:
        if on_ready is not None:
            on_ready(sim)
        sim.start_traffic()
        wall = scenario.duration / scale if duration is None else duration
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wall if wall > 0 else None)
        await sim.stop_traffic()
        await sim.drain(sim.engine.settings.ack_deadline + SETTLE_SECONDS)
        return sim.scorecard()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await sim.stop()
