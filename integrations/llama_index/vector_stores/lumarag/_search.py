"""Running a ``VectorStoreQuery`` on the engine: DEFAULT or MMR, and filters no item matches.

* DEFAULT: the top ``k`` by exact cosine, each with its certificate.
* MMR (``VectorStoreQueryMode.MMR``, as ``SimpleVectorStore`` supports it): the
  ``k x mmr_prefetch_factor`` nearest items (default factor 4) are re-ranked by maximal
  marginal relevance over their stored raw vectors with LlamaIndex's own
  ``get_top_k_mmr_embeddings`` and ``mmr_threshold`` (default 0.5: 1 is plain similarity, 0
  the most diverse). Similarities stay the exact cosines.
* A filter on a metadata key no stored item has matches nothing: no nodes (a warning in the
  log), as ``SimpleVectorStore`` does. A malformed filter still raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from llama_index.core.vector_stores.types import VectorStoreQueryMode, VectorStoreQueryResult
from llama_index.vector_stores.lumarag._query import to_query_result

from luma_rag import Luma, QueryResult
from luma_rag.errors import InvalidInputError

__all__ = ["DEFAULT_MMR_PREFETCH", "run_query"]

logger = logging.getLogger(__name__)

#: Candidates fetched per wanted node before the MMR re-ranking.
DEFAULT_MMR_PREFETCH = 4


def _empty() -> VectorStoreQueryResult:
    return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])


def _guarded(
    luma: Luma, where: Mapping[str, Any] | None, run: Callable[[], QueryResult]
) -> QueryResult | None:
    try:
        return run()
    except InvalidInputError:
        if not where or luma.ids(where, check_keys=False):
            raise
        logger.warning(
            "filter %r matches no stored item (no item has one of its keys); no nodes", where
        )
        return None


def run_query(
    luma: Luma,
    *,
    mode: VectorStoreQueryMode,
    k: int,
    where: Mapping[str, Any] | None,
    vector: np.ndarray | None,
    text: str | None,
    rho: float | None,
    mmr_threshold: float | None = None,
    mmr_prefetch_factor: float | None = None,
) -> VectorStoreQueryResult:
    """The query's nodes (see the module docstring); ``vector`` None: embed ``text``.

    Raises:
        ValueError: A bad ``mmr_threshold`` / ``mmr_prefetch_factor``, or a bad filter.
    """
    filters = where or None
    if mode != VectorStoreQueryMode.MMR:
        if vector is not None:
            result = _guarded(
                luma, filters, lambda: luma.search(vector, k, filters=filters, rho=rho)
            )
        else:
            result = _guarded(
                luma, filters, lambda: luma.query(text, k=k, filters=filters, rho=rho)
            )
        return _empty() if result is None else to_query_result(result)
    threshold = 0.5 if mmr_threshold is None else float(mmr_threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"mmr_threshold must be in [0, 1], got {mmr_threshold!r}")
    factor = DEFAULT_MMR_PREFETCH if mmr_prefetch_factor is None else float(mmr_prefetch_factor)
    if not factor >= 1.0:
        raise ValueError(f"mmr_prefetch_factor must be >= 1, got {mmr_prefetch_factor!r}")
    if vector is None:  # embed the text once, with the store's calibrated text radius
        encoder = luma.encoder
        if encoder is None or text is None:
            raise ValueError("MMR needs query_embedding or a store encoder for query_str")
        vector = np.asarray(encoder.encode_text([text])[0], dtype=np.float32)
        rho = luma.rho.get("text") if rho is None else rho
    query = vector
    fetch = max(k, int(k * factor))
    result = _guarded(luma, filters, lambda: luma.search(query, fetch, filters=filters, rho=rho))
    if result is None or not result.hits:
        return _empty()
    return to_query_result(_mmr(luma, query, result, k, threshold))


def _mmr(
    luma: Luma, query: np.ndarray, result: QueryResult, k: int, threshold: float
) -> QueryResult:
    from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings

    vectors = {item["id"]: item["vector"] for item in luma.get(result.ids)}
    hits = [h for h in result.hits if h.id in vectors]  # an item deleted meanwhile
    _, chosen = get_top_k_mmr_embeddings(
        query.tolist(),
        [np.asarray(vectors[h.id], dtype=np.float64).tolist() for h in hits],
        similarity_top_k=min(k, len(hits)),
        embedding_ids=list(range(len(hits))),
        mmr_threshold=threshold,
    )
    picked = [hits[int(i)] for i in chosen]
    return QueryResult(hits=picked, telemetry=result.telemetry, certificate=result.certificate)
