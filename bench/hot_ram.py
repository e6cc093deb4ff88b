"""Hot-tier RAM per live item in steady state: a spill-heavy ingest with deletes (#14).

Adds ``--items`` clustered unit vectors (d = ``--dim``) in batches of ``--batch`` to a store
with ``hot_budget = --hot-budget``, deleting ``--delete-share`` of each batch's predecessors
as it goes, and prints ``hot_bytes`` / live hot items (``luma.stats()``, which counts the fp16
vectors, graph links, tombstones and bookkeeping) after every ``--report-every`` items and
after ``wait_idle()``; the target is ≤ 2,400 B per live item at d = 512::

    python -m bench.hot_ram                       # 100k items, hot budget 20k
    python -m bench.hot_ram --items 20000 --hot-budget 4000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.data import tight_clusters
from luma_rag import Luma, LumaConfig

TARGET_B_PER_ITEM_D512 = 2400


def main(argv: Sequence[str] | None = None) -> int:
    """Ingest, delete, print bytes per live hot item along the way."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--hot-budget", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--delete-share", type=float, default=0.05)
    ap.add_argument("--report-every", type=int, default=20_000)
    args = ap.parse_args(argv)
    x = tight_clusters(args.items, args.dim, seed=31, clusters=200)
    rng = np.random.default_rng(32)
    target = TARGET_B_PER_ITEM_D512 * args.dim / 512
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        cfg = LumaConfig(dim=args.dim, hot_budget=args.hot_budget)
        with Luma.open(Path(tmp) / "store", cfg) as luma:
            t0 = time.perf_counter()
            ids: list[str] = []
            for start in range(0, args.items, args.batch):
                ids += luma.add_vectors(x[start : start + args.batch])
                gone = rng.choice(len(ids), int(args.delete_share * args.batch), replace=False)
                luma.delete([ids[i] for i in gone])
                drop = set(gone.tolist())
                ids = [i for j, i in enumerate(ids) if j not in drop]
                s = luma.stats()
                per = s["hot_bytes"] / max(1, s["hot"])
                worst = max(worst, per) if start >= args.hot_budget else worst
                if (start + args.batch) % args.report_every == 0:
                    print(
                        f"{start + args.batch:>8} added: hot {s['hot']} live, "
                        f"{s['hot_tombstones']} tombstones, {per:,.0f} B/live item "
                        f"({time.perf_counter() - t0:.0f} s)",
                        flush=True,
                    )
            luma.wait_idle()
            s = luma.stats()
            per = s["hot_bytes"] / max(1, s["hot"])
    print(
        f"after wait_idle: hot {s['hot']} live, {s['hot_tombstones']} tombstones, "
        f"{per:,.0f} B/live item; worst once over budget {worst:,.0f} "
        f"(target <= {target:,.0f}: {'PASS' if max(per, worst) <= target else 'MISS'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
