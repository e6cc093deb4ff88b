"""The method interface every contender implements, and the one-query-at-a-time timer."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from bench.data import recall_at_k
from bench.machine import rss_bytes

__all__ = ["BuildResult", "LatencySummary", "Method", "QueryRun", "build_method", "time_queries"]


class Method(Protocol):
    """A contender: build once from the corpus, then answer one query per call.

    ``search`` is the only timed call; ``rows`` turns its native result into corpus row indices
    outside the timer, so bookkeeping the library would not do is not charged to it.
    """

    name: str

    def build(self, corpus: np.ndarray) -> None:
        """Index ``corpus`` (``(n, d)`` float32 unit rows); row ``i`` has id ``i``."""
        ...

    def search(self, query: np.ndarray, k: int) -> Any:
        """Answer one ``(d,)`` float32 query the way a user of the library would."""
        ...

    def rows(self, result: Any) -> list[int]:
        """Corpus row indices of ``result``, best first."""
        ...

    def index_bytes(self) -> tuple[float | None, str]:
        """Bytes the index keeps in RAM and how that figure was obtained."""
        ...

    def close(self) -> None:
        """Free the index."""
        ...


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of per-query latencies in milliseconds."""

    n: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    qps: float

    @classmethod
    def of(cls, latencies_ms: np.ndarray) -> LatencySummary:
        """Summarise a 1-D array of latencies (ms)."""
        lat = np.asarray(latencies_ms, dtype=np.float64)
        if lat.size == 0:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan, nan)
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        return cls(
            n=int(lat.size),
            p50_ms=float(p50),
            p95_ms=float(p95),
            p99_ms=float(p99),
            mean_ms=float(lat.mean()),
            max_ms=float(lat.max()),
            qps=float(1000.0 * lat.size / lat.sum()),
        )


@dataclass
class BuildResult:
    """Ingest figures of one method."""

    seconds: float
    items_per_s: float
    rss_delta_bytes: float | None


@dataclass
class QueryRun:
    """Latencies and retrieved rows of one timed pass."""

    latencies_ms: np.ndarray
    found: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> LatencySummary:
        """Latency percentiles of this pass."""
        return LatencySummary.of(self.latencies_ms)

    def recall(self, truth: np.ndarray, k: int) -> float:
        """Recall@k of this pass against ``truth`` (first ``len(found)`` rows)."""
        return recall_at_k(self.found, truth, k)


def build_method(method: Method, corpus: np.ndarray) -> BuildResult:
    """Time ``method.build(corpus)`` and the resident-set growth it caused."""
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    method.build(corpus)
    seconds = time.perf_counter() - t0
    gc.collect()
    rss1 = rss_bytes()
    delta = float(rss1 - rss0) if rss0 is not None and rss1 is not None else None
    return BuildResult(seconds, corpus.shape[0] / seconds, delta)


def time_queries(
    method: Method,
    queries: np.ndarray,
    k: int,
    *,
    warmup: int = 5,
    on_result: Callable[[Any], None] | None = None,
) -> QueryRun:
    """Run ``queries`` one at a time through ``method.search``; time each call alone.

    Args:
        method: a built :class:`Method`.
        queries: ``(q, d)`` float32; each row is one call.
        k: neighbours per query.
        warmup: untimed calls first (on the first rows) to fault in pages and caches.
        on_result: called (untimed) with each native result, e.g. to collect telemetry.

    Returns:
        A :class:`QueryRun` with ``(q,)`` latencies in ms, ``(q, k)`` rows (``-1`` padded) and
        ``extras["cpu_ms"]``: ``(q,)`` the calling thread's CPU time per call (ms), which other
        processes competing for the cores stretch far less than the wall clock.
    """
    for q in queries[: min(warmup, len(queries))]:
        method.search(q, k)
    gc.collect()
    latencies = np.empty(len(queries), dtype=np.float64)
    cpu = np.empty(len(queries), dtype=np.float64)
    found = np.full((len(queries), k), -1, dtype=np.int64)
    for i, q in enumerate(queries):
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        result = method.search(q, k)
        t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        latencies[i] = (t1 - t0) / 1e6
        cpu[i] = (c1 - c0) / 1e6
        if on_result is not None:
            on_result(result)
        got = method.rows(result)[:k]
        found[i, : len(got)] = got
    return QueryRun(latencies, found, {"cpu_ms": cpu})
