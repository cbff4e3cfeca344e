"""The simulator's HTTP side: ``apps.connections.open``, the bot's Web API calls, ``response_url``, and the
Events API over HTTP comparison mode.

Slack conventions kept here: every Web API error is HTTP 200 ``{"ok": false, "error": ...}`` except
``ratelimited`` (HTTP 429 + ``Retry-After``); the app-level token travels only in ``Authorization: Bearer`` (the
docs: "passing it as a POST parameter will result in an error"); a bot reply is attributed to the event whose
``ts`` it names. :class:`WebApi` is mixed into :class:`~slackops.simulator.server.Simulator`, whose state it uses.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from slackops.simulator.ledger import EventEntry, Reply

if TYPE_CHECKING:
    from slackops.simulator.engine import Send

CONNECTIONS_WRITE = "connections:write"

#: The delivery target of Events API (HTTP) mode, in the registry and in records.
HTTP_ENDPOINT = "http"


class WebApi:
    """HTTP handlers of the simulator (a mixin: the state lives on the Simulator)."""

    # Declared for readers and type checkers; the Simulator sets them.
    request_url: str | None
    signing_secret: str
    subscriptions_disabled: bool
    _http: Any
    _http_outcomes: Any

    # -- Events API over HTTP (comparison mode) ---------------------------------------------------------------

    async def _post_http(self, send: Send) -> None:
        """POST one attempt to the Request URL with Slack's HTTP semantics (shared/reference §6).

        2xx within the deadline is the ack; a retry carries ``X-Slack-Retry-Num`` / ``X-Slack-Retry-Reason``
        (http_timeout, http_error, connection_failed, too_many_redirects, ssl_error, unknown_error); a non-2xx
        answer with ``x-slack-no-retry: 1`` stops retries; at most 2 redirects are followed.
        """
        attempt, event = send.attempt, send.entry.event
        if self.subscriptions_disabled:
            self.engine.fail(attempt.envelope_id, "subscription_disabled", self._now(), no_retry=True)
            send.entry.failure = "subscription_disabled"
            return
        body, content_type = _http_body(event.type, send.frame["payload"])
        stamp = str(int(time.time()))
        signature = hmac.new(self.signing_secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256)
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": "v0=" + signature.hexdigest(),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        }
        if attempt.number:
            headers["X-Slack-Retry-Num"] = str(attempt.number)
            headers["X-Slack-Retry-Reason"] = str(send.frame.get("retry_reason") or "http_timeout")
        reason, no_retry = None, False
        timeout = aiohttp.ClientTimeout(total=self.engine.settings.ack_deadline)
        try:
            async with self._http.post(
                self.request_url, data=body, headers=headers, timeout=timeout, max_redirects=2
            ) as resp:
                raw = await resp.read()
                if 200 <= resp.status < 300:
                    self._on_http_ack(send, raw, resp.content_type)
                else:
                    reason = "http_error"
                    no_retry = resp.headers.get("x-slack-no-retry") == "1"
        except TimeoutError:
            reason = "http_timeout"
        except aiohttp.TooManyRedirects:
            reason = "too_many_redirects"
        except aiohttp.ClientSSLError:
            reason = "ssl_error"
        except aiohttp.ClientConnectorError:
            reason = "connection_failed"
        except aiohttp.ClientError:
            reason = "unknown_error"
        self._count_http_outcome(reason is None)
        if reason is not None:
            self.engine.fail(attempt.envelope_id, reason, self._now(), no_retry=no_retry)
            self._rec("error", conn=HTTP_ENDPOINT, where="http_delivery", error=reason, detail=event.event_id)

    def _on_http_ack(self, send: Send, raw: bytes, content_type: str) -> None:
        payload = None
        if raw and content_type == "application/json":
            with contextlib.suppress(ValueError):
                payload = json.loads(raw)
        result = self.engine.ack(send.attempt.envelope_id, HTTP_ENDPOINT, self._now(), payload)
        self._rec_ack(result, HTTP_ENDPOINT)

    def _count_http_outcome(self, ok: bool) -> None:
        """Slack disables event subscriptions when >95 % of deliveries fail within 60 min (busy apps only)."""
        now = self._now()
        window = self._scaled(3600.0)
        self._http_outcomes.append((now, ok))
        while self._http_outcomes and now - self._http_outcomes[0][0] > window:
            self._http_outcomes.popleft()
        total = len(self._http_outcomes)
        failed = sum(1 for _t, good in self._http_outcomes if not good)
        if (
            not self.subscriptions_disabled
            and total >= self.settings.http_disable_min_events
            and failed > 0.95 * total
        ):
            self.subscriptions_disabled = True
            self._rec("error", conn=HTTP_ENDPOINT, where="http_delivery", error="subscription_disabled")

    # -- HTTP: apps.connections.open ------------------------------------------------------------------------

    async def _connections_open(self, request: web.Request) -> web.Response:
        started = self._now()
        token = _bearer(request)
        status, body, headers = 200, None, {"x-slack-req-id": uuid.uuid4().hex[:16]}
        retry_after = self._rate_limited(started)
        if retry_after is not None:
            status = 429
            headers["Retry-After"] = str(retry_after)
            body = {"ok": False, "error": "ratelimited"}
        elif not token:
            body = {"ok": False, "error": "not_authed"}
        elif token.startswith(("xoxb-", "xoxp-", "xoxe-")):
            body = {"ok": False, "error": "not_allowed_token_type"}
        elif token not in self._app_tokens:
            body = {"ok": False, "error": "invalid_auth"}
        elif CONNECTIONS_WRITE not in self._app_tokens[token]:
            body = {"ok": False, "error": "missing_scope", "needed": CONNECTIONS_WRITE, "provided": ""}
        elif self._open_failures:
            body = {"ok": False, "error": self._open_failures.popleft()}
        else:
            ticket = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            self._tickets[ticket] = started + self.settings.ticket_ttl
            scopes = list(self._app_tokens[token])
            headers["x-oauth-scopes"] = ",".join(scopes)
            body = {
                "ok": True,
                "url": f"ws://{self.host}:{self.port}/link/?ticket={ticket}&app_id={self.app_hash}",
                "response_metadata": {"scopes": scopes, "acceptedScopes": [CONNECTIONS_WRITE]},
            }
        self._rec(
            "api_call",
            method="apps.connections.open",
            ok=body["ok"],
            error=body.get("error"),
            http_status=status,
            latency_ms=round((self._now() - started) * 1000.0, 3),
            retry_after=float(headers["Retry-After"]) if "Retry-After" in headers else None,
        )
        return web.json_response(body, status=status, headers=headers)

    def _rate_limited(self, now: float) -> int | None:
        """Retry-After seconds (already scaled, whole seconds as Slack sends) if this call is rate limited."""
        if self._ratelimits:
            return math.ceil(self._scaled(self._ratelimits.popleft()))
        limit = self.settings.open_rate_limit
        if limit <= 0:
            return None
        window = self._scaled(60.0)
        while self._open_calls and now - self._open_calls[0] > window:
            self._open_calls.popleft()
        if len(self._open_calls) >= limit:
            return math.ceil(self._scaled(self.settings.open_retry_after))
        self._open_calls.append(now)
        return None

    # -- HTTP: the bot's Web API calls -----------------------------------------------------------------------

    async def _web_api(self, request: web.Request) -> web.Response:
        started = self._now()
        method = request.match_info["method"]
        params = await _params(request)
        token = _bearer(request) or params.pop("token", None)
        handler = _BOT_METHODS.get(method)
        if handler is None:
            body = {"ok": False, "error": "unknown_method"}
        elif not token:
            body = {"ok": False, "error": "not_authed"}
        elif token != self.bot_token:
            body = {
                "ok": False,
                "error": "not_allowed_token_type" if token in self._app_tokens else "invalid_auth",
            }
        else:
            body = handler(self, params)
        self._rec(
            "api_call",
            method=method,
            ok=body["ok"],
            error=body.get("error"),
            http_status=200,
            latency_ms=round((self._now() - started) * 1000.0, 3),
        )
        return web.json_response(body, headers={"x-slack-req-id": uuid.uuid4().hex[:16]})

    def _auth_test(self, params: dict) -> dict:
        ids = self.identity
        return {
            "ok": True,
            "url": f"http://{self.host}:{self.port}/",
            "team": "slackops simulator",
            "user": "simbot",
            "team_id": ids.team_id,
            "user_id": ids.bot_user_id,
            "bot_id": ids.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, params: dict) -> dict:
        channel = params.get("channel")
        if not channel:
            return self._post_result(
                "chat.postMessage", None, None, None, {"ok": False, "error": "channel_not_found"}
            )
        thread_ts = params.get("thread_ts") or None
        now = self._now()
        entry = self.ledger.attribute("chat.postMessage", now, channel=channel, ts=thread_ts)
        ts = self.traffic.next_ts(time.time())
        self.ledger.bot_posts[ts] = entry
        body = {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "message": {
                "type": "message",
                "user": self.identity.bot_user_id,
                "bot_id": self.identity.bot_id,
                "ts": ts,
                "thread_ts": thread_ts,
            },
        }
        self._post_result("chat.postMessage", channel, thread_ts, entry, body)
        traffic = self.scenario.traffic
        depth = (entry.event.depth + 1) if entry else 1
        if traffic.echo_bot_posts and depth <= traffic.echo_depth_limit:
            # Slack delivers the bot's own post back as a message event: the bait of every self-loop.
            text = str(params.get("text") or "")
            self._submit(
                self.traffic.echo(
                    time.time(), channel=channel, ts=ts, thread_ts=thread_ts, text=text, depth=depth
                )
            )
        return body

    def _chat_update(self, params: dict) -> dict:
        channel, ts = params.get("channel"), params.get("ts")
        if not channel or not ts:
            return self._post_result(
                "chat.update", channel, ts, None, {"ok": False, "error": "message_not_found"}
            )
        entry = None
        if ts not in self.ledger.bot_posts:
            # Editing one's own earlier reply is not a second reply; an update naming the event's ts is.
            entry = self.ledger.attribute("chat.update", self._now(), channel=channel, ts=ts)
        body = {"ok": True, "channel": channel, "ts": ts, "text": ""}
        return self._post_result("chat.update", channel, ts, entry, body)

    def _reactions_add(self, params: dict) -> dict:
        channel, ts = params.get("channel"), params.get("timestamp")
        if not channel or not ts or not params.get("name"):
            return self._post_result(
                "reactions.add", channel, ts, None, {"ok": False, "error": "invalid_arguments"}
            )
        entry = self.ledger.attribute("reactions.add", self._now(), channel=channel, ts=ts)
        return self._post_result("reactions.add", channel, ts, entry, {"ok": True})

    def _post_result(
        self, method: str, channel: Any, thread_ts: Any, entry: EventEntry | None, body: dict
    ) -> dict:
        self._rec(
            "post",
            method=method,
            channel=channel if isinstance(channel, str) else None,
            thread_ts=thread_ts if isinstance(thread_ts, str) else None,
            event_id=entry.event.event_id if entry else None,
            ok=body["ok"],
            http_status=200,
            error=body.get("error"),
        )
        return body

    async def _response_url(self, request: web.Request) -> web.Response:
        event_id = request.match_info["event_id"]
        entry = self.ledger.entries.get(event_id)
        if entry is None:
            return web.json_response({"ok": False, "error": "expired_url"}, status=404)
        now = self._now()

        entry.replies.append(Reply(method="response_url", at=now, channel=entry.event.channel, ts=None))
        self._rec(
            "post",
            method="response_url",
            channel=entry.event.channel,
            event_id=event_id,
            ok=True,
            http_status=200,
        )
        return web.json_response({"ok": True})


_BOT_METHODS: dict[str, Callable[[Any, dict], dict]] = {
    "auth.test": WebApi._auth_test,
    "chat.postMessage": WebApi._post_message,
    "chat.update": WebApi._chat_update,
    "reactions.add": WebApi._reactions_add,
}


def _http_body(envelope_type: str, payload: dict[str, Any]) -> tuple[str, str]:
    """The HTTP body Slack sends for each kind: JSON for events, form fields for slash commands, and a form
    field ``payload`` holding JSON for interactivity."""
    if envelope_type == "events_api":
        return json.dumps(payload), "application/json"
    if envelope_type == "slash_commands":
        return urlencode({k: str(v) for k, v in payload.items()}), "application/x-www-form-urlencoded"
    return urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


async def _params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return params
    if request.content_type == "application/json":
        with contextlib.suppress(ValueError):
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
    else:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params
