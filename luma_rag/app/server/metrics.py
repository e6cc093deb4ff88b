"""Prometheus metrics of the service: what every query and gate decision measured.

Per query (``/query``, ``/answer``, and every fetch the gate makes): latency by stage
(``Telemetry.stages_ms`` plus ``total``), the certificate's ε (query side), ζ (max over warm
candidates), ρ, and whether it was Safe@1. Per gated answer: the decision (answer / widen /
clarify). At scrape time, read from the engine: items per tier, the bridge's ε and the number of
knowledge gaps logged. Each :class:`ServiceMetrics` has its own registry, so two apps in one
process (the tests) never share counters.

Example:
    >>> metrics = ServiceMetrics(luma)
    >>> metrics.observe_query("text", result.telemetry)
    >>> body, content_type = metrics.render()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from luma_rag.results import Telemetry

if TYPE_CHECKING:
    from luma_rag.engine import Luma

__all__ = ["STAGES", "ServiceMetrics"]

logger = logging.getLogger(__name__)

#: Stages whose latency is recorded (``Telemetry.stages_ms`` keys, plus the whole query).
STAGES: Final = ("encode", "bridge", "candidates", "certify", "complete", "records", "total")
_LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0
)  # fmt: skip
_RADIUS_BUCKETS: Final = (0.0, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)


class ServiceMetrics:
    """The service's Prometheus registry: query, decision and store metrics.

    Metric names (all prefixed ``luma_``):

    * ``query_stage_seconds{stage}`` — histogram of each stage's wall time.
    * ``queries_total{kind}`` / ``queries_safe1_total{kind}`` — counters; their ratio is the
      Safe@1 rate (``luma_safe1_rate`` gives the running ratio over all kinds directly).
    * ``query_epsilon`` / ``query_zeta_max`` / ``query_rho`` — histograms of ε_q, ζ_max, ρ.
    * ``gate_decisions_total{decision}`` — counter of ANSWER / WIDEN / CLARIFY.
    * ``requests_total{route,status}`` — HTTP requests by route template and status code.
    * ``items{tier}``, ``bridge_epsilon``, ``knowledge_gaps`` — gauges read from the store at
      scrape time.
    """

    def __init__(self, luma: Luma) -> None:
        """Create the registry for ``luma`` (prometheus_client is imported here)."""
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.luma = luma
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.stage_seconds = Histogram(
            "luma_query_stage_seconds",
            "Query latency by stage (seconds)",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.queries = Counter("luma_queries", "Queries served, by kind", ["kind"], registry=reg)
        self.safe1 = Counter(
            "luma_queries_safe1",
            "Queries whose top-1 was certified (Safe@1)",
            ["kind"],
            registry=reg,
        )
        self.epsilon = Histogram(
            "luma_query_epsilon", "Bridge drift on the query side (ε_q)", buckets=_RADIUS_BUCKETS,
            registry=reg,
        )  # fmt: skip
        self.zeta = Histogram(
            "luma_query_zeta_max", "Largest PQ error among warm candidates (ζ_max)",
            buckets=_RADIUS_BUCKETS, registry=reg,
        )  # fmt: skip
        self.rho = Histogram(
            "luma_query_rho", "Encoder radius used (ρ)", buckets=_RADIUS_BUCKETS, registry=reg
        )
        self.decisions = Counter(
            "luma_gate_decisions", "Gate decisions, by kind", ["decision"], registry=reg
        )
        self.requests = Counter(
            "luma_requests", "HTTP requests, by route and status", ["route", "status"], registry=reg
        )
        self._count_lock = threading.Lock()
        self._n_queries = 0
        self._n_safe1 = 0
        reg.register(_StoreCollector(self))

    def observe_query(self, kind: str, telemetry: Telemetry) -> None:
        """Record one engine query's telemetry.

        Args:
            kind: The query's modality ("text", "image", "audio", "video", "vector", ...).
            telemetry: The :class:`~luma_rag.results.Telemetry` it returned.
        """
        for stage, ms in telemetry.stages_ms.items():
            if stage in STAGES:
                self.stage_seconds.labels(stage=stage).observe(ms / 1000.0)
        self.stage_seconds.labels(stage="total").observe(telemetry.latency_ms / 1000.0)
        self.queries.labels(kind=kind).inc()
        if telemetry.safe1:
            self.safe1.labels(kind=kind).inc()
        with self._count_lock:
            self._n_queries += 1
            self._n_safe1 += int(telemetry.safe1)
        self.epsilon.observe(telemetry.epsilon)
        self.zeta.observe(telemetry.zeta_max)
        self.rho.observe(telemetry.rho)

    def observe_decision(self, decision: str) -> None:
        """Count one gate decision ("answer", "widen" or "clarify")."""
        self.decisions.labels(decision=decision).inc()

    def observe_request(self, route: str, status: int) -> None:
        """Count one HTTP request by its route template and status code."""
        self.requests.labels(route=route, status=str(status)).inc()

    @property
    def safe1_rate(self) -> float | None:
        """Share of queries served so far that were Safe@1 (None before the first)."""
        with self._count_lock:
            return self._n_safe1 / self._n_queries if self._n_queries else None

    def render(self) -> tuple[bytes, str]:
        """The registry in Prometheus' text exposition format: (body, content type)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _StoreCollector:
    """Gauges read from the engine at scrape time (tier sizes, bridge ε, gaps, Safe@1 rate)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Any]:
        return []  # described lazily: collect() reads the store

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        luma = self._metrics.luma
        stats = luma.stats()
        items = GaugeMetricFamily("luma_items", "Items stored, by tier", labels=["tier"])
        for tier in ("hot", "warm"):
            items.add_metric([tier], float(stats.get(tier, 0)))
        items.add_metric(["total"], float(stats.get("total", 0)))
        yield items
        eps = stats.get("bridge_epsilon")
        yield GaugeMetricFamily(
            "luma_bridge_epsilon",
            "Drift ε of the bridge's last refit (NaN without a bridge)",
            value=float("nan") if eps is None else float(eps),
        )
        newest = luma.knowledge_gaps(limit=1)  # gaps are numbered from 1 and never deleted
        yield GaugeMetricFamily(
            "luma_knowledge_gaps",
            "Knowledge gaps logged in the store (queries the gate could not settle)",
            value=float(newest[0]["gap"]) if newest else 0.0,
        )
        rate = self._metrics.safe1_rate
        yield GaugeMetricFamily(
            "luma_safe1_rate",
            "Share of the queries served since start that were Safe@1 (NaN before the first)",
            value=float("nan") if rate is None else rate,
        )
