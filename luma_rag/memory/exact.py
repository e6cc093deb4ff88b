"""Exact scan over raw vectors: the fallback that makes a query's candidate set complete.

An ANN tier (HNSW; IVF-PQ with unprobed lists) can miss an item that beats the top-k, and
an HNSW miss cannot be bounded at all. When a certificate would let the gate ANSWER but the
candidate set is not proven complete, the engine rescans the allowed items exactly, in
chunks, from the memory-mapped raw vectors: the top ``fetch_k`` become the candidates and the
best score left out is an exact bound on everything else. Cost: one pass over ``n × d``
float32 (≈ 20 ms for 100k × 512 on one core), paid only by the queries that need it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from luma_rag.memory.tiered import Candidates

__all__ = ["exact_candidates"]

logger = logging.getLogger(__name__)


def exact_candidates(
    query: np.ndarray,
    keys: np.ndarray,
    read: Callable[[np.ndarray], np.ndarray],
    tier_of: Callable[[np.ndarray], np.ndarray],
    fetch_k: int,
    chunk: int = 65_536,
) -> Candidates:
    """The exact top ``fetch_k`` of ``keys`` for ``query``, with an exact outside bound.

    Args:
        query: Unit query, float32 ``(d,)``.
        keys: Allowed item keys, int64 ``(n,)``; keys of no tier (deleted) are skipped.
        read: Raw vectors of keys, ``(m,) -> (m, d)`` float32.
        tier_of: Tier of keys, ``(m,) -> (m,)`` int8.
        fetch_k: Candidates to keep, ``>= 1``.
        chunk: Rows read at a time (bounds memory to ``chunk × d`` floats).

    Returns:
        :class:`Candidates` best first; ``zeta`` all 0 (scores are exact); ``outside_bound``
        the best float32 score left out (``-inf`` when nothing was).
    """
    keys = np.asarray(keys, dtype=np.int64)
    keys = keys[tier_of(keys) >= 0]  # live items only
    scores = np.empty(len(keys), dtype=np.float32)
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        scores[start : start + len(part)] = read(part) @ query
    take = min(fetch_k, len(keys))
    everything = take >= len(keys)
    top = np.arange(len(keys)) if everything else np.argpartition(-scores, take - 1)[:take]
    top = top[np.argsort(-scores[top], kind="stable")]
    rest = np.ones(len(keys), dtype=bool)
    rest[top] = False
    outside = float(scores[rest].max()) if rest.any() else float("-inf")
    chosen = keys[top]
    logger.debug("exact rescan of %d items: kept %d, outside %.4g", len(keys), take, outside)
    return Candidates(
        chosen,
        scores[top],
        tier_of(chosen),
        np.zeros(take, dtype=np.float32),
        outside,
        read(chosen),
    )
