"""Rendering a watch run for people: the live summary on stderr and the final summary.

Everything here takes the plain ``dict`` of :meth:`Watcher.summary` and returns rich renderables, so what the
terminal shows is exactly what ``--json`` prints. Text that came from the network (hosts, disconnect reasons,
errors) goes into :class:`rich.text.Text` objects, never into markup, so a server cannot inject styles.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

#: How often the live view redraws (seconds).
REFRESH_S = 0.5


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def _clock(t: float | None) -> str:
    return "--:--:--" if t is None else time.strftime("%H:%M:%S", time.localtime(t))


def headline(summary: dict[str, Any]) -> Text:
    """One line: what is watched, in which mode, for how long, where it is recorded."""
    target = summary["target"]
    parts = [f"watching {target['label']}"]
    if target.get("scenario"):
        scale = target.get("time_scale")
        parts.append(f"scenario {target['scenario']}" + (f" x{scale:g}" if scale else ""))
    parts.append(f"mode {summary['mode']}")
    if summary.get("elapsed_s") is not None:
        parts.append(f"{summary['elapsed_s']:.0f} s")
    rec = summary.get("recording") or {}
    sinks = [p for p in (rec.get("db"), rec.get("jsonl")) if p]
    parts.append("recording to " + ", ".join(sinks) if sinks else "not recording")
    return Text(" · ".join(parts), style="bold")


def connections_table(summary: dict[str, Any]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("connection", "state", "age", "host", "num_conn", "rtt", "envelopes"):
        table.add_column(col, justify="right" if col in ("age", "num_conn", "rtt", "envelopes") else "left")
    styles = {"live": "green", "draining": "yellow", "connecting": "cyan", "closed": "dim"}
    for c in summary["connections"]:
        state = Text(c["state"], style=styles.get(c["state"], ""))
        if c.get("disconnect") and c["state"] != "live":
            state.append(f" ({c['disconnect']})")
        table.add_row(
            Text(c["conn"]),
            state,
            "-" if c.get("age_s") is None else f"{c['age_s']:.0f} s",
            Text(c.get("host") or "-"),
            "-" if c.get("num_connections") is None else str(c["num_connections"]),
            _ms(c.get("last_rtt_ms")),
            str(c.get("envelopes", 0)),
        )
    return table


def traffic_line(summary: dict[str, Any]) -> Text:
    acks = summary["acks"]
    line = Text()
    line.append(f"envelopes {summary['envelopes']} ({summary['envelopes_per_s']:.1f}/s)")
    if summary.get("retried_envelopes"):
        line.append(f", {summary['retried_envelopes']} retries", style="yellow")
    line.append(f" · acks {acks['ok']}")
    if acks["failed"]:
        line.append(f" ({acks['failed']} failed)", style="red")
    if summary["mode"] == "observe":
        line.append(" (observe: never acked)", style="yellow")
    deadline = acks["deadline_ms"]
    p99_style = "red" if acks["p99"] is not None and acks["p99"] > deadline else ""
    line.append(f" · ack p50 {_ms(acks['p50'])}")
    line.append(f" p99 {_ms(acks['p99'])}", style=p99_style)
    line.append(f" (Slack's deadline {deadline / 1000:.0f} s)")
    if acks["late"]:
        line.append(f" · {acks['late']} late", style="red")
    return line


def events_table(summary: dict[str, Any]) -> Table | None:
    """Recent reconnects and disconnects, newest last."""
    rows: list[tuple[float, str, Text]] = []
    for r in summary["reconnects"]["recent"]:
        gap = r.get("gap_ms")
        style = "green" if gap == 0 else "yellow"
        rows.append(
            (
                r["t"],
                "reconnect",
                Text(
                    f"{r.get('conn')} by {r.get('initiator')} ({r.get('cause')}), gap {_ms(gap)}", style=style
                ),
            )
        )
    for d in summary["disconnects"]["recent"]:
        rows.append((d["t"], "disconnect", Text(f"{d.get('conn')}: {d.get('reason')}")))
    for e in summary["errors"]["recent"]:
        rows.append((e["t"], "error", Text(f"{e.get('where')}: {e.get('error')}", style="red")))
    if not rows:
        return None
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("time", style="dim")
    table.add_column("what")
    table.add_column("detail")
    for t, what, detail in sorted(rows, key=lambda r: r[0])[-8:]:
        table.add_row(_clock(t), what, detail)
    return table


def drift_line(summary: dict[str, Any]) -> Text | None:
    last = summary["drift"]["last"]
    if not last:
        return None
    return Text(
        f"num_connections drift: Slack counts {last['num_connections']} connections, we hold "
        f"{last['own_connections']} (ghost registrations or another consumer on this token; "
        "see `slackops runbook competing-consumers`)",
        style="yellow",
    )


def live_view(summary: dict[str, Any]) -> RenderableType:
    """The live summary redrawn while watching."""
    parts: list[RenderableType] = [headline(summary), connections_table(summary), traffic_line(summary)]
    recon = summary["reconnects"]
    parts.append(
        Text(
            f"reconnects {recon['total']} (max gap {_ms(recon['gap_max_ms'])}) · "
            f"disconnects {summary['disconnects']['total']} · closes {summary['closes']['total']}"
        )
    )
    for extra in (drift_line(summary), events_table(summary)):
        if extra is not None:
            parts.append(extra)
    return Group(*parts)


def final_view(summary: dict[str, Any]) -> RenderableType:
    """The summary printed when watch stops."""
    parts: list[RenderableType] = [live_view(summary)]
    sim = summary.get("simulator")
    if sim:
        style = "green" if sim["lost"] == 0 else "red"
        parts.append(
            Text(
                f"simulator ground truth: {sim['events']} events, {sim['acked']} acked in time, "
                f"{sim['acked_late']} late, {sim['lost']} lost, {sim['retries']} retries",
                style=style,
            )
        )
    rec = summary.get("recording") or {}
    if rec.get("written") is not None:
        line = f"recorded {rec['written']} records"
        if rec.get("db"):
            line += f" in {rec['db']} (try: sqlite3 {rec['db']} 'select * from reconnects')"
        if rec.get("spilled") or rec.get("dropped"):
            line += f"; {rec.get('spilled', 0)} spilled, {rec.get('dropped', 0)} dropped"
        parts.append(Text(line))
    parts.append(Text(f"stopped by {summary.get('stopped_by') or 'end'}", style="dim"))
    return Group(*parts)


async def run_with_live_view(
    watcher: Any, console: Console, *, handle_signals: bool = True
) -> dict[str, Any]:
    """Run ``watcher`` with the live summary on ``console`` (redrawn only when it is a terminal)."""
    task = asyncio.ensure_future(watcher.run(handle_signals=handle_signals))
    if not console.is_terminal:
        return await task
    with Live(live_view(watcher.summary()), console=console, auto_refresh=False, transient=True) as live:
        while not task.done():
            await asyncio.wait({task}, timeout=REFRESH_S)
            live.update(live_view(watcher.summary()), refresh=True)
    return await task
