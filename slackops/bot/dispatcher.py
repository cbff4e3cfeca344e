"""Run handler work off the receive path: bounded concurrency, bounded retries, drain on shutdown.

The receive path only persists, acks and calls :meth:`Dispatcher.submit` (which never blocks). Each item then
becomes an asyncio task that waits for one of ``concurrency`` slots, marks its queue row claimed, runs the
handler and deletes the row. A handler that raises is retried ``max_attempts`` times in all with exponential
backoff, then parked as a failed dead letter. Every step emits a ``process`` record (start / end / fail /
requeue) with its duration, so a recording shows where each event's time went.

:meth:`drain` is the second half of graceful shutdown (the first is closing the sockets, so nothing new
arrives): stop starting work, give running handlers until the deadline, cancel the rest and leave every
unfinished row ``pending`` in the durable queue for the next start.

With a :class:`~slackops.bot.ordering.Resequencer`, items of one channel/thread are held briefly, released in
``event_ts`` order and run one at a time per key.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slackops import records
from slackops.bot.ordering import Resequencer, order_key, order_ts
from slackops.bot.queue import WorkBackend, WorkItem, settle

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class DrainReport:
    """What :meth:`Dispatcher.drain` achieved: handlers finished in time, and rows left pending for later."""

    finished: int
    requeued: int
    timed_out: bool


class Dispatcher:
    """Bounded-concurrency executor of :class:`WorkItem` s, backed by a durable queue (SQLite or Redis)."""

    def __init__(
        self,
        queue: WorkBackend,
        run: Callable[[WorkItem], Awaitable[None]],
        *,
        concurrency: int = 8,
        max_attempts: int = 3,
        retry_base_s: float = 1.0,
        resequencer: Resequencer[WorkItem] | None = None,
        emit: Emit | None = None,
        source: str = "bot",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1 or max_attempts < 1:
            raise ValueError("concurrency and max_attempts must be at least 1")
        self.queue = queue
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self._run = run
        self._reseq = resequencer
        self._emit = emit
        self._source = source
        self._clock = clock
        self._sem = asyncio.Semaphore(concurrency)
        self._items: dict[int, WorkItem] = {}
        self._running: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._reseq_timer: asyncio.TimerHandle | None = None
        self._key_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._progress = asyncio.Event()
        self._draining = False
        self.completed = 0
        self.failed = 0

    # -- state ------------------------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Items admitted and not finished: held, waiting for a slot, running, or waiting to retry."""
        return len(self._items)

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def held(self) -> list[int | str]:
        """Ids of the items admitted here and not finished (a shared queue's heartbeat keeps them owned)."""
        return list(self._items)

    @property
    def draining(self) -> bool:
        return self._draining

    # -- intake -----------------------------------------------------------------------------------------------

    def submit(self, item: WorkItem) -> None:
        """Schedule ``item`` (already persisted). Never blocks: safe on the receive path."""
        if self._draining:
            # The row is durable and pending; the next start dispatches it.
            return
        self._items[item.id] = item
        if self._reseq is None:
            self._start(item)
            return
        info = item.envelope.event
        for ready in self._reseq.push(order_key(info), order_ts(info), item, self._clock()):
            self._start(ready)
        self._arm_resequencer()

    async def wait_below(self, limit: int, timeout: float) -> bool:
        """Wait until fewer than ``limit`` items are unfinished, at most ``timeout`` s. True if it got there."""
        deadline = self._clock() + timeout
        while self.depth >= limit:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return False
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)
        return True

    def _arm_resequencer(self) -> None:
        assert self._reseq is not None
        due = self._reseq.next_due()
        if due is None or self._reseq_timer is not None:
            return
        loop = asyncio.get_running_loop()
        self._reseq_timer = loop.call_later(max(0.0, due - self._clock()), self._release_held)

    def _release_held(self) -> None:
        assert self._reseq is not None
        self._reseq_timer = None
        if self._draining:
            return
        for ready in self._reseq.due(self._clock()):
            self._start(ready)
        self._arm_resequencer()

    def _start(self, item: WorkItem) -> None:
        task = asyncio.get_running_loop().create_task(self._work(item), name=f"slackops-work-{item.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- running ----------------------------------------------------------------------------------------------

    async def _work(self, item: WorkItem) -> None:
        key = order_key(item.envelope.event) if self._reseq is not None else None
        lock = self._lock_for(key)
        try:
            async with lock, self._sem:
                if self._draining:
                    return
                await self._run_one(item)
        finally:
            self._unlock_for(key)

    async def _run_one(self, item: WorkItem) -> None:
        try:
            await settle(self.queue.claim(item.id))
        except Exception as exc:
            # The store is unreachable (Redis down): do not run what we cannot track; retry like a failure.
            await self._failed(item, exc, 0.0)
            return
        item.attempts += 1
        self._running.add(item.id)
        self._process(item, "start")
        started = self._clock()
        try:
            await self._run(item)
        except asyncio.CancelledError:
            # Drain deadline: drain() requeues every unfinished row; nothing to write here.
            raise
        except Exception as exc:
            await self._failed(item, exc, (self._clock() - started) * 1000.0)
        else:
            try:
                await settle(self.queue.complete(item.id))
            except Exception as exc:
                # The work is done but the store did not hear it: a shared queue re-runs it after the
                # visibility timeout (posts already noted are skipped); say so instead of crashing the task.
                self._store_error("complete", exc)
            self.completed += 1
            self._process(item, "end", duration_ms=(self._clock() - started) * 1000.0)
            self._forget(item)
        finally:
            self._running.discard(item.id)

    async def _failed(self, item: WorkItem, exc: Exception, duration_ms: float) -> None:
        error = f"{type(exc).__name__}: {exc}"[:300]
        if item.attempts < self.max_attempts:
            try:
                await settle(self.queue.requeue(item.id, error))
            except Exception as store_exc:
                self._store_error("requeue", store_exc)
            self._process(item, "requeue", duration_ms=duration_ms, error=error)
            if not self._draining:  # while draining, drain() leaves it pending for the next start
                delay = min(30.0, self.retry_base_s * 2 ** (item.attempts - 1))
                self._timers[item.id] = asyncio.get_running_loop().call_later(delay, self._retry, item)
            return
        try:
            await settle(self.queue.fail(item.id, error))
        except Exception as store_exc:
            self._store_error("fail", store_exc)
        self.failed += 1
        self._process(item, "fail", duration_ms=duration_ms, error=error)
        self._forget(item)

    def _retry(self, item: WorkItem) -> None:
        self._timers.pop(item.id, None)
        if not self._draining and item.id in self._items:
            self._start(item)

    def _forget(self, item: WorkItem) -> None:
        self._items.pop(item.id, None)
        self._progress.set()

    def _lock_for(self, key: str | None) -> contextlib.AbstractAsyncContextManager[Any]:
        if key is None:
            return contextlib.nullcontext()
        lock, refs = self._key_locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._key_locks[key] = (lock, refs + 1)
        return lock

    def _unlock_for(self, key: str | None) -> None:
        if key is None:
            return
        lock, refs = self._key_locks[key]
        if refs <= 1:
            del self._key_locks[key]
        else:
            self._key_locks[key] = (lock, refs - 1)

    def _store_error(self, where: str, exc: Exception) -> None:
        if self._emit is not None:
            self._emit(
                records.make(
                    "error",
                    t=time.time(),
                    source=self._source,
                    where=f"queue_{where}",
                    error=type(exc).__name__,
                    detail=str(exc)[:200],
                )
            )

    def _process(self, item: WorkItem, phase: str, **fields: Any) -> None:
        if self._emit is None:
            return
        if "duration_ms" in fields:
            fields["duration_ms"] = round(fields["duration_ms"], 3)
        info = item.envelope.event
        self._emit(
            records.make(
                "process",
                t=time.time(),
                source=self._source,
                event_id=item.dedup_key,
                envelope_id=item.envelope.envelope_id,
                channel=info.channel,
                phase=phase,
                **fields,
            )
        )

    # -- shutdown ---------------------------------------------------------------------------------------------

    async def drain(self, timeout: float) -> DrainReport:
        """Stop starting work; let running handlers finish until ``timeout``; requeue everything unfinished."""
        self._draining = True
        before = self.completed + self.failed
        if self._reseq_timer is not None:
            self._reseq_timer.cancel()
            self._reseq_timer = None
        if self._reseq is not None:
            self._reseq.flush()  # still in self._items: requeued below
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        timed_out = False
        tasks = set(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, timeout))
            if pending:
                timed_out = True
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        requeued = 0
        for item in list(self._items.values()):
            # Claimed rows go back to pending; never-started ones are pending already. Either way the next start
            # dispatches them; the record says so, so a recording shows nothing was dropped.
            try:
                await settle(self.queue.requeue(item.id, "shutdown"))
            except Exception as exc:  # the store is down: the entry stays claimed, reclaimed when it is back
                self._store_error("requeue", exc)
            self._process(item, "requeue", error="shutdown")
            requeued += 1
        self._items.clear()
        self._progress.set()
        return DrainReport(
            finished=self.completed + self.failed - before, requeued=requeued, timed_out=timed_out
        )

    def abandon(self) -> int:
        """Cancel everything at once, writing nothing (a second SIGTERM). Returns how many runs were cut.

        Rows stay as they are in the durable queue: claimed ones are re-dispatched as orphans on the next start.
        """
        self._draining = True
        if self._reseq_timer is not None:
            self._reseq_timer.cancel()
            self._reseq_timer = None
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        cut = len(self._running)
        for task in list(self._tasks):
            task.cancel()
        self._items.clear()
        return cut
