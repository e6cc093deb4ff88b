"""Knowledge gaps: the queries a store could not settle, kept for whoever curates the memory.

The answer gate logs one whenever it asks the user to clarify or finds nothing relevant
(``CLARIFY`` / ``NOT_IN_MEMORY``); ``luma gaps`` and the app's Memory tab list them. These are
methods of :class:`~luma_rag.engine.Luma` (``luma.record_gap`` / ``luma.knowledge_gaps``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import luma_rag._checks as checks
from luma_rag.errors import InvalidInputError

if TYPE_CHECKING:
    from luma_rag.engine import Luma

__all__ = ["knowledge_gaps", "record_gap"]


def record_gap(luma: Luma, query: str, detail: Mapping[str, Any]) -> int:
    """Log a knowledge gap: the user's question and JSON-safe ``detail`` (e.g. candidates and
    margins). Returns the gap's number."""
    luma._store.check_open()
    if not isinstance(query, str) or not query.strip():
        raise InvalidInputError("a knowledge gap needs the query text")
    checks.check_text(query, "query")
    try:
        detail_ = dict(detail)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"gap detail must be a dict ({e})") from e
    return luma._store.add_gap(time.time(), query, detail_)


def knowledge_gaps(luma: Luma, limit: int = 50) -> list[dict[str, Any]]:
    """Recent knowledge gaps, newest first: dicts with gap, time, query and the detail."""
    luma._store.check_open()
    return luma._store.gaps(checks.check_k(limit, "limit"))
