"""Maximal marginal relevance over the raw vectors the engine stores for a result's hits, and
the MMR searches of :class:`~langchain_lumarag.LumaVectorStore` (a mixin of the store)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from langchain_lumarag._documents import DEFAULT_METADATA_KEY, hit_to_document
from langchain_lumarag._inputs import check_search_kwargs
from langchain_lumarag._query import check_k
from luma_rag import Luma
from luma_rag.errors import InvalidInputError
from luma_rag.results import Hit, QueryResult

__all__ = ["MmrMixin", "mmr_hits"]


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


class MmrMixin:
    """``max_marginal_relevance_search`` (by text and by vector) over ``self._search``."""

    _luma: Luma
    _embedding: Embeddings
    _search: Any

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` documents that are close to ``query`` and diverse, out of the ``fetch_k`` best.

        ``lambda_mult`` runs from 0 (most diverse) to 1 (plain similarity).
        """
        check_search_kwargs(kwargs)
        vector = self._embedding.embed_query(query)
        return self._mmr(vector, k, fetch_k, lambda_mult, filter, kwargs, text=True)

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR over the stored raw vectors of the ``fetch_k`` nearest items."""
        check_search_kwargs(kwargs)
        return self._mmr(embedding, k, fetch_k, lambda_mult, filter, kwargs, text=False)

    def _mmr(
        self,
        embedding: Sequence[float],
        k: int,
        fetch_k: int,
        lambda_mult: float,
        filter: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
        *,
        text: bool,
    ) -> list[Document]:
        k = check_k(k)
        fetch_k = check_k(fetch_k, "fetch_k")
        if not 0.0 <= lambda_mult <= 1.0:
            raise InvalidInputError(f"lambda_mult must be in [0, 1], got {lambda_mult!r}")
        result = self._search(embedding, max(k, fetch_k), filter, kwargs, text=text)
        if result is None:  # a filter no stored item can match
            return []
        tel = result.telemetry.to_dict() if kwargs.get("telemetry") else None
        key = kwargs.get("metadata_key", DEFAULT_METADATA_KEY)
        picked = mmr_hits(self._luma, embedding, result, k, lambda_mult)
        return [hit_to_document(h, tel, metadata_key=key) for h in picked]
