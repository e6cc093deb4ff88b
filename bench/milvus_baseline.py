"""The Milvus row of the benchmark: LUMA's Milvus backend on the same data and queries.

``python -m bench.milvus_baseline --size 100000`` starts a local Milvus standalone server (or
uses ``--address host:port``), ingests the seeded corpus of :mod:`bench.data`, waits for the
index, then times held-out queries one at a time through
:meth:`luma_rag.backends.MilvusBackend.search` (ANN candidates with their raw vectors, exact
rerank). It prints ingest rate, p50 / p95 latency and recall@k against the exact top-k, next
to numpy brute force measured in the same run (the ratio is what to compare across machines).

:func:`milvus_row` returns the same figures as a dict, for :mod:`bench.run`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import Dataset, exact_topk, make_dataset, recall_at_k
from bench.measure import LatencySummary

__all__ = ["main", "milvus_row"]

_BATCH = 2000


def _wait_indexed(backend: Any, n: int, timeout: float = 1800.0) -> float:
    """Flush, then wait until Milvus reports every row indexed; returns the seconds waited."""
    t0 = time.perf_counter()
    backend.flush()
    client, name = backend._client, backend.config.collection  # bench-only peek at the client
    while time.perf_counter() - t0 < timeout:
        info = client.describe_index(name, index_name="vec")
        if int(info.get("indexed_rows", 0)) >= n and int(info.get("pending_index_rows", 0)) == 0:
            break
        time.sleep(1.0)
    return time.perf_counter() - t0


def milvus_row(
    ds: Dataset,
    k: int = 10,
    *,
    address: str,
    index: str = "HNSW",
    rerank_depth: int = 64,
    warmup: int = 5,
) -> dict[str, Any]:
    """Ingest ``ds.corpus`` into a fresh collection at ``address``, time ``ds.queries``.

    Returns:
        dict with ingest (items/s, index wait), latency percentiles, recall@k, and the
        numpy brute-force peer's p50 on the same queries.
    """
    from luma_rag.backends import MilvusBackend, MilvusConfig

    cfg = MilvusConfig(
        address=address,
        collection=f"bench_{uuid.uuid4().hex[:10]}",
        index=index,  # type: ignore[arg-type]
        rerank_depth=rerank_depth,
    )
    n = ds.corpus.shape[0]
    backend = MilvusBackend(cfg, dim=ds.dim)
    try:
        ids = [str(i) for i in range(n)]
        empty: list[dict[str, Any]] = [{}] * n
        t0 = time.perf_counter()
        for s in range(0, n, _BATCH):
            backend.upsert(ids[s : s + _BATCH], ds.corpus[s : s + _BATCH], empty[s : s + _BATCH])
        insert_s = time.perf_counter() - t0
        index_s = _wait_indexed(backend, n)
        for q in ds.queries[:warmup]:
            backend.search(q, k)
        lat = np.empty(len(ds.queries))
        found = np.full((len(ds.queries), k), -1, dtype=np.int64)
        for i, q in enumerate(ds.queries):
            t = time.perf_counter_ns()
            res = backend.search(q, k)
            lat[i] = (time.perf_counter_ns() - t) / 1e6
            got = [int(x) for x in res.ids[:k]]
            found[i, : len(got)] = got
    finally:
        backend.drop()
        backend.close()
    truth = exact_topk(ds.corpus, ds.queries, k)
    peer = np.empty(len(ds.queries))
    for i, q in enumerate(ds.queries):
        t = time.perf_counter_ns()
        s = ds.corpus @ q
        np.argpartition(-s, k)[:k]
        peer[i] = (time.perf_counter_ns() - t) / 1e6
    summary = LatencySummary.of(lat)
    return {
        "method": f"milvus-{index.lower()}+exact-rerank",
        "n": n,
        "queries": len(ds.queries),
        "k": k,
        "rerank_depth": rerank_depth,
        "ingest": {
            "insert_seconds": insert_s,
            "items_per_s": n / insert_s,
            "index_wait_seconds": index_s,
            "items_per_s_incl_index": n / (insert_s + index_s),
        },
        "latency": summary.__dict__,
        "recall_at_k": recall_at_k(found, truth, k),
        "numpy_exact_p50_ms": float(np.percentile(peer, 50)),
        "p50_ratio_vs_numpy": summary.p50_ms / float(np.percentile(peer, 50)),
    }


def main(argv: list[str] | None = None) -> int:
    """Standalone run; prints one line of figures and the JSON."""
    p = argparse.ArgumentParser(prog="python -m bench.milvus_baseline", description=__doc__)
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--seed", type=int, default=0, help="data seed (bench.run's default)")
    p.add_argument("--index", choices=["HNSW", "IVF_PQ", "FLAT"], default="HNSW")
    p.add_argument("--address", help="host:port of a running Milvus (default: start one)")
    p.add_argument("--out", type=Path, help="write the JSON here")
    args = p.parse_args(argv)
    ds = make_dataset(args.size, args.queries, 0, dim=args.dim, seed=args.seed)
    server = None
    with tempfile.TemporaryDirectory(prefix="luma-milvus-bench-") as tmp:
        address = args.address
        if address is None:
            from luma_rag.backends.servers import start_milvus

            server = start_milvus(Path(tmp) / "milvus")
            address = server.endpoint
        try:
            row = milvus_row(ds, args.k, address=address, index=args.index)
        finally:
            if server is not None:
                server.stop()
    lat, ing = row["latency"], row["ingest"]
    print(
        f"{row['method']} n={row['n']} q={row['queries']}: "
        f"ingest {ing['items_per_s']:.0f}/s (+ index {ing['index_wait_seconds']:.1f} s), "
        f"p50 {lat['p50_ms']:.2f} ms, p95 {lat['p95_ms']:.2f} ms, "
        f"recall@{row['k']} {row['recall_at_k']:.4f}; numpy exact p50 "
        f"{row['numpy_exact_p50_ms']:.2f} ms (ratio {row['p50_ratio_vs_numpy']:.2f})"
    )
    text = json.dumps(row, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
