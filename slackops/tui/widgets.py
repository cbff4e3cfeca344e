"""The panels of the terminal view. Each takes already-computed data from :mod:`slackops.tui.state` and draws it.

Everything shown comes from remote peers (hosts, reasons, ids), so cells are ``rich.text.Text`` (never a markup
string) and the frame log is Textual's plain-text ``Log``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Log, Markdown, Sparkline, Static

from slackops.tui.state import (
    ACK_BUDGET_MS,
    AckStats,
    ConnectionRow,
    LogLine,
    TimelineEntry,
    clock_text,
    ms_text,
)

_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
_STATE_STYLE = {
    "open": "green",
    "connecting": "cyan",
    "refreshing": "yellow",
    "closing": "yellow",
    "closed": "dim",
}
_EVENT_STYLE = {
    "hello": "green",
    "connect": "cyan",
    "disconnect": "yellow",
    "close": "red",
    "reconnect": "magenta",
    "gap": "bold red",
    "drift": "yellow",
    "api error": "red",
}


class ConnectionsTable(DataTable):
    """Connections: state, age, host, num_connections, last RTT, time to expected refresh."""

    COLUMNS = ("conn", "state", "age", "host", "num_conn", "rtt", "refresh", "env")

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns(*self.COLUMNS)

    _shown: tuple[ConnectionRow, ...] | None = None

    def show(self, rows: Sequence[ConnectionRow]) -> None:
        # Repaint only on change: in steady state a refresh tick then costs no rendering at all.
        if tuple(rows) == self._shown:
            return
        cells = [self._cells(r) for r in rows]
        keys = [r.conn for r in rows]
        if self._shown is not None and keys == [r.conn for r in self._shown]:
            # Same sockets: update changed cells in place, so the table keeps its size (no layout pass).
            for old, new, key in zip(self._shown, cells, keys, strict=True):
                before = self._cells(old)
                for column, (was, now) in enumerate(zip(before, new, strict=True)):
                    if was.plain != now.plain or was.style != now.style:
                        col = self.ordered_columns[column]
                        self.update_cell(key, col.key, now, update_width=now.cell_len > col.content_width)
        else:
            self.clear()
            for key, row in zip(keys, cells, strict=True):
                self.add_row(*row, key=key)
        self._shown = tuple(rows)

    @staticmethod
    def _cells(r: ConnectionRow) -> tuple[Text, ...]:
        return (
            Text(r.conn),
            Text(r.state, style=_STATE_STYLE.get(r.state, "")),
            Text(r.age),
            Text(r.host),
            Text(r.num_connections, justify="right"),
            Text(r.rtt, justify="right"),
            Text(r.refresh_in, justify="right"),
            Text(str(r.envelopes), justify="right"),
        )


class RatePanel(Vertical):
    """Envelope rate: a one-line summary above a sparkline of the last minute, one column a second."""

    def compose(self) -> ComposeResult:
        yield Static(id="rate-label")
        yield Sparkline([0], id="rate-spark")

    _shown: tuple[Any, ...] | None = None

    def show(self, rates: list[int], current: int, total: int) -> None:
        if (rates, current, total) == self._shown:
            return
        self._shown = (rates, current, total)
        peak = max(rates) if rates else 0
        label = Text()
        label.append(f"{current}/s", style="bold")
        label.append(f" now · peak {peak}/s in the last {len(rates)} s · {total:,} envelopes in all")
        self.query_one("#rate-label", Static).update(label, layout=False)
        self.query_one("#rate-spark", Sparkline).data = [float(x) for x in rates] or [0.0]


def ack_text(stats: AckStats, width: int) -> Text:
    """The ack latency panel: percentiles, counts, and a histogram whose last bar is past the 3 s budget."""
    out = Text()
    for name, value in (("p50", stats.p50), ("p90", stats.p90), ("p99", stats.p99), ("max", stats.max)):
        over = value is not None and value > ACK_BUDGET_MS
        out.append(f"{name} ")
        out.append(ms_text(value), style="bold red" if over else "bold")
        out.append("  ")
    out.append("\n")
    out.append(f"{stats.count:,} acks · ")
    out.append(f"{stats.late} late", style="bold red" if stats.late else "")
    out.append(f" · {stats.failed} failed", style="bold red" if stats.failed else "")
    top = max((count for _, count, _ in stats.buckets), default=0)
    bar_width = max(4, width - 16)
    for label, count, over_budget in stats.buckets:
        out.append(f"\n{label:>7} ")
        cells = 0 if not top else count / top * bar_width
        bar = "█" * int(cells) + ("▌" if cells - int(cells) >= 0.5 else "")
        if count and not bar:
            bar = "▏"
        out.append(bar.ljust(bar_width), style="red" if over_budget else "green")
        out.append(f" {count:>6}")
    return out


class AckPanel(Static):
    """Ack latency percentiles and histogram against the 3 s budget."""

    stats: AckStats | None = None

    def show(self, stats: AckStats) -> None:
        if stats == self.stats:
            return
        self.stats = stats
        self.update(ack_text(stats, self.content_size.width or 40), layout=False)

    def on_resize(self) -> None:
        if self.stats is not None:
            self.update(ack_text(self.stats, self.content_size.width or 40))


class TimelineTable(DataTable):
    """Reconnects, disconnects, closes and the gaps between sockets, newest at the bottom."""

    MAX_ROWS = 300

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("time", "conn", "event", "detail")
        self._keys: deque[Any] = deque()

    def append(self, entries: Iterable[TimelineEntry]) -> None:
        added = False
        for e in entries:
            key = self.add_row(
                Text(clock_text(e.t)),
                Text(e.conn),
                Text(e.event, style=_EVENT_STYLE.get(e.event, "")),
                Text(e.detail),
            )
            self._keys.append(key)
            added = True
        while len(self._keys) > self.MAX_ROWS:
            self.remove_row(self._keys.popleft())
        if added:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def reset(self) -> None:
        self.clear()
        self._keys.clear()


class FindingsTable(DataTable):
    """Findings so far, worst first, each with the runbook to follow."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("code", "runbook", "summary")
        self.findings: list[dict[str, Any]] = []

    def show(self, findings: list[dict[str, Any]]) -> None:
        row = self.cursor_row
        self.findings = list(findings)
        self.clear()
        for f in self.findings:
            sev = str(f.get("severity", ""))
            self.add_row(
                Text(str(f.get("code", "")), style=_SEVERITY_STYLE.get(sev, "")),
                Text(str(f.get("runbook", ""))),
                Text(str(f.get("summary", ""))),
            )
        if self.findings:
            self.move_cursor(row=min(row, len(self.findings) - 1), animate=False)

    def selected(self) -> dict[str, Any] | None:
        if not self.findings:
            return None
        return self.findings[min(max(self.cursor_row, 0), len(self.findings) - 1)]


class FrameLog(Vertical):
    """The frame log in websockets' prefix grammar, with a filter box shown on demand."""

    #: lines written per refresh at most; beyond this nobody can read them, and writing them costs frames
    MAX_PER_REFRESH = 200

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="filter: < > = x ! or any text (conn, kind, envelope id); Enter to apply", id="filter"
        )
        yield Log(max_lines=1000, id="log-lines", highlight=False)

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False

    @property
    def log_widget(self) -> Log:
        return self.query_one("#log-lines", Log)

    def write(self, lines: list[LogLine], skipped: int = 0) -> None:
        if skipped:
            self.log_widget.write_line(f"… {skipped:,} lines not shown at this rate (pause, or filter)")
        if lines:
            self.log_widget.write_lines([line.render() for line in lines])

    def replace(self, lines: list[LogLine]) -> None:
        log = self.log_widget
        log.clear()
        self.write(lines[-self.MAX_PER_REFRESH * 5 :])
        log.scroll_end(animate=False, immediate=True)


class RunbookScreen(ModalScreen[None]):
    """A runbook over the view: its Markdown when :mod:`slackops.runbooks` has it, else how to read it."""

    BINDINGS = [Binding("escape,q,r", "dismiss", "Close")]

    def __init__(self, finding: dict[str, Any]) -> None:
        super().__init__()
        self.finding = finding

    def compose(self) -> ComposeResult:
        slug = str(self.finding.get("runbook", ""))
        header = Text()
        header.append(f"{self.finding.get('code', '')}", style="bold")
        header.append(f" → runbook {slug}\n")
        header.append(str(self.finding.get("summary", "")))
        with Vertical(id="runbook-box"):
            yield Static(header, id="runbook-header")
            with VerticalScroll(id="runbook-body"):
                markdown = runbook_markdown(slug)
                if markdown is not None:
                    yield Markdown(markdown)
                else:
                    yield Static(Text(f"Read it in a terminal with:  slackops runbook {slug}"))
            yield Footer()


def runbook_markdown(slug: str) -> str | None:
    """The runbook's Markdown, or ``None`` when the runbooks are not available."""
    try:
        from slackops import runbooks
    except ImportError:
        return None
    try:
        return runbooks.find(slug).markdown
    except Exception:  # a missing or malformed runbook must not take the live view down
        return None


def status_text(
    mode: str, now: float | None, counts: Any, rate: int, note: str = "", speed: float | None = None
) -> Text:
    """The one-line status bar above the panels."""
    out = Text()
    style = {"LIVE": "bold green", "PAUSED": "bold yellow", "REPLAY": "bold cyan", "ENDED": "bold magenta"}
    out.append(f" {mode} ", style=f"reverse {style.get(mode, 'bold')}")
    if speed is not None:
        out.append(f" ×{speed:g}")
    if now is not None:
        out.append(f"  {clock_text(now)[:-4]} UTC")
    out.append(f"  records {counts.records:,}  envelopes {counts.envelopes:,} ({rate}/s)")
    out.append(f"  acks {counts.acks:,}, ")
    out.append(f"{counts.late_acks} late", style="bold red" if counts.late_acks else "")
    out.append(f"  reconnects {counts.reconnects}  errors {counts.errors}")
    if note:
        out.append(f"  {note}", style="italic")
    return out


__all__ = [
    "AckPanel",
    "ConnectionsTable",
    "FindingsTable",
    "FrameLog",
    "RatePanel",
    "RunbookScreen",
    "TimelineTable",
    "ack_text",
    "runbook_markdown",
    "status_text",
]
