"""Seeded synthetic corpus (a mixture of Gaussians on the unit sphere) and exact ground truth."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset", "exact_topk", "make_dataset", "recall_at_k", "tight_clusters"]

_CHUNK = 65_536


@dataclass(frozen=True)
class Dataset:
    """Corpus, held-out queries and spare rows, all float32 unit rows of width ``dim``.

    Attributes:
        corpus: ``(n, dim)`` float32, the indexed items.
        queries: ``(n_queries, dim)`` float32, drawn from the same mixture, not in ``corpus``.
        extra: ``(n_extra, dim)`` float32, more items from the mixture (added during the spill
            test, never searched for).
    """

    corpus: np.ndarray
    queries: np.ndarray
    extra: np.ndarray

    @property
    def dim(self) -> int:
        """Vector width."""
        return int(self.corpus.shape[1])


def make_dataset(
    n: int,
    n_queries: int,
    n_extra: int,
    *,
    dim: int = 512,
    clusters: int = 1000,
    noise: float = 0.6,
    seed: int = 0,
) -> Dataset:
    """Draw ``n + n_queries + n_extra`` points: ``normalise(centre + noise·g/√dim)``.

    Centres are uniform on the sphere; each point picks one uniformly. With ``noise`` the
    expected norm of the perturbation relative to the (unit) centre, two points of one cluster
    have cosine ≈ ``1 / (1 + noise²)`` and points of different clusters ≈ 0.

    Args:
        n: corpus size.
        n_queries: held-out query count.
        n_extra: spare rows for the spill test.
        dim: vector width.
        clusters: number of mixture components.
        noise: perturbation norm relative to the centre.
        seed: RNG seed; the same arguments give the same arrays.

    Returns:
        A :class:`Dataset` whose three arrays are row slices of one C-contiguous float32 block.
    """
    if n < 1 or n_queries < 1 or n_extra < 0:
        raise ValueError(
            f"need n >= 1, n_queries >= 1, n_extra >= 0; got {n}, {n_queries}, {n_extra}"
        )
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    total = n + n_queries + n_extra
    out = np.empty((total, dim), dtype=np.float32)
    scale = np.float32(noise / math.sqrt(dim))
    for start in range(0, total, _CHUNK):
        stop = min(start + _CHUNK, total)
        labels = rng.integers(clusters, size=stop - start)
        block = rng.standard_normal((stop - start, dim), dtype=np.float32)
        block *= scale
        block += centres[labels]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:stop] = block
    return Dataset(corpus=out[:n], queries=out[n : n + n_queries], extra=out[n + n_queries : total])


def tight_clusters(n: int, dim: int, *, seed: int, clusters: int) -> np.ndarray:
    """``n`` float32 unit rows ``normalise(c + 0.6·g/√dim)`` around ``clusters`` standard-normal
    centres (norm ≈ √dim, so the clusters are tight): the maintenance and hot-RAM benches'
    data, where what is measured (lock holds, bytes per item) hardly depends on the vectors."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dim)) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact_topk(corpus: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact inner-product top-``k`` row indices, best first, blocked over the corpus.

    Args:
        corpus: ``(n, d)`` float32.
        queries: ``(q, d)`` float32.
        k: neighbours per query (clipped to ``n``).

    Returns:
        ``(q, min(k, n))`` int64 row indices into ``corpus``.
    """
    k = min(k, corpus.shape[0])
    best_s = np.full((queries.shape[0], 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((queries.shape[0], 0), dtype=np.int64)
    for start in range(0, corpus.shape[0], _CHUNK):
        sims = queries @ corpus[start : start + _CHUNK].T
        kk = min(k, sims.shape[1])
        part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        best_s = np.concatenate([best_s, np.take_along_axis(sims, part, axis=1)], axis=1)
        best_i = np.concatenate([best_i, part + start], axis=1)
        if best_s.shape[1] > k:
            keep = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
            best_s = np.take_along_axis(best_s, keep, axis=1)
            best_i = np.take_along_axis(best_i, keep, axis=1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_i, order, axis=1)


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean ``|found[i, :k] ∩ truth[i, :k]| / k`` over the rows of ``found``.

    Args:
        found: ``(q, >= k)`` int64 row indices, ``-1`` for empty slots.
        truth: ``(q', k)`` int64 exact neighbours; only its first ``q`` rows are used.
        k: cut-off.
    """
    hits = 0
    for got, want in zip(found, truth[: len(found)], strict=True):
        hits += len(set(got[:k].tolist()) & set(want[:k].tolist()))
    return hits / (k * max(len(found), 1))
