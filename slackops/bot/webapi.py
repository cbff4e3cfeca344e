"""The Web API client the reference bot hands to handlers: slack-sdk's, with its retry handlers switched on.

slack-sdk's ``AsyncWebClient`` retries only connection errors by default. Real deployments also meet HTTP 429
(``chat.postMessage`` is rate limited per channel; Slack sends ``Retry-After``) and 5xx from Slack's edge, and a
handler that lets one of those escape has lost its reply. So the client built here enables all three of
slack-sdk's async retry handlers: connection errors, rate limits (sleeping ``Retry-After``) and server errors
(500/503, with backoff).

Every call emits an ``api_call`` record (method, ok, error, HTTP status, latency including retries), and
``chat.postMessage`` / ``chat.update`` also a ``post`` record, so ``slackops diagnose`` sees the bot's outbound
side. Records never hold the token or the message text.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from slackops import records

#: Methods whose calls are also recorded as ``post`` records (a message the bot sent or changed).
POST_METHODS = frozenset({"chat.postMessage", "chat.update", "chat.postEphemeral"})

Emit = Callable[[dict[str, Any]], None]


def retry_handlers(max_retries: int = 3) -> list[AsyncRetryHandler]:
    """slack-sdk's connection-error, rate-limit (honours ``Retry-After``) and server-error retry handlers."""
    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=max_retries),
        AsyncRateLimitErrorRetryHandler(max_retry_count=max_retries),
        AsyncServerErrorRetryHandler(max_retry_count=max_retries),
    ]


class RecordingWebClient(AsyncWebClient):
    """``AsyncWebClient`` that emits an ``api_call`` (and ``post``) record per call through ``emit``."""

    def __init__(self, *args: Any, emit: Emit | None = None, source: str = "bot", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._emit = emit
        self._source = source

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:  # type: ignore[override]
        start = time.monotonic()
        status: int | None = None
        error: str | None = None
        ok = False
        try:
            response = await super().api_call(api_method, **kwargs)
            status = response.status_code
            ok = bool(response.get("ok", False))
            error = response.get("error")
            return response
        except SlackApiError as exc:
            status = exc.response.status_code
            error = exc.response.get("error") if hasattr(exc.response, "get") else "slack_api_error"
            raise
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            if self._emit is not None:
                self._record(api_method, kwargs, ok, status, error, (time.monotonic() - start) * 1000.0)

    def _record(
        self, method: str, kwargs: dict[str, Any], ok: bool, status: int | None, error: str | None, ms: float
    ) -> None:
        assert self._emit is not None
        now = time.time()
        self._emit(
            records.make(
                "api_call",
                t=now,
                source=self._source,
                method=method,
                ok=ok,
                error=error,
                http_status=status,
                latency_ms=round(ms, 3),
            )
        )
        if method in POST_METHODS:
            body = kwargs.get("json") or kwargs.get("data") or kwargs.get("params") or {}
            channel = body.get("channel") if isinstance(body, dict) else None
            thread_ts = body.get("thread_ts") if isinstance(body, dict) else None
            self._emit(
                records.make(
                    "post",
                    t=now,
                    source=self._source,
                    method=method,
                    channel=channel if isinstance(channel, str) else None,
                    thread_ts=thread_ts if isinstance(thread_ts, str) else None,
                    ok=ok,
                    http_status=status,
                    error=error,
                )
            )


def make_web_client(
    token: str | None,
    *,
    base_url: str | None = None,
    max_retries: int = 3,
    emit: Emit | None = None,
    source: str = "bot",
    timeout: int = 30,
) -> RecordingWebClient:
    """An async Web API client with slack-sdk's retry handlers enabled and call records emitted.

    ``base_url`` points it at the simulator (``http://127.0.0.1:PORT/api/``); the default is Slack.
    """
    kwargs: dict[str, Any] = {
        "token": token,
        "timeout": timeout,
        "retry_handlers": retry_handlers(max_retries),
    }
    if base_url:
        kwargs["base_url"] = base_url if base_url.endswith("/") else base_url + "/"
    return RecordingWebClient(emit=emit, source=source, **kwargs)
