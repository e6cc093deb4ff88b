"""The three data distributions every size is measured on.

- ``mixture``: the bench's own mixture (``--clusters`` centres, default 1000, ``--noise`` 0.6).
- ``hard``: 200 clusters, noise 0.6 (the data of issue #14's baseline table): 500 points per
  cluster whose offsets from the centre are isotropic, so product quantization cannot rank
  within a cluster and candidate generation must reach deep.
- ``minilm``: real sentence embeddings (all-MiniLM-L6-v2, d = 384) of local Python text
  (see :mod:`bench.sentences`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from bench.data import Dataset, make_dataset

__all__ = ["HARD_CLUSTERS", "HARD_NOISE", "Loaded", "load_distribution"]

HARD_CLUSTERS = 200
HARD_NOISE = 0.6


@dataclass(frozen=True)
class Loaded:
    """A distribution's data at one size.

    Attributes:
        dataset: corpus, queries and spare rows (float32 unit rows).
        size: corpus size actually used (minilm is capped by the text available).
        description: one line for the printed header.
    """

    dataset: Dataset
    size: int
    description: str


def load_distribution(
    name: str, n: int, n_queries: int, n_extra: int, args: argparse.Namespace
) -> Loaded:
    """Draw (or load from the cache) ``name`` at corpus size ``n``.

    Args:
        name: ``mixture``, ``hard`` or ``minilm``.
        n / n_queries / n_extra: corpus, held-out query and spare-row counts.
        args: the bench flags (``dim``, ``clusters``, ``noise``, ``seed``, ``cache_dir``,
            ``minilm_max``).
    """
    if name == "mixture":
        ds = make_dataset(
            n,
            n_queries,
            n_extra,
            dim=args.dim,
            clusters=args.clusters,
            noise=args.noise,
            seed=args.seed,
        )
        return Loaded(ds, n, f"mixture: d={args.dim}, {args.clusters} clusters, noise {args.noise}")
    if name == "hard":
        ds = make_dataset(
            n,
            n_queries,
            n_extra,
            dim=args.dim,
            clusters=HARD_CLUSTERS,
            noise=HARD_NOISE,
            seed=args.seed,
        )
        return Loaded(ds, n, f"hard: d={args.dim}, {HARD_CLUSTERS} clusters, noise {HARD_NOISE}")
    if name == "minilm":
        from bench.sentences import minilm_dataset

        want = min(n, args.minilm_max)
        ds, used = minilm_dataset(
            want, n_queries, n_extra, seed=args.seed, cache_dir=Path(args.cache_dir)
        )
        return Loaded(ds, used, "minilm: all-MiniLM-L6-v2 (d=384) over local Python text")
    raise ValueError(f"unknown distribution {name!r}; use mixture, hard or minilm")
