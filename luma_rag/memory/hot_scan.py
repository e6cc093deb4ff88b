"""Scans of the hot tier's fp16 vectors: the certified exact top-k, and nearest-item novelty.

The hot tier stores its vectors as IEEE half floats (``IndexHNSWSQ`` with ``QT_fp16``): half
the RAM of float32, and FAISS scores them with SIMD at least as fast. Scores from fp16 are
not exact, so every bound taken from them carries :func:`fp16_slack`, and the memory rescores
the hot candidates exactly from the raw vectors before anything is ranked or certified.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from luma_rag.memory.base import TierHits, bitmap_from_mask

__all__ = ["fp16_slack", "scan_top", "vectors_view"]


def fp16_slack(dim: int) -> float:
    """Bound on |⟨q, x⟩ − score(q, fp16(x))| for unit q, x in ``dim`` dimensions.

    Rounding each coordinate to fp16 moves it by at most 2⁻¹¹ of itself (2⁻²⁵ below the
    normal range), so ‖x − x̃‖ ≤ 2⁻¹¹ + √d·2⁻²⁵ and, by Cauchy–Schwarz, the inner product by
    as much; FAISS accumulates the product in float32 (≤ d·2⁻²⁴ more, doubled for safety).
    """
    return 2.0**-11 + math.sqrt(dim) * 2.0**-25 + (dim + 1) * 2.0**-23 + 1e-7


def vectors_view(index: Any, dim: int) -> np.ndarray:
    """A no-copy (ntotal, d) float16 view of an ``IndexHNSWSQ`` (fp16) storage."""
    import faiss

    storage = faiss.downcast_index(index.storage)
    n = int(index.ntotal)
    if not n:
        return np.zeros((0, dim), dtype=np.float16)
    codes = faiss.rev_swig_ptr(storage.codes.data(), n * int(storage.code_size))
    return np.asarray(codes).view(np.float16).reshape(n, dim)


def scan_top(
    index: Any, pos_keys: np.ndarray, mask: np.ndarray, query: np.ndarray, k: int
) -> TierHits:
    """Top ``k`` of the ``mask`` ed positions by a brute-force fp16 scan, with a sound bound.

    Args:
        index: the tier's ``IndexHNSWSQ``. pos_keys: int64 (n,) key per position.
        mask: bool (n,) positions to consider (at least one). query: float32 (d,) unit.
        k: hits wanted (>= 1).

    Returns:
        Hits with fp16 scores (``vectors`` None: the memory rescores them from the raw
        vectors; ``score_slack`` bounds their distance to the exact float32 scores);
        ``outside_bound`` = the best fp16 score left out + :func:`fp16_slack`.
    """
    import faiss

    n, n_ok = len(mask), int(mask.sum())
    take = min(k, n_ok)
    want = min(take + 1, n_ok)  # one more: the best left out bounds the rest
    params = None
    if n_ok < n:
        bitmap = bitmap_from_mask(mask)
        params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap)))
    storage = faiss.downcast_index(index.storage)
    q = np.ascontiguousarray(query, dtype=np.float32)[None, :]
    scores, pos = storage.search(q, want, params=params)
    scores, pos = scores[0], pos[0]
    outside = float(scores[take]) + fp16_slack(len(query)) if want > take else float("-inf")
    return TierHits(
        keys=pos_keys[pos[:take]],
        scores=scores[:take].astype(np.float32),
        zeta=np.zeros(take, dtype=np.float32),
        outside_bound=outside,
        score_slack=2.0 * fp16_slack(len(query)),  # fp16 vs raw, both products rounded
    )
