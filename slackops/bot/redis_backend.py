"""A shared work queue and dedup store on Redis, for several bot instances of one Slack app.

Why: Slack lets one app hold up to 10 sockets and routes each delivery attempt to any of them, so replicas of a
bot see each other's events' retries. With a local SQLite store per replica, the same event is processed once
*per replica* that sees an attempt, and a pod that dies takes its queued work with it. Here every replica shares:

- **dedup**: ``SET slackops:{app}:dedup:<event_id> <instance> NX PX <ttl>`` — the first replica to see an event
  claims it; every later attempt, on any replica, is a duplicate until the TTL (>= 10 min) passes.
- **the work queue**: a Redis Stream ``slackops:{app}:work`` with one consumer group ``workers``; each replica
  is a consumer named after its instance. The receive path ``XADD``s the envelope (in one Lua script with the
  dedup ``SET NX``, so "claimed" and "persisted" cannot diverge) and only then acks. Each replica pulls work
  with ``XREADGROUP`` when it has room, ``XACK`` + ``XDEL`` s it when the handler finishes.
- **reclaim**: an entry a replica read and never acked (kill -9, OOM, a lost node) stays in the group's pending
  list. Every replica periodically ``XAUTOCLAIM`` s entries idle longer than the visibility timeout and runs
  them, flagged as orphans. A replica refreshes the idle time of the entries it holds (a heartbeat ``XCLAIM`` to
  itself), so a handler may run longer than the visibility timeout without being stolen.
- **effects**: a hash per event (``slackops:{app}:meta:<event_id>``) holds the handler attempts, the instance
  that last started it and the posts already made, so a reclaimed run does not post the answer twice.

The ``{app}`` braces are a Redis Cluster hash tag: every key of one app lives in one slot, so the Lua scripts
may touch several of them.

On SIGTERM the bot drains and then :meth:`RedisWorkQueue.aclose` hands every entry it still holds back to the
group (re-added at the tail, the original acked), so the other replicas take it at once instead of after the
visibility timeout. If Redis is unreachable, :meth:`admit` raises :class:`~slackops.errors.StoreError` and the
bot does not ack: Slack retries the event (events_api), and a replica that can persist it takes it then.

Privacy: entries hold envelope payloads (message text included), as the SQLite queue does; they are deleted
when their work completes. Dead letters go to the capped stream ``slackops:{app}:failed``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from slackops.bot.dedup import DEFAULT_TTL_S, check_ttl
from slackops.bot.queue import Admission, WorkItem, _frame_of
from slackops.errors import StoreError
from slackops.protocol import Envelope, parse_frame

GROUP = "workers"
#: An entry nobody has heartbeated for this long belongs to a dead replica and is reclaimed.
DEFAULT_VISIBILITY_S = 30.0
#: Dead letters kept (approximately) in ``slackops:{app}:failed``.
FAILED_MAXLEN = 10_000

# Check, persist, claim — atomically. EXISTS before XADD (not SET NX first) so that a failing XADD (maxmemory)
# leaves no dedup claim behind: an unpersisted event must stay claimable by Slack's retry.
_ADMIT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local id = redis.call('XADD', KEYS[2], '*', 'key', ARGV[3], 'envelope_id', ARGV[4], 'frame', ARGV[5],
                      'received_at', ARGV[6])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
return id
"""

# Refresh the idle time of entries this consumer still owns; report those it lost (reclaimed by another
# replica after a stall longer than the visibility timeout) so the caller can say so.
_HEARTBEAT = """
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
"""

# Hand entries back to the group: re-add each at the tail (any consumer's XREADGROUP takes it next), then ack
# and delete the original. Only entries this consumer still owns, so a reclaimed one is not doubled.
_RELEASE = """
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    local e = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    if #e == 1 then
      redis.call('XADD', KEYS[1], '*', unpack(e[1][2]))
      n = n + 1
    end
    redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
    redis.call('XDEL', KEYS[1], ARGV[i])
  end
end
return n
"""

# Forget consumers (replicas) that hold nothing and have not asked for work for a long time: dead pods, whose
# work was already reclaimed. Atomic, so a consumer cannot take an entry between the check and the delete
# (deleting a consumer drops its pending entries, which would then never be delivered again).
_PRUNE = """
local gone = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
  if info['pending'] == 0 and info['idle'] > tonumber(ARGV[2]) and info['name'] ~= ARGV[3] then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    gone = gone + 1
  end
end
return gone
"""


def describe(url: str) -> str:
    """``host:port/db`` of a Redis URL, without the password (for errors and logs)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 6379
    db = parts.path.strip("/") or "0"
    return f"{parts.scheme}://{host}:{port}/{db}"


def _store_error(action: str, url: str, exc: BaseException) -> StoreError:
    return StoreError(
        f"Redis at {describe(url)} failed while {action}: {type(exc).__name__}: {str(exc)[:160]}",
        hint="Check that Redis is running and reachable (redis-cli -u URL ping), or run without --store to "
        "use the embedded SQLite queue.",
    )


@dataclass
class _Held:
    """What this replica knows about an entry it read: the event key and the fields to hand it back."""

    key: str
    envelope_id: str
    frame: bytes


class RedisWorkQueue:
    """The bot's work queue and dedup store in Redis, shared by every replica of one app.

    Same lifecycle as :class:`~slackops.bot.queue.WorkQueue` (``admit`` / ``claim`` / ``complete`` /
    ``requeue`` / ``fail`` / ``mark_effect``), but async, and work arrives through :meth:`fetch` rather than
    from the local receive path: any replica may run what any replica admitted (``shared = True``).
    """

    #: work admitted here may run anywhere: the bot pulls with :meth:`fetch` instead of running what it admits
    shared = True

    def __init__(
        self,
        url: str,
        *,
        app: str = "default",
        instance: str,
        dedup_ttl_s: float = DEFAULT_TTL_S,
        visibility_s: float = DEFAULT_VISIBILITY_S,
        timeout_s: float = 2.0,
    ) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        if visibility_s <= 0:
            raise ValueError("the visibility timeout must be positive")
        self.url = url
        self.instance = instance
        self.ttl_s = check_ttl(dedup_ttl_s)
        self.visibility_s = visibility_s
        prefix = f"slackops:{{{app}}}"
        self.stream = f"{prefix}:work"
        self.failed_stream = f"{prefix}:failed"
        self._dedup_prefix = f"{prefix}:dedup:"
        self._meta_prefix = f"{prefix}:meta:"
        # A short socket timeout bounds how long an envelope waits before we give up and leave it unacked; one
        # immediate retry rides over a pooled connection that Redis closed while idle.
        self._redis = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),
        )
        self._admit = self._redis.register_script(_ADMIT)
        self._heartbeat = self._redis.register_script(_HEARTBEAT)
        self._release = self._redis.register_script(_RELEASE)
        self._prune = self._redis.register_script(_PRUNE)
        self._held: dict[str, _Held] = {}
        self._next_reclaim = 0.0
        self._reclaim_cursor = "0-0"
        self.reclaimed = 0

    # -- connection -------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Check Redis answers and create the stream and consumer group (idempotent across replicas)."""
        from redis.exceptions import RedisError, ResponseError

        try:
            await self._redis.ping()
            await self._redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # another replica created it first: fine
                raise _store_error("creating the consumer group", self.url, exc) from None
        except (RedisError, OSError) as exc:
            raise StoreError(
                f"cannot reach Redis at {describe(self.url)}: {type(exc).__name__}: {str(exc)[:160]}",
                hint="Start Redis (e.g. redis-server, or apt-get install redis-server), check --store / "
                "SLACKOPS_REDIS_URL, or drop --store to use the embedded SQLite queue.",
            ) from None

    async def aclose(self) -> None:
        """Hand back every entry this replica still holds, then close the connection pool."""
        try:
            await self.release_all()
        except StoreError:
            pass  # Redis is gone: the entries stay pending and another replica reclaims them when it is back
        finally:
            await self._redis.aclose()

    def close(self) -> Any:
        """Awaitable close (the bot awaits it); named like :meth:`WorkQueue.close` so the runtime calls either."""
        return self.aclose()

    # -- the receive path -------------------------------------------------------------------------------------

    async def admit(self, env: Envelope, received_at: float | None = None) -> Admission:
        """Dedup-claim and persist ``env`` in one Lua script. Call before acking. Raises StoreError."""
        from redis.exceptions import RedisError

        received_at = time.time() if received_at is None else received_at
        key = env.dedup_key
        try:
            entry_id = await self._admit(
                keys=[self._dedup_prefix + key, self.stream],
                args=[
                    int(self.ttl_s * 1000),
                    self.instance,
                    key,
                    env.envelope_id,
                    _frame_of(env),
                    repr(received_at),
                ],
            )
        except (RedisError, OSError) as exc:
            raise _store_error("persisting an envelope", self.url, exc) from None
        if entry_id is None:
            return Admission(None, True)
        return Admission(WorkItem(_text(entry_id), key, env, received_at), False)

    # -- the consumer side ------------------------------------------------------------------------------------

    async def fetch(self, count: int, block_s: float = 1.0) -> list[WorkItem]:
        """Up to ``count`` items for this replica: reclaimed orphans first, then new entries (waits ``block_s``)."""
        from redis.exceptions import RedisError, ResponseError

        if count <= 0:
            return []
        try:
            entries: list[tuple[str, dict[bytes, bytes], bool]] = []
            now = time.monotonic()
            if now >= self._next_reclaim:
                # Reclaim at twice the heartbeat rate of live owners: an entry idle this long has no owner.
                self._next_reclaim = now + self.visibility_s / 2
                entries += await self._reclaim(count)
            if len(entries) < count:
                reply = await self._read(count - len(entries), None if entries else block_s)
                for _stream, rows in reply or []:
                    entries += [(_text(eid), fields, False) for eid, fields in rows]
            return await self._items(entries)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise _store_error("reading work", self.url, exc) from None
            # Redis restarted without persistence (or the stream was deleted): recreate the group, go on.
            await self.open()
            return []
        except (RedisError, OSError) as exc:
            raise _store_error("reading work", self.url, exc) from None

    async def _read(self, count: int, block_s: float | None) -> Any:
        block = max(1, int(block_s * 1000)) if block_s is not None else None
        return await self._redis.xreadgroup(
            GROUP, self.instance, {self.stream: ">"}, count=count, block=block
        )

    async def _reclaim(self, count: int) -> list[tuple[str, dict[bytes, bytes], bool]]:
        reply = await self._redis.xautoclaim(
            self.stream,
            GROUP,
            self.instance,
            min_idle_time=int(self.visibility_s * 1000),
            start_id=self._reclaim_cursor,
            count=count,
        )
        cursor, rows = reply[0], reply[1]
        self._reclaim_cursor = _text(cursor)
        if self._reclaim_cursor == "0-0":  # a full pass over the pending list: also forget dead replicas
            await self.prune()
        out = []
        for eid, fields in rows:
            eid = _text(eid)
            # Our own entry, idle because its handler is long and a heartbeat came late: still running here.
            if eid in self._held:
                continue
            if fields:  # an entry deleted meanwhile comes back with no fields (Redis 7 also lists it apart)
                out.append((eid, fields, True))
        self.reclaimed += len(out)
        return out

    async def _items(self, entries: list[tuple[str, dict[bytes, bytes], bool]]) -> list[WorkItem]:
        if not entries:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for _eid, fields, _orphan in entries:
                pipe.hgetall(self._meta_prefix + _text(fields[b"key"]))
            metas = await pipe.execute()
        items = []
        for (eid, fields, orphan), meta in zip(entries, metas, strict=True):
            key = _text(fields[b"key"])
            frame = bytes(fields[b"frame"])
            env = parse_frame(frame.decode())
            if not isinstance(env, Envelope):  # cannot happen for entries we wrote; never stall on one
                await self._dead_letter(eid, key, frame, "stored frame no longer parses")
                continue
            self._held[eid] = _Held(key, env.envelope_id, frame)
            effects = set(filter(None, _text(meta.get(b"effects", b"")).split(",")))
            items.append(
                WorkItem(
                    eid,
                    key,
                    env,
                    float(fields.get(b"received_at", b"0") or 0),
                    attempts=int(meta.get(b"attempts", 0) or 0),
                    orphaned=orphan,
                    effects=effects,
                    owner=_text(meta[b"owner"]) if b"owner" in meta else None,
                )
            )
        return items

    async def prune(self, idle_s: float | None = None) -> int:
        """Remove consumers holding nothing and idle over ``idle_s`` (default: 10 visibility timeouts)."""
        idle_ms = int((idle_s if idle_s is not None else 10 * self.visibility_s) * 1000)
        return int(await self._prune(keys=[self.stream], args=[GROUP, idle_ms, self.instance]))

    async def heartbeat(self, item_ids: list[str]) -> list[str]:
        """Keep the entries this replica holds from being reclaimed; return the ids it no longer owns."""
        from redis.exceptions import RedisError

        ids = [i for i in item_ids if isinstance(i, str)]
        if not ids:
            return []
        try:
            lost = await self._heartbeat(keys=[self.stream], args=[GROUP, self.instance, *ids])
        except (RedisError, OSError) as exc:
            raise _store_error("refreshing held work", self.url, exc) from None
        return [_text(i) for i in lost or []]

    async def release_all(self) -> int:
        """Hand every entry this replica holds back to the group, for another replica to take now."""
        from redis.exceptions import RedisError

        try:
            pending = await self._redis.xpending_range(
                self.stream, GROUP, "-", "+", 10_000, consumername=self.instance
            )
            ids = [_text(p["message_id"]) for p in pending]
            handed = 0
            for start in range(0, len(ids), 200):  # bounded script runs: Redis is single-threaded
                handed += int(
                    await self._release(
                        keys=[self.stream], args=[GROUP, self.instance, *ids[start : start + 200]]
                    )
                )
            # Our consumer has nothing left: remove it so the group lists only live replicas. Checked first:
            # deleting a consumer that still holds entries would strand them (our reads have stopped).
            if not await self._redis.xpending_range(
                self.stream, GROUP, "-", "+", 1, consumername=self.instance
            ):
                await self._redis.xgroup_delconsumer(self.stream, GROUP, self.instance)
        except (RedisError, OSError) as exc:
            raise _store_error("handing back unfinished work", self.url, exc) from None
        self._held.clear()
        return handed

    # -- handler lifecycle ------------------------------------------------------------------------------------

    async def claim(self, item_id: str) -> None:
        """A handler starts: count the attempt and note which instance runs it (diagnose shows it)."""
        held = self._held.get(item_id)
        if held is None:
            return
        meta = self._meta_prefix + held.key
        await self._run("starting a handler", _claim_ops, meta, self.instance, int(self.ttl_s))

    async def complete(self, item_id: str) -> None:
        """The handler finished: ack and delete the entry, forget its attempts and effects."""
        held = self._held.pop(item_id, None)
        meta = self._meta_prefix + held.key if held else None
        await self._run("completing work", _complete_ops, self.stream, item_id, meta)

    async def requeue(self, item_id: str, error: str | None = None) -> None:
        """Keep the entry (this replica retries it, or hands it back on shutdown); note the error."""
        held = self._held.get(item_id)
        if held is None or error is None:
            return
        await self._run("noting a failure", _note_ops, self._meta_prefix + held.key, error[:500])

    async def fail(self, item_id: str, error: str) -> None:
        """Give up: move the entry to the dead-letter stream ``slackops:{app}:failed``."""
        held = self._held.pop(item_id, None)
        if held is None:
            return
        await self._dead_letter(item_id, held.key, held.frame, error)

    async def mark_effect(self, item_id: str, effect: str, effects: set[str]) -> None:
        """Record a post made for this event, so a reclaimed run (another replica) does not repeat it."""
        effects.add(effect)
        held = self._held.get(item_id)
        if held is None:  # the fast-path responder's context: it never runs twice, nothing to remember
            return
        meta = self._meta_prefix + held.key
        await self._run("noting a post", _effects_ops, meta, ",".join(sorted(effects)), int(self.ttl_s))

    async def _dead_letter(self, item_id: str, key: str, frame: bytes, error: str) -> None:
        await self._run(
            "parking a dead letter",
            _fail_ops,
            self.stream,
            self.failed_stream,
            item_id,
            {"key": key, "frame": frame, "error": error[:500], "instance": self.instance},
            self._meta_prefix + key,
        )

    async def _run(self, action: str, ops: Any, *args: Any) -> None:
        from redis.exceptions import RedisError

        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                ops(pipe, *args)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _store_error(action, self.url, exc) from None

    # -- housekeeping -----------------------------------------------------------------------------------------

    async def recover(self) -> list[WorkItem]:
        """Nothing to do at start: entries of dead replicas are reclaimed by :meth:`fetch` (``XAUTOCLAIM``)."""
        return []

    async def purge(self) -> int:
        """Dedup keys expire by themselves (``PX``); nothing to delete."""
        return 0

    async def backlog(self) -> int:
        """Unfinished entries of every replica (waiting or running): completed work is deleted (``XLEN``)."""
        from redis.exceptions import RedisError

        try:
            return int(await self._redis.xlen(self.stream))
        except (RedisError, OSError) as exc:
            raise _store_error("measuring the backlog", self.url, exc) from None

    async def counts(self) -> dict[str, int]:
        """Entries waiting (``pending``: nobody read them yet), held by replicas (``claimed``), dead letters."""
        from redis.exceptions import RedisError

        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xlen(self.stream)
                pipe.xpending(self.stream, GROUP)
                pipe.xlen(self.failed_stream)
                total, pending, failed = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _store_error("counting work", self.url, exc) from None
        # XINFO GROUPS' lag would say "not read yet" directly, but Redis cannot compute it after XDELs.
        held = int(pending.get("pending", 0) if isinstance(pending, dict) else pending[0])
        return {"pending": int(total) - held, "claimed": held, "failed": int(failed)}


class RedisDedupStore:
    """:class:`~slackops.bot.dedup.DedupStore` in Redis: ``SET key instance NX PX ttl``, one atomic step.

    For replicas that keep their own SQLite work queue (``WorkQueue(path, dedup=RedisDedupStore(url))``) but
    must not process an event once per replica. Calls are synchronous (one round trip on the receive path,
    like the SQLite commit it sits beside); :class:`RedisWorkQueue` is the fully shared, async alternative.
    Keys expire by themselves, so :meth:`purge` has nothing to do.
    """

    def __init__(
        self,
        url: str,
        *,
        app: str = "default",
        instance: str = "",
        ttl_s: float = DEFAULT_TTL_S,
        timeout_s: float = 1.0,
    ) -> None:
        from redis import Redis

        self.url = url
        self.ttl_s = check_ttl(ttl_s)
        self._value = instance or "1"
        self._prefix = f"slackops:{{{app}}}:dedup:"
        self._redis = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    def claim(self, key: str, now: float) -> bool:
        from redis.exceptions import RedisError

        try:
            return bool(self._redis.set(self._prefix + key, self._value, nx=True, px=int(self.ttl_s * 1000)))
        except (RedisError, OSError) as exc:
            raise _store_error("claiming an event", self.url, exc) from None

    def release(self, key: str) -> None:
        from redis.exceptions import RedisError

        try:
            self._redis.delete(self._prefix + key)
        except (RedisError, OSError) as exc:
            raise _store_error("releasing an event", self.url, exc) from None

    def purge(self, now: float) -> int:
        return 0

    def close(self) -> None:
        self._redis.close()


def _claim_ops(pipe: Any, meta: str, instance: str, ttl: int) -> None:
    pipe.hincrby(meta, "attempts", 1)
    pipe.hset(meta, "owner", instance)
    pipe.expire(meta, ttl)


def _complete_ops(pipe: Any, stream: str, item_id: str, meta: str | None) -> None:
    pipe.xack(stream, GROUP, item_id)
    pipe.xdel(stream, item_id)
    if meta is not None:
        pipe.delete(meta)


def _note_ops(pipe: Any, meta: str, error: str) -> None:
    pipe.hset(meta, "error", error)


def _effects_ops(pipe: Any, meta: str, effects: str, ttl: int) -> None:
    pipe.hset(meta, "effects", effects)
    pipe.expire(meta, ttl)


def _fail_ops(pipe: Any, stream: str, failed: str, item_id: str, fields: dict[str, Any], meta: str) -> None:
    pipe.xadd(failed, fields, maxlen=FAILED_MAXLEN, approximate=True)
    pipe.xack(stream, GROUP, item_id)
    pipe.xdel(stream, item_id)
    pipe.delete(meta)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)
