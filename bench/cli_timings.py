"""``python -m bench.cli_timings``: how long the ``luma`` command takes, per subcommand.

Every command runs in a fresh interpreter (what a user typing it pays: imports, opening the
store, the work, exit), ``--repeats`` times; the table prints the median and the spread, and
the ratio to two peers measured in the same run on the same machine: a bare interpreter
(``python -c pass``) and one importing numpy and FAISS (what any FAISS-backed CLI pays). The
issue's targets (``luma --help`` < 1 s, ``luma stats`` < 2 s) are printed as PASS / MISS
lines; nothing is asserted. ``--with-model`` adds ingest and text query with the shipped tiny
CLIP (a new store calibrates ρ once: the ingest line says how long that takes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"luma --help": 1.0, "luma stats": 2.0}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "integrations"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def _time(argv: Sequence[str], repeats: int) -> list[float]:
    """Wall seconds of ``argv`` in a fresh process, ``repeats`` times (it must exit 0)."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=_env(), check=False)
        out.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}")
    return out


def _vector_store(path: Path, n: int, dim: int) -> Path:
    from luma_rag import Luma, LumaConfig

    vectors = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    with Luma.open(path, LumaConfig(dim=dim)) as luma:
        luma.add_vectors(vectors, ids=[f"item-{i}" for i in range(n)])
    query = path.parent / "q.npy"
    np.save(query, vectors[3])
    return query


def main(argv: Sequence[str] | None = None) -> int:
    """Print the timing table; returns 0."""
    p = argparse.ArgumentParser(prog="python -m bench.cli_timings", description=__doc__)
    p.add_argument("--repeats", type=int, default=5, help="runs per command (median reported)")
    p.add_argument("--items", type=int, default=5000, help="items in the vector store")
    p.add_argument("--dim", type=int, default=512, help="vector width of the vector store")
    p.add_argument("--with-model", action="store_true", help="also ingest + text query (tiny CLIP)")
    args = p.parse_args(argv)
    py = sys.executable
    luma = [py, "-m", "luma_rag"]
    with tempfile.TemporaryDirectory(prefix="luma-cli-timings-") as tmp:
        store = Path(tmp) / "store"
        query = _vector_store(store, args.items, args.dim)
        s = ["--store", str(store)]
        runs: dict[str, list[float]] = {
            "python -c pass (peer)": _time([py, "-c", "pass"], args.repeats),
            "python -c 'import numpy, faiss' (peer)": _time(
                [py, "-c", "import numpy, faiss"], args.repeats
            ),
            "luma --help": _time([*luma, "--help"], args.repeats),
            "luma stats": _time([*luma, "stats", *s], args.repeats),
            "luma gaps": _time([*luma, "gaps", *s], args.repeats),
            "luma query --vector": _time(
                [*luma, "query", "--vector", str(query), *s], args.repeats
            ),
        }
        if args.with_model:
            from luma_rag.datasets import generate

            corpus = generate(Path(tmp) / "corpus", n=24, seed=0, size=64).parent
            model_store = ["--store", str(Path(tmp) / "model-store")]
            runs["luma ingest (24 images, new store)"] = _time(
                [*luma, "ingest", str(corpus), *model_store, "-q"], 1
            )
            runs["luma query TEXT (tiny CLIP)"] = _time(
                [*luma, "query", "a red circle", *model_store, "-q"], args.repeats
            )
    base = statistics.median(runs["python -c pass (peer)"])
    faiss_peer = statistics.median(runs["python -c 'import numpy, faiss' (peer)"])
    print(f"{args.items} items x {args.dim}-d; {args.repeats} runs per command; fresh processes")
    print(
        f"{'command':42} {'median s':>9} {'min–max s':>13} {'/ bare py':>10} {'/ numpy+faiss':>14}"
    )
    for name, times in runs.items():
        med = statistics.median(times)
        spread = f"{min(times):.2f}–{max(times):.2f}"
        print(f"{name:42} {med:9.3f} {spread:>13} {med / base:10.1f} {med / faiss_peer:14.2f}")
    for name, limit in TARGETS.items():
        med = statistics.median(runs[name])
        print(
            f"{'PASS' if med < limit else 'MISS'}: {name} median {med:.2f} s (target < {limit} s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
