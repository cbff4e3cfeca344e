"""The reference bot's pieces, each alone: dedup, durable queue, backpressure, ordering, conversation state."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3

import orjson
import pytest

from slackops.bot.backpressure import Action, BackpressurePolicy, classify
from slackops.bot.conversation import ConversationStore, thread_key
from slackops.bot.dedup import MemoryDedupStore, SqliteDedupStore, check_ttl
from slackops.bot.ordering import Resequencer, order_key, order_ts
from slackops.bot.queue import WorkQueue
from slackops.errors import StoreError
from slackops.protocol import Envelope, EventInfo, parse_frame
from tests.util import wait_for, wait_until


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def envelope(
    event_id: str | None = "Ev1",
    envelope_id: str = "env-1",
    *,
    kind: str = "events_api",
    event_type: str = "message",
    channel: str = "C1",
    ts: str = "100.000001",
    thread_ts: str | None = None,
    subtype: str | None = None,
    retry_attempt: int = 0,
) -> Envelope:
    if kind == "events_api":
        event = {"type": event_type, "channel": channel, "ts": ts, "event_ts": ts, "text": "hi", "user": "U1"}
        if thread_ts:
            event["thread_ts"] = thread_ts
        if subtype:
            event["subtype"] = subtype
        payload = {"type": "event_callback", "event_id": event_id, "event": event}
        frame = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
    elif kind == "slash_commands":
        frame = {
            "envelope_id": envelope_id,
            "type": kind,
            "accepts_response_payload": True,
            "payload": {"command": "/x", "channel_id": channel, "user_id": "U1", "text": ""},
        }
    else:
        frame = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": {"type": "block_actions", "user": {"id": "U1"}, "channel": {"id": channel}},
        }
    env = parse_frame(orjson.dumps(frame).decode())
    assert isinstance(env, Envelope)
    return env


# -- dedup -------------------------------------------------------------------------------------------------


def test_dedup_ttl_under_ten_minutes_is_refused():
    with pytest.raises(ValueError, match="retry"):
        check_ttl(300)
    assert check_ttl(600) == 600.0


@pytest.mark.parametrize(
    "make",
    [lambda: SqliteDedupStore(sqlite3.connect(":memory:", isolation_level=None)), lambda: MemoryDedupStore()],
)
def test_dedup_claims_once_within_ttl_and_again_after_expiry(make):
    store = make()
    assert store.claim("Ev1", 1000.0) is True
    assert store.claim("Ev1", 1000.5) is False
    assert store.claim("Ev1", 1000.0 + store.ttl_s - 1) is False
    assert store.claim("Ev2", 1001.0) is True
    # Past the TTL the key is fresh again (the +5 min retry is long gone by then).
    assert store.claim("Ev1", 1000.0 + store.ttl_s + 1) is True
    assert store.purge(1001.0 + 2 * store.ttl_s + 2) == 2
    store.release("Ev9")  # unknown keys are fine


def _claim_many(path: str, keys: list[str], out) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    conn.execute("PRAGMA busy_timeout=10000")
    store = SqliteDedupStore(conn)
    out.put([k for k in keys if store.claim(k, 1000.0)])


def test_sqlite_dedup_is_atomic_across_processes(tmp_path):
    """Two processes racing on the same keys: every key is claimed exactly once (one statement, no gap)."""
    path = str(tmp_path / "d.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    SqliteDedupStore(conn)
    keys = [f"Ev{i}" for i in range(300)]
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_many, args=(path, keys, out)) for _ in range(2)]
    for p in procs:
        p.start()
    won = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(30)
    assert sorted(won[0] + won[1]) == sorted(keys)


# -- durable queue -------------------------------------------------------------------------------------------


def test_admit_persists_and_dedups_in_one_transaction(tmp_path):
    clock = Clock()
    q = WorkQueue(tmp_path / "q.db", clock=clock)
    first = q.admit(envelope("Ev1", "env-1"))
    assert not first.duplicate and first.item is not None
    # A retry with a new envelope_id is the same event.
    again = q.admit(envelope("Ev1", "env-2", retry_attempt=1))
    assert again.duplicate and again.item is None
    assert q.counts()["pending"] == 1
    q.close()


def test_failed_enqueue_rolls_back_the_dedup_claim(tmp_path):
    """Dying between the dedup claim and the enqueue must not turn Slack's retry into a 'duplicate'."""
    q = WorkQueue(tmp_path / "q.db")
    q._conn.execute("CREATE TRIGGER boom BEFORE INSERT ON work BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(sqlite3.IntegrityError):
        q.admit(envelope("Ev1"))
    q._conn.execute("DROP TRIGGER boom")
    assert not q.admit(envelope("Ev1", "env-retry", retry_attempt=1)).duplicate
    q.close()


def test_external_dedup_store_gets_its_claim_back_when_enqueue_fails(tmp_path):
    store = MemoryDedupStore()
    q = WorkQueue(tmp_path / "q.db", dedup=store)
    q._conn.execute("CREATE TRIGGER boom BEFORE INSERT ON work BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(sqlite3.IntegrityError):
        q.admit(envelope("Ev1"))
    assert len(store) == 0
    q.close()


def test_recover_redispatches_orphans_and_pending_after_a_crash(tmp_path):
    path = tmp_path / "q.db"
    q = WorkQueue(path)
    a = q.admit(envelope("Ev1", "e1")).item
    b = q.admit(envelope("Ev2", "e2")).item
    c = q.admit(envelope("Ev3", "e3")).item
    assert a and b and c
    q.claim(a.id)  # handler started, then the process "dies" (no complete, no requeue)
    q.mark_effect(a.id, "post1", a.effects)
    q.claim(b.id)
    q.complete(b.id)
    q._conn.close()  # no clean close: what kill -9 leaves
    q._unlock()

    q2 = WorkQueue(path)
    items = q2.recover()
    assert [i.dedup_key for i in items] == ["Ev1", "Ev3"]
    assert items[0].orphaned and not items[1].orphaned
    assert items[0].effects == {"post1"} and items[0].attempts == 1
    assert items[0].envelope.envelope_id == "e1" and items[0].envelope.event.channel == "C1"
    # Dedup state survived the crash too.
    assert q2.admit(envelope("Ev2", "e2-retry", retry_attempt=1)).duplicate
    q2.close()


def test_claim_and_complete_ride_on_the_next_commit_and_mark_effect_makes_them_durable(tmp_path):
    path = tmp_path / "q.db"

    def committed(other: sqlite3.Connection) -> list[tuple[str, str | None]]:
        return other.execute("SELECT state, effects FROM work ORDER BY id").fetchall()

    async def main() -> None:
        q = WorkQueue(path)
        other = sqlite3.connect(path)  # sees only committed data
        first = q.admit(envelope("Ev1", "e1")).item
        assert first
        q.claim(first.id)
        assert committed(other) == [("pending", None)]  # deferred: off the ack path
        q.mark_effect(first.id, "post1", first.effects)
        assert committed(other) == [("claimed", "post1")]  # an effect is durable at once, with its claim
        q.complete(first.id)
        second = q.admit(envelope("Ev2", "e2")).item  # the admission's commit carries the delete
        assert second
        assert committed(other) == [("pending", None)]
        q.claim(second.id)
        q.complete(second.id)
        await wait_for(lambda: committed(other) == [], what="the deferred flush", timeout=2.0)
        other.close()
        q.close()

    asyncio.run(main())


def test_checkpoints_happen_off_the_commit_path(tmp_path):
    path = tmp_path / "q.db"
    q = WorkQueue(path)
    size = path.stat().st_size
    for i in range(300):
        q.admit(envelope(f"Ev{i}", f"e{i}"))
    # The bot's own connection never checkpoints; the background thread copies the WAL into the file.
    assert q._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    wait_until(lambda: path.stat().st_size > size, timeout=5.0, what="a background checkpoint")
    q.close()


def test_requeue_and_fail_states(tmp_path):
    q = WorkQueue(tmp_path / "q.db")
    item = q.admit(envelope("Ev1")).item
    assert item
    q.claim(item.id)
    q.requeue(item.id, "boom")
    assert q.counts() == {"pending": 1, "claimed": 0, "failed": 0}
    q.claim(item.id)
    q.fail(item.id, "boom again")
    assert q.counts() == {"pending": 0, "claimed": 0, "failed": 1}
    assert q.recover() == []  # dead letters are not re-dispatched
    q.close()


def test_one_process_owns_a_queue_file(tmp_path):
    q = WorkQueue(tmp_path / "q.db")
    with pytest.raises(StoreError, match="in use"):
        WorkQueue(tmp_path / "q.db")
    q.close()
    WorkQueue(tmp_path / "q.db").close()


def test_queue_uses_wal(tmp_path):
    q = WorkQueue(tmp_path / "q.db")
    assert q._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    q.close()


# -- backpressure --------------------------------------------------------------------------------------------


def test_classify_event_classes():
    assert classify(envelope(kind="slash_commands")) == "slash_commands"
    assert classify(envelope(kind="interactive")) == "interactive"
    assert classify(envelope(event_type="app_mention")) == "events_api:app_mention"
    assert classify(envelope(subtype="message_changed")) == "events_api:message_changed"
    assert classify(envelope(channel="D123")) == "events_api:message.im"
    assert classify(envelope()) == "events_api:message"


def test_backpressure_policy_by_class_and_depth():
    p = BackpressurePolicy(soft_limit=10, hard_limit=20)
    assert p.decide("events_api:reaction_added", 9) is Action.ACCEPT
    assert p.decide("events_api:reaction_added", 10) is Action.SHED
    assert p.decide("events_api:message", 15) is Action.ACCEPT
    assert p.decide("events_api:message", 20) is Action.SHED
    # A person is waiting on these: never shed, block the reader only past the hard limit.
    assert p.decide("slash_commands", 15) is Action.ACCEPT
    assert p.decide("interactive", 25) is Action.BLOCK
    assert p.ready(9) and not p.ready(10)
    custom = BackpressurePolicy.with_low({"events_api:message", "interactive"}, soft_limit=1, hard_limit=5)
    assert custom.decide("events_api:message", 1) is Action.SHED
    assert custom.decide("interactive", 1) is Action.ACCEPT
    with pytest.raises(ValueError):
        BackpressurePolicy(block_timeout_s=3.5)


# -- ordering ------------------------------------------------------------------------------------------------


def test_resequencer_releases_in_event_ts_order_after_the_hold():
    r: Resequencer[str] = Resequencer(hold_s=0.5)
    assert r.push("C1", 2.0, "b", now=0.0) == []
    assert r.push("C1", 1.0, "a", now=0.2) == []
    assert r.push("C2", 5.0, "x", now=0.3) == []
    assert r.due(0.4) == []
    assert r.next_due() == pytest.approx(0.5)
    assert r.due(0.5) == ["a", "b"]  # a arrived later but is older: it goes first
    assert r.due(0.8) == ["x"]
    # Older than something already released: cannot be reordered, goes at once and is counted.
    assert r.push("C1", 1.5, "late", now=1.0) == ["late"]
    assert r.inversions == 1
    assert r.push(None, None, "unkeyed", now=1.0) == ["unkeyed"]
    r.push("C3", 1.0, "q", now=2.0)
    assert r.flush() == ["q"] and len(r) == 0


def test_order_key_and_ts():
    info = EventInfo(channel="C1", ts="10.5", event_ts="10.5", thread_ts="9.0")
    assert order_key(info) == "C1/9.0" and order_ts(info) == 10.5
    assert order_key(EventInfo(channel="C1")) == "C1"
    assert order_key(EventInfo()) is None and order_ts(EventInfo(ts="x")) is None


# -- conversation state ---------------------------------------------------------------------------------------


def test_conversation_state_expires_and_is_capped():
    clock = Clock(0.0)
    store = ConversationStore(ttl_s=10, max_threads=2, clock=clock)
    store.get(("C1", "1.0"))["turns"] = 1
    clock.t = 5
    assert store.get(("C1", "1.0"))["turns"] == 1  # touching renews
    clock.t = 14
    assert store.peek(("C1", "1.0")) == {"turns": 1}
    clock.t = 16
    assert store.peek(("C1", "1.0")) is None
    assert store.get(("C1", "1.0")) == {}
    store.get(("C2", "1.0"))
    store.get(("C3", "1.0"))
    assert len(store) == 2 and store.peek(("C1", "1.0")) is None
    assert thread_key(EventInfo(channel="C1", ts="5.0")) == ("C1", "5.0")
    assert thread_key(EventInfo(channel="C1", ts="6.0", thread_ts="5.0")) == ("C1", "5.0")
