"""Maximal marginal relevance over the raw vectors the engine stores for a result's hits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from luma_rag import Luma
from luma_rag.results import Hit, QueryResult

__all__ = ["mmr_hits"]


def mmr_hits(
    luma: Luma, query: Sequence[float], result: QueryResult, k: int, lambda_mult: float
) -> list[Hit]:
    """Up to ``k`` of ``result``'s hits, close to ``query`` and diverse, in MMR order.

    Args:
        luma: The engine holding the hits' raw vectors.
        query: (dim,) query vector.
        result: The ``fetch_k`` nearest hits.
        k: How many to pick.
        lambda_mult: 0 (most diverse) to 1 (plain similarity).

    Returns:
        The picked hits (items deleted since the search are left out).
    """
    if not result.hits:
        return []
    vectors = {item["id"]: item["vector"] for item in luma.get(result.ids)}
    hits = [h for h in result.hits if h.id in vectors]  # an item deleted meanwhile
    if not hits:
        return []
    chosen = maximal_marginal_relevance(
        np.asarray(query, dtype=np.float32),
        [vectors[h.id] for h in hits],
        lambda_mult=lambda_mult,
        k=min(k, len(hits)),
    )
    return [hits[i] for i in chosen]
