"""``python -m bench.interleaved``: LUMA's query p50 against bare FAISS HNSW, query by query.

Each query is timed on bare HNSW and on ``Luma.search`` (certificate and metadata on) in turn,
on one 100k store and one HNSW index cached under ``bench/results/interleaved-*`` (built on the
first run), so both see the same machine load. Prints both p50s, the p50 ratios (wall clock,
and the thread's CPU time, which a shared machine's load disturbs less) with 95 % bootstrap
intervals, recall@10 of each against exact search, and LUMA's median stage times.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from bench.data import Dataset, exact_topk, recall_at_k
from bench.distributions import load_distribution

RESULTS = Path(__file__).resolve().parent / "results"


def _hnsw(corpus: np.ndarray, path: Path) -> object:
    import faiss

    if path.exists():
        index = faiss.read_index(str(path))
    else:
        index = faiss.IndexHNSWFlat(corpus.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
        index.add(corpus)
        faiss.write_index(index, str(path))
    index.hnsw.efSearch = 64
    return index


def _luma(corpus: np.ndarray, path: Path, hot_budget: int, hot_ef: int | None = None) -> object:
    from luma_rag import Luma, LumaConfig
    from luma_rag.memory import HotTierConfig

    cfg = LumaConfig(dim=int(corpus.shape[1]), hot_budget=hot_budget)
    if hot_ef is not None:  # a query-time setting: the cached graph is reused
        cfg = dataclasses.replace(cfg, hot=HotTierConfig(ef_search=hot_ef))
    fresh = not path.exists()
    luma = Luma.open(path, cfg)
    if fresh:
        t0 = time.perf_counter()
        for start in range(0, len(corpus), 1000):
            luma.add_vectors(
                corpus[start : start + 1000],
                ids=[str(i) for i in range(start, min(start + 1000, len(corpus)))],
            )
        luma.wait_idle()
        print(f"built the LUMA store in {time.perf_counter() - t0:.0f} s", flush=True)
    return luma


def _boot_ratio(a: np.ndarray, b: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n, len(a)))
    r = np.median(a[idx], axis=1) / np.median(b[idx], axis=1)
    lo, hi = np.percentile(r, [2.5, 97.5])
    return float(lo), float(hi)


def cached_dataset(distribution: str, size: int, queries: int) -> tuple[Dataset, str]:
    """The ``distribution``'s dataset (``size`` items, ``queries`` queries, seed 0) and the
    file tag its cached indexes and stores go under in :data:`RESULTS` (created)."""
    ns = argparse.Namespace(
        dim=512, clusters=1000, noise=0.6, seed=0, cache_dir=RESULTS, minilm_max=size
    )
    data = load_distribution(distribution, size, queries, 0, ns).dataset
    RESULTS.mkdir(parents=True, exist_ok=True)
    return data, f"interleaved-{distribution}-{size}"


def main(argv: list[str] | None = None) -> int:
    """Parse flags, build or open the cached indexes, time the queries interleaved."""
    p = argparse.ArgumentParser(prog="python -m bench.interleaved", description=__doc__)
    p.add_argument("--distribution", default="hard", choices=("mixture", "hard", "minilm"))
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--hot-ef", type=int, default=None, help="LUMA hot tier efSearch (default 64)")
    args = p.parse_args(argv)
    data, tag = cached_dataset(args.distribution, args.size, args.queries)
    hnsw = _hnsw(data.corpus, RESULTS / f"{tag}.hnsw")
    luma = _luma(data.corpus, RESULTS / f"{tag}.luma", max(1000, args.size // 10), args.hot_ef)
    truth = exact_topk(data.corpus, data.queries, args.k)
    qs = data.queries
    for q in qs[:20]:  # warm-up
        hnsw.search(q[None, :], args.k)  # type: ignore[attr-defined]
        luma.search(q, k=args.k)  # type: ignore[attr-defined]
    th, tl, ch, cl, stages = [], [], [], [], []
    clock = time.thread_time_ns
    found_h = np.zeros((len(qs), args.k), np.int64)
    found_l = np.full((len(qs), args.k), -1, np.int64)
    for _ in range(args.rounds):
        for i, q in enumerate(qs):
            q2 = q[None, :]
            c0, t0 = clock(), time.perf_counter_ns()
            _, ih = hnsw.search(q2, args.k)  # type: ignore[attr-defined]
            c1, t1 = clock(), time.perf_counter_ns()
            res = luma.search(q, k=args.k)  # type: ignore[attr-defined]
            c2, t2 = clock(), time.perf_counter_ns()
            th.append((t1 - t0) / 1e6)
            tl.append((t2 - t1) / 1e6)
            ch.append((c1 - c0) / 1e6)
            cl.append((c2 - c1) / 1e6)
            stages.append(res.telemetry.stages_ms)
            found_h[i] = ih[0]
            found_l[i, : len(res.hits)] = [int(h.id) for h in res.hits]
    load = os.getloadavg()[0]
    print(f"{args.distribution} {args.size:,}: n = {len(tl)} interleaved queries, load {load:.2f}")
    for name, t, found in (("hnsw", th, found_h), ("luma", tl, found_l)):
        rec = recall_at_k(found, truth, args.k)
        print(f"  {name} p50 {np.median(t):.3f} ms  recall@{args.k} {rec:.4f}")
    for what, a, b in (("wall", tl, th), ("cpu", cl, ch)):
        lo, hi = _boot_ratio(np.asarray(a), np.asarray(b))
        ratio = np.median(a) / np.median(b)
        print(f"  {what} p50 luma/hnsw {ratio:.2f} [{lo:.2f}, {hi:.2f}] (95 % bootstrap)")
    print(f"  cpu p50 ms: hnsw {np.median(ch):.3f}, luma {np.median(cl):.3f}")
    names = sorted({k for s in stages for k in s})
    med = {k: float(np.median([s.get(k, 0.0) for s in stages])) for k in names}
    print("  stage medians ms: " + ", ".join(f"{k} {v:.3f}" for k, v in med.items()))
    luma.close()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
