"""thundering-herd (cost): LLM calls hitting a provider's rate limit together and retrying in lockstep.

Many concurrent handlers that share a provider hit its rate limit at once and, with un-jittered backoff, retry
on the same schedule: 429s arrive in waves at a regular interval. Three consecutive 429s for one resource is
where a circuit breaker should have opened.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any

from slackops.diagnose.detectors.base import Context, Detector, Span
from slackops.findings import Finding


def _limited(rec: Any) -> bool:
    if rec.http_status == 429:
        return True
    err = rec.error
    return isinstance(err, str) and (("rate" in err.lower() and "limit" in err.lower()) or "429" in err)


class ThunderingHerd(Detector):
    slug = "thundering-herd"
    kinds = {"llm": "on_llm"}

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.calls = 0
        self.limited = Span()
        self.streak: dict[str, int] = {}
        self.worst_streak: dict[str, int] = {}
        self.second: int | None = None
        self.in_second = 0
        self.waves: list[float] = []
        self.wave_sizes: list[int] = []

    def on_llm(self, rows: Iterable[Any]) -> None:
        streak = self.streak
        n = 0
        try:
            for rec in rows:
                n += 1
                res = rec.resource or "llm"
                if (rec.http_status != 429 and rec.error is None) or not _limited(rec):
                    streak[res] = 0
                    continue
                t = rec.t
                self.limited.add(t)
                k = streak.get(res, 0) + 1
                streak[res] = k
                if k > self.worst_streak.get(res, 0):
                    self.worst_streak[res] = k
                sec = int(t)
                if sec != self.second:
                    self._close_second()
                    self.second, self.in_second = sec, 0
                self.in_second += 1
        finally:
            self.calls += n

    def _close_second(self) -> None:
        if (
            self.second is not None
            and self.in_second >= self.th["llm_429_cluster_min"]
            and len(self.waves) < 10_000
        ):
            self.waves.append(float(self.second))
            self.wave_sizes.append(self.in_second)

    def finish(self, ctx: Context) -> list[Finding]:
        self._close_second()
        self.second = None
        out: list[Finding] = []
        streaks = {r: n for r, n in self.worst_streak.items() if n >= self.th["llm_429_consecutive"]}
        if streaks:
            out.append(
                Finding(
                    "llm-429-consecutive",
                    f"{max(streaks.values())} consecutive 429s from {', '.join(sorted(streaks)[:3])}: "
                    "a circuit breaker should have opened after "
                    f"{self.th['llm_429_consecutive']:.0f}",
                    evidence={**self.limited.evidence(), "streaks": streaks},
                    cost={
                        "wasted_llm_calls": self.limited.count,
                        "share": round(self.limited.count / max(1, self.calls), 4),
                    },
                )
            )
        if self.waves and not ctx.timeless:
            out.append(
                Finding(
                    "llm-429-cluster",
                    f"{len(self.waves)} second(s) with {self.th['llm_429_cluster_min']:.0f}+ LLM 429s at once "
                    f"(largest {max(self.wave_sizes)})",
                    evidence={
                        "waves": len(self.waves),
                        "first_t": self.waves[0],
                        "last_t": self.waves[-1],
                        "largest": max(self.wave_sizes),
                    },
                )
            )
        if len(self.waves) >= self.th["aligned_min_waves"] and not ctx.timeless:
            gaps = [b - a for a, b in zip(self.waves, self.waves[1:], strict=False)]
            mean = statistics.fmean(gaps)
            if mean > 0 and statistics.pstdev(gaps) <= self.th["aligned_tolerance"] * mean:
                out.append(
                    Finding(
                        "aligned-retries",
                        f"LLM 429 waves repeat every ~{mean:.0f} s ({len(self.waves)} waves): retries share one schedule — add jitter",
                        evidence={
                            "waves": len(self.waves),
                            "interval_s": round(mean, 1),
                            "first_t": self.waves[0],
                            "last_t": self.waves[-1],
                        },
                    )
                )
        return out

    def caveats(self, ctx: Context) -> list[str]:
        if not ctx.has("llm"):
            return ["thundering-herd: no LLM call records in this data"]
        return []
