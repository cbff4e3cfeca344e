"""competing-consumers: another process on the same app token takes a share of the events.

Slack spreads delivery attempts across every open connection of an app, including an old pod's in a rolling
deploy or a forgotten dev instance. ``hello.num_connections`` above what the deployment should hold says so
directly; with several instances in one recording, an instance whose share of deliveries suddenly halves is
losing events to someone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from slackops.diagnose.detectors.base import Context, Detector, Examples, Span
from slackops.findings import Finding


class CompetingConsumers(Detector):
    slug = "competing-consumers"
    kinds = {"hello": "on_hello", "envelope": "on_envelope", "process": "on_process"}

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.over = Span()
        self.max_num = 0
        self.hosts = Examples()
        self.bucket_start: float | None = None
        self.bucket: Counter[str] = Counter()
        self.prev_share: dict[str, float] = {}
        self.drops = Span()
        self.drop_examples: list[dict[str, Any]] = []
        #: dead instance -> work it had acked and started that another instance reclaimed
        self.orphaned_by: Counter[str] = Counter()
        self.orphans = Span()
        self.orphan_events = Examples()

    def on_hello(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            num = rec.num_connections
            if num is None:
                continue
            # With own_connections known, extra registrations are reported as ghosts (silent-deafness): a client
            # that knows its own sockets cannot tell a ghost from a competitor, and ghosts are the likelier one.
            if rec.own_connections is not None:
                continue
            if num > self.th["expected_connections"]:
                self.over.add(rec.t)
                self.max_num = max(self.max_num, int(num))
                self.hosts.add(rec.host)

    def on_envelope(self, rows: Iterable[Any]) -> None:
        for rec in rows:
            inst = rec.instance
            if inst is None:
                continue
            t = rec.t
            if self.bucket_start is None:
                self.bucket_start = t
            elif t - self.bucket_start >= self.th["share_window_s"]:
                self._close_bucket()
                self.bucket_start = t
            self.bucket[inst] += 1

    def on_process(self, rows: Iterable[Any]) -> None:
        # A shared work queue (several replicas on Redis) records who held reclaimed work: the instance that
        # acked an event, started it and died. Slack had no reason to retry it; only the reclaim saved it.
        for rec in rows:
            owner = rec.owner
            if owner is not None and rec.error == "orphan" and owner != rec.instance:
                self.orphaned_by[owner] += 1
                self.orphans.add(rec.t)
                self.orphan_events.add(rec.event_id)

    def _close_bucket(self) -> None:
        total = sum(self.bucket.values())
        if total >= 20:
            shares = {k: v / total for k, v in self.bucket.items()}
            for inst, before in self.prev_share.items():
                now = shares.get(inst, 0.0)
                if before > 0 and now < before * self.th["share_drop_ratio"]:
                    self.drops.add(self.bucket_start or 0.0)
                    if len(self.drop_examples) < 5:
                        self.drop_examples.append(
                            {"instance": inst, "share_before": round(before, 3), "share_after": round(now, 3)}
                        )
            self.prev_share = shares
        self.bucket = Counter()

    def finish(self, ctx: Context) -> list[Finding]:
        if self.bucket:
            self._close_bucket()
        out: list[Finding] = []
        if self.over.count:
            out.append(
                Finding(
                    "competing-consumer",
                    f"hello reported up to {self.max_num} connections, above the expected "
                    f"{self.th['expected_connections']:.0f}: another process shares this app token and gets a share of the events",
                    evidence={
                        **self.over.evidence(),
                        "max_num_connections": self.max_num,
                        "hosts": self.hosts.items,
                    },
                )
            )
        if self.drops.count:
            out.append(
                Finding(
                    "delivery-share-drop",
                    f"{self.drops.count} time(s) an instance's share of deliveries fell below "
                    f"{self.th['share_drop_ratio']:.0%} of its previous share",
                    evidence={**self.drops.evidence(), "examples": self.drop_examples},
                )
            )
        if self.orphaned_by:
            worst, n = self.orphaned_by.most_common(1)[0]
            out.append(
                Finding(
                    "instance-died-with-work",
                    f"{len(self.orphaned_by)} instance(s) exited holding acked, unfinished work ({worst}: {n} "
                    f"event(s)); other instances reclaimed it, late by the visibility timeout",
                    evidence={
                        **self.orphans.evidence(),
                        "by_instance": dict(self.orphaned_by.most_common(10)),
                        "examples": self.orphan_events.items,
                    },
                )
            )
        return out

    def caveats(self, ctx: Context) -> list[str]:
        if not ctx.has("hello"):
            return ["competing-consumers: no hello frames in this data: connection counts not judged"]
        return []
