"""The diagnose report as data: findings worst first, an overview, parse statistics, caveats, exit status.

:meth:`Report.to_dict` is exactly what ``diagnose --json`` prints; :mod:`slackops.diagnose.render` draws the
same content for people.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from slackops.diagnose.detectors.base import fmt_s
from slackops.diagnose.histogram import Histogram
from slackops.diagnose.readers.base import ParseStats
from slackops.diagnose.thresholds import Settings
from slackops.errors import ExitCode, UsageError
from slackops.findings import Finding, Severity

#: Edges (ms) of the ack-latency histogram drawn in the report; the last bin is "above 10 s".
LATENCY_EDGES_MS: list[float] = [1, 3, 10, 30, 100, 300, 1000, 3000, 10000]
#: Columns of the reconnect timeline.
TIMELINE_BINS = 60


@dataclass
class Report:
    """What ``diagnose`` found. ``findings`` are worst first."""

    findings: list[Finding]
    overview: dict[str, Any]
    sources: list[dict[str, Any]]
    caveats: list[str] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        findings: Iterable[Finding],
        ctx: Any,
        stats: list[ParseStats],
        caveats: list[str],
        settings: Settings,
        overview: Any,
        extra: dict[str, Any],
    ) -> Report:
        ordered = sorted(findings, key=lambda f: (-int(f.severity or 0), f.code))
        for s in stats:
            if not s.records and s.format in ("slackops-jsonl", "slackops-sqlite"):
                s.records = max(0, s.lines - s.unparsed)
        hist: Histogram = extra.get("ack_histogram") or Histogram()
        first, last = ctx.t_first, ctx.t_last
        timeline = list(overview.timeline)
        envelopes = ctx.kinds.get("envelope", 0)
        view = {
            "first_t": first,
            "last_t": last,
            "duration_s": (last - first) if first is not None and last is not None else 0.0,
            "formats": sorted(ctx.formats),
            "records": sum(ctx.kinds.values()),
            "kinds": dict(sorted(ctx.kinds.items(), key=lambda kv: -kv[1])),
            "connections": len(overview.conns),
            "connection_ids": list(overview.conns)[:20],
            "instances": list(overview.instances),
            "envelopes_by_instance": dict(overview.instances.most_common()),
            "envelopes": {
                "total": envelopes,
                "by_type": dict(overview.envelope_types.most_common()),
                "retries": overview.retries,
                "events": extra.get("events"),
                "events_delivered_more_than_once": extra.get("events_delivered_more_than_once"),
            },
            "ack_latency": hist.summary(),
            "ack_histogram": {"edges_ms": LATENCY_EDGES_MS, "counts": hist.bins(LATENCY_EDGES_MS)},
            "reconnects": extra.get("reconnects", 0),
            "timeline": _timeline(timeline, first, last),
            "events": [{"t": t, "kind": k, "detail": d} for t, k, d in timeline[-200:]],
            "parse": {
                "lines": sum(s.lines for s in stats),
                "records": sum(s.records for s in stats),
                "ignored": sum(s.ignored for s in stats),
                "unparsed": sum(s.unparsed for s in stats),
                "untimed": sum(s.untimed for s in stats),
            },
        }
        return cls(ordered, view, [s.to_dict() for s in stats], caveats, dict(settings.thresholds))

    # -- verdict ---------------------------------------------------------------------------------------------

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings if f.severity is not None), default=None)

    def exit_code(self, fail_on: str = "warning") -> ExitCode:
        """0 nothing found, 1 warnings, 2 critical; with ``fail_on="critical"`` warnings exit 0."""
        if fail_on not in ("warning", "critical"):
            raise UsageError(f"--fail-on takes warning or critical, not {fail_on!r}")
        worst = self.worst
        if worst == Severity.CRITICAL:
            return ExitCode.CRITICAL
        if worst == Severity.WARNING and fail_on == "warning":
            return ExitCode.WARNING
        return ExitCode.OK

    def counts(self) -> dict[str, int]:
        out = {"critical": 0, "warning": 0, "info": 0}
        for f in self.findings:
            out[str(f.severity)] += 1
        return out

    def summary(self) -> str:
        """The one line a pager or CI log shows first."""
        c = self.counts()
        o = self.overview
        scope = f"{o['records']:,} records from {len(self.sources)} input(s) over {fmt_s(o['duration_s'])}"
        if not self.findings:
            return f"No problems found in {scope}."
        parts = [f"{n} {k}" for k, n in c.items() if n]
        slugs = []
        for f in self.findings:
            if f.runbook not in slugs:
                slugs.append(f.runbook)
        return f"{', '.join(parts)} in {scope}: {', '.join(slugs)}."

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {
            "summary": self.summary(),
            "exit_code": int(self.exit_code()),
            "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
            "overview": self.overview,
            "sources": self.sources,
            "caveats": self.caveats,
            "thresholds": self.thresholds,
        }


def _timeline(
    events: list[tuple[float, str, str]], first: float | None, last: float | None
) -> dict[str, Any]:
    """Reconnects, closes and disconnects per time bin, for the terminal timeline."""
    bins = {k: [0] * TIMELINE_BINS for k in ("reconnect", "close", "disconnect", "connect")}
    if first is None or last is None or last <= first:
        return {"bins": TIMELINE_BINS, "first_t": first, "last_t": last, "counts": bins}
    width = (last - first) / TIMELINE_BINS
    for t, kind, _ in events:
        if kind in bins:
            i = min(TIMELINE_BINS - 1, max(0, int((t - first) / width)))
            bins[kind][i] += 1
    return {"bins": TIMELINE_BINS, "first_t": first, "last_t": last, "counts": bins}
