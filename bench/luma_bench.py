"""The LUMA engine as a contender, plus the query-latency-during-spill measurement."""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure import LatencySummary

__all__ = ["LumaMethod", "SpillWindow", "luma_available", "measure_spill", "telemetry_summary"]


def luma_available() -> tuple[bool, str]:
    """Whether ``from luma_rag import Luma, LumaConfig`` works, and why not if it does not."""
    try:
        from luma_rag import Luma, LumaConfig  # noqa: F401
    except ImportError as e:
        return False, f"luma_rag.Luma not importable ({e})"
    return True, ""


def _wait_idle(luma: Any) -> bool:
    """Call ``luma.wait_idle()`` when the engine has it; return whether it did."""
    wait = getattr(luma, "wait_idle", None)
    if wait is None:
        return False
    wait()
    return True


class LumaMethod:
    """``Luma.open(path, LumaConfig(dim, hot_budget))`` fed in batches, searched one query a time.

    Args:
        path: store directory (created; should be empty).
        hot_budget: items the hot tier may hold before spilling to warm.
        ingest_batch: rows per ``add_vectors`` call.
    """

    name = "luma"

    def __init__(self, path: Path, hot_budget: int, ingest_batch: int = 1000) -> None:
        self.path = path
        self.hot_budget = hot_budget
        self.ingest_batch = ingest_batch
        self.luma: Any = None
        self._stack = contextlib.ExitStack()
        self._row_of: dict[str, int] = {}
        self.add_seconds = float("nan")
        self.settle_seconds = float("nan")
        self.has_wait_idle = False

    def build(self, corpus: np.ndarray) -> None:
        """Open the store and ``add_vectors`` the corpus batch by batch, then ``wait_idle``."""
        from luma_rag import Luma, LumaConfig

        cfg = LumaConfig(dim=int(corpus.shape[1]), hot_budget=self.hot_budget)
        self.luma = self._stack.enter_context(Luma.open(self.path, cfg))
        t0 = time.perf_counter()
        for start in range(0, corpus.shape[0], self.ingest_batch):
            self.add(corpus[start : start + self.ingest_batch], first_row=start)
        t1 = time.perf_counter()
        self.has_wait_idle = _wait_idle(self.luma)
        self.add_seconds = t1 - t0
        self.settle_seconds = time.perf_counter() - t1

    def add(self, block: np.ndarray, *, first_row: int | None = None) -> None:
        """``add_vectors(block)``; rows numbered from ``first_row`` (``None``: not tracked)."""
        ids = self.luma.add_vectors(np.ascontiguousarray(block, dtype=np.float32))
        if len(ids) != block.shape[0]:
            raise RuntimeError(f"add_vectors returned {len(ids)} ids for {block.shape[0]} rows")
        if first_row is not None:
            for j, item_id in enumerate(ids):
                self._row_of[str(item_id)] = first_row + j

    def search(self, query: np.ndarray, k: int) -> Any:
        """``luma.search(q, k)`` -> ``QueryResult``."""
        return self.luma.search(query, k=k)

    def rows(self, result: Any) -> list[int]:
        """Corpus rows of the hits (ids added outside the corpus map to ``-1``)."""
        return [self._row_of.get(str(hit.id), -1) for hit in result.hits]

    def stats(self) -> dict[str, Any]:
        """``luma.stats()`` as a plain dict."""
        return dict(self.luma.stats())

    def index_bytes(self) -> tuple[float | None, str]:
        """``hot_bytes + warm_bytes`` from ``stats()`` when the engine reports them."""
        s = self.stats()
        if "hot_bytes" in s and "warm_bytes" in s:
            return float(s["hot_bytes"]) + float(s["warm_bytes"]), "luma.stats()"
        return None, "n/a (stats() has no hot_bytes/warm_bytes)"

    def close(self) -> None:
        """Leave the ``with Luma.open(...)`` block."""
        self._stack.close()
        self.luma = None


def telemetry_summary(results: list[Any]) -> dict[str, Any]:
    """Rates of ``safe1`` / ``complete`` and the share of hits per tier over ``results``."""
    out: dict[str, Any] = {}
    tele = [getattr(r, "telemetry", None) for r in results]
    for key in ("safe1", "complete"):
        values = [getattr(t, key) for t in tele if t is not None and hasattr(t, key)]
        out[f"{key}_rate"] = float(np.mean([bool(v) for v in values])) if values else None
    raw = [getattr(t, "latency_ms", None) for t in tele if t is not None]
    lat = [float(v) for v in raw if v is not None]
    out["telemetry_latency_ms_mean"] = float(np.mean(lat)) if lat else None
    tiers: dict[str, int] = {}
    for r in results:
        for hit in r.hits:
            tier = str(getattr(hit, "tier", "unknown"))
            tiers[tier] = tiers.get(tier, 0) + 1
    total = sum(tiers.values())
    out["hit_tier_share"] = {t: c / total for t, c in sorted(tiers.items())} if total else {}
    return out


@dataclass
class SpillWindow:
    """Query latencies recorded while another thread added rows that force hot → warm spills."""

    latencies_ms: np.ndarray
    add_seconds: float
    settle_seconds: float
    rows_added: int
    stats_before: dict[str, Any]
    stats_after: dict[str, Any]

    @property
    def spilled(self) -> int | None:
        """Growth of the warm tier over the window (``None`` if stats lack ``warm``)."""
        if "warm" not in self.stats_before or "warm" not in self.stats_after:
            return None
        return int(self.stats_after["warm"]) - int(self.stats_before["warm"])

    def summary(self) -> LatencySummary:
        """Latency percentiles inside the window."""
        return LatencySummary.of(self.latencies_ms)


def measure_spill(
    method: LumaMethod, queries: np.ndarray, extra: np.ndarray, k: int, batch: int
) -> SpillWindow:
    """Query from this thread while a second thread adds ``extra`` in ``batch`` -row calls.

    The window opens when the adder starts and closes when its last ``add_vectors`` returned
    and ``wait_idle`` (background retraining) finished, so both the synchronous spill and any
    background work it triggers are inside it.
    """
    stats_before = method.stats()
    start = threading.Event()
    done = threading.Event()
    timings: dict[str, float] = {}
    failure: list[BaseException] = []

    def adder() -> None:
        try:
            start.wait()
            t0 = time.perf_counter()
            for s in range(0, extra.shape[0], batch):
                method.add(extra[s : s + batch])
            t1 = time.perf_counter()
            _wait_idle(method.luma)
            timings["add"] = t1 - t0
            timings["settle"] = time.perf_counter() - t1
        except BaseException as e:
            failure.append(e)
        finally:
            done.set()

    gc.collect()
    thread = threading.Thread(target=adder, name="bench-spill-adder")
    thread.start()
    latencies: list[float] = []
    search: Callable[[np.ndarray, int], Any] = method.search
    i = 0
    start.set()
    while not done.is_set():
        q = queries[i % len(queries)]
        t0 = time.perf_counter_ns()
        search(q, k)
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
        i += 1
    thread.join()
    if failure:
        raise RuntimeError("adding rows during the spill window failed") from failure[0]
    return SpillWindow(
        latencies_ms=np.asarray(latencies, dtype=np.float64),
        add_seconds=timings["add"],
        settle_seconds=timings["settle"],
        rows_added=int(extra.shape[0]),
        stats_before=stats_before,
        stats_after=method.stats(),
    )
