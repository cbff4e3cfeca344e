"""Socket Mode frames: parse what Slack sends, build what a client sends back.

Every application frame on a Socket Mode WebSocket is a TEXT frame holding one JSON object. The server sends
``hello`` first, ``disconnect`` before it retires a socket, and *envelopes* (``events_api``, ``slash_commands``,
``interactive``) carrying the payloads an app handles; the client answers each envelope with an ack
``{"envelope_id": ...}`` within 3 seconds. Keepalive uses WebSocket control frames, not JSON.

:func:`parse_frame` never raises: anything malformed (binary data, bad JSON, a JSON array, an envelope without
an ``envelope_id``) comes back as a :class:`FrameError` so a receive loop can record it and keep reading, the way
``@slack/socket-mode`` ignores frames it cannot parse instead of dropping the connection.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import orjson

#: Envelope types Slack documents. Anything else is kept as :class:`UnknownFrame`.
ENVELOPE_TYPES = frozenset({"events_api", "slash_commands", "interactive"})


class DisconnectReason(enum.StrEnum):
    """The ``reason`` values of a ``disconnect`` frame seen in Slack's docs and SDKs."""

    #: sent ~10 s before ``refresh_requested`` (optional; Slack may skip it)
    WARNING = "warning"
    #: routine refresh, about every 5 hours (360 s with ``debug_reconnects=true``)
    REFRESH_REQUESTED = "refresh_requested"
    #: Socket Mode was turned off in the app settings: reconnecting will not help
    LINK_DISABLED = "link_disabled"
    #: the app exceeded 10 concurrent connections; sent instead of ``hello`` to the rejected socket
    TOO_MANY_WEBSOCKETS = "too_many_websockets"


@dataclass(frozen=True, slots=True)
class Hello:
    """The first frame on a new socket. ``num_connections`` includes this one and any ghost registrations."""

    num_connections: int | None
    host: str | None
    build_number: int | None
    #: seconds until Slack expects to refresh this socket (18060 in production)
    approximate_connection_time: int | None
    app_id: str | None
    started: str | None = None


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Slack is about to retire this socket (or refuses it). Unknown reasons are kept verbatim."""

    reason: str
    host: str | None = None
    num_connections: int | None = None

    @property
    def known(self) -> bool:
        return self.reason in DisconnectReason.__members__.values()

    @property
    def is_refresh(self) -> bool:
        """A routine refresh: open a replacement socket before this one goes away."""
        return self.reason in (DisconnectReason.WARNING, DisconnectReason.REFRESH_REQUESTED)

    @property
    def is_fatal(self) -> bool:
        """Reconnecting cannot succeed until a person changes the app's settings."""
        return self.reason == DisconnectReason.LINK_DISABLED


@dataclass(frozen=True, slots=True)
class EventInfo:
    """The routing facts of an envelope's payload: ids, types and places, never the message text.

    For ``events_api`` these come from ``payload.event``; for interactive and slash envelopes from the payload's
    own ``user`` / ``channel`` fields. Missing facts are ``None``.
    """

    event_id: str | None = None
    event_type: str | None = None
    subtype: str | None = None
    channel: str | None = None
    user: str | None = None
    bot_id: str | None = None
    ts: str | None = None
    event_ts: str | None = None
    thread_ts: str | None = None
    #: for ``message_changed``: did the edit change the text? (``None`` when not an edit)
    text_changed: bool | None = None


@dataclass(frozen=True, slots=True)
class Envelope:
    """One delivery attempt of a payload. Ack it by ``envelope_id`` within 3 s.

    Deduplicate on :attr:`dedup_key` (``payload.event_id``), not on ``envelope_id``: ``envelope_id`` may change
    between retries of the same event, ``event_id`` does not.
    """

    envelope_id: str
    type: str
    payload: dict[str, Any] = field(repr=False)
    accepts_response_payload: bool = False
    #: 0 on the first delivery; 1..3 on Slack's retries (events_api only)
    retry_attempt: int = 0
    retry_reason: str = ""
    event: EventInfo = field(default_factory=EventInfo)
    #: size of the frame in bytes (UTF-8)
    size: int = 0

    @property
    def dedup_key(self) -> str:
        """``event_id`` for events; ``envelope_id`` for slash/interactive envelopes, which are never retried."""
        return self.event.event_id or self.envelope_id

    @property
    def is_retry(self) -> bool:
        return self.retry_attempt > 0

    def record_fields(self) -> dict[str, Any]:
        """The ``envelope`` record fields (see :mod:`slackops.records`) for this envelope, without text."""
        ev = self.event
        return {
            "envelope_id": self.envelope_id,
            "type": self.type,
            "event_id": ev.event_id,
            "event_type": ev.event_type,
            "subtype": ev.subtype,
            "channel": ev.channel,
            "user": ev.user,
            "bot_id": ev.bot_id,
            "ts": ev.ts,
            "event_ts": ev.event_ts,
            "thread_ts": ev.thread_ts,
            "retry_attempt": self.retry_attempt,
            "retry_reason": self.retry_reason or None,
            "accepts_response_payload": self.accepts_response_payload,
            "bytes": self.size,
            "text_changed": ev.text_changed,
        }


@dataclass(frozen=True, slots=True)
class UnknownFrame:
    """A well-formed JSON object of a type we do not know. Node's client forwards these; we keep them."""

    type: str | None
    data: dict[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class FrameError:
    """A frame that could not be understood. ``problem`` is a short machine tag, ``detail`` says more."""

    #: ``binary`` | ``not_json`` | ``not_object`` | ``bad_envelope``
    problem: str
    detail: str
    size: int = 0


Frame = Hello | Disconnect | Envelope | UnknownFrame | FrameError


def parse_frame(data: str | bytes) -> Frame:
    """Parse one frame received from Slack. Never raises.

    ``bytes`` means a BINARY WebSocket frame: Slack never sends those, so it is reported, not decoded.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        return FrameError("binary", "Slack sends TEXT frames only; got a BINARY frame", len(data))
    size = len(data.encode("utf-8", "surrogatepass")) if not data.isascii() else len(data)
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return FrameError("not_json", f"frame is not JSON ({exc})", size)
    if not isinstance(obj, dict):
        return FrameError("not_object", f"frame is a JSON {type(obj).__name__}, not an object", size)
    kind = obj.get("type")
    if kind == "hello":
        return _hello(obj)
    if kind == "disconnect":
        debug = obj.get("debug_info")
        return Disconnect(
            reason=_str(obj.get("reason")) or "",
            host=_str(debug.get("host")) if isinstance(debug, dict) else None,
            num_connections=_int(obj.get("num_connections")),
        )
    if kind in ENVELOPE_TYPES:
        return _envelope(obj, kind, size)
    return UnknownFrame(kind if isinstance(kind, str) else None, obj)


def _hello(obj: dict[str, Any]) -> Hello:
    debug = obj.get("debug_info") if isinstance(obj.get("debug_info"), dict) else {}
    info = obj.get("connection_info") if isinstance(obj.get("connection_info"), dict) else {}
    return Hello(
        num_connections=_int(obj.get("num_connections")),
        host=_str(debug.get("host")),
        build_number=_int(debug.get("build_number")),
        approximate_connection_time=_int(debug.get("approximate_connection_time")),
        app_id=_str(info.get("app_id")),
        started=_str(debug.get("started")),
    )


def _envelope(obj: dict[str, Any], kind: str, size: int) -> Envelope | FrameError:
    envelope_id = obj.get("envelope_id")
    if not isinstance(envelope_id, str) or not envelope_id:
        return FrameError("bad_envelope", f"{kind} envelope without an envelope_id: cannot be acked", size)
    payload = obj.get("payload")
    if not isinstance(payload, dict):
        return FrameError("bad_envelope", f"{kind} envelope {envelope_id} has no payload object", size)
    retry_attempt = _int(obj.get("retry_attempt")) or 0
    return Envelope(
        envelope_id=envelope_id,
        type=kind,
        payload=payload,
        accepts_response_payload=obj.get("accepts_response_payload") is True,
        retry_attempt=retry_attempt,
        retry_reason=_str(obj.get("retry_reason")) or "",
        event=event_info(kind, payload),
        size=size,
    )


def event_info(kind: str, payload: dict[str, Any]) -> EventInfo:
    """Extract :class:`EventInfo` from an envelope payload of type ``kind``."""
    if kind == "events_api":
        event = payload.get("event") if isinstance(payload.get("event"), dict) else {}
        message = event.get("message") if isinstance(event.get("message"), dict) else None
        subtype = _str(event.get("subtype"))
        text_changed = None
        if subtype == "message_changed" and message is not None:
            previous = event.get("previous_message")
            if isinstance(previous, dict):
                text_changed = message.get("text") != previous.get("text")
        # Edits carry the edited message nested; its user/ts/thread_ts are what a reply is about.
        inner = message if message is not None else event
        item = event.get("item") if isinstance(event.get("item"), dict) else {}
        return EventInfo(
            event_id=_str(payload.get("event_id")),
            # app_rate_limited arrives with no inner event: its payload type is the event type.
            event_type=_str(event.get("type")) or _str(payload.get("type")),
            subtype=subtype,
            # reaction_added and friends name the channel under item.
            channel=_str(event.get("channel")) or _str(item.get("channel")),
            user=_str(inner.get("user")) or _str(event.get("user")),
            bot_id=_str(inner.get("bot_id")) or _str(event.get("bot_id")),
            ts=_str(inner.get("ts")) or _str(event.get("ts")),
            event_ts=_str(event.get("event_ts")),
            thread_ts=_str(inner.get("thread_ts")),
            text_changed=text_changed,
        )
    if kind == "slash_commands":
        return EventInfo(
            event_type=_str(payload.get("command")),
            channel=_str(payload.get("channel_id")),
            user=_str(payload.get("user_id")),
        )
    # interactive: block_actions, view_submission, shortcut, message_action, block_suggestion ...
    user = payload.get("user")
    channel = payload.get("channel")
    container = payload.get("container") if isinstance(payload.get("container"), dict) else {}
    message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
    return EventInfo(
        event_type=_str(payload.get("type")),
        channel=_str(channel.get("id")) if isinstance(channel, dict) else _str(container.get("channel_id")),
        user=_str(user.get("id")) if isinstance(user, dict) else _str(payload.get("user_id")),
        ts=_str(message.get("ts")) or _str(container.get("message_ts")),
        thread_ts=_str(message.get("thread_ts")),
        event_ts=_str(payload.get("action_ts")),
    )


def build_ack(envelope_id: str, payload: dict[str, Any] | str | None = None) -> str:
    """The ack frame for ``envelope_id``: ``{"envelope_id": ...}``, with ``payload`` when one is given.

    A string payload becomes ``{"text": ...}``, as slack-sdk and Bolt do. Only envelopes with
    ``accepts_response_payload`` use the payload (slash command replies, ``view_submission`` response actions,
    ``block_suggestion`` options); Slack ignores it otherwise.
    """
    frame: dict[str, Any] = {"envelope_id": envelope_id}
    if isinstance(payload, str):
        frame["payload"] = {"text": payload}
    elif payload is not None:
        frame["payload"] = payload
    return orjson.dumps(frame).decode()


def message_text(event: dict[str, Any]) -> str:
    """The full visible text of a message event: ``text``, then text inside ``blocks`` and ``attachments``.

    Messages posted by apps often carry an empty or fallback ``text`` with the real content in blocks; handlers
    that read only ``text`` answer the wrong question.
    """
    parts: list[str] = []
    text = event.get("text")
    if isinstance(text, str) and text:
        parts.append(text)
    seen = set(parts)
    for chunk in _block_texts(event.get("blocks")):
        if chunk not in seen:
            parts.append(chunk)
            seen.add(chunk)
    attachments = event.get("attachments")
    if isinstance(attachments, list):
        for att in attachments:
            if not isinstance(att, dict):
                continue
            for key in ("pretext", "title", "text", "fallback"):
                value = att.get(key)
                if isinstance(value, str) and value and value not in seen:
                    parts.append(value)
                    seen.add(value)
                    if key == "text":
                        break
            for chunk in _block_texts(att.get("blocks")):
                if chunk not in seen:
                    parts.append(chunk)
                    seen.add(chunk)
    return "\n".join(parts)


_RICH_RUN_CONTAINERS = frozenset({"rich_text_section", "rich_text_quote", "rich_text_preformatted"})


def _block_texts(node: Any, depth: int = 0) -> list[str]:
    """The ``text`` strings inside Block Kit structures (section, context, rich_text ...), in order."""
    if depth > 32:  # Block Kit nests a few levels; anything deeper is hostile input.
        return []
    out: list[str] = []
    if isinstance(node, list):
        for item in node:
            out.extend(_block_texts(item, depth + 1))
    elif isinstance(node, dict):
        if node.get("type") in _RICH_RUN_CONTAINERS and isinstance(node.get("elements"), list):
            # rich_text splits one line into styled runs; they read as one string.
            line = "".join(_rich_run(el) for el in node["elements"] if isinstance(el, dict))
            return [line] if line else []
        value = node.get("text")
        if isinstance(value, str):
            if value:
                out.append(value)
        elif value is not None:
            out.extend(_block_texts(value, depth + 1))
        for key in ("fields", "elements", "blocks"):
            if key in node:
                out.extend(_block_texts(node[key], depth + 1))
    return out


def _rich_run(el: dict[str, Any]) -> str:
    kind = el.get("type")
    if kind == "user":
        return f"<@{el.get('user_id', '')}>"
    if kind == "channel":
        return f"<#{el.get('channel_id', '')}>"
    if kind == "emoji":
        return f":{el.get('name', '')}:"
    if kind == "link":
        return str(el.get("text") or el.get("url") or "")
    text = el.get("text")
    return text if isinstance(text, str) else ""


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
