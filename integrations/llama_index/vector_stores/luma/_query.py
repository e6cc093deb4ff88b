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
from llama_index.vector_stores.luma._nodes import NODE_ID_KEY, item_to_node

from luma_rag import QueryResult

__all__ = ["query_vector", "restrict", "to_query_result", "top_k"]


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
        ValueError: ``similarity_top_k`` is not an integer >= 1, or the mode is not DEFAULT.
    """
    k = query.similarity_top_k
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"similarity_top_k must be an integer >= 1, got {k!r}")
    if query.mode != VectorStoreQueryMode.DEFAULT:
        raise ValueError(
            f"LumaVectorStore supports VectorStoreQueryMode.DEFAULT only, got {query.mode}"
        )
    return int(k)
