"""rate-limited: Slack throttling the app — ``app_rate_limited`` envelopes or Web API 429s.

More than 30,000 events per workspace per hour earns an ``app_rate_limited`` envelope (events are dropped);
Web API methods answer 429 with ``Retry-After``. (429 on ``apps.connections.open`` is a reconnect loop and is
reported under disconnect-storm.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from slackops.diagnose.detectors.base import Context, Detector, Span
from slackops.findings import Finding


class RateLimited(Detector):
    slug = "rate-limited"
    kinds = {"envelope": "on_envelope", "api_call": "on_api_call", "post": "on_post"}

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.app_limited = Span()
        self.api_429 = Span()
        self.methods: Counter[str] = Counter()
        self.retry_after: list[float] = []

    def on_envelope(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            if rec.type == "app_rate_limited":
                self.app_limited.add(rec.t)

    def on_api_call(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            method = rec.method or "unknown"
            if method == "apps.connections.open":
                continue
            if rec.http_status == 429 or rec.error == "ratelimited":
                self._429(rec, method)

    def on_post(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            if rec.http_status == 429 or rec.error == "ratelimited":
                self._429(rec, rec.method or "chat.postMessage")

    def _429(self, rec: Any, method: str) -> None:
        self.api_429.add(rec.t)
        self.methods[method] += 1
        ra = rec.retry_after
        if ra is not None and len(self.retry_after) < 1000:
            self.retry_after.append(float(ra))

    def finish(self, ctx: Context) -> list[Finding]:
        out: list[Finding] = []
        if self.app_limited.count:
            out.append(
                Finding(
                    "app-rate-limited",
                    f"Slack sent app_rate_limited {self.app_limited.count} time(s): over 30,000 events/workspace/hour, events were dropped",
                    evidence=self.app_limited.evidence(),
                )
            )
        if self.api_429.count:
            top = ", ".join(f"{m} ×{n}" for m, n in self.methods.most_common(3))
            out.append(
                Finding(
                    "web-api-429",
                    f"{self.api_429.count} Web API call(s) were rate limited ({top})",
                    evidence={
                        **self.api_429.evidence(),
                        "methods": dict(self.methods.most_common(5)),
                        "max_retry_after_s": max(self.retry_after) if self.retry_after else None,
                    },
                )
            )
        return out
