"""Strip the prefixes real deployments put in front of SDK log messages; recover time, level and logger.

Readers match on the *message* text (log-formats.md: "match on message text, not logger name"), so this module
peels every wrapper seen in the wild, outermost first: container JSON (``{"log": ..., "time": ...}``), an RFC 3339
stamp from ``kubectl logs --timestamps`` / ``docker logs -t`` / Heroku, a journald/syslog header, a celery
worker bracket, and then the logging layout itself (Python ``basicConfig`` and custom ``asctime`` layouts, loguru,
Node ``@slack/logger``, Java Spring Boot and custom layouts, Rust ``tracing``).

A line with none of these is not a new log record: :func:`split` returns ``None`` and the reader joins it to
the previous record (tracebacks, Bolt's ``[Suggestion]`` block, handshake dumps).
"""

from __future__ import annotations

import calendar
import datetime as _dt
import re
from typing import NamedTuple

import orjson

_LEVEL = r"(?P<level>TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|CRITICAL|FATAL|SEVERE)"
_TS = r"(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?)"

# Outer wrappers (each may be followed by an inner layout).
_RFC3339 = re.compile(
    r"^(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2}))\s+"
    r"(?:(?:stdout|stderr) [FP] |app\[[^\]]+\]:\s*|[\w.-]+\[[^\]]+\]:\s*)?"
)
_SYSLOG = re.compile(
    r"^(?P<mon>[A-Z][a-z]{2}) (?P<day>[ \d]\d) (?P<hms>\d{2}:\d{2}:\d{2}) \S+ [^\s:\[]+(?:\[\d+\])?: "
)
_CELERY = re.compile(r"^\[" + _TS + r": " + _LEVEL + r"/(?P<name>[^\]]+)\]\s?")

# Logging layouts, tried in order; each yields ts?, level?, name?, and the message (rest of the line).
_LAYOUTS: tuple[re.Pattern[str], ...] = (
    # loguru: 2022-02-17 03:38:43.518 | ERROR    | slack_sdk.socket_mode.builtin.connection:connect:172 - msg
    re.compile(r"^" + _TS + r" \| " + _LEVEL + r"\s*\| (?P<name>[^\s:]+)(?::\S+)? - "),
    # Java Spring Boot: 2021-09-29 13:49:13.733  INFO 7 --- [tReadThread-550] c.s.api...SocketModeClient     : msg
    re.compile(r"^" + _TS + r"\s+" + _LEVEL + r" \d+ --- \[[^\]]*\] (?P<name>\S+)\s*: "),
    # Java custom: [Grizzly(2)] 2023-12-24 01:47:08 [INFO ] [SocketModeClient:232] - msg
    re.compile(r"^\[[^\]]*\] " + _TS + r" \[" + _LEVEL + r"\s*\] \[(?P<name>[^\]]+)\] - "),
    # Python %(asctime)s:%(name)s:%(module)s:%(levelname)s:
    re.compile(r"^" + _TS + r":(?P<name>[\w.]+):\w+:" + _LEVEL + r":"),
    # Python %(asctime)s - %(name)s - %(levelname)s -
    re.compile(r"^" + _TS + r" - (?P<name>[\w.]+) - " + _LEVEL + r" - "),
    # Python %(asctime)s %(levelname)s:%(name)s:
    re.compile(r"^" + _TS + r" " + _LEVEL + r":(?P<name>[\w.]+):"),
    # Python %(asctime)s %(levelname)s %(name)s:  and Rust tracing (TS LEVEL target: msg)
    re.compile(r"^" + _TS + r"\s+" + _LEVEL + r"\s+(?P<name>[\w.:-]+?):\s"),
    # Python basicConfig default: LEVEL:name:msg
    re.compile(r"^" + _LEVEL + r":(?P<name>[\w.]+):"),
    # What is left of Rust tracing / Python layouts once a kubectl or docker stamp was peeled: LEVEL target: msg
    re.compile(r"^" + _LEVEL + r"\s+(?P<name>[\w.:-]+?):\s"),
    # Node @slack/logger ConsoleLogger: [LEVEL]  socket-mode:SlackWebSocket:17 msg
    re.compile(r"^\[" + _LEVEL + r"\]\s+(?P<name>[\w@/.-]+(?::[\w.-]+)*:\d+) "),
    re.compile(r"^\[" + _LEVEL + r"\]\s+"),
    # Anything else that starts with a timestamp, optionally a level: TS [LEVEL] msg
    re.compile(r"^\[?" + _TS + r"\]?\s+(?:\[?" + _LEVEL + r"\]?\s*[:-]?\s+)?"),
)

_MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}


class Header(NamedTuple):
    """What a line's prefix says: time (epoch, or ``None``), level, logger name, and the message."""

    t: float | None
    level: str | None
    name: str | None
    message: str


class Clock:
    """Turns the many timestamp spellings into epoch seconds, with a per-second cache (logs repeat seconds)."""

    def __init__(self, utc_offset_s: float = 0.0, year: int | None = None) -> None:
        self.utc_offset_s = utc_offset_s
        self.year = year or _dt.datetime.now(_dt.UTC).year
        self._cache: dict[str, float] = {}

    def iso(self, ts: str) -> float | None:
        """``2024-02-15 14:32:20,957`` / ``...T...Z`` / ``...+02:00`` -> epoch seconds; naive means ``utc_offset``."""
        base = ts[:19]
        rest = ts[19:]
        frac = 0.0
        tz = ""
        if rest[:1] in (".", ",", ":"):
            digits = rest[1:]
            n = 0
            while n < len(digits) and digits[n].isdigit():
                n += 1
            if n:
                frac = int(digits[:n]) / 10**n
            tz = digits[n:]
        else:
            tz = rest
        key = base + tz
        epoch = self._cache.get(key)
        if epoch is None:
            try:
                dt = _dt.datetime.fromisoformat(base.replace(" ", "T"))
            except ValueError:
                return None
            if tz in ("Z", "z"):
                offset = 0.0
            elif tz:
                sign = -1 if tz[0] == "-" else 1
                digits = tz[1:].replace(":", "")
                offset = sign * (int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60)
            else:
                offset = self.utc_offset_s
            epoch = dt.replace(tzinfo=_dt.UTC).timestamp() - offset
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = epoch
            self.year = dt.year
        return epoch + frac

    def syslog(self, mon: str, day: str, hms: str) -> float | None:
        """``Aug 08 10:49:35`` carries no year: take the year of the last full timestamp seen (or this year)."""
        month = _MONTHS.get(mon)
        if month is None:
            return None
        return self.iso(f"{self.year:04d}-{month:02d}-{int(day):02d} {hms}")


def unwrap_json(line: str) -> tuple[str, str | None] | None:
    """A container runtime's JSON wrapper (``{"log": "...", "time": "..."}``): the inner text and time."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    for key in ("log", "message", "msg", "MESSAGE", "textPayload"):
        inner = obj.get(key)
        if isinstance(inner, str):
            ts = obj.get("time") or obj.get("timestamp") or obj.get("@timestamp") or obj.get("ts")
            return inner.rstrip("\r\n"), ts if isinstance(ts, str) else None
    return None


def split(line: str, clock: Clock) -> Header | None:
    """Peel the prefixes off ``line``. ``None`` means the line starts no record (a continuation line)."""
    outer_t: float | None = None
    outer = False
    if line.startswith("{"):
        wrapped = unwrap_json(line)
        if wrapped is not None:
            line, ts = wrapped
            outer = True
            if ts:
                outer_t = clock.iso(ts)
    m = _RFC3339.match(line)
    if m:
        outer_t = clock.iso(m["ts"])
        outer = True
        line = line[m.end() :]
    else:
        m = _SYSLOG.match(line)
        if m:
            outer_t = clock.syslog(m["mon"], m["day"], m["hms"])
            outer = True
            line = line[m.end() :]
    m = _CELERY.match(line)
    if m:
        return Header(clock.iso(m["ts"]), _norm(m["level"]), m["name"], line[m.end() :])
    for pattern in _LAYOUTS:
        m = pattern.match(line)
        if m:
            groups = m.groupdict()
            ts = groups.get("ts")
            # The outer (container / kubectl) stamp carries a zone; an inner naive asctime may not.
            t = outer_t if outer_t is not None else (clock.iso(ts) if ts else None)
            return Header(t, _norm(groups.get("level")), groups.get("name"), line[m.end() :])
    if outer:
        return Header(outer_t, None, None, line)
    return None


def _norm(level: str | None) -> str | None:
    if level is None:
        return None
    return {"WARN": "WARNING", "FATAL": "CRITICAL", "SEVERE": "ERROR"}.get(level, level)
