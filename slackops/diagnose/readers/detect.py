"""Format detection: which reader understands an input, judged from its first lines.

SQLite and gzip are recognised by magic bytes. For text, each dialect scores the sampled lines it recognises
(slackops records, application JSON with event_id, each SDK's message templates, HTTP request lines) and the
best score wins. ``--format`` skips detection.
"""

from __future__ import annotations

from collections.abc import Iterator

from slackops.diagnose.readers import access_log, app_json, java, node, python_sdk, slackops_jsonl, sqlite
from slackops.diagnose.readers.base import HEAD, Input, ParseStats
from slackops.diagnose.readers.prefix import Clock, split
from slackops.diagnose.readers.text import read as read_text
from slackops.diagnose.thresholds import Settings
from slackops.errors import UsageError
from slackops.records import Record

#: Every format, in the order they are tried (and listed in "no known format" messages).
FORMATS: tuple[str, ...] = (
    sqlite.NAME,
    slackops_jsonl.NAME,
    python_sdk.NAME,
    node.NAME,
    java.NAME,
    app_json.NAME,
    access_log.NAME,
)

ALIASES = {
    "sqlite": sqlite.NAME,
    "db": sqlite.NAME,
    "jsonl": slackops_jsonl.NAME,
    "slackops": slackops_jsonl.NAME,
    "python": python_sdk.NAME,
    "slack-sdk": python_sdk.NAME,
    "bolt-python": python_sdk.NAME,
    "bolt-js": node.NAME,
    "socket-mode-js": node.NAME,
    "js": node.NAME,
    "json": app_json.NAME,
    "access": access_log.NAME,
    "nginx": access_log.NAME,
}

_TEXT_RULES = {python_sdk.NAME: python_sdk.RULES, node.NAME: node.RULES, java.NAME: java.RULES}
_SAMPLE_LINES = 300


def canonical(fmt: str) -> str:
    """The format name for ``--format`` (accepting a few aliases); :class:`UsageError` for unknown ones."""
    name = ALIASES.get(fmt.lower(), fmt.lower())
    if name not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint="Known formats: " + ", ".join(FORMATS))
    return name


def detect(source: Input, settings: Settings) -> str | None:
    """The best format for ``source``, or ``None`` when no reader recognises any sampled line."""
    if source.is_sqlite:
        return sqlite.NAME
    lines = [ln for ln in source.head.split(b"\n")[:_SAMPLE_LINES] if ln.strip()]
    if len(source.head) >= HEAD and len(lines) > 1 and not source.head.endswith(b"\n"):
        lines.pop()  # the last line of the head is cut mid-way
    fields = app_json.Fields(settings.fields)
    clock = Clock(settings.utc_offset_s)
    scores = dict.fromkeys(FORMATS, 0)
    for raw in lines:
        if raw.lstrip().startswith(b"{"):
            if slackops_jsonl.sniff(raw):
                scores[slackops_jsonl.NAME] += 1
                continue
            if app_json.sniff(raw, fields):
                scores[app_json.NAME] += 1
                continue
        if access_log.sniff(raw):
            scores[access_log.NAME] += 1
            continue
        text = raw.decode("utf-8", "replace")
        header = split(text, clock)
        message = header.message if header else text
        name = (header.name or "") if header else ""
        for dialect, rules in _TEXT_RULES.items():
            if any(r.pattern.search(message) for r in rules):
                scores[dialect] += 2
        if name.startswith(("slack_sdk", "slack_bolt")):
            scores[python_sdk.NAME] += 1
        elif name.startswith(("socket-mode:", "web-api:", "bolt-app")):
            scores[node.NAME] += 1
        elif "SocketModeClient" in name and header and header.level:
            scores[java.NAME] += 1
    best = max(FORMATS, key=lambda f: scores[f])
    return best if scores[best] > 0 else None


def reader(
    fmt: str, source: Input, stats: ParseStats, settings: Settings, since: float | None, until: float | None
) -> Iterator[list[Record]]:
    """Batches of records from ``source`` read as ``fmt``."""
    clock = Clock(settings.utc_offset_s)
    if fmt == sqlite.NAME:
        source.close()
        return sqlite.read(source.path, stats, since, until)
    if fmt == slackops_jsonl.NAME:
        return slackops_jsonl.read(source, stats)
    if fmt == app_json.NAME:
        return app_json.read(source, stats, app_json.Fields(settings.fields), clock)
    if fmt == access_log.NAME:
        return access_log.read(source, stats, clock)
    return read_text(source, stats, _TEXT_RULES[fmt], fmt, clock)
