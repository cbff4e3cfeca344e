"""auth-failure: a token Slack refuses, or Socket Mode switched off — errors that retrying never fixes.

``invalid_auth``, ``not_allowed_token_type`` (a bot token where an ``xapp-`` app-level token is needed),
``missing_scope`` (``connections:write``), ``link_disabled``. Some clients retry these forever, which also
looks like a disconnect storm.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from slackops.diagnose.detectors.base import Context, Detector, Span
from slackops.findings import Finding
from slackops.hints import FATAL_OPEN_ERRORS


class AuthFailure(Detector):
    slug = "auth-failure"
    kinds = {"api_call": "on_api_call", "disconnect": "on_disconnect"}

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.errors: Counter[str] = Counter()
        self.auth = Span()
        self.link = Span()
        self.methods: Counter[str] = Counter()

    def on_api_call(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            err = rec.error
            if err == "link_disabled":
                self.link.add(rec.t)
            elif err in FATAL_OPEN_ERRORS:
                self.auth.add(rec.t)
                self.errors[err] += 1
                self.methods[rec.method or "unknown"] += 1

    def on_disconnect(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            if rec.reason == "link_disabled":
                self.link.add(rec.t)

    def finish(self, ctx: Context) -> list[Finding]:
        out: list[Finding] = []
        if self.auth.count:
            err, _n = self.errors.most_common(1)[0]
            out.append(
                Finding(
                    "auth-error",
                    f"Slack refused the token {self.auth.count} time(s) ({', '.join(self.errors)})"
                    + (": retried in a loop" if self.auth.count > 1 else "")
                    + f" — {FATAL_OPEN_ERRORS[err]}",
                    evidence={
                        **self.auth.evidence(),
                        "errors": dict(self.errors),
                        "methods": dict(self.methods),
                    },
                )
            )
        if self.link.count:
            out.append(
                Finding(
                    "link-disabled",
                    f"Socket Mode is disabled for this app (link_disabled, {self.link.count} time(s)) — {FATAL_OPEN_ERRORS['link_disabled']}",
                    evidence=self.link.evidence(),
                )
            )
        return out
