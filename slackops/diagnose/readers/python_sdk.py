"""slack-sdk (``slack_sdk.socket_mode``: builtin, aiohttp, websockets, websocket_client) and Bolt Python logs.

Templates are in shared/reference/log-formats.md §3.1–3.2, old and new wording. Session ids become ``conn``.
What these logs give: connects, closes, reconnects and their cause, raw frames (with DEBUG on: hello,
disconnect, envelopes), acks (``Sending a message`` carrying the ack JSON), queue depth, processing start and
end, ping/pong traces, Web API errors. Ack latency is paired from the frame's arrival to the ack being sent, so
it includes the SDK queue wait that Bolt's ``Response time`` leaves out (python-slack-sdk #1299).
"""

from __future__ import annotations

import re

from slackops.diagnose.readers.text import Rule, State, parse_object, rule, slack_error

NAME = "python-sdk"

# Session ids are UUIDs (builtin, aiohttp) or similar: require a digit so "session: Connection refused" is not one.
_SID = re.compile(r"session(?: id|_id)?(?:: | \()(?=[\w-]*\d)([\w-]{6,})")


def _sid(state: State, text: str) -> str | None:
    m = _SID.search(text)
    if m:
        state.conn = m.group(1)
        return state.conn
    return None


@rule(r"Rate limited\. Retrying in ([\d.]+) seconds")
def _rate_limited(s: State, m: re.Match[str]) -> None:
    # Logged while issuing a WSS URL: apps.connections.open answered 429.
    s.emit(
        "api_call",
        method="apps.connections.open",
        ok=False,
        error="ratelimited",
        http_status=429,
        retry_after=float(m[1]),
    )


@rule(r"Failed to retrieve WSS URL: (.*)", re.S)
def _wss_failed(s: State, m: re.Match[str]) -> None:
    s.api_error("apps.connections.open", m[1])


@rule(r"A new session (?:\(([\w-]+)\) )?has been established(?: \(session id: ([\w-]+)\))?")
def _established(s: State, m: re.Match[str]) -> None:
    sid = m[1] or m[2]
    if sid:
        s.conn = sid
    s.emit("connect", conn=sid)


@rule(r"The old session (?:\(([\w-]+)\) )?has been abandoned")
def _abandoned(s: State, m: re.Match[str]) -> None:
    s.emit("close", conn=m[1] or "previous", by="client", reason="abandoned")


@rule(r"The current session \(([\w-]+)\) has been abandoned by disconnect")
def _disconnected(s: State, m: re.Match[str]) -> None:
    s.emit("close", conn=m[1], by="client", reason="disconnect() called")


@rule(r"Received CLOSE event(?: from ([\w-]+))?\. Reconnecting")
def _close_event(s: State, m: re.Match[str]) -> None:
    conn = m[1] or _sid(s, m.string)
    s.emit("close", conn=conn, by="server", reason="close event")
    s.emit("reconnect", conn=conn, initiator="server", cause="close event")


@rule(r"session (?:\(([\w-]+)\) )?seems to be already closed\. (?:Reconnecting|Going to reconnect)")
def _already_closed(s: State, m: re.Match[str]) -> None:
    conn = m[1] or _sid(s, m.string)
    s.emit("reconnect", conn=conn, initiator="client", cause="session closed")


@rule(r"(?:The connection|The session \(([\w-]+)\)) seems to be stale\. (?:Disconnecting|Reconnecting)")
def _stale(s: State, m: re.Match[str]) -> None:
    # The SDK's own liveness check: no pong for >= 4 x ping_interval.
    conn = m[1] or _sid(s, m.string)
    s.emit("reconnect", conn=conn, initiator="ping_timeout", cause="stale: no pong")


@rule(r"Failed to connect \(error: (.*?)\); Retrying", re.S)
def _connect_failed(s: State, m: re.Match[str]) -> None:
    # aiohttp adapter's "Session is closed" loop: it sleeps ping_interval and tries again, forever.
    if slack_error(m[1]):
        s.api_error("apps.connections.open", m[1])
    s.emit("reconnect", initiator="client", cause=f"connect failed: {m[1].splitlines()[0][:80]}")


@rule(r"Failed to establish a connection \(session id: ([\w-]+), error: (.*)\)", re.S)
def _establish_failed(s: State, m: re.Match[str]) -> None:
    s.emit("error", conn=m[1], where="connect", error=m[2][:120])


@rule(r"The current session \(session id: ([\w-]+)\) is no longer active\. Failed to send a message")
def _lost_ack(s: State, m: re.Match[str]) -> None:
    # The ack (or reply) was written to a session that is gone: Slack will retry the envelope.
    s.ack(None, conn=m[1], ok=False, error="session no longer active")


@rule(r"Failed to send a message \(session id: [\w-]+, error: .*Retrying the same request", re.S)
def _send_retry(s: State, m: re.Match[str]) -> None:
    return None


@rule(r"Sending a message(?: \(session id: ([\w-]+), message: |: )(.*)", re.S)
def _sending(s: State, m: re.Match[str]) -> None:
    conn = m[1] or _sid(s, m[2])
    obj = parse_object(m[2])
    if obj is not None and "envelope_id" in obj and "type" not in obj:
        s.ack(str(obj["envelope_id"]), conn=conn)


@rule(r"Received message \(type: \w+, data: (.*?), extra: .*, session: ([\w-]+)\)", re.S)
def _aiohttp_frame(s: State, m: re.Match[str]) -> None:
    s.conn = m[2]
    s.frame(m[1], conn=m[2])


@rule(
    r"(?:on_message invoked: \(message: |Received message: "
    r"|Received a new data frame \(session id: [\w-]+, opcode: \d+, payload: )(.*)",
    re.S,
)
def _frame(s: State, m: re.Match[str]) -> None:
    # The session id is outside the frame's JSON: before it (builtin) or after it (websockets adapter).
    outside = m.string[: m.start(1)] + m.string[m.string.rfind("}") + 1 :]
    s.frame(m[1], conn=_sid(s, outside))


@rule(r"#(monitor_current_session|receive_messages) method has been (?:verifying|working)")
def _loop_alive(s: State, m: re.Match[str]) -> None:
    # The aiohttp client's trace, every 100 iterations of each loop: when one stops, that loop has died.
    s.emit("loop", conn=_sid(s, m.string), loop="monitor" if m[1].startswith("monitor") else "receive")


@rule(r"Response time: (\d+(?:\.\d+)?) milli(?:seconds|s)")
def _response_time(s: State, m: re.Match[str]) -> None:
    # Bolt's handler time, logged after its ack: it starts when the handler takes the request off the SDK
    # queue, so it leaves the queue wait out (python-slack-sdk #1299). queue-overflow pairs it with ack latency.
    s.emit("process", phase="end", duration_ms=float(m[1]))


@rule(r"A new message enqueued \(current queue size: (\d+)\)")
def _enqueued(s: State, m: re.Match[str]) -> None:
    s.emit("queue", depth=int(m[1]), action="enqueue")


@rule(r"A message dequeued \(current queue size: (\d+)\)")
def _dequeued(s: State, m: re.Match[str]) -> None:
    s.emit("queue", depth=int(m[1]), action="dequeue")


@rule(r"Message processing (started|completed) \(type: (\w+), envelope_id: ([\w-]+)\)")
def _processing(s: State, m: re.Match[str]) -> None:
    s.process("start" if m[1] == "started" else "end", m[3])


@rule(
    r"Failed to (?:run a message listener|run a request listener|run message listeners|process a message): (.*)",
    re.S,
)
def _listener_failed(s: State, m: re.Match[str]) -> None:
    s.process("fail", None, error=m[1].splitlines()[0][:120])


@rule(r"on_close invoked(?:: \(code: (-?\d+), message: (.*)\)| \(session id: ([\w-]+)\))?")
def _on_close(s: State, m: re.Match[str]) -> None:
    code = int(m[1]) if m[1] else None
    s.emit(
        "close", conn=m[3], code=code, reason=(m[2] or None), clean=code == 1000 if code is not None else None
    )


@rule(r"The connection has been closed \(session id: ([\w-]+)\)")
def _closed(s: State, m: re.Match[str]) -> None:
    s.emit("close", conn=m[1])


@rule(
    r"Sending a ping data frame \(session id: ([\w-]+)|Sending a ping message with the newly established connection \(([\w-]+)\)"
)
def _ping_sent(s: State, m: re.Match[str]) -> None:
    s.emit("ping", conn=m[1] or m[2], direction="sent")


@rule(r"Sending a pong data frame \(session id: ([\w-]+)")
def _pong_sent(s: State, m: re.Match[str]) -> None:
    # We answer a server ping: the server's ping arrived.
    s.emit("ping", conn=m[1], direction="received")


@rule(r"Received \d+ (ping|pong) data frame \(session id: ([\w-]+)\)")
def _ping_pong_received(s: State, m: re.Match[str]) -> None:
    s.emit(m[1], conn=m[2], direction="received")


@rule(
    r"(?:Unable to send a ping message\. Closing the connection|Failed to send a ping message \(([\w-]+)\))"
)
def _ping_failed(s: State, m: re.Match[str]) -> None:
    conn = m[1] or _sid(s, m.string)
    s.emit("error", conn=conn, where="ping", error="ping failed")
    s.emit("close", conn=conn, by="network", reason="ping failed")


@rule(
    r"(?:on_error invoked|Failed to receive or enqueue a message|Failed to check the current session|Failed to check the state of sock|Failed to start or stop the current session)(.*)",
    re.S,
)
def _error(s: State, m: re.Match[str]) -> None:
    s.emit("error", conn=_sid(s, m.string), where="socket", error=m[0].splitlines()[0][:120])


@rule(r"Sending a request - url: (?:[A-Z]+ )?https?://[^/\s]+/api/([\w.]+)")
def _request(s: State, m: re.Match[str]) -> None:
    s.last_method = m[1]


@rule(r"Received the following response - status: (\d+), headers: (.*?), body: (.*)", re.S)
def _response(s: State, m: re.Match[str]) -> None:
    status = int(m[1])
    body = m[3]
    ok = bool(re.search(r"""['"]ok['"]: (?:True|true)""", body))
    retry = re.search(r"""(?i)['"]retry-after['"]: ['"]?(\d+)""", m[2])
    s.emit(
        "api_call",
        method=s.last_method,
        ok=ok,
        http_status=status,
        error=None if ok else (slack_error(body) or ("ratelimited" if status == 429 else None)),
        retry_after=float(retry[1]) if retry else None,
    )


@rule(r"Failed to send a request to Slack API server: (.*)", re.S)
def _request_failed(s: State, m: re.Match[str]) -> None:
    s.emit("error", where="web_api", error=m[1].splitlines()[0][:120])


@rule(r"(\S+) didn't call ack\(\)")
def _no_ack(s: State, m: re.Match[str]) -> None:
    # Bolt waited ack_timeout (3 s) for the listener: Slack has already given up on this envelope.
    s.emit("error", where="ack_timeout", error="listener did not call ack()", detail=m[1][:80])


@rule(r"Skipped self event")
def _self_skipped(s: State, m: re.Match[str]) -> None:
    s.emit("guard", guard="self-loop", action="skip")


@rule(r"Failed to authorize with the given token \((.*)\)", re.S)
def _authorize(s: State, m: re.Match[str]) -> None:
    s.api_error("auth.test", m[1])


@rule(r"Bolt app is running")
def _banner(s: State, m: re.Match[str]) -> None:
    # Logged once after the first connect only: its absence after a reconnect is normal (bolt-python #1529).
    return None


RULES: tuple[Rule, ...] = (
    _rate_limited,
    _wss_failed,
    _established,
    _abandoned,
    _disconnected,
    _close_event,
    _already_closed,
    _stale,
    _connect_failed,
    _establish_failed,
    _lost_ack,
    _send_retry,
    _sending,
    _aiohttp_frame,
    _frame,
    _loop_alive,
    _response_time,
    _enqueued,
    _dequeued,
    _processing,
    _listener_failed,
    _on_close,
    _closed,
    _ping_sent,
    _pong_sent,
    _ping_pong_received,
    _ping_failed,
    _error,
    _request,
    _response,
    _request_failed,
    _no_ack,
    _self_skipped,
    _authorize,
    _banner,
)
