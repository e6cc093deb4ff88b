"""LlamaIndex ``MetadataFilters`` -> LUMA-RAG's Mongo-like filter dict.

:func:`to_luma_filter` is pure: it reads the filter model, returns a new ``dict`` in the
language of :mod:`luma_rag.filters`, and touches no store. Every operator LlamaIndex defines
is either translated exactly or refused with a :class:`ValueError` that says what to use
instead; nothing is approximated silently.

=========================  ==============================================================
LlamaIndex                 LUMA-RAG
=========================  ==============================================================
``EQ`` / ``NE``            ``$eq`` / ``$ne`` (``NE`` is also true where the key is missing)
``GT GTE LT LTE``          ``$gt $gte $lt $lte`` (numbers with numbers, strings with strings)
``IN`` / ``NIN``           ``$in`` / ``$nin``
``CONTAINS``               ``$contains`` (list element, or substring of a string)
``TEXT_MATCH``             ``$text_match`` and ``$contains``: a case-sensitive substring
``TEXT_MATCH_INSENSITIVE`` ``$text_match`` (ASCII case folding, like SQLite's ``lower()``)
``ANY`` / ``ALL``          ``$or`` / ``$and`` of ``$contains``, one per value
``IS_EMPTY``               refused: an empty list cannot be told from a non-empty one
condition ``AND`` / ``OR`` ``$and`` / ``$or``
condition ``NOT``          ``$not`` of ``$or``: true when none of the filters matches, as in
                           ``llama_index.core.vector_stores.utils.build_metadata_filter_fn``
=========================  ==============================================================
"""

from __future__ import annotations

import math
from typing import Any, Final

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

__all__ = ["to_luma_filter"]

_SIMPLE: Final[dict[FilterOperator, str]] = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.CONTAINS: "$contains",
}
_RANGE: Final[dict[FilterOperator, str]] = {
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
}
_LISTS: Final[dict[FilterOperator, str]] = {FilterOperator.IN: "$in", FilterOperator.NIN: "$nin"}
_MAX_DEPTH: Final = 30  # LUMA-RAG allows 32 levels; NOT adds one, a filter dict one more


def to_luma_filter(filters: MetadataFilters | None) -> dict[str, Any]:
    """Translate LlamaIndex metadata filters into a LUMA-RAG filter dict.

    Args:
        filters: The filters of a ``VectorStoreQuery`` (nested ``MetadataFilters`` allowed).
            ``None`` or an empty top-level list means no filtering.

    Returns:
        A filter for ``Luma.search(..., filters=...)``, e.g.
        ``{"$and": [{"year": {"$gte": 2020}}, {"tag": {"$in": ["a", "b"]}}]}``; ``{}`` when
        there is nothing to filter on.

    Raises:
        ValueError: An operator or condition this translator does not know, a value of a type
            the operator cannot compare (``None``, a bool or a list with ``GT``, a scalar with
            ``IN``, ...), ``IS_EMPTY``, an empty nested group, or a key starting with ``$``.

    Example:
        >>> from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters
        >>> to_luma_filter(MetadataFilters(filters=[MetadataFilter(key="year", value=2020,
        ...                                                        operator=">=")]))
        {'year': {'$gte': 2020}}
    """
    if filters is None:
        return {}
    if not isinstance(filters, MetadataFilters):
        raise ValueError(
            f"filters must be a llama_index MetadataFilters, got {type(filters).__name__}; "
            "wrap single filters as MetadataFilters(filters=[...])"
        )
    if not filters.filters:
        return {}
    return _group(filters, depth=1)


def _group(filters: MetadataFilters, depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise ValueError(
            f"MetadataFilters are nested deeper than {_MAX_DEPTH} levels; flatten them"
        )
    if not filters.filters:
        raise ValueError(
            "a nested MetadataFilters has no filters; remove the empty group "
            "(an empty group is neither true nor false)"
        )
    children: list[dict[str, Any]] = []
    for item in filters.filters:
        if isinstance(item, MetadataFilters):
            children.append(_group(item, depth + 1))
        elif isinstance(item, MetadataFilter):
            children.append(_one(item))
        else:
            raise ValueError(
                f"MetadataFilters.filters holds a {type(item).__name__}; "
                "use MetadataFilter or MetadataFilters"
            )
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.NOT:
        return {"$not": children[0] if len(children) == 1 else {"$or": children}}
    if condition not in (FilterCondition.AND, FilterCondition.OR):
        raise ValueError(f"unknown filter condition {condition!r}; use 'and', 'or' or 'not'")
    if len(children) == 1:
        return children[0]
    return {"$and" if condition == FilterCondition.AND else "$or": children}


def _one(flt: MetadataFilter) -> dict[str, Any]:
    key, value, op = flt.key, flt.value, flt.operator
    if not isinstance(key, str) or not key or key.startswith("$"):
        raise ValueError(
            f"metadata filter key {key!r} cannot be filtered on: keys must be non-empty strings "
            "not starting with '$'"
        )
    try:
        op = FilterOperator(op)
    except ValueError:
        known = ", ".join(o.name for o in FilterOperator)
        raise ValueError(f"unknown filter operator {op!r} on key {key!r}; known: {known}") from None
    if op in _SIMPLE:
        return {key: {_SIMPLE[op]: _scalar(key, op, value)}}
    if op in _RANGE:
        return {key: {_RANGE[op]: _comparable(key, op, value)}}
    if op in _LISTS:
        return {key: {_LISTS[op]: _values(key, op, value, allow_empty=True)}}
    if op == FilterOperator.TEXT_MATCH:
        text = _text(key, op, value)
        return {key: {"$text_match": text, "$contains": text}}
    if op == FilterOperator.TEXT_MATCH_INSENSITIVE:
        return {key: {"$text_match": _text(key, op, value)}}
    if op in (FilterOperator.ANY, FilterOperator.ALL):
        values = _values(key, op, value, allow_empty=False)
        parts = [{key: {"$contains": v}} for v in values]
        if len(parts) == 1:
            return parts[0]
        return {"$or" if op == FilterOperator.ANY else "$and": parts}
    hint = (
        ": LUMA-RAG filters cannot tell an empty list from a missing key; store an explicit "
        "flag (e.g. has_tags=False) and filter on it with EQ"
        if op == FilterOperator.IS_EMPTY
        else ""
    )
    raise ValueError(f"filter operator {op.name} on key {key!r} is not supported{hint}")


def _scalar(key: str, op: FilterOperator, value: Any) -> Any:
    if isinstance(value, list | tuple):
        hint = "; use IN / NIN to match one of several values" if op in _SIMPLE else ""
        raise ValueError(f"{op.name} on key {key!r} takes one value, got a list{hint}")
    if value is not None and not isinstance(value, str | int | float):
        raise ValueError(
            f"{op.name} on key {key!r} needs a str, int, float or None, "
            f"got {type(value).__name__} {value!r}"
        )
    return _finite(key, op, value)


def _comparable(key: str, op: FilterOperator, value: Any) -> int | float | str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(
            f"{op.name} on key {key!r} cannot compare {type(value).__name__} {value!r}; "
            "give a number or a string (use EQ / NE for None and booleans)"
        )
    return _finite(key, op, value)


def _values(key: str, op: FilterOperator, value: Any, *, allow_empty: bool) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ValueError(
            f"{op.name} on key {key!r} needs a list of values, got {type(value).__name__} "
            f"{value!r}; write value=[{value!r}]"
        )
    if not value and not allow_empty:
        raise ValueError(f"{op.name} on key {key!r} needs at least one value")
    return [_scalar(key, op, v) for v in value]


def _text(key: str, op: FilterOperator, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{op.name} on key {key!r} needs a string, got {type(value).__name__}")
    return value


def _finite(key: str, op: FilterOperator, value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{op.name} on key {key!r}: {value!r} is not a finite number")
    return value
