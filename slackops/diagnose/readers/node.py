"""@slack/socket-mode 1.3.x / 2.x / 3.x, @slack/web-api and Bolt JS logs (log-formats.md §3.3).

Connection ids: 2.x/3.x name one ``SlackWebSocket`` logger per socket (``socket-mode:SlackWebSocket:17``), which
becomes ``conn`` (``ws:17``); 1.x prefixes socket lines with its socket id. Client-level lines (acks, reconnect
waits) carry no socket, so their ``conn`` is the last socket seen.
"""

from __future__ import annotations

import re
from collections import OrderedDict

from slackops.diagnose.readers.text import Rule, State, parse_object, rule, slack_error

NAME = "node"

#: A pong timeout, the reconnect wait and "Reconnecting to Slack" describe one reconnect: merge them when they
#: are this close in time and in lines (logs without timestamps only have the latter).
_SAME_RECONNECT_S = 2.0
_SAME_RECONNECT_LINES = 5


def _conn(s: State) -> str | None:
    name = s.name or ""
    if "SlackWebSocket:" in name:
        s.conn = "ws:" + name.rsplit(":", 1)[-1]
    return s.conn


def _reconnect(s: State, initiator: str, cause: str, gap_ms: float | None = None) -> None:
    last = s.extra.get("reconnect")
    if (
        last is not None
        and s.t - last["t"] <= _SAME_RECONNECT_S
        and s.seq - s.extra["reconnect_seq"] <= _SAME_RECONNECT_LINES
    ):
        if gap_ms is not None:
            last["gap_ms"] = gap_ms
        if initiator != "client":
            last["initiator"], last["cause"] = initiator, cause
        return
    s.emit("reconnect", conn=_conn(s), initiator=initiator, cause=cause, gap_ms=gap_ms)
    s.extra["reconnect"] = s.out[-1]
    s.extra["reconnect_seq"] = s.seq
    s.extra["opened"] = False


def _acked(s: State) -> OrderedDict[str, bool]:
    return s.extra.setdefault("acked", OrderedDict())


@rule(r"[Rr]eceived a message on the WebSocket: (.*)", re.S)
def _frame(s: State, m: re.Match[str]) -> None:
    s.frame(m[1], conn=_conn(s))


@rule(r'Received "disconnect" \((?:reason: )?([\w-]+)\) message')
def _disconnect(s: State, m: re.Match[str]) -> None:
    # 2.x logs the raw frame too; count one disconnect.
    if s.t - s.last_disconnect_t > 1.0:
        s.last_disconnect_t = s.t
        s.emit("disconnect", conn=_conn(s), reason=m[1])


@rule(r"disconnect (refresh requested|warning), ")
def _old_disconnect(s: State, m: re.Match[str]) -> None:
    s.last_disconnect_t = s.t
    s.emit(
        "disconnect", conn=_conn(s), reason="refresh_requested" if m[1] == "refresh requested" else "warning"
    )


@rule(r"Calling ack\(\) - type: ([\w-]+), envelope_id: ([\w-]+)")
def _ack(s: State, m: re.Match[str]) -> None:
    s.remember(_acked(s), m[2], True)
    s.ack(m[2], conn=s.conn)


@rule(r"calling ack ([\w-]+)")
def _old_ack(s: State, m: re.Match[str]) -> None:
    s.ack(None, conn=s.conn)


@rule(r"(?:Sending a WebSocket message|sending message on websocket): (.*)", re.S)
def _send(s: State, m: re.Match[str]) -> None:
    obj = parse_object(m[1])
    if obj is None or "envelope_id" not in obj or "type" in obj:
        return
    envelope_id = str(obj["envelope_id"])
    if _acked(s).pop(envelope_id, None) is None:
        s.ack(envelope_id, conn=s.conn)


@rule(
    r"Failed to send a message as the client (?:is not connected|has no active connection)"
    r"|cannot send message when client is not connected|Failed to send a WebSocket message"
)
def _send_failed(s: State, m: re.Match[str]) -> None:
    s.ack(None, conn=s.conn, ok=False, error="client not connected")


@rule(r"Before trying to reconnect, this client will wait for (\d+) milliseconds")
def _wait(s: State, m: re.Match[str]) -> None:
    _reconnect(s, "client", "reconnect", gap_ms=float(m[1]))


@rule(r"Reconnecting to Slack|disconnect warning, creating second connection")
def _reconnecting(s: State, m: re.Match[str]) -> None:
    _reconnect(s, "client", "reconnect")


@rule(r"A (pong|ping) wasn't received from the server before the timeout of (\d+)ms")
def _ping_timeout(s: State, m: re.Match[str]) -> None:
    # 2.x+ tear the socket down and reconnect on either timeout.
    s.emit("error", conn=_conn(s), where=f"{m[1]}_timeout", error=f"no {m[1]} within {m[2]} ms")
    _reconnect(s, "ping_timeout", f"no {m[1]} within {m[2]} ms")


@rule(r"WebSocket received (ping|pong) from Slack server")
def _ping_pong(s: State, m: re.Match[str]) -> None:
    s.emit(m[1], conn=_conn(s), direction="received")


@rule(r"Sent ping to Slack")
def _ping_sent(s: State, m: re.Match[str]) -> None:
    s.emit("ping", conn=_conn(s), direction="sent")


@rule(r"(?:(\S+) )?WebSocket close (?:frame|event) received \(code: (-?\d+), reason: (.*)\)")
def _close(s: State, m: re.Match[str]) -> None:
    code = int(m[2])
    conn = m[1] if m[1] and m[1] != "The" else _conn(s)
    s.emit("close", conn=conn, code=code, reason=m[3] or None, by="server", clean=code == 1000)


@rule(r"(?:(\S+) )?WebSocket open event received \(connection established\)")
def _open(s: State, m: re.Match[str]) -> None:
    conn = m[1] or _conn(s)
    s.conn = conn
    s.extra["opened"] = True
    s.emit("connect", conn=conn)


@rule(r"Now connected to Slack")
def _connected(s: State, m: re.Match[str]) -> None:
    # 1.x at INFO level: the only sign of a new connection when the DEBUG "open event" line is filtered out.
    if not s.extra.get("opened"):
        s.emit("connect", conn=s.conn)


@rule(
    r"Failed to retrieve a new WSS URL(?: for reconnection)? \(error: (.*)\)|apps\.connections\.open did not return a URL(.*)",
    re.S,
)
def _wss(s: State, m: re.Match[str]) -> None:
    s.api_error("apps.connections.open", m[1] or m[2] or "no url")


@rule(r"Failed to start a Socket Mode connection \(error: (.*)\)", re.S)
def _start_failed(s: State, m: re.Match[str]) -> None:
    if slack_error(m[1]):
        s.api_error("apps.connections.open", m[1])
    else:
        s.emit("error", where="connect", error=m[1][:120])


@rule(r"apiCall\('([\w.]+)'\) start")
def _api_start(s: State, m: re.Match[str]) -> None:
    s.last_method = m[1]


@rule(r"API Call failed due to rate limiting\. Will retry in (\d+) seconds|Rate limited, retry after (\d+)s")
def _api_429(s: State, m: re.Match[str]) -> None:
    s.emit(
        "api_call",
        method=s.last_method,
        ok=False,
        error="ratelimited",
        http_status=429,
        retry_after=float(m[1] or m[2]),
    )


@rule(r"Slack API error: (\w+)")
def _api_error(s: State, m: re.Match[str]) -> None:
    s.api_error(s.last_method, m[1])


@rule(r"An incoming event was not acknowledged within (\d+) (seconds|ms)")
def _not_acked(s: State, m: re.Match[str]) -> None:
    s.emit("error", where="ack_timeout", error=f"not acknowledged within {m[1]} {m[2]}")


@rule(r"An unhandled error occurred while Bolt processed \(type: ([\w-]+), error: (.*)\)", re.S)
def _unhandled(s: State, m: re.Match[str]) -> None:
    s.process("fail", None, error=m[2].splitlines()[0][:120])


@rule(
    r"WebSocket error(?: occurred)?[!:] ?(.*)|A websocket error occurred: (.*)|http request failed ?(.*)",
    re.S,
)
def _ws_error(s: State, m: re.Match[str]) -> None:
    text = next((g for g in m.groups() if g), "") or m[0]
    where = "web_api" if m[0].startswith("http") else "socket"
    s.emit("error", conn=_conn(s), where=where, error=text.splitlines()[0][:120])


RULES: tuple[Rule, ...] = (
    _frame,
    _disconnect,
    _old_disconnect,
    _ack,
    _old_ack,
    _send,
    _send_failed,
    _wait,
    _reconnecting,
    _ping_timeout,
    _ping_pong,
    _ping_sent,
    _close,
    _open,
    _connected,
    _wss,
    _start_failed,
    _api_start,
    _api_429,
    _api_error,
    _not_acked,
    _unhandled,
    _ws_error,
)
