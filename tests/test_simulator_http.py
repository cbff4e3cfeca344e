"""Events API over HTTP, the simulator's comparison mode: a real aiohttp app as the Request URL."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from slackops.simulator import Simulator, parse_scenario
from tests.util import wait_for


class RequestUrl:
    """A Request URL whose answers are scripted per request: "ok", "500", "no-retry", "slow", "redirect"."""

    def __init__(self, script: list[str], verifier_secret: str = "") -> None:
        self.script = script
        self.seen: list[dict] = []
        self.secret = verifier_secret
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/slack/events", self.handle)
        app.router.add_post("/hop/{n}", self.hop)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def hop(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        raise web.HTTPTemporaryRedirect(f"/hop/{n + 1}")

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.text()
        headers = dict(request.headers)
        valid = SignatureVerifier(self.secret).is_valid_request(raw, headers) if self.secret else None
        self.seen.append(
            {
                "retry_num": headers.get("X-Slack-Retry-Num"),
                "retry_reason": headers.get("X-Slack-Retry-Reason"),
                "content_type": request.content_type,
                "raw": raw,
                "signature_valid": valid,
            }
        )
        action = self.script.pop(0) if self.script else "ok"
        if action == "500":
            return web.Response(status=500)
        if action == "no-retry":
            return web.Response(status=500, headers={"x-slack-no-retry": "1"})
        if action == "slow":
            await asyncio.sleep(0.6)  # the slow app being rehearsed: answers after the deadline
        if action == "redirect":
            raise web.HTTPTemporaryRedirect("/hop/1")
        return web.Response(status=200)


def sim_for(url: str, extra: str = "") -> Simulator:
    sc = parse_scenario(
        f"[server]\nack_deadline = 0.3\nretry_schedule = [0, 0.1]\n{extra}\n", path="<t>", name="http"
    )
    return Simulator(sc, seed=1, request_url=url)


def run(script: list[str], kinds: list[str], extra: str = "", url: str | None = None):
    async def main():
        app = RequestUrl(script)
        await app.start()
        sim = sim_for(url or app.url, extra)
        app.secret = sim.signing_secret
        await sim.start()
        try:
            events = [e for kind in kinds for e in sim.send_event(kind)]
            assert await sim.drain(5)
            await wait_for(lambda: not sim._http_tasks, what="in-flight POSTs")
            return app.seen, [sim.entry(e.event_id) for e in events], sim.scorecard(), sim
        finally:
            await sim.stop()
            await app.stop()

    return asyncio.run(main())


def test_signed_json_delivery_acked_by_a_2xx():
    seen, (entry,), card, _ = run(["ok"], ["message"])
    assert card.acked == 1 and card.retries == 0
    (req,) = seen
    assert req["signature_valid"] is True and req["content_type"] == "application/json"
    assert json.loads(req["raw"])["event_id"] == entry.event.event_id
    assert req["retry_num"] is None


def test_error_status_is_retried_with_http_error_then_timeout_with_http_timeout():
    seen, (entry,), card, _ = run(["500", "slow", "ok"], ["message"])
    assert [(r["retry_num"], r["retry_reason"]) for r in seen] == [
        (None, None),
        ("1", "http_error"),
        ("2", "http_timeout"),
    ]
    assert entry.status(float("inf")) == "acked" and card.retries == 2


def test_no_retry_header_stops_retries_and_the_event_is_lost():
    seen, (entry,), card, _ = run(["no-retry"], ["message"])
    assert len(seen) == 1 and card.lost == 1 and entry.failure == "no_retry"


def test_slash_commands_and_interactivity_are_form_posts_never_retried():
    seen, _entries, card, _ = run(["500", "500"], ["slash_command", "block_actions"])
    assert len(seen) == 2 and card.retries == 0 and card.lost == 2
    forms = [parse_qs(r["raw"]) for r in seen]
    assert forms[0]["command"] == ["/sim"]
    assert json.loads(forms[1]["payload"][0])["type"] == "block_actions"
    assert all(r["content_type"] == "application/x-www-form-urlencoded" for r in seen)


def test_redirect_loops_and_unreachable_urls_have_their_retry_reasons():
    _seen, (entry,), _card, _ = run(["redirect", "ok"], ["message"])
    assert entry.attempts[0].fail_reason == "too_many_redirects"
    _seen, (entry,), card, _ = run([], ["message"], url="http://127.0.0.1:9/slack/events")
    assert [a.fail_reason for a in entry.attempts] == ["connection_failed"] * 3
    assert card.lost == 1


def test_subscriptions_are_disabled_when_nearly_every_delivery_fails():
    _seen, entries, _card, sim = run(["500"] * 10, ["message"] * 3, extra="http_disable_min_events = 3")
    assert sim.subscriptions_disabled
    assert any(e.failure == "subscription_disabled" for e in entries)
