"""Redaction: the one function every writer, logger and renderer passes text through.

Tokens (``xapp-``, ``xoxb-``, ``xoxp-`` and the other Slack token families), WSS tickets and bearer headers
never reach a log line, the SQLite store, a JSONL file, a snapshot or test output. Message text is dropped from
records unless the user opted in (``--record-text``).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

from slackops.records import Record

# Slack token families: app-level (xapp), bot (xoxb), user (xoxp), legacy workspace (xoxa), refresh (xoxe),
# session (xoxs/xoxc/xoxd). Token bodies use letters, digits and dashes. No word boundary on the left: a token in
# a URL-encoded query ("token%3Dxoxb-...") or glued to an identifier must still be caught; over-redacting a
# word that happens to contain "xoxb-" is the safe failure.
_TOKEN_RE = re.compile(r"(xapp|xox[abpecsrd])-[A-Za-z0-9][A-Za-z0-9-]*")
# The single-use ticket in a Socket Mode URL (``wss://.../link/?ticket=<uuid>&app_id=...``).
_TICKET_RE = re.compile(r"(ticket=)[^&\s\"']+")
_BEARER_RE = re.compile(r"(Bearer\s+)[^\s\"',]+", re.IGNORECASE)
# Cheap pre-check: could any of the three patterns above match?
_ANY_RE = re.compile(r"xapp-|xox[abpecsrd]-|ticket=|bearer\s", re.IGNORECASE)

REDACTED = "[redacted]"


def redact_text(text: str) -> str:
    """Replace tokens, WSS tickets and bearer credentials in ``text``.

    >>> redact_text("Authorization: Bearer xapp-1-A1-123-abc ticket=ab12&app_id=9")
    'Authorization: Bearer [redacted] ticket=[redacted]&app_id=9'
    """
    if not text or not _ANY_RE.search(text):
        return text  # the common case, one scan instead of three substitutions
    text = _BEARER_RE.sub(lambda m: m.group(1) + REDACTED, text)
    # Keep the family prefix: "xoxb-[redacted]" still tells the reader which kind of token was there.
    text = _TOKEN_RE.sub(lambda m: f"{m.group(1)}-{REDACTED}", text)
    return _TICKET_RE.sub(lambda m: m.group(1) + REDACTED, text)


def url_host(url: str) -> str:
    """The host (and port) of a URL: what records keep of a WSS link, never its ticket."""
    try:
        parts = urlsplit(url if "//" in url else "//" + url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return REDACTED
    if not host:
        return REDACTED
    # Never netloc: it carries "user:password@" when a URL embeds credentials.
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port is not None else host


def redact_value(value: Any) -> Any:
    """Redact strings anywhere inside a JSON-like value."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    return value


def redact_record(rec: Record, *, record_text: bool = False) -> Record:
    """The record as it may be stored: ``text`` dropped unless opted in, tokens scrubbed from every string."""
    out: Record = {}
    for name, value in rec.items():
        if name == "text" and not record_text:
            continue
        # Every string, however short ("xoxb-1" is a token too), and strings nested in unknown fields.
        out[name] = redact_value(value)
    return out


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message of every record passing through it.

    Install it on handlers that may see slack-sdk's DEBUG output, which includes raw frames and URLs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
