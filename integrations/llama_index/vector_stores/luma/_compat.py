"""Bridges over engine methods this integration needs and ``luma_rag`` does not have yet.

``select_ids`` lists the items matching a filter, which ``delete(ref_doc_id)``,
``delete_nodes(filters=...)``, ``get_nodes(filters=...)`` and ``clear()`` need. It calls
``Luma.ids(filters, check_keys=...)`` when the engine has it; until then it reads the
engine's record store directly, under the engine's read lock. Delete the fallback once
``Luma.ids`` exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from luma_rag import Luma
from luma_rag.filters import compile_filter

__all__ = ["select_ids"]


def select_ids(
    luma: Luma, where: Mapping[str, Any] | None, *, check_keys: bool = True
) -> list[str]:
    """Ids of the live items whose metadata match ``where`` (all for None), oldest first.

    Args:
        luma: The engine.
        where: A LUMA-RAG filter.
        check_keys: Refuse keys no item has, as ``Luma.search`` does (a typo guard); False
            lets them match nothing (for keys this integration writes itself).

    Raises:
        luma_rag.errors.InvalidInputError: A malformed filter, or (``check_keys``) one on a
            key no item has.
        luma_rag.errors.StoreClosedError: The engine is closed.
    """
    public = getattr(luma, "ids", None)
    if callable(public):
        return list(public(where or None, check_keys=check_keys))
    with luma._lock.read():  # fallback: engine internals, see the module docstring
        luma._check_open()
        by_key = {key: item_id for item_id, key in luma._ids.items()}
        if not where:
            keys = list(by_key)
        else:
            known = luma._records.meta_keys() if check_keys else None
            compiled = compile_filter(where, known)
            assert compiled is not None
            keys = luma._records.select_keys(compiled.sql, compiled.params).tolist()
    return [by_key[k] for k in sorted(keys) if k in by_key]
