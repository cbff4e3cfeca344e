"""``apps.connections.open``: the one Web API call a Socket Mode client cannot live without.

Errors are sorted by what to do about them: fatal token problems raise :class:`~slackops.errors.AuthError`
(never retried: some clients loop forever on ``invalid_auth``); ``ratelimited`` raises :class:`RateLimited`
carrying Slack's ``Retry-After``; anything else Slack-side or network-side raises :class:`OpenFailed`, which the
caller retries with backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from slackops import records
from slackops.errors import NetworkError
from slackops.hints import FATAL_OPEN_ERRORS, auth_error_for


class OpenFailed(NetworkError):
    """``apps.connections.open`` failed in a way worth retrying (Slack 5xx-ish errors, network trouble)."""

    def __init__(self, error: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"apps.connections.open failed: {error}")
        self.error = error
        self.retry_after = retry_after


class RateLimited(OpenFailed):
    """HTTP 429: Slack asks us to wait ``retry_after`` seconds (Tier 1 method)."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__("ratelimited", retry_after=retry_after)


@dataclass(frozen=True, slots=True)
class OpenedURL:
    url: str
    latency_ms: float


#: python-slack-sdk waits 30 s when a 429 carries no Retry-After; so do we.
DEFAULT_RETRY_AFTER_S = 30.0


async def open_socket_url(
    http: aiohttp.ClientSession,
    api_url: str,
    app_token: str,
    *,
    record: Callable[[dict[str, Any]], None] | None = None,
    source: str = "probe",
    debug_reconnects: bool = False,
    timeout_s: float = 10.0,
) -> OpenedURL:
    """Call ``apps.connections.open`` and return the WSS URL (with its single-use ticket).

    The URL is a secret for as long as its ticket lives: it is never recorded (records get the host only).
    """
    endpoint = api_url.rstrip("/") + "/apps.connections.open"
    started = time.monotonic()
    status: int | None = None
    retry_after: float | None = None
    body: dict[str, Any] = {}
    error: str | None = None
    try:
        async with http.post(
            endpoint,
            headers={"Authorization": f"Bearer {app_token}"},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            status = resp.status
            retry_after = _retry_after(resp.headers.get("Retry-After"))
            try:
                parsed = await resp.json(content_type=None)
                body = parsed if isinstance(parsed, dict) else {}
            except ValueError:
                body = {}
    except (aiohttp.ClientError, TimeoutError) as exc:
        error = f"connection_error: {type(exc).__name__}"
    latency_ms = (time.monotonic() - started) * 1000.0
    ok = bool(body.get("ok")) and isinstance(body.get("url"), str)
    if error is None and not ok:
        error = str(body.get("error") or (f"http_{status}" if status != 200 else "no_url"))
    if record is not None:
        record(
            records.make(
                "api_call",
                t=time.time(),
                source=source,
                method="apps.connections.open",
                ok=ok,
                error=error,
                http_status=status,
                latency_ms=round(latency_ms, 3),
                retry_after=retry_after,
            )
        )
    if ok:
        url = body["url"]
        if debug_reconnects:
            # Slack's documented trick: a 360 s connection lifetime, to rehearse refreshes quickly.
            url += ("&" if "?" in url else "?") + "debug_reconnects=true"
        return OpenedURL(url, latency_ms)
    if status == 429 or error == "ratelimited":
        raise RateLimited(retry_after if retry_after is not None else DEFAULT_RETRY_AFTER_S)
    assert error is not None
    if error in FATAL_OPEN_ERRORS:
        raise auth_error_for(error)
    raise OpenFailed(error, retry_after=retry_after)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
