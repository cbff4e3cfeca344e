"""The bot runtime without sockets: the ack path's order, the dispatcher, drain, fast path, metrics, Web API retries."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from slackops.bot.app import Bot, BotConfig, load_app
from slackops.bot.backpressure import BackpressurePolicy
from slackops.bot.dispatcher import Dispatcher
from slackops.bot.ordering import Resequencer
from slackops.bot.queue import WorkQueue
from slackops.bot.webapi import make_web_client
from slackops.errors import StoreError, UsageError
from tests.test_bot_parts import envelope
from tests.util import wait_for


class FakeManager:
    """Stands in for slackops.transport.ConnectionManager: records acks, checks what was durable at ack time."""

    def __init__(self, bot: Bot, db: str) -> None:
        self.bot = bot
        self.db = db
        self.acks: list[tuple[str, Any]] = []
        self.rows_at_ack: list[int] = []
        self.live = True
        self.fatal = None
        self.stopped = asyncio.Event()
        self.stop_calls = 0

    async def start(self) -> None:
        pass

    async def ack(self, envelope_id: str, payload: Any = None, via: Any = None) -> bool:
        # A separate connection sees only committed data: proves persist-before-ack.
        with sqlite3.connect(self.db) as other:
            self.rows_at_ack.append(other.execute("SELECT count(*) FROM work").fetchone()[0])
        self.acks.append((envelope_id, payload))
        return True

    async def stop_receiving(self) -> None:
        self.stop_calls += 1
        self.live = False
        self.stopped.set()


class FakeClient:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []

    async def chat_postMessage(self, **kwargs: Any) -> Any:
        self.posts.append(kwargs)
        return SimpleNamespace(data={"ok": True, "ts": "1.1"})

    async def auth_test(self) -> dict[str, Any]:
        return {"ok": True, "user_id": "UBOT"}


class Sink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, rec: dict[str, Any]) -> None:
        self.records.append(rec)

    def kinds(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [r for r in self.records if r["kind"] == kind and all(r.get(k) == v for k, v in match.items())]


def make_bot(tmp_path, handler, **kwargs: Any) -> tuple[Bot, FakeClient, Sink]:
    client, sink = FakeClient(), Sink()
    responder = kwargs.pop("responder", None)
    cfg = BotConfig(app_token="xapp-test", bot_token="xoxb-test", db=str(tmp_path / "bot.db"), **kwargs)
    bot = Bot(
        cfg,
        handler,
        responder=responder,
        recorder=sink,
        web_client=client,
        manager_factory=lambda b: FakeManager(b, cfg.db),
    )
    return bot, client, sink


def test_ack_comes_after_the_durable_commit_and_duplicates_are_acked_and_dropped(tmp_path):
    handled: list[str] = []

    async def handler(ctx):
        handled.append(ctx.event_id)
        await ctx.reply("ok")

    async def main():
        bot, client, sink = make_bot(tmp_path, handler)
        await bot.start()
        await bot.on_envelope(envelope("Ev1", "e1"), time.monotonic(), None)
        await bot.on_envelope(envelope("Ev1", "e1-retry", retry_attempt=1), time.monotonic(), None)
        await bot.on_envelope(envelope("Ev2", "e2"), time.monotonic(), None)
        await wait_for(lambda: len(client.posts) == 2, what="two replies")
        await wait_for(lambda: bot.dispatcher.depth == 0)
        mgr = bot.mgr
        await bot.stop()
        return bot, mgr, client, sink

    _, mgr, client, sink = asyncio.run(main())
    assert [a[0] for a in mgr.acks] == ["e1", "e1-retry", "e2"]
    assert mgr.rows_at_ack == [1, 1, 2]  # the row was committed before each first ack
    assert handled == ["Ev1", "Ev2"]
    assert client.posts[0] == {"channel": "C1", "thread_ts": "100.000001", "text": "ok"}
    assert len(sink.kinds("dedup", duplicate=True)) == 1
    assert [r["phase"] for r in sink.kinds("process", event_id="Ev1")] == ["start", "end"]
    assert mgr.stop_calls == 1


def test_failing_handler_is_retried_then_parked_as_failed(tmp_path):
    calls: list[int] = []

    async def handler(ctx):
        calls.append(ctx.attempt)
        raise RuntimeError("model down")

    async def main():
        bot, _, sink = make_bot(tmp_path, handler, max_attempts=3, retry_base_s=0.01)
        await bot.start()
        await bot.on_envelope(envelope("Ev1"), time.monotonic(), None)
        await wait_for(lambda: bot.dispatcher.failed == 1, what="given up")
        counts = bot.queue.counts()
        await bot.stop()
        return counts, sink

    counts, sink = asyncio.run(main())
    assert calls == [1, 2, 3]
    assert counts["failed"] == 1
    phases = [r["phase"] for r in sink.kinds("process")]
    assert phases.count("requeue") == 2 and phases[-1] == "fail"
    assert "RuntimeError: model down" in sink.kinds("process", phase="fail")[0]["error"]


def test_fast_path_puts_the_responder_answer_in_the_ack(tmp_path):
    async def handler(ctx):
        pass

    async def responder(ctx):
        return {"text": f"running {ctx.payload['command']}"}

    async def main():
        bot, _, _ = make_bot(tmp_path, handler, responder=responder)
        await bot.start()
        await bot.on_envelope(envelope(kind="slash_commands", envelope_id="s1"), time.monotonic(), None)
        # Events never get a payload even with a responder.
        await bot.on_envelope(envelope("Ev5", "e5"), time.monotonic(), None)
        acks = list(bot.mgr.acks)
        await bot.stop()
        return acks

    acks = asyncio.run(main())
    assert acks == [("s1", {"text": "running /x"}), ("e5", None)]


def test_slow_responder_falls_back_to_a_plain_ack_in_time(tmp_path):
    ran: list[str] = []

    async def handler(ctx):
        ran.append(ctx.event_id)

    async def responder(ctx):
        await asyncio.sleep(10)

    async def main():
        bot, _, sink = make_bot(tmp_path, handler, responder=responder, fast_path_timeout_s=0.2)
        await bot.start()
        t0 = time.monotonic()
        await bot.on_envelope(envelope(kind="slash_commands", envelope_id="s1"), t0, None)
        took = time.monotonic() - t0
        await wait_for(lambda: ran == ["s1"], what="handler still runs")
        acks = list(bot.mgr.acks)
        await bot.stop()
        return took, acks, sink

    took, acks, sink = asyncio.run(main())
    assert acks == [("s1", None)]
    assert 0.15 < took < 1.0
    assert sink.kinds("error", where="fast_path", error="timeout")


def test_shed_low_priority_class_is_acked_and_recorded(tmp_path):
    gate = asyncio.Event

    async def main():
        release = gate()

        async def handler(ctx):
            await release.wait()

        policy = BackpressurePolicy(soft_limit=2, hard_limit=4)
        bot, _, sink = make_bot(tmp_path, handler, backpressure=policy)
        await bot.start()
        await bot.on_envelope(envelope("Ev1", "e1"), time.monotonic(), None)
        await bot.on_envelope(envelope("Ev2", "e2"), time.monotonic(), None)
        assert bot.readiness() == (False, "queue depth 2 >= soft limit 2")
        await bot.on_envelope(envelope("Ev3", "e3", event_type="reaction_added"), time.monotonic(), None)
        await bot.on_envelope(envelope("Ev4", "e4"), time.monotonic(), None)  # normal class: still accepted
        acks = [a[0] for a in bot.mgr.acks]
        depth = bot.dispatcher.depth
        release.set()
        await wait_for(lambda: bot.dispatcher.depth == 0)
        await bot.stop()
        return acks, depth, sink

    acks, depth, sink = asyncio.run(main())
    assert acks == ["e1", "e2", "e3", "e4"]
    assert depth == 3
    shed = sink.kinds("process", phase="shed")
    assert [(r["event_id"], r["error"]) for r in shed] == [("Ev3", "events_api:reaction_added")]
    assert sink.kinds("queue", action="shed")


def test_blocking_class_waits_for_room_then_is_accepted(tmp_path):
    async def main():
        release = asyncio.Event()

        async def handler(ctx):
            await release.wait()

        policy = BackpressurePolicy(soft_limit=1, hard_limit=1, block_timeout_s=0.3)
        bot, _, sink = make_bot(tmp_path, handler, backpressure=policy)
        await bot.start()
        await bot.on_envelope(envelope("Ev1", "e1", event_type="app_mention"), time.monotonic(), None)
        asyncio.get_running_loop().call_later(0.1, release.set)
        t0 = time.monotonic()
        await bot.on_envelope(envelope(kind="interactive", envelope_id="i1"), time.monotonic(), None)
        waited = time.monotonic() - t0
        await wait_for(lambda: bot.dispatcher.depth == 0)
        await bot.stop()
        return waited, sink

    waited, sink = asyncio.run(main())
    assert 0.05 < waited < 0.3
    assert sink.kinds("queue", action="block")
    assert len(sink.kinds("process", phase="end")) == 2


def test_stop_closes_sockets_first_then_requeues_what_did_not_finish(tmp_path):
    order: list[str] = []

    async def handler(ctx):
        if ctx.event_id == "Ev1":
            await asyncio.sleep(0.05)
            order.append("quick done")
        else:
            await asyncio.sleep(30)

    async def main():
        bot, _, sink = make_bot(tmp_path, handler, concurrency=2, drain_timeout_s=0.3)
        await bot.start()
        for i in range(1, 5):
            await bot.on_envelope(envelope(f"Ev{i}", f"e{i}"), time.monotonic(), None)
        await wait_for(lambda: bot.dispatcher.running == 2)
        mgr = bot.mgr
        real_stop = mgr.stop_receiving

        async def stop_receiving():
            order.append("sockets closed")
            await real_stop()

        mgr.stop_receiving = stop_receiving
        report = await bot.stop()
        return report, sink

    report, sink = asyncio.run(main())
    assert order == ["sockets closed", "quick done"]
    assert report.finished == 1 and report.requeued == 3 and report.timed_out
    assert {r["event_id"] for r in sink.kinds("process", phase="requeue", error="shutdown")} == {
        "Ev2",
        "Ev3",
        "Ev4",
    }
    with WorkQueue(tmp_path / "bot.db") as q:
        items = q.recover()
    assert sorted(i.dedup_key for i in items) == ["Ev2", "Ev3", "Ev4"]
    assert not any(i.orphaned for i in items)  # requeued cleanly, not orphaned


def test_start_redispatches_orphans_and_skips_posts_already_made(tmp_path):
    db = tmp_path / "bot.db"
    q = WorkQueue(db)
    item = q.admit(envelope("Ev1", "e1")).item
    assert item
    q.claim(item.id)
    q.mark_effect(item.id, "post1", item.effects)  # the first reply went out before the crash
    q._conn.close()
    q._unlock()

    async def handler(ctx):
        assert ctx.redelivered
        await ctx.reply("first")  # skipped: already posted
        await ctx.reply("second")

    async def main():
        bot, client, sink = make_bot(tmp_path, handler)
        await bot.start()
        await wait_for(lambda: bot.dispatcher.completed == 1)
        await bot.stop()
        return bot, client, sink

    bot, client, sink = asyncio.run(main())
    assert bot.orphans == 1
    assert [p["text"] for p in client.posts] == ["second"]
    assert sink.kinds("process", phase="requeue", error="orphan")


def test_dispatcher_bounds_concurrency_and_resequences_per_key(tmp_path):
    seen: list[str] = []
    active = 0
    peak = 0

    async def run(item):
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        seen.append(item.dedup_key)
        await asyncio.sleep(0.01)
        active -= 1

    async def main():
        q = WorkQueue(tmp_path / "q.db")
        d = Dispatcher(q, run, concurrency=3, resequencer=Resequencer(hold_s=0.05))
        # One channel, delivered out of order: 3, 1, 2. Plus 6 events in other channels.
        for ev, ts in (("Ev3", "3.0"), ("Ev1", "1.0"), ("Ev2", "2.0")):
            d.submit(q.admit(envelope(ev, f"e-{ev}", channel="CORD", ts=ts)).item)
        for i in range(6):
            d.submit(q.admit(envelope(f"Ex{i}", f"x{i}", channel=f"C{i}", ts="5.0")).item)
        await wait_for(lambda: d.depth == 0)
        q.close()

    asyncio.run(main())
    assert [k for k in seen if k.startswith("Ev")] == ["Ev1", "Ev2", "Ev3"]
    assert peak <= 3 and len(seen) == 9


def test_load_app_errors_say_what_to_type():
    with pytest.raises(UsageError, match="module:function"):
        load_app("nomodule")
    with pytest.raises(UsageError, match="cannot import"):
        load_app("no_such_module_xyz:handle")
    with pytest.raises(UsageError, match="no attribute"):
        load_app("examples.echo_llm_bot:nope")
    assert callable(load_app("examples.echo_llm_bot:handle"))
    with pytest.raises(UsageError, match="1-10"):
        BotConfig(app_token="xapp-x", connections=11)


def test_metrics_healthz_and_readyz(tmp_path):
    async def handler(ctx):
        pass

    async def main():
        bot, _, _ = make_bot(tmp_path, handler, metrics_port=0)
        await bot.start()
        await bot.on_envelope(envelope("Ev1", "e1"), time.monotonic(), None)
        await bot.on_envelope(envelope("Ev1", "e2"), time.monotonic(), None)
        bot.write(
            {"t": time.time(), "kind": "ack", "source": "bot", "envelope_id": "e1", "ack_ms": 3.0, "ok": True}
        )
        base = f"http://127.0.0.1:{bot.health.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/metrics") as r:
                metrics = await r.text()
            async with http.get(base + "/healthz") as r:
                health = r.status
            async with http.get(base + "/readyz") as r:
                ready = r.status
            bot.mgr.live = False
            async with http.get(base + "/healthz") as r:
                dead = r.status
            async with http.get(base + "/readyz") as r:
                not_ready = (r.status, (await r.json())["reason"])
        await bot.stop()
        return metrics, health, ready, dead, not_ready

    metrics, health, ready, dead, not_ready = asyncio.run(main())
    assert "slackops_bot_dedup_hits_total 1.0" in metrics
    assert 'slackops_bot_ack_latency_seconds_bucket{le="0.0025"} 0.0' in metrics
    assert 'slackops_bot_ack_latency_seconds_bucket{le="0.005"} 1.0' in metrics
    assert "slackops_bot_queue_depth" in metrics and "slackops_bot_reconnects" in metrics
    assert (health, ready, dead) == (200, 200, 503)
    assert not_ready == (503, "no open socket")


def test_web_client_retries_rate_limits_and_server_errors_and_records_calls():
    """slack-sdk's retry handlers are on: a 429 with Retry-After and a 503 are retried, not raised."""
    answers = [
        web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "0"}),
        web.json_response({"ok": False, "error": "service_unavailable"}, status=503),
    ]

    async def post(request: web.Request) -> web.Response:
        if answers:
            return answers.pop(0)
        return web.json_response({"ok": True, "ts": "1.2", "channel": "C1"})

    async def main():
        app = web.Application()
        app.router.add_post("/api/chat.postMessage", post)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        sink = Sink()
        client = make_web_client("xoxb-test", base_url=f"http://127.0.0.1:{port}/api", emit=sink.write)
        try:
            response = await client.chat_postMessage(channel="C1", text="hi", thread_ts="1.0")
        finally:
            await runner.cleanup()
        return response, sink

    response, sink = asyncio.run(main())
    assert response["ok"] and not answers
    (call,) = sink.kinds("api_call")
    assert call["method"] == "chat.postMessage" and call["ok"] and call["http_status"] == 200
    (post_rec,) = sink.kinds("post")
    assert post_rec["channel"] == "C1" and post_rec["thread_ts"] == "1.0"
    assert "xoxb" not in repr(sink.records) and "hi" not in [v for r in sink.records for v in r.values()]


def test_cli_bot_run_reports_usage_and_token_errors(capsys):
    from slackops.cli import main

    assert main(["bot", "run", "not-a-spec"]) == 4
    assert "module:function" in capsys.readouterr().err
    assert main(["bot", "run", "examples.echo_llm_bot:handle", "--app-token", "xoxb-123-abc"]) == 5
    err = capsys.readouterr().err
    assert "bot token" in err and "xoxb-123" not in err


def test_fatal_auth_error_stops_the_bot_with_the_reason(tmp_path):
    """A token Slack refuses (here: no connections:write) stops the bot instead of reconnecting forever."""
    from slackops.errors import AuthError
    from slackops.simulator import Simulator

    async def handler(ctx):
        pass

    async def main():
        sim = Simulator(seed=1)
        await sim.start()
        try:
            cfg = BotConfig(
                app_token=sim.make_app_token(scopes=()), api_url=sim.api_url, db=str(tmp_path / "q.db")
            )
            bot = Bot(cfg, handler)
            with pytest.raises(AuthError) as info:
                await asyncio.wait_for(bot.serve(), 10)
            return info.value
        finally:
            await sim.stop()

    exc = asyncio.run(main())
    assert exc.error == "missing_scope" and "connections:write" in (exc.hint or "")


def test_second_signal_skips_the_drain_and_leaves_work_for_the_next_start(tmp_path):
    async def handler(ctx):
        await asyncio.sleep(30)

    async def main():
        bot, _, sink = make_bot(tmp_path, handler, drain_timeout_s=30)
        await bot.start()
        await bot.on_envelope(envelope("Ev1", "e1"), time.monotonic(), None)
        await wait_for(lambda: bot.dispatcher.running == 1)
        bot.signals.trigger("SIGTERM")
        stopping = asyncio.ensure_future(bot.stop())
        await asyncio.sleep(0.05)
        bot.signals.trigger("SIGINT")
        report = await asyncio.wait_for(stopping, 2)
        return report, sink

    report, sink = asyncio.run(main())
    assert report is None
    assert [(r["name"], r["action"]) for r in sink.kinds("signal")] == [
        ("SIGTERM", "drain"),
        ("SIGINT", "force"),
    ]
    with WorkQueue(tmp_path / "bot.db") as q:
        (item,) = q.recover()
    assert item.orphaned and item.dedup_key == "Ev1"


def test_group_commit_persists_a_whole_turn_of_envelopes_before_any_ack(tmp_path):
    handled: list[str] = []

    async def handler(ctx):
        handled.append(ctx.event_id)

    async def main():
        bot, _, sink = make_bot(tmp_path, handler)
        await bot.start()
        # Three frames from one read (a retry of Ev1 among them): the socket says how many are still buffered.
        conn = SimpleNamespace(buffered=2)
        await bot._receive(envelope("Ev1", "e1"), time.monotonic(), conn)
        conn.buffered = 1
        await bot._receive(envelope("Ev1", "e1-retry", retry_attempt=1), time.monotonic(), conn)
        assert bot.mgr.acks == []  # staged, not yet committed: no ack may go out
        conn.buffered = 0
        await bot._receive(envelope("Ev2", "e2"), time.monotonic(), conn)
        assert len(bot.mgr.acks) == 3  # the last buffered frame commits and acks the batch in the same step
        await wait_for(lambda: bot.dispatcher.completed == 2, what="two handler runs")
        # The finished rows' deletes ride on a later commit, within DEFERRED_FLUSH_S.
        with sqlite3.connect(tmp_path / "bot.db") as other:
            await wait_for(
                lambda: other.execute("SELECT count(*) FROM work").fetchone()[0] == 0, what="deletes"
            )
        mgr = bot.mgr
        await bot.stop()
        return mgr, sink

    mgr, sink = asyncio.run(main())
    assert [a[0] for a in mgr.acks] == ["e1", "e1-retry", "e2"]
    assert mgr.rows_at_ack == [2, 2, 2]  # one commit made both new events durable before the first ack
    assert handled == ["Ev1", "Ev2"]
    assert [r["duplicate"] for r in sink.kinds("dedup")] == [False, True, False]
    assert [r["depth"] for r in sink.kinds("queue", action="enqueue")] == [1, 2]


def test_failed_group_commit_acks_none_of_the_batch(tmp_path, monkeypatch):
    async def handler(ctx):
        raise AssertionError("nothing was persisted, so nothing may run")

    async def main():
        bot, _, sink = make_bot(tmp_path, handler)
        await bot.start()

        def broken_commit() -> None:
            bot.queue.rollback()
            raise StoreError("disk I/O error")

        monkeypatch.setattr(bot.queue, "commit", broken_commit)
        await bot._receive(envelope("Ev1", "e1"), time.monotonic(), SimpleNamespace(buffered=1))
        await bot._receive(envelope("Ev2", "e2"), time.monotonic(), SimpleNamespace(buffered=0))
        monkeypatch.undo()
        ready = bot.readiness()
        mgr = bot.mgr
        await bot.stop()
        return mgr, sink, ready

    mgr, sink, ready = asyncio.run(main())
    assert mgr.acks == []
    assert len(sink.kinds("error", where="enqueue")) == 2  # one per unacked envelope: diagnose counts them
    assert ready == (False, "work store unavailable: StoreError")
    with WorkQueue(tmp_path / "bot.db") as q:
        assert q.recover() == []  # rolled back: Slack's retry is a fresh event, not a dedup hit
        assert not q.admit(envelope("Ev1", "e1-retry", retry_attempt=1)).duplicate
