"""Argument checks of :class:`~langchain_lumarag.LumaVectorStore`'s writes and searches."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from luma_rag.errors import InvalidInputError

__all__ = [
    "SEARCH_KWARGS",
    "as_matrix",
    "check_search_kwargs",
    "item_ids",
    "per_item",
    "reject_kwargs",
]

#: Keywords the store's searches take besides ``k`` and ``filter``.
SEARCH_KWARGS = frozenset({"filters", "telemetry", "rho", "metadata_key"})


def reject_kwargs(method: str, kwargs: Mapping[str, Any]) -> None:
    if kwargs:
        raise TypeError(f"LumaVectorStore.{method} got unexpected keyword(s) {sorted(kwargs)}")


def check_search_kwargs(kwargs: Mapping[str, Any]) -> None:
    unknown = set(kwargs) - SEARCH_KWARGS
    if unknown:
        raise TypeError(
            f"unexpected search keyword(s) {sorted(unknown)}; LumaVectorStore searches take "
            f"k, filter and {sorted(SEARCH_KWARGS)}"
        )


def per_item(values: Sequence[Any] | None, n: int, name: str, default: Any) -> list[Any]:
    if values is None:
        return [default] * n
    if isinstance(values, str | Mapping) or not isinstance(values, Sequence):
        raise InvalidInputError(f"{name} must be a list with one entry per item")
    if len(values) != n:
        raise InvalidInputError(f"got {len(values)} {name} for {n} items; pass one per item")
    return [default if v is None else v for v in values]


def item_ids(ids: Sequence[str | None] | None, n: int) -> list[str]:
    if ids is None:
        return [uuid.uuid4().hex for _ in range(n)]
    if isinstance(ids, str) or not isinstance(ids, Sequence):
        raise InvalidInputError("ids must be a list of strings, one per item")
    if len(ids) != n:
        raise InvalidInputError(f"got {len(ids)} ids for {n} items; pass one per item")
    return [uuid.uuid4().hex if i is None else i for i in ids]


def as_matrix(vectors: Any, n: int) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise InvalidInputError(
            f"the embeddings returned shape {arr.shape} for {n} inputs; expected ({n}, dim)"
        )
    return arr
