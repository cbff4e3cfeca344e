"""Graceful shutdown: SIGTERM/SIGINT -> stop receiving -> drain within a deadline -> requeue the rest -> exit.

The order matters (failure mode ``lost-in-flight``). Kubernetes, systemd and deploy tools send SIGTERM and kill
the process a grace period later. If the bot kept its sockets open while draining, Slack would keep routing new
envelopes to it — envelopes it acks and then may not finish. So the first step closes every socket cleanly
(close frames, so Slack drops the registrations at once instead of leaving ghosts that swallow deliveries);
Slack then routes to the other replicas or holds events for retry. The second step gives running handlers
until the drain deadline (keep it below the platform's grace period: ``terminationGracePeriodSeconds``,
``TimeoutStopSec``). Whatever is still unfinished stays ``pending`` in the durable queue and runs on the next
start. A second signal skips the drain: the durable queue still holds everything, so even that loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slackops import records

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ShutdownSignals:
    """SIGTERM/SIGINT handlers for an asyncio loop: the first sets :attr:`requested`, the second :attr:`forced`.

    Each signal emits a ``signal`` record (``action``: ``drain`` for the first, ``force`` for the second).
    """

    def __init__(self, *, emit: Callable[[dict[str, Any]], None] | None = None, source: str = "bot") -> None:
        self.requested = asyncio.Event()
        self.forced = asyncio.Event()
        self.name: str | None = None
        self._emit = emit
        self._source = source
        self._installed: list[signal.Signals] = []

    def install(self) -> None:
        """Take over SIGTERM and SIGINT on the running loop (main thread only; elsewhere a no-op)."""
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            try:
                loop.add_signal_handler(sig, self.trigger, sig.name)
            except (RuntimeError, ValueError, NotImplementedError):  # not the main thread / not supported
                continue
            self._installed.append(sig)

    def uninstall(self) -> None:
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            for sig in self._installed:
                loop.remove_signal_handler(sig)
        self._installed.clear()

    def trigger(self, name: str = "SIGTERM") -> None:
        """What a signal does; call it directly to request a shutdown from code."""
        first = not self.requested.is_set()
        if first:
            self.name = name
            self.requested.set()
        else:
            self.forced.set()
        if self._emit is not None:
            action = "drain" if first else "force"
            self._emit(records.make("signal", t=time.time(), source=self._source, name=name, action=action))


async def unless_forced(work: Awaitable[Any], forced: asyncio.Event) -> Any:
    """Await ``work`` (the drain, which has its own deadline) unless ``forced`` is set first; then cancel it.

    Cancelling the drain loses nothing: unfinished rows are still in the durable queue (claimed ones become
    orphans, re-dispatched on the next start).
    """
    task = asyncio.ensure_future(work)
    force = asyncio.ensure_future(forced.wait())
    try:
        await asyncio.wait({task, force}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        force.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None
