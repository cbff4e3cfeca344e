"""Small helpers shared by the tests: scaled timeouts and waiting on conditions (never bare sleeps)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

#: Multiply every test timeout by this on slow machines: SLACKOPS_TEST_TIMEOUT_SCALE=3 make test
SCALE = float(os.environ.get("SLACKOPS_TEST_TIMEOUT_SCALE", "1"))


def scaled(seconds: float) -> float:
    return seconds * SCALE


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, what: str = ""
) -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` (scaled) seconds."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scaled(timeout):.1f}s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Blocking variant of :func:`wait_for` for threaded peers (slack-sdk's builtin client)."""
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scaled(timeout):.1f}s waiting for {what or predicate}")
        time.sleep(0.01)
