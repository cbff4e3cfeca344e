"""Draw a diagnose report in the terminal: summary line, findings by severity, overview with plots.

Everything that came from the input (ids, hosts, reasons, unparsed samples) is plain :class:`rich.text.Text`
with control characters removed and secrets redacted, so log content can neither inject Rich markup nor ANSI
escapes into the user's terminal.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from slackops.diagnose.detectors.base import fmt_s
from slackops.diagnose.report import Report
from slackops.findings import Severity
from slackops.records import iso
from slackops.redact import redact_text

_STYLE = {Severity.CRITICAL: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPARK = " ▁▂▃▄▅▆▇█"


def clean(value: Any) -> str:
    """Text from the input, safe to print: no control characters (ANSI escapes), no secrets."""
    return redact_text(_CONTROL.sub("?", str(value)))


def _value(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if key.endswith("_t") and isinstance(value, (int, float)) and value > 1e8:
        return iso(float(value))
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"
    if isinstance(value, list):
        return ", ".join(clean(v) for v in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{clean(k)}={_value('', v)}" for k, v in value.items()) or "—"
    return clean(value)


def render(report: Report, console: Console) -> None:
    """Print the whole report to ``console``."""
    worst = report.worst
    console.print(
        Text(report.summary(), style=_STYLE.get(worst, "bold green") if worst is not None else "bold green")
    )
    console.print()
    for finding in report.findings:
        _finding(console, finding)
    _overview(console, report)


def _finding(console: Console, f: Any) -> None:
    sev = f.severity
    head = Text()
    head.append(f"{str(sev).upper():8} ", style=_STYLE.get(sev, ""))
    head.append(f.code, style="bold")
    head.append(f"  {clean(f.summary)}")
    console.print(head)
    rows = Table.grid(padding=(0, 2))
    rows.add_column(style="dim")
    rows.add_column()
    for key, value in f.evidence.items():
        if value is None or value == [] or value == {}:
            continue
        rows.add_row(key.replace("_", " "), Text(_value(key, value)))
    if f.cost:
        rows.add_row("cost", Text(_value("", f.cost)))
    for caveat in f.caveats:
        rows.add_row("caveat", Text(clean(caveat)))
    rows.add_row("runbook", Text(f"slackops runbook {f.runbook}", style="bold"))
    console.print(Padding(rows, (0, 0, 1, 9)))


def _overview(console: Console, report: Report) -> None:
    o = report.overview
    console.print(Text("Overview", style="bold underline"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    if o["first_t"] is not None:
        grid.add_row(
            "time span", Text(f"{iso(o['first_t'])} → {iso(o['last_t'])} ({fmt_s(o['duration_s'])})")
        )
    grid.add_row("records", Text(", ".join(f"{k} {n:,}" for k, n in o["kinds"].items())))
    ids = ", ".join(clean(c) for c in o["connection_ids"][:5])
    grid.add_row(
        "connections",
        Text(f"{o['connections']}" + (f" ({ids}{' …' if o['connections'] > 5 else ''})" if ids else "")),
    )
    env = o["envelopes"]
    types = ", ".join(f"{clean(k)} {n:,}" for k, n in env["by_type"].items())
    grid.add_row(
        "envelopes",
        Text(f"{env['total']:,}" + (f" ({types})" if types else "") + f"; retries {env['retries']:,}"),
    )
    by_instance = o.get("envelopes_by_instance") or {}
    if len(by_instance) > 1:
        total = sum(by_instance.values()) or 1
        shares = ", ".join(f"{clean(k)} {n:,} ({n / total:.0%})" for k, n in list(by_instance.items())[:10])
        grid.add_row("instances", Text(f"{len(by_instance)}: {shares}"))
    if env.get("events") is not None:
        grid.add_row(
            "events",
            Text(
                f"{env['events']:,} unique; {env['events_delivered_more_than_once'] or 0:,} delivered more than once"
            ),
        )
    lat = o["ack_latency"]
    if lat.get("count"):
        grid.add_row(
            "ack latency",
            Text(
                f"p50 {lat['p50_ms']:.1f} ms · p90 {lat['p90_ms']:.1f} ms · p99 {lat['p99_ms']:.1f} ms · max {lat['max_ms']:.1f} ms (n={lat['count']:,})"
            ),
        )
    else:
        grid.add_row("ack latency", Text("no ack timing in this data"))
    grid.add_row("reconnects", Text(str(o["reconnects"])))
    console.print(Padding(grid, (0, 0, 1, 2)))
    _timeline(console, o["timeline"])
    if lat.get("count"):
        _histogram(console, o["ack_histogram"])
    _sources(console, report)
    if report.caveats:
        console.print(Text("Could not judge", style="bold"))
        for c in report.caveats:
            console.print(Text(f"  · {clean(c)}", style="dim"))


def _spark(counts: list[int]) -> str:
    top = max(counts) or 1
    return "".join(
        _SPARK[0] if c == 0 else _SPARK[max(1, round(c / top * (len(_SPARK) - 1)))] for c in counts
    )


def _timeline(console: Console, tl: dict[str, Any]) -> None:
    counts = tl["counts"]
    if tl["first_t"] is None or not any(sum(v) for v in counts.values()):
        return
    console.print(Text("Connection timeline", style="bold"))
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", justify="right")
    grid.add_column()
    grid.add_column(style="dim")
    for kind in ("connect", "reconnect", "disconnect", "close"):
        row = counts[kind]
        if sum(row):
            grid.add_row(
                kind, Text(_spark(row), style="magenta" if kind == "reconnect" else ""), str(sum(row))
            )
    width = len(counts["connect"])
    # Times of day for a span within a day, dates and times beyond.
    cut = slice(11, 19) if tl["last_t"] - tl["first_t"] < 86400 else slice(0, 16)
    start, end = iso(tl["first_t"])[cut], iso(tl["last_t"])[cut]
    grid.add_row("", Text(start + " " * max(1, width - len(start) - len(end)) + end, style="dim"), "")
    console.print(Padding(grid, (0, 0, 1, 2)))


def _histogram(console: Console, h: dict[str, Any]) -> None:
    edges, counts = h["edges_ms"], h["counts"]
    total = sum(counts) or 1
    top = max(counts) or 1
    console.print(Text("Ack latency", style="bold"))
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", justify="right")
    grid.add_column()
    grid.add_column(justify="right")
    labels = (
        [f"< {_ms(edges[0])}"]
        + [f"{_ms(a)}–{_ms(b)}" for a, b in itertools.pairwise(edges)]
        + [f"≥ {_ms(edges[-1])}"]
    )
    for label, n, lo in zip(labels, counts, [0.0, *edges], strict=False):
        bar = "█" * (round(n / top * 40) if n else 0)
        style = "red" if lo >= 3000 else ("yellow" if lo >= 1000 else "green")
        grid.add_row(label, Text(bar or "·", style=style), f"{n:,} ({n / total:.0%})")
    console.print(Padding(grid, (0, 0, 1, 2)))


def _ms(v: float) -> str:
    return f"{v / 1000:g} s" if v >= 1000 else f"{v:g} ms"


def _sources(console: Console, report: Report) -> None:
    table = Table(title=None, box=None, padding=(0, 1), show_edge=False)
    for col in ("input", "format", "lines", "records", "ignored", "unparsed"):
        table.add_column(
            col,
            justify="right" if col not in ("input", "format") else "left",
            style="dim" if col == "ignored" else "",
        )
    samples: list[Text] = []
    for s in report.sources:
        table.add_row(
            Text(clean(s["path"])),
            Text(s["format"]),
            f"{s['lines']:,}",
            f"{s['records']:,}",
            f"{s['ignored']:,}",
            f"{s['unparsed']:,}",
        )
        for sample in s["samples"]:
            samples.append(Text(f"    {clean(s['path'])}: {clean(sample)}", style="dim"))
    console.print(Text("Inputs", style="bold"))
    console.print(Padding(Group(table, *samples), (0, 0, 1, 2)))
