"""Events API (HTTP mode) access logs — nginx/Apache combined or similar — with Slack's retry headers.

Each request is one delivery attempt: an ``envelope`` record (``retry_attempt`` from ``X-Slack-Retry-Num``,
``retry_reason`` from ``X-Slack-Retry-Reason``, header case and ``-``/``_`` spelling as proxies mangle them) and
an ``ack`` record (2xx = acknowledged; latency from ``request_time``/``rt=`` when the log format has it). Slack
retries after 3 s without waiting for the slow response (``http_timeout``), so a retry share here is the HTTP
twin of Socket Mode's ack timeouts (log-formats.md §3.6).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator

from slackops.diagnose.readers.base import Input, ParseStats
from slackops.diagnose.readers.prefix import Clock
from slackops.records import Record, make

NAME = "access-log"

_REQUEST = re.compile(r'"(?P<method>GET|POST|PUT|HEAD|OPTIONS) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')
_CLF_TIME = re.compile(r"\[(\d{2})/(\w{3})/(\d{4}):(\d{2}:\d{2}:\d{2}) ([+-]\d{2})(\d{2})\]")
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
_RETRY_NUM = re.compile(r"(?i)retry[-_]num[\"']?\s*[:=]\s*[\"']?(\d+)")
_RETRY_REASON = re.compile(r"(?i)retry[-_]reason[\"']?\s*[:=]\s*[\"']?([a-z_]+)")
_DURATION = re.compile(r"(?i)\b(?:rt|request_time|upstream_response_time|duration|elapsed)[=:]\s*\"?([\d.]+)")
_MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}


def sniff(line: bytes) -> bool:
    return bool(_REQUEST.search(line.decode("utf-8", "replace")))


def _time(line: str, clock: Clock) -> float | None:
    m = _CLF_TIME.search(line)
    if m:
        day, mon, year, hms, oh, om = m.groups()
        month = _MONTHS.get(mon)
        if month is None:
            return None
        return clock.iso(f"{year}-{month:02d}-{day} {hms}{oh}:{om}")
    m = _ISO_TIME.search(line)
    return clock.iso(m[0]) if m else None


def read(source: Input, stats: ParseStats, clock: Clock) -> Iterator[list[Record]]:
    """Records from an access log, in batches."""
    batch: list[Record] = []
    src = "log:" + NAME
    last_t = 0.0
    for raw in source.lines(stats):
        stats.lines += 1
        line = raw.decode("utf-8", "replace")
        if not line.strip():
            continue
        m = _REQUEST.search(line)
        if m is None:
            stats.bad(line, "no HTTP request line")
            continue
        if m["method"] != "POST":
            # Slack delivers events with POST; health checks and browsers are not deliveries.
            stats.ignored += 1
            continue
        t = _time(line, clock)
        if t is None:
            stats.untimed += 1
            t = last_t
        last_t = t
        status = int(m["status"])
        num = _RETRY_NUM.search(line)
        reason = _RETRY_REASON.search(line)
        duration = _DURATION.search(line)
        batch.append(
            make(
                "envelope",
                t=t,
                source=src,
                type="events_api",
                retry_attempt=int(num[1]) if num else 0,
                retry_reason=reason[1] if reason else None,
            )
        )
        ack_ms = None
        if duration:
            try:
                ack_ms = float(duration[1]) * 1000.0
            except ValueError:
                ack_ms = None
        batch.append(
            make(
                "ack",
                t=t,
                source=src,
                ok=200 <= status < 300,
                ack_ms=ack_ms,
                error=None if status < 300 else f"HTTP {status}",
            )
        )
        if len(batch) >= 5000:
            stats.records += len(batch)
            yield batch
            batch = []
    stats.records += len(batch)
    yield batch
