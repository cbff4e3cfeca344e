"""Java ``slack-api-client`` Socket Mode logs (log-formats.md §3.4; known from issues, not from source).

What these lines give: session opens (``conn`` = session id), ``onClose`` codes, and ``apps.connections.open``
failures with their HTTP status and Slack error (the 429 ``ratelimited`` reconnect loop of java-slack-sdk #1223).
"""

from __future__ import annotations

import re

from slackops.diagnose.readers.text import Rule, State, rule

NAME = "java"


@rule(r"New session is open(?: \(session id: ([\w-]+)\))?")
def _open(s: State, m: re.Match[str]) -> None:
    if m[1]:
        s.conn = m[1]
    s.emit("connect", conn=m[1])


@rule(r"onClose listener is called \(code: (-?\d+), reason: (.*)\)")
def _close(s: State, m: re.Match[str]) -> None:
    code = int(m[1])
    # -1 / 1006: the socket died without a close handshake (java-slack-sdk #860).
    by = "network" if code in (-1, 1006) else None
    s.emit("close", code=code, reason=m[2] or None, by=by, clean=code == 1000)


@rule(
    r"Failed to (re)?connect to the Socket Mode (?:server|API endpoint).*?\(status: (\d+), error: (\w+)\)",
    re.S,
)
def _connect_failed(s: State, m: re.Match[str]) -> None:
    status = int(m[2])
    s.emit("api_call", method="apps.connections.open", ok=False, http_status=status, error=m[3])
    if m[1]:
        s.emit("reconnect", initiator="client", cause=f"reconnect failed: {m[3]}")


@rule(
    r"onError listener is called|Failed to (?:re)?connect to the Socket Mode (?:server|API endpoint)(.*)",
    re.S,
)
def _error(s: State, m: re.Match[str]) -> None:
    s.emit("error", where="socket", error=m[0].splitlines()[0][:120])


RULES: tuple[Rule, ...] = (_open, _close, _connect_failed, _error)
