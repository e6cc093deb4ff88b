"""``python -m bench.stages``: where one ``Luma.search`` spends its time, stage by stage.

Opens the store cached by :mod:`bench.interleaved` (``bench/results/interleaved-<dist>-<n>.luma``,
built there on first use) and, per query, times each step of the default search path on its
own (hot HNSW probe, warm IVF probe, the exact merge, certificate, completeness, records) with
the thread's CPU clock, then prints the medians, what the query path did (hot efSearch, warm
lists probed of how many, warm rows reranked, hot hits rescored) and whether background work
(warm retrain, hot rebuild) was running.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from bench.interleaved import RESULTS, _luma, cached_dataset


def main(argv: list[str] | None = None) -> int:
    """Parse flags, open the cached store, profile the stages."""
    p = argparse.ArgumentParser(prog="python -m bench.stages", description=__doc__)
    p.add_argument("--distribution", default="mixture", choices=("mixture", "hard", "minilm"))
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--k", type=int, default=10)
    args = p.parse_args(argv)
    data, tag = cached_dataset(args.distribution, args.size, args.queries)
    luma = _luma(data.corpus, RESULTS / f"{tag}.luma", max(1000, args.size // 10))
    from luma_rag.memory.candidates import kth_floor, merge_tiers, warm_hits
    from luma_rag.memory.ivf_search import FloorRaiser
    from luma_rag.pipeline import _certify, _complete_at
    from luma_rag.safety import score_rounding_error

    store = luma.backend  # type: ignore[attr-defined]
    mem = store.memory
    k = args.k
    fetch_k = max(k, store.config.rerank_depth)
    eta = score_rounding_error(data.dim)
    clock = time.thread_time_ns
    rows: dict[str, list[float]] = {}
    seen: dict[str, list[float]] = {}
    busy = 0
    scored: list[int] = []

    def counting(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
        scored.append(len(keys))
        return mem._score(keys, query)  # type: ignore[no-any-return]

    raised: list[float] = []  # the floor the warm probe raised (none when it did not)
    depth = mem.warm.depth(fetch_k)

    for i, q in enumerate(data.queries):
        scored.clear()
        t = [clock()]
        hot = mem.hot.search(q, max(k, min(fetch_k, mem.hot.config.ef_search)), None)
        t.append(clock())
        raised.clear()

        def search(floor: float, raiser: FloorRaiser, q: np.ndarray = q) -> object:
            def raising(keys: np.ndarray) -> float:
                raised.append(raiser(keys))
                return raised[-1]

            return mem.warm.search(q, depth, None, floor, raising)

        warm, pre = warm_hits(q, hot, k, counting, search, mem.warm.zeta_of)
        t.append(clock())
        cands = merge_tiers(
            q,
            hot,
            warm,
            fetch=mem._fetch,
            score=counting,
            k=k,
            fetch_k=fetch_k,
            sigmas=mem.warm.config.refine_sigmas,
            pre=pre,
        )
        t.append(clock())
        cert, _ = _certify(store, cands, k, 0.0, 2.0, eta)
        t.append(clock())
        _complete_at(store, cands, cert, k, 0.0, 2.0, eta)
        t.append(clock())
        store.details(cands.keys[:k].tolist())
        t.append(clock())
        luma.search(q, k=k)  # type: ignore[attr-defined]
        t.append(clock())
        if i < 10:
            continue  # warm-up
        names = ("hot", "warm probe", "merge+rerank", "certify", "complete", "records", "search")
        for name, a, b in zip(names, t[:-1], t[1:], strict=True):
            rows.setdefault(name, []).append((b - a) / 1e6)
        seen.setdefault("hot hits", []).append(len(hot.keys))
        seen.setdefault("warm code hits", []).append(len(warm.keys))
        in_warm = int(np.isin(cands.keys, warm.keys).sum())
        seen.setdefault("rows scored exactly", []).append(sum(scored))
        st = mem.warm._state
        if st.trained:  # the lists the probe scanned: top nprobe by ⟨q, c⟩ that reach the floor
            cq = st.centroids @ q
            top = np.argsort(-cq)[: st.nprobe]
            floor = max([kth_floor(hot, k), *raised])
            reach = cq[top] + st.list_radius[top] + (len(q) + 16) * 2.0**-22 >= floor
            seen.setdefault("warm lists scanned", []).append(int(reach.sum()))
        seen.setdefault("warm kept", []).append(in_warm)
        seen.setdefault("candidates kept", []).append(len(cands.keys))
        seen.setdefault("outside bound finite", []).append(float(np.isfinite(cands.outside_bound)))
        busy += int(mem.warm.retraining or mem.hot._thread is not None)
    s = store.memory.stats()
    state = mem.warm._state
    nlist = len(state.centroids)
    print(
        f"{args.distribution} {args.size:,}: hot {s['hot']:,} (tombstones {s['hot_tombstones']}), "
        f"warm {s['warm']:,} trained={s['warm_trained']} nlist {nlist} nprobe {state.nprobe} "
        f"nbits {state.nbits() if state.trained else '-'}; hot efSearch "
        f"{mem.hot.config.ef_search}; fetch_k {fetch_k}; load {os.getloadavg()[0]:.2f}"
    )
    print(f"  background work running during {busy} of {len(rows['hot'])} queries")
    for name, v in rows.items():
        print(f"  {name:>14}: median {np.median(v):.3f} ms CPU, p90 {np.percentile(v, 90):.3f}")
    for name, v in seen.items():
        print(f"  {name:>20}: median {np.median(v):.1f}, mean {np.mean(v):.1f}, max {max(v):.0f}")
    luma.close()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
