"""From a ``VectorStoreQuery`` to a LUMA-RAG search, and from its result back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from llama_index.core.vector_stores.types import (
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.vector_stores.lumarag._nodes import NODE_ID_KEY, item_to_node

from luma_rag import QueryResult

__all__ = ["query_input", "query_vector", "restrict", "to_query_result", "top_k"]


def restrict(
    where: dict[str, Any], doc_ids: list[str] | None, node_ids: list[str] | None
) -> dict[str, Any]:
    """``where`` AND the ref_doc_id / node-id restrictions (empty lists restrict nothing)."""
    parts = [where] if where else []
    if doc_ids:
        parts.append({"ref_doc_id": {"$in": list(doc_ids)}})
    if node_ids:
        parts.append({NODE_ID_KEY: {"$in": list(node_ids)}})
    if len(parts) <= 1:
        return parts[0] if parts else {}
    return {"$and": parts}


def query_vector(embedding: Sequence[float] | None, dim: int) -> np.ndarray | None:
    if embedding is None:
        return None
    vec = np.asarray(embedding, dtype=np.float32)
    if vec.ndim != 1 or vec.size == 0:
        raise ValueError("empty query: query_embedding must be a non-empty list of floats")
    if vec.size != dim:
        raise ValueError(
            f"query_embedding has {vec.size} dimensions but the store holds {dim}-d vectors; "
            "embed the query with the model that embedded the nodes"
        )
    return vec


def to_query_result(result: QueryResult) -> VectorStoreQueryResult:
    telemetry = result.telemetry.to_dict()
    nodes = [
        item_to_node(
            hit.id,
            hit.metadata,
            modality=hit.modality,
            text=hit.text,
            source=hit.source,
            telemetry={
                "score": hit.score,
                "rank": hit.rank,
                "tier": hit.tier,
                "modality": hit.modality,
                **telemetry,
            },
        )
        for hit in result.hits
    ]
    return VectorStoreQueryResult(
        nodes=nodes,
        similarities=[hit.score for hit in result.hits],
        ids=[hit.id for hit in result.hits],
    )


def top_k(query: VectorStoreQuery) -> int:
    """The query's ``similarity_top_k`` after checking it and the query mode.

    Raises:
        ValueError: ``similarity_top_k`` is not an integer >= 1, or the mode is neither
            DEFAULT nor MMR.
    """
    k = query.similarity_top_k
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"similarity_top_k must be an integer >= 1, got {k!r}")
    if query.mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
        raise ValueError(
            f"LumaVectorStore supports VectorStoreQueryMode.DEFAULT and MMR, got {query.mode}; "
            "hybrid and sparse modes need a keyword (sparse) index, which LUMA-RAG does not "
            "keep: fuse a BM25 retriever with this store's retriever instead "
            "(llama_index.core.retrievers.QueryFusionRetriever)"
        )
    return int(k)


def query_input(
    query: VectorStoreQuery, dim: int, *, has_encoder: bool
) -> tuple[np.ndarray | None, str | None]:
    """``(query vector or None, query text)`` after checking there is something to search.

    Raises:
        ValueError: No embedding and no text, no embedding and no encoder, or a bad embedding.
    """
    vector = query_vector(query.query_embedding, dim)
    text = query.query_str
    if vector is None:
        if text is None or not text.strip():
            raise ValueError("empty query: give query_embedding or a non-empty query_str")
        if not has_encoder:
            raise ValueError(
                "the query has no embedding and the store has no encoder to embed "
                "query_str; pass query_embedding or open the store with an encoder"
            )
    return vector, text
