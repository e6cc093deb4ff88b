"""Metadata filters translated to Milvus boolean expressions over a JSON field.

A pure function, no server: :func:`to_milvus` takes the filter language of
:mod:`luma_rag.filters` (same parser, same errors) and returns two Milvus expressions over the
JSON field that holds each item's metadata (``meta`` by default):

* ``upper`` — a **superset**: every item the filter matches satisfies it;
* ``lower`` — a **subset**: every item satisfying it matches the filter.

Where Milvus can say exactly what the language means the two are equal and
:attr:`MilvusFilter.exact` is True. Where it cannot (Milvus 2.3 has no infix ``like``, no
case folding and no ``null`` literal), a condition's ``upper`` relaxes to "the key exists" and
its ``lower`` to "nothing"; ``$not`` swaps the two, so both stay sound at any nesting depth.
The backend asks Milvus for ``upper`` and then applies :func:`luma_rag.filters.matches` to the
returned metadata, so results always have the library's exact semantics; ``exact`` only says
whether that post-filter can drop anything (and hence whether an ANN search with ``upper`` may
return fewer than ``k`` matching items).

Translation (``m`` is the JSON field, ``K`` the key as a JSON string literal)::

    $eq v        m[K] == v            (v: str, int, float, bool)        exact
    $eq None     exists m[K]          / lower: false                    relaxed
    $ne v        not (m[K] == v)      (Milvus: True on a missing key)   exact
    $gt.. v      m[K] > v             (number or string)                exact
    $in [..]     m[K] in [..]         (one list per type: int, float,   exact
                                       str, bool; None relaxes)
    $contains x  exists m[K]          / lower: json_contains(m[K], x)   relaxed
    $text_match  exists m[K]          / lower: false                    relaxed
    $exists b    exists m[K]  /  not exists m[K]                        exact

Strictness (``True`` never equals ``1``) is what the library promises; the server test
``tests/scaleout/test_milvus_backend.py`` checks, on a real Milvus, that
``upper ⊇ matches ⊇ lower`` for random filters, which is all soundness needs.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from luma_rag.filters.syntax import Cond, Node, Not, parse_filter

__all__ = ["MilvusFilter", "to_milvus"]

logger = logging.getLogger(__name__)

TRUE: Final = "__true__"
"""Marker for an always-true expression (Milvus 2.3 has no boolean literal in expressions)."""
FALSE: Final = "__false__"
"""Marker for an always-false expression."""


@dataclass(frozen=True)
class MilvusFilter:
    """A filter translated for Milvus.

    Attributes:
        upper: Milvus expression matched by every item the filter matches ("" = everything).
        lower: Milvus expression whose items all match the filter (None = no item is certain).
        exact: upper and lower are the same expression: Milvus returns exactly the matches.
        keys: metadata keys the filter references.
    """

    upper: str
    lower: str | None
    exact: bool
    keys: frozenset[str]


def to_milvus(filters: Mapping[str, Any] | None, field: str = "meta") -> MilvusFilter | None:
    """Translate a metadata filter into Milvus expressions over the JSON field ``field``.

    Args:
        filters: the filter (see :mod:`luma_rag.filters`); None or ``{}``: no filtering.
        field: name of the collection's JSON field holding the metadata.

    Returns:
        The translation, or None when there is nothing to filter on.

    Raises:
        InvalidInputError: the filter is malformed (the same checks and messages as
            :func:`luma_rag.filters.compile_filter`).
    """
    if filters is None or (isinstance(filters, Mapping) and not filters):
        return None
    node = parse_filter(filters)
    upper, lower = _translate(node, field)
    keys = frozenset(c.key for c in _leaves(node))
    out = MilvusFilter(
        upper="" if upper == TRUE else _finish(upper),
        lower=None if lower == FALSE else ("" if lower == TRUE else _finish(lower)),
        exact=upper == lower,
        keys=keys,
    )
    logger.debug("milvus filter on %s: exact=%s", sorted(keys), out.exact)
    return out


def _finish(expr: str) -> str:
    """Replace the markers left inside a compound expression (only possible under negation)."""
    if expr == FALSE:
        return 'id == ""'  # ids are never empty: an always-false expression
    return expr


def _leaves(node: Node) -> list[Cond]:
    if isinstance(node, Cond):
        return [node]
    if isinstance(node, Not):
        return _leaves(node.child)
    return [c for child in node.children for c in _leaves(child)]


def _translate(node: Node, field: str) -> tuple[str, str]:
    """(upper, lower) of a node; either may be the TRUE / FALSE marker."""
    if isinstance(node, Cond):
        return _cond(node, field)
    if isinstance(node, Not):
        up, lo = _translate(node.child, field)
        return _negate(lo), _negate(up)
    parts = [_translate(child, field) for child in node.children]
    join = _and if node.op == "$and" else _or
    return join([p[0] for p in parts]), join([p[1] for p in parts])


def _negate(expr: str) -> str:
    if expr == TRUE:
        return FALSE
    if expr == FALSE:
        return TRUE
    return f"not ({expr})"


def _and(exprs: list[str]) -> str:
    if FALSE in exprs:
        return FALSE
    rest = [e for e in exprs if e != TRUE]
    if not rest:
        return TRUE
    return rest[0] if len(rest) == 1 else " and ".join(f"({e})" for e in rest)


def _or(exprs: list[str]) -> str:
    if TRUE in exprs:
        return TRUE
    rest = [e for e in exprs if e != FALSE]
    if not rest:
        return FALSE
    return rest[0] if len(rest) == 1 else " or ".join(f"({e})" for e in rest)


def _cond(cond: Cond, field: str) -> tuple[str, str]:
    ref = f"{field}[{_literal(cond.key)}]"
    exists = f"exists {ref}"
    op, operand = cond.op, cond.operand
    if op == "$exists":
        return (exists, exists) if operand else (f"not ({exists})", f"not ({exists})")
    if op in ("$eq", "$ne"):
        if operand is None:
            pair = (exists, FALSE)
        else:
            eq = f"{ref} == {_literal(operand)}"
            pair = (eq, eq)
        return pair if op == "$eq" else (_negate(pair[1]), _negate(pair[0]))
    if op in ("$in", "$nin"):
        pair = _in(ref, exists, list(operand))
        return pair if op == "$in" else (_negate(pair[1]), _negate(pair[0]))
    if op in _RANGE:
        expr = f"{ref} {_RANGE[op]} {_literal(operand)}"
        return expr, expr
    if op == "$contains":
        lower = f"json_contains({ref}, {_literal(operand)})" if operand is not None else FALSE
        return exists, lower
    # $text_match: case-insensitive infix search, which Milvus 2.3 expressions cannot state
    return exists, FALSE


_RANGE: Final = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _in(ref: str, exists: str, values: list[Any]) -> tuple[str, str]:
    """``$in``: one ``in [...]`` per JSON type (Milvus lists must be homogeneous)."""
    if not values:
        return FALSE, FALSE
    groups: dict[str, list[Any]] = {}
    relaxed = False
    for v in values:
        if v is None:
            relaxed = True
        elif isinstance(v, bool):
            groups.setdefault("bool", []).append(v)
        elif isinstance(v, int):  # Milvus 2.3 rejects int and float mixed in one list
            groups.setdefault("int", []).append(v)
        elif isinstance(v, float):
            groups.setdefault("float", []).append(v)
        else:
            groups.setdefault("str", []).append(v)
    exact = [f"{ref} in [{', '.join(_literal(v) for v in vs)}]" for vs in groups.values()]
    lower = _or(exact) if exact else FALSE
    upper = _or([*exact, exists]) if relaxed else lower
    return upper, lower


def _literal(value: Any) -> str:
    """A Milvus literal: JSON-quoted strings, ``true`` / ``false``, plain numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):  # the parser already refuses these
            raise ValueError(f"non-finite float {value!r} in a filter")
        return repr(value)
    return json.dumps(value, ensure_ascii=False)
