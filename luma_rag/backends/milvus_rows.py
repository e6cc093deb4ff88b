"""Rows of a store's Milvus collection: decoding, and the exact rerank of candidates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MilvusCandidates", "decode_row", "rank_rows"]


@dataclass(frozen=True)
class MilvusCandidates:
    """Exactly rescored candidates of one query, best first.

    Attributes:
        ids: m item ids. scores: float32 (m,) exact cosine from the raw vectors.
        vectors: float32 (m, dim) those raw vectors. records: m dicts of the other fields.
        outside_bound: upper bound on the score of any matching item not in ``ids`` (+inf:
            none is known, -inf: nothing was left out).
    """

    ids: list[str]
    scores: np.ndarray
    vectors: np.ndarray
    records: list[dict[str, Any]]
    outside_bound: float


def decode_row(row: dict[str, Any]) -> dict[str, Any]:
    """Milvus row -> record: empty strings back to None, vectors to float32."""
    for key in ("text", "source"):
        if key in row and row[key] == "":
            row[key] = None
    if "vec" in row:
        row["vec"] = np.asarray(row["vec"], dtype=np.float32)
    if "meta" in row and row["meta"] is None:
        row["meta"] = {}
    return row


def rank_rows(rows: list[dict[str, Any]], q: np.ndarray, outside: float) -> MilvusCandidates:
    """Exact cosine from the raw vectors, best first (ties by id)."""
    d = q.shape[0]
    vecs = np.stack([r.pop("vec") for r in rows]) if rows else np.zeros((0, d), np.float32)
    scores = (vecs @ q).astype(np.float32)
    order = sorted(range(len(rows)), key=lambda i: (-float(scores[i]), rows[i]["id"]))
    return MilvusCandidates(
        ids=[rows[i]["id"] for i in order],
        scores=scores[order],
        vectors=vecs[order],
        records=[rows[i] for i in order],
        outside_bound=outside,
    )
