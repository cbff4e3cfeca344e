"""The machinery shared by the SDK log readers: line joining, rule matching, frame parsing, pairing.

A dialect is a list of :class:`Rule` (a message regex and a function that emits records). The reader peels the
prefix of each line (:mod:`.prefix`), joins continuation lines to the record they belong to, and tries the
dialect's rules on the message. Pairing state (envelope received -> ack sent, processing started -> completed)
lives in :class:`State`, bounded so a log that never acks cannot grow it without limit.
"""

from __future__ import annotations

import ast
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from slackops.diagnose.readers.base import Input, ParseStats
from slackops.diagnose.readers.prefix import Clock, Header, split
from slackops.records import Record, make

#: Pairing tables keep at most this many open entries (oldest dropped first).
PENDING_MAX = 50_000
#: Joined continuation text is capped: a multi-megabyte handshake dump is not evidence.
JOIN_MAX = 64 * 1024


class State:
    """Per-input parsing state: the records being emitted and the pairing tables."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.out: list[Record] = []
        self.t = 0.0
        self.conn: str | None = None
        self.level: str | None = None
        self.name: str | None = None
        #: envelope_id -> (time received, conn)
        self.received: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
        #: envelope_id -> time processing started
        self.started: OrderedDict[str, float] = OrderedDict()
        self.last_method: str | None = None
        self.last_disconnect_t = -1e18
        #: messages seen so far (lines joined with their continuations count once)
        self.seq = 0
        self.extra: dict[str, Any] = {}

    def emit(self, kind: str, conn: str | None = None, **fields: Any) -> None:
        self.out.append(make(kind, t=self.t, source=self.source, conn=conn or self.conn, **fields))

    def remember(self, table: OrderedDict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        if len(table) > PENDING_MAX:
            table.popitem(last=False)

    # -- shared emitters -------------------------------------------------------------------------------------

    def frame(self, text: str, conn: str | None = None) -> bool:
        """Records from a Socket Mode frame logged as JSON (or a Python dict repr); True if it was one."""
        obj = parse_object(text)
        if obj is None:
            return False
        conn = conn or self.conn
        typ = obj.get("type")
        if typ == "hello":
            info = obj.get("debug_info") or {}
            self.emit(
                "hello",
                conn=conn,
                num_connections=_int(obj.get("num_connections")),
                host=_str(info.get("host")),
                build_number=_int(info.get("build_number")),
                approximate_connection_time=_int(info.get("approximate_connection_time")),
            )
        elif typ == "disconnect":
            self.last_disconnect_t = self.t
            self.emit(
                "disconnect",
                conn=conn,
                reason=_str(obj.get("reason")),
                host=_str((obj.get("debug_info") or {}).get("host")),
            )
        elif "envelope_id" in obj and typ is not None:
            self.emit("envelope", conn=conn, **envelope_fields(obj, len(text)))
            self.remember(self.received, str(obj["envelope_id"]), (self.t, conn))
        elif "envelope_id" in obj:
            # {"envelope_id": ..., "payload": ...} without a type is the ack the app sends back.
            self.ack(str(obj["envelope_id"]), conn)
        else:
            return False
        return True

    def ack(
        self, envelope_id: str | None, conn: str | None = None, ok: bool = True, error: str | None = None
    ) -> None:
        """An ack sent; its latency is the time since the envelope was logged as received (queue wait included)."""
        ack_ms = None
        if envelope_id is not None:
            got = self.received.pop(envelope_id, None)
            if got is not None:
                ack_ms = max(0.0, (self.t - got[0]) * 1000.0)
        self.emit(
            "ack",
            conn=conn,
            envelope_id=envelope_id,
            ack_ms=ack_ms,
            ok=ok,
            error=error,
            ack_conn=conn or self.conn,
        )

    def process(self, phase: str, envelope_id: str | None = None, error: str | None = None) -> None:
        duration = None
        if envelope_id is not None:
            if phase == "start":
                self.remember(self.started, envelope_id, self.t)
            else:
                began = self.started.pop(envelope_id, None)
                if began is not None:
                    duration = (self.t - began) * 1000.0
        self.emit("process", envelope_id=envelope_id, phase=phase, duration_ms=duration, error=error)

    def api_error(
        self, method: str | None, text: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        error = slack_error(text)
        if status is None and error == "ratelimited":
            status = 429
        self.emit(
            "api_call",
            method=method,
            ok=False,
            error=error or text[:80],
            http_status=status,
            retry_after=retry_after,
        )


Handler = Callable[[State, re.Match[str]], None]


@dataclass(frozen=True)
class Rule:
    """A message pattern and what it means."""

    pattern: re.Pattern[str]
    handle: Handler


def rule(pattern: str, flags: int = 0) -> Callable[[Handler], Rule]:
    def wrap(fn: Handler) -> Rule:
        return Rule(re.compile(pattern, flags), fn)

    return wrap


_SLACK_ERRORS = re.compile(
    r"\b(invalid_auth|not_allowed_token_type|missing_scope|not_authed|account_inactive|token_revoked|token_expired"
    r"|link_disabled|ratelimited|rate_limited|team_disabled|internal_error|fatal_error|service_unavailable)\b"
)


def slack_error(text: str) -> str | None:
    """The Slack error code mentioned in ``text`` (``invalid_auth``, ``ratelimited`` …), if any."""
    m = _SLACK_ERRORS.search(text)
    if m is None:
        return None
    return "ratelimited" if m.group(1) == "rate_limited" else m.group(1)


def parse_object(text: str) -> dict[str, Any] | None:
    """The first ``{...}`` in ``text`` as a dict: JSON, or a Python dict repr (slack-sdk logs both)."""
    start = text.find("{")
    end = text.rfind("}")
    if start < 0 or end <= start:
        return None
    body = text[start : end + 1]
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        if len(body) > 256 * 1024:
            return None
        try:
            obj = ast.literal_eval(body)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            return None
    return obj if isinstance(obj, dict) else None


def envelope_fields(obj: dict[str, Any], size: int) -> dict[str, Any]:
    """The record fields of a Socket Mode envelope frame (events_api, interactive, slash_commands …)."""
    payload = obj.get("payload") if isinstance(obj.get("payload"), dict) else {}
    event = payload.get("event") if isinstance(payload.get("event"), dict) else {}
    channel = event.get("channel") or payload.get("channel_id")
    if isinstance(channel, dict):
        channel = channel.get("id")
    if channel is None and isinstance(payload.get("channel"), dict):
        channel = payload["channel"].get("id")
    user = event.get("user") or payload.get("user_id")
    if user is None and isinstance(payload.get("user"), dict):
        user = payload["user"].get("id")
    return {
        "envelope_id": _str(obj.get("envelope_id")),
        "type": _str(obj.get("type")),
        "event_id": _str(payload.get("event_id")),
        "event_type": _str(event.get("type")),
        "subtype": _str(event.get("subtype")),
        "channel": _str(channel),
        "user": _str(user),
        "bot_id": _str(event.get("bot_id")),
        "ts": _str(event.get("ts")),
        "event_ts": _str(event.get("event_ts")),
        "thread_ts": _str(event.get("thread_ts")),
        "retry_attempt": _int(obj.get("retry_attempt")),
        "retry_reason": _str(obj.get("retry_reason")),
        "accepts_response_payload": obj.get("accepts_response_payload")
        if isinstance(obj.get("accepts_response_payload"), bool)
        else None,
        "bytes": size,
    }


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.isdigit():
        return int(v)
    return None


# -- the line loop ---------------------------------------------------------------------------------------------


def _is_continuation(line: str) -> bool:
    return (
        line[:1] in (" ", "\t")
        or line.startswith(
            ("Traceback (most recent call last)", "[Suggestion]", "During handling", "The above exception")
        )
        or bool(_EXC_LINE.match(line))
    )


_EXC_LINE = re.compile(r"^[\w.]+(?:Error|Exception|Exit|Interrupt)\b")


def read(
    source: Input,
    stats: ParseStats,
    rules: Sequence[Rule],
    name: str,
    clock: Clock,
    state: State | None = None,
) -> Iterator[list[Record]]:
    """Records from a text log, in batches. Continuation lines are joined to the record they follow."""
    state = state or State(f"log:{name}")
    pending: Header | None = None
    parts: list[str] = []
    joined = 0
    batch_lines = 0
    seen_header = False

    def flush() -> None:
        if pending is None:
            return
        message = pending.message if not parts else pending.message + "\n" + "\n".join(parts)
        if pending.t is not None:
            state.t = pending.t
        else:
            stats.untimed += 1
        state.level, state.name = pending.level, pending.name
        state.seq += 1
        for r in rules:
            m = r.pattern.search(message)
            if m:
                before = len(state.out)
                r.handle(state, m)
                if len(state.out) == before:
                    stats.ignored += 1
                return
        stats.ignored += 1

    for raw in source.lines(stats):
        stats.lines += 1
        batch_lines += 1
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if not line.strip():
            continue
        if "\x00" in line or ("\ufffd" in line and not _mostly_text(line)):
            stats.bad(line, "binary data")
            continue
        header = split(line, clock)
        continuation = header is None and (
            (seen_header and not _looks_standalone(line)) or _is_continuation(line)
        )
        if continuation and pending is not None:
            if joined < JOIN_MAX:
                parts.append(line)
                joined += len(line)
            continue
        if header is None:
            # A bare message with no prefix at all (print() output, e.g. Bolt's "Bolt app is running!").
            header = Header(None, None, None, line)
        else:
            seen_header = True
        flush()
        pending, parts, joined = header, [], 0
        if batch_lines >= 2000 and state.out:
            stats.records += len(state.out)
            yield state.out
            state.out = []
            batch_lines = 0
    flush()
    if state.out:
        stats.records += len(state.out)
        yield state.out
        state.out = []


def _looks_standalone(line: str) -> bool:
    # Unprefixed lines that are still records of their own in a prefixed log: Bolt prints its banner with print().
    return "Bolt app is running" in line


def _mostly_text(line: str) -> bool:
    bad = sum(1 for ch in line if ch == "\ufffd" or (not ch.isprintable() and ch != "\t"))
    return bad * 10 < len(line)
