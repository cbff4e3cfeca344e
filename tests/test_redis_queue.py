"""The Redis work queue and dedup store against a real redis-server: claim, compete, reclaim, hand back, fail."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from slackops.bot.redis_backend import GROUP, RedisWorkQueue, describe
from slackops.errors import StoreError
from slackops.protocol import Envelope, parse_frame
from tests.redis_server import RedisServer, free_port, redis_fixture  # noqa: F401  (fixture)

pytestmark = pytest.mark.timeout(30)


def envelope(n: int, event_id: str | None = None) -> Envelope:
    frame = {
        "envelope_id": f"env-{n}",
        "type": "events_api",
        "accepts_response_payload": False,
        "retry_attempt": 0,
        "payload": {
            "event_id": event_id or f"Ev{n:04d}",
            "event": {"type": "message", "channel": "C1", "user": "U1", "ts": f"{n}.000100", "text": "hi"},
        },
    }
    env = parse_frame(orjson.dumps(frame).decode())
    assert isinstance(env, Envelope)
    return env


def queue(server: RedisServer, instance: str, **kwargs) -> RedisWorkQueue:
    return RedisWorkQueue(server.url, app="t", instance=instance, **kwargs)


def test_admit_claims_once_and_persists_before_the_ack(redis_server):
    async def main():
        q = queue(redis_server, "a")
        await q.open()
        first = await q.admit(envelope(1))
        again = await q.admit(envelope(2, event_id="Ev0001"))  # a retry: new envelope_id, same event_id
        ttl_ms = await q._redis.pttl(q._dedup_prefix + "Ev0001")
        owner = await q._redis.get(q._dedup_prefix + "Ev0001")
        length = await q._redis.xlen(q.stream)
        counts, backlog = await q.counts(), await q.backlog()
        await q.aclose()
        return first, again, ttl_ms, owner, length, counts, backlog

    first, again, ttl_ms, owner, length, counts, backlog = asyncio.run(main())
    assert counts == {"pending": 1, "claimed": 0, "failed": 0} and backlog == 1
    assert first.item is not None and not first.duplicate
    assert again.duplicate and again.item is None
    assert 600_000 <= ttl_ms <= 900_000  # outlives Slack's last retry (+5 min after the second)
    assert owner == b"a"
    assert length == 1


def test_replicas_compete_for_work_and_complete_it(redis_server):
    async def main():
        a, b = queue(redis_server, "a"), queue(redis_server, "b")
        await a.open()
        await b.open()
        for n in range(10):
            await (a if n % 2 else b).admit(envelope(n))
        got_a = await a.fetch(6, block_s=0.1)
        got_b = await b.fetch(6, block_s=0.1)
        for q, items in ((a, got_a), (b, got_b)):
            for item in items:
                await q.claim(item.id)
                await q.complete(item.id)
        counts = await a.counts()
        length = await a._redis.xlen(a.stream)
        await a.aclose()
        await b.aclose()
        return got_a, got_b, counts, length

    got_a, got_b, counts, length = asyncio.run(main())
    keys_a = {i.dedup_key for i in got_a}
    keys_b = {i.dedup_key for i in got_b}
    assert len(got_a) == 6 and len(got_b) == 4 and not keys_a & keys_b
    assert keys_a | keys_b == {f"Ev{n:04d}" for n in range(10)}
    assert counts == {"pending": 0, "claimed": 0, "failed": 0}
    assert length == 0  # completed entries are deleted: the stream holds only unfinished work


def test_dead_replicas_work_is_reclaimed_with_its_posts_remembered(redis_server):
    async def main():
        a, b = queue(redis_server, "a", visibility_s=0.3), queue(redis_server, "b", visibility_s=0.3)
        await a.open()
        await b.open()
        await a.admit(envelope(1))
        (held,) = await a.fetch(1, block_s=0.1)
        await a.claim(held.id)
        await a.mark_effect(held.id, "post1", held.effects)
        await a._redis.aclose()  # a dies (kill -9): no hand-back, no ack
        early = await b.fetch(5, block_s=0.05)
        await asyncio.sleep(0.4)
        b._next_reclaim = 0.0
        late = await b.fetch(5, block_s=0.05)
        await b.aclose()
        return held, early, late

    held, early, late = asyncio.run(main())
    assert early == []  # not before the visibility timeout
    (item,) = late
    assert item.orphaned and item.dedup_key == held.dedup_key
    assert item.attempts == 1 and item.owner == "a"
    assert item.effects == {"post1"}  # the re-run skips the reply the dead replica already posted


def test_heartbeat_keeps_long_running_work_owned(redis_server):
    async def main():
        a, b = queue(redis_server, "a", visibility_s=0.3), queue(redis_server, "b", visibility_s=0.3)
        await a.open()
        await b.open()
        await a.admit(envelope(1))
        (held,) = await a.fetch(1, block_s=0.1)
        stolen = []
        for _ in range(6):  # 0.6 s: twice the visibility timeout, heartbeating every 0.1 s
            await asyncio.sleep(0.1)
            assert await a.heartbeat([held.id]) == []
            b._next_reclaim = 0.0
            stolen += await b.fetch(1, block_s=0.01)
        await b.aclose()
        await a.aclose()
        return stolen

    assert asyncio.run(main()) == []


def test_close_hands_unfinished_work_back_at_once(redis_server):
    async def main():
        a, b = queue(redis_server, "a"), queue(redis_server, "b")
        await a.open()
        await b.open()
        for n in range(3):
            await a.admit(envelope(n))
        taken = await a.fetch(3, block_s=0.1)
        await a.claim(taken[0].id)
        await a.aclose()  # SIGTERM after the drain deadline: nothing finished
        again = await b.fetch(5, block_s=0.1)
        consumers = await b._redis.xinfo_consumers(b.stream, GROUP)
        await b.aclose()
        return taken, again, consumers

    taken, again, consumers = asyncio.run(main())
    assert sorted(i.dedup_key for i in again) == sorted(i.dedup_key for i in taken)
    assert not any(i.orphaned for i in again)  # handed back, not reclaimed from a dead replica
    assert next(i for i in again if i.dedup_key == taken[0].dedup_key).attempts == 1
    assert [c["name"] for c in consumers] == [b"b"]  # the stopped replica left the group


def test_failed_work_becomes_a_dead_letter(redis_server):
    async def main():
        q = queue(redis_server, "a")
        await q.open()
        await q.admit(envelope(1))
        (item,) = await q.fetch(1, block_s=0.1)
        await q.fail(item.id, "ValueError: boom")
        counts = await q.counts()
        (letter,) = await q._redis.xrange(q.failed_stream)
        await q.aclose()
        return counts, letter

    counts, (_id, fields) = asyncio.run(main())
    assert counts == {"pending": 0, "claimed": 0, "failed": 1}
    assert fields[b"key"] == b"Ev0001" and fields[b"error"] == b"ValueError: boom"


def test_unreachable_redis_is_a_clear_store_error():
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"

    async def main():
        q = RedisWorkQueue(url, instance="a", timeout_s=0.5)
        try:
            await q.open()
        finally:
            await q._redis.aclose()

    started = time.monotonic()
    with pytest.raises(StoreError) as info:
        asyncio.run(main())
    assert time.monotonic() - started < 5
    assert "cannot reach Redis at redis://127.0.0.1:" in str(info.value)
    assert "secret" not in str(info.value) and "secret" not in describe(url)
    assert "redis-server" in (info.value.hint or "")


def test_admit_raises_when_redis_dies_so_the_bot_does_not_ack(redis_server):
    async def main():
        q = queue(redis_server, "a", timeout_s=0.5)
        await q.open()
        await q.admit(envelope(1))
        redis_server.stop()
        try:
            await q.admit(envelope(2))
        finally:
            await q.aclose()  # must not hang or raise with Redis gone

    with pytest.raises(StoreError, match="persisting an envelope"):
        asyncio.run(main())


def test_dedup_ttl_under_ten_minutes_is_refused(redis_server):
    with pytest.raises(ValueError, match="shorter than 600"):
        queue(redis_server, "a", dedup_ttl_s=60)


def test_dedup_store_shares_claims_between_local_queues(redis_server, tmp_path):
    """Replicas with their own SQLite queue but one Redis dedup store: each event is admitted once in all."""
    from slackops.bot.queue import WorkQueue
    from slackops.bot.redis_backend import RedisDedupStore

    stores = [RedisDedupStore(redis_server.url, app="t", instance=n) for n in ("a", "b")]
    queues = [WorkQueue(tmp_path / f"{n}.db", dedup=s) for n, s in zip("ab", stores, strict=True)]
    try:
        first = queues[0].admit(envelope(1))
        retry_elsewhere = queues[1].admit(envelope(2, event_id="Ev0001"))
        redis_server.stop()
        with pytest.raises(StoreError, match="claiming an event"):
            queues[1].admit(envelope(3))
    finally:
        for q in queues:
            q.close()
        for s in stores:
            s.close()
    assert first.item is not None and retry_elsewhere.duplicate


def test_dead_replicas_leave_the_group_once_their_work_is_reclaimed(redis_server):
    async def main():
        a, b = queue(redis_server, "a", visibility_s=0.2), queue(redis_server, "b", visibility_s=0.2)
        await a.open()
        await b.open()
        await a.admit(envelope(1))
        (held,) = await a.fetch(1, block_s=0.1)
        await a._redis.aclose()  # a dies holding one entry
        kept = await b.prune(idle_s=0.0)  # a still holds work: it must stay, or the entry is stranded
        await asyncio.sleep(0.25)
        b._next_reclaim = 0.0
        (taken,) = await b.fetch(1, block_s=0.01)
        await b.complete(taken.id)
        await asyncio.sleep(0.05)
        gone = await b.prune(idle_s=0.01)
        names = [c["name"] for c in await b._redis.xinfo_consumers(b.stream, GROUP)]
        await b.aclose()
        return held, kept, taken, gone, names

    held, kept, taken, gone, names = asyncio.run(main())
    assert kept == 0 and taken.dedup_key == held.dedup_key
    assert gone == 1 and names == [b"b"]


def test_own_slow_entries_are_not_reclaimed_as_orphans(redis_server):
    async def main():
        a = queue(redis_server, "a", visibility_s=0.1)
        await a.open()
        await a.admit(envelope(1))
        (held,) = await a.fetch(1, block_s=0.1)
        await asyncio.sleep(
            0.15
        )  # no heartbeat: idle past the visibility timeout, handler still running here
        a._next_reclaim = 0.0
        again = await a.fetch(1, block_s=0.01)
        await a.complete(held.id)
        await a.aclose()
        return again

    assert asyncio.run(main()) == []  # running it a second time here would process it twice
