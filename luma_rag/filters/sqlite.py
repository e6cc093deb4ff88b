"""The SQLite translator: a parsed filter -> a boolean SQL expression over ``metadata``.

Every condition is ``EXISTS (SELECT 1 FROM json_each(metadata) AS _lf WHERE _lf.key = ? AND
...)`` (see :mod:`luma_rag.filters` for why); keys and values travel as ``?`` parameters only.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from luma_rag.filters.syntax import (
    RANGE_OPS,
    Cond,
    Junction,
    Node,
    Not,
    Param,
    check_known_keys,
    conditions,
    parse_filter,
)

__all__ = ["CompiledFilter", "compile_filter"]

logger = logging.getLogger(__name__)

_FIELD_ROW: Final = "SELECT 1 FROM json_each(metadata) AS _lf WHERE _lf.key = ?"
_ELEMENTS: Final = "SELECT 1 FROM json_each(_lf.value) AS _le"


@dataclass(frozen=True)
class CompiledFilter:
    """A filter translated to SQLite.

    Attributes:
        sql: Boolean SQL expression over the column ``metadata`` (a JSON object per row),
            with ``?`` placeholders only, e.g. ``SELECT key FROM items WHERE <sql>``.
        params: Positional parameters for the placeholders, in order.
        keys: Metadata keys the filter references.
    """

    sql: str
    params: tuple[Param, ...]
    keys: frozenset[str]


def _sql(node: Node) -> tuple[str, tuple[Param, ...]]:
    if isinstance(node, Not):
        sql, params = _sql(node.child)
        return f"(NOT {sql})", params
    if isinstance(node, Junction):
        parts = [_sql(child) for child in node.children]
        joiner = " AND " if node.op == "$and" else " OR "
        return (
            "(" + joiner.join(sql for sql, _ in parts) + ")",
            tuple(p for _, params in parts for p in params),
        )
    return _cond_sql(node)


def _cond_sql(cond: Cond) -> tuple[str, tuple[Param, ...]]:
    op, operand = cond.op, cond.operand
    if op == "$exists":
        sql = f"EXISTS ({_FIELD_ROW})"
        return (sql if operand else f"(NOT {sql})"), (cond.key,)
    if op in ("$ne", "$nin"):
        sql, params = _cond_sql(Cond(cond.key, "$eq" if op == "$ne" else "$in", operand))
        return f"(NOT {sql})", params
    if op == "$in" and not operand:
        return "(0)", ()
    test, params = _value_sql(op, operand)
    sql = f"EXISTS ({_FIELD_ROW} AND {test})"
    return sql, (cond.key, *params)


def _value_sql(op: str, operand: Any) -> tuple[str, tuple[Param, ...]]:
    """SQL test of the matched key's row ``_lf`` (columns ``type``, ``value``)."""
    if op == "$eq":
        return _eq_sql("_lf", operand)
    if op in RANGE_OPS:
        kind = "'text'" if isinstance(operand, str) else "'integer', 'real'"
        return f"(_lf.type IN ({kind}) AND _lf.value {RANGE_OPS[op][0]} ?)", (operand,)
    if op == "$in":
        parts = [_eq_sql("_lf", item) for item in operand]
        return "(" + " OR ".join(s for s, _ in parts) + ")", tuple(p for _, ps in parts for p in ps)
    if op == "$text_match":
        return "(_lf.type = 'text' AND instr(lower(_lf.value), lower(?)) > 0)", (operand,)
    # $contains
    elem, params = _eq_sql("_le", operand)
    sql = f"(_lf.type = 'array' AND EXISTS ({_ELEMENTS} WHERE {elem}))"
    if isinstance(operand, str):
        sql = f"({sql} OR (_lf.type = 'text' AND instr(_lf.value, ?) > 0))"
        params = (*params, operand)
    return sql, params


def _eq_sql(alias: str, operand: Any) -> tuple[str, tuple[Param, ...]]:
    """Strict-typed equality of a ``json_each`` row against a scalar operand."""
    if operand is None:
        return f"({alias}.type = 'null')", ()
    if isinstance(operand, bool):
        return f"({alias}.type = '{'true' if operand else 'false'}')", ()
    if isinstance(operand, str):
        return f"({alias}.type = 'text' AND {alias}.value = ?)", (operand,)
    return f"({alias}.type IN ('integer', 'real') AND {alias}.value = ?)", (operand,)


def compile_filter(
    filters: Mapping[str, Any] | None, known_keys: Collection[str] | None = None
) -> CompiledFilter | None:
    """Translate a metadata filter into a SQLite boolean expression over ``metadata``.

    Args:
        filters: The filter, e.g. ``{"color": "red", "size": {"$gte": 1, "$lt": 5}}``.
            ``None`` or ``{}`` means no filtering. See the module docstring for the language.
        known_keys: Metadata keys present in the store. When given, a key referenced by any
            operator other than ``$exists`` must be one of them.

    Returns:
        The compiled filter, or ``None`` when there is nothing to filter on.

    Raises:
        InvalidInputError: The filter is malformed (unknown operator, wrong operand type,
            empty ``$and``/``$or``, non-str key, nesting deeper than :data:`MAX_DEPTH`, ...)
            or references a key outside ``known_keys``.
    """
    if filters is None:
        return None
    if isinstance(filters, Mapping) and not filters:
        return None
    node = parse_filter(filters)
    if known_keys is not None:
        check_known_keys(node, known_keys)
    sql, params = _sql(node)
    keys = frozenset(cond.key for cond in conditions(node))
    logger.debug("compiled metadata filter on keys %s", sorted(keys))
    return CompiledFilter(sql=sql, params=params, keys=keys)
