"""``python -m bench.run --sizes 10000 100000``: LUMA against the baselines, one query at a time.

Prints one table and one target list per size and writes ``bench/results/bench-<size>.json``.
This module only parses flags and pins thread counts (which must happen before numpy and FAISS
are imported); the measuring lives in :mod:`bench.runner`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.methods import FULL_SLOW_MAX, METHODS, SIMPLE

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags (``--help`` lists them)."""
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[10_000, 100_000],
        help="corpus sizes to run, in order (default: 10000 100000)",
    )
    p.add_argument("--queries", type=int, default=200, help="held-out queries per size")
    p.add_argument(
        "--slow-queries",
        type=int,
        default=10,
        help=f"queries timed for {SIMPLE} when the size exceeds {FULL_SLOW_MAX}",
    )
    p.add_argument(
        "--simple-max",
        type=int,
        default=100_000,
        help=f"skip {SIMPLE} above this size (it holds Python float lists)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=list(METHODS),
        help="contenders to run (default: all)",
    )
    p.add_argument("-k", "--k", type=int, default=10, help="neighbours per query")
    p.add_argument("--dim", type=int, default=512, help="vector width")
    p.add_argument("--clusters", type=int, default=1000, help="mixture components")
    p.add_argument(
        "--noise", type=float, default=0.6, help="perturbation norm relative to the unit centre"
    )
    p.add_argument("--seed", type=int, default=0, help="data seed")
    p.add_argument(
        "--hot-fraction",
        type=float,
        default=0.10,
        help="LUMA hot_budget as a fraction of the size (at least --hot-min)",
    )
    p.add_argument("--hot-min", type=int, default=1000, help="smallest LUMA hot_budget")
    p.add_argument("--ingest-batch", type=int, default=1000, help="rows per LUMA add_vectors call")
    p.add_argument(
        "--spill-batches",
        type=int,
        default=5,
        help="add_vectors calls (hot_budget/10 rows each) during the spill window",
    )
    p.add_argument("--warmup", type=int, default=5, help="untimed queries before each timing")
    p.add_argument(
        "--bandwidth-mb",
        type=int,
        default=0,
        help="buffer size (MiB) for the memory-bandwidth probe (default: max(512, 4 x LLC))",
    )
    p.add_argument(
        "--store-dir",
        type=Path,
        default=None,
        help="parent folder for the temporary LUMA store (default: system temp)",
    )
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON files go")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads per query for BLAS and FAISS (OpenMP) in every contender; 0 leaves the "
        "library defaults (default: 1, one core per query)",
    )
    p.add_argument(
        "--fail-on-miss",
        action="store_true",
        help="exit 1 when a target is MISS (default: only errors fail)",
    )
    args = p.parse_args(argv)
    if min(args.sizes) < 1 or args.queries < 1 or args.k < 1:
        p.error("--sizes, --queries and --k must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Parse flags, pin threads, run the bench; returns the exit status."""
    args = parse_args(argv)
    if "numpy" in sys.modules and args.threads:
        print("warning: numpy was imported before --threads could apply to BLAS", file=sys.stderr)
    if args.threads:
        for var in _THREAD_VARS:
            os.environ[var] = str(args.threads)
    from bench.runner import run_all

    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
