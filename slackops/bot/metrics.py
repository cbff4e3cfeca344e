"""Prometheus ``/metrics``, ``/healthz`` and ``/readyz`` for the reference bot.

Metrics are derived from the same records the bot writes to its recording (:meth:`BotMetrics.observe` is fed
every record), so the dashboard and ``slackops diagnose`` can never disagree about what happened.

- ``/healthz``: 200 while at least one socket is open (the transport is live); 503 otherwise. Point a liveness
  probe here only with a generous threshold: a reconnect briefly has zero sockets.
- ``/readyz``: 200 while the bot accepts work (started, not draining, queue below the soft limit); 503 with the
  reason otherwise. During a drain it fails first, so a rolling deploy stops routing to this pod.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: Ack latency buckets (seconds): the interesting range is well under Slack's 3 s deadline, with 3 s itself.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)


class BotMetrics:
    """The bot's Prometheus metrics, in a registry of their own (several bots can live in one process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.envelopes = Counter(
            "slackops_bot_envelopes", "Envelopes received, by type.", ["type"], registry=r
        )
        self.acks = Counter("slackops_bot_acks", "Acks sent, by outcome.", ["ok"], registry=r)
        self.ack_latency = Histogram(
            "slackops_bot_ack_latency_seconds",
            "Envelope received -> ack written (Slack's deadline is 3 s).",
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.dedup_hits = Counter("slackops_bot_dedup_hits", "Deliveries dropped as duplicates.", registry=r)
        self.reconnects = Counter(
            "slackops_bot_reconnects", "Socket reconnects, by initiator.", ["initiator"], registry=r
        )
        self.processed = Counter("slackops_bot_processed", "Handler runs that finished.", registry=r)
        self.failed = Counter("slackops_bot_failed", "Events given up on after the last retry.", registry=r)
        self.requeued = Counter(
            "slackops_bot_requeued", "Handler runs put back in the queue.", ["reason"], registry=r
        )
        self.shed = Counter(
            "slackops_bot_shed", "Events shed by backpressure, by event class.", ["event_class"], registry=r
        )
        self.orphans = Counter(
            "slackops_bot_orphans", "Work left by a dead process, re-dispatched.", registry=r
        )
        self.queue_depth = Gauge("slackops_bot_queue_depth", "Admitted events not yet finished.", registry=r)
        self.live = Gauge("slackops_bot_live", "1 while at least one socket is open.", registry=r)
        self.ready = Gauge("slackops_bot_ready", "1 while the bot accepts work.", registry=r)
        self.instance = Gauge(
            "slackops_bot_instance",
            "1, labelled with this replica's name and work store (join on it to tell replicas apart).",
            ["instance", "store"],
            registry=r,
        )
        # Labelled children looked up once: observe() runs for every record on the receive path.
        self._by_type: dict[str, Any] = {}
        self._acks_ok = self.acks.labels(ok="true")

    def identify(self, instance: str | None, store: str) -> None:
        """Label this process: several replicas scraped into one Prometheus stay distinguishable."""
        self.instance.labels(instance=instance or "", store=store).set(1)

    def observe(self, rec: dict[str, Any]) -> None:
        """Update counters from one record (the bot tees every record here)."""
        kind = rec.get("kind")
        if kind == "envelope":
            kind_type = rec.get("type", "unknown")
            counter = self._by_type.get(kind_type)
            if counter is None:
                counter = self._by_type[kind_type] = self.envelopes.labels(type=kind_type)
            counter.inc()
        elif kind == "ack":
            ok = rec.get("ok", True)
            (self._acks_ok if ok is True else self.acks.labels(ok=str(ok).lower())).inc()
            ack_ms = rec.get("ack_ms")
            if isinstance(ack_ms, (int, float)):
                self.ack_latency.observe(ack_ms / 1000.0)
        elif kind == "dedup" and rec.get("duplicate"):
            self.dedup_hits.inc()
        elif kind == "reconnect":
            self.reconnects.labels(initiator=rec.get("initiator", "unknown")).inc()
        elif kind == "process":
            phase = rec.get("phase")
            if phase == "end":
                self.processed.inc()
            elif phase == "fail":
                self.failed.inc()
            elif phase == "requeue":
                reason = rec.get("error") if rec.get("error") in {"shutdown", "orphan"} else "retry"
                self.requeued.labels(reason=reason).inc()
                if reason == "orphan":
                    self.orphans.inc()
            elif phase == "shed":
                self.shed.labels(event_class=rec.get("error") or "unknown").inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class HealthServer:
    """A tiny aiohttp server for ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` (0 = any free)."""

    def __init__(
        self,
        metrics: BotMetrics,
        *,
        live: Callable[[], bool],
        ready: Callable[[], tuple[bool, str]],
        depth: Callable[[], int],
    ) -> None:
        self.metrics = metrics
        self._live = live
        self._ready = ready
        self._depth = depth
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def refresh(self) -> None:
        """Bring the gauges up to date (called on every scrape)."""
        self.metrics.queue_depth.set(self._depth())
        self.metrics.live.set(1 if self._live() else 0)
        self.metrics.ready.set(1 if self._ready()[0] else 0)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve; return the bound port."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _request: web.Request) -> web.Response:
        self.refresh()
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        live = self._live()
        return web.json_response({"live": live}, status=200 if live else 503)

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready, reason = self._ready()
        return web.json_response(
            {"ready": ready, "reason": reason, "depth": self._depth()}, status=200 if ready else 503
        )
