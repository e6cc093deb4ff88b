"""Synthetic corpora LUMA-RAG trains and tests its offline models on.

:mod:`luma_rag.datasets.shapes` generates LUMA-Shapes (``python -m luma_rag.datasets.shapes``).
The names below are imported lazily, so ``import luma_rag.datasets`` loads nothing heavy and
``python -m luma_rag.datasets.shapes`` runs without a double import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from luma_rag.datasets.attributes import ShapeAttributes, relevant
    from luma_rag.datasets.captions import parse_query_attributes
    from luma_rag.datasets.manifest import ShapeItem, load_manifest
    from luma_rag.datasets.shapes import generate
    from luma_rag.datasets.splits import held_out_combos, split_for

__all__ = [
    "ShapeAttributes",
    "ShapeItem",
    "generate",
    "held_out_combos",
    "load_manifest",
    "parse_query_attributes",
    "relevant",
    "split_for",
]

_HOMES = {
    "ShapeAttributes": "luma_rag.datasets.attributes",
    "relevant": "luma_rag.datasets.attributes",
    "parse_query_attributes": "luma_rag.datasets.captions",
    "ShapeItem": "luma_rag.datasets.manifest",
    "generate": "luma_rag.datasets.shapes",
    "load_manifest": "luma_rag.datasets.manifest",
    "held_out_combos": "luma_rag.datasets.splits",
    "split_for": "luma_rag.datasets.splits",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted(__all__)
