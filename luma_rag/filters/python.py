"""The Python translator: evaluate a parsed filter against one item's metadata dict.

Same semantics as the SQLite translator (a property test checks them against each other).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any, Final

from luma_rag.errors import InvalidInputError
from luma_rag.filters.syntax import RANGE_OPS, Cond, Junction, Node, Not, parse_filter

__all__ = ["matches"]

_ASCII_LOWER: Final = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_MISSING: Final = object()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar_eq(value: Any, operand: Any) -> bool:
    if operand is None:
        return value is None
    if isinstance(operand, bool):
        return isinstance(value, bool) and value == operand
    if isinstance(operand, str):
        return isinstance(value, str) and value == operand
    return _is_number(value) and bool(value == operand)


def _eval(node: Node, metadata: Mapping[str, Any]) -> bool:
    if isinstance(node, Not):
        return not _eval(node.child, metadata)
    if isinstance(node, Junction):
        results = (_eval(child, metadata) for child in node.children)
        return all(results) if node.op == "$and" else any(results)
    return _eval_cond(node, metadata.get(node.key, _MISSING))


def _eval_cond(cond: Cond, value: Any) -> bool:
    op, operand = cond.op, cond.operand
    if op == "$exists":
        return (value is not _MISSING) == operand
    if op == "$ne":
        return not _eval_cond(Cond(cond.key, "$eq", operand), value)
    if op == "$nin":
        return not _eval_cond(Cond(cond.key, "$in", operand), value)
    if value is _MISSING:
        return False
    if op == "$eq":
        return _scalar_eq(value, operand)
    if op == "$in":
        return any(_scalar_eq(value, item) for item in operand)
    if op in RANGE_OPS:
        compare = RANGE_OPS[op][1]
        if isinstance(operand, str):
            return isinstance(value, str) and compare(value, operand)
        return _is_number(value) and compare(value, operand)
    if op == "$text_match":
        return isinstance(value, str) and (
            operand.translate(_ASCII_LOWER) in value.translate(_ASCII_LOWER)
        )
    # $contains
    if isinstance(value, list | tuple):
        return any(_scalar_eq(item, operand) for item in value)
    return isinstance(value, str) and isinstance(operand, str) and operand in value


def matches(metadata: Mapping[str, Any], filters: Mapping[str, Any] | None) -> bool:
    """Evaluate a metadata filter in Python, with the same semantics as :func:`compile_filter`.

    Args:
        metadata: One item's metadata, as decoded from JSON (lists may also be tuples).
        filters: The filter; ``None`` or ``{}`` matches everything.

    Returns:
        Whether the item's metadata satisfies the filter.

    Raises:
        InvalidInputError: The filter is malformed, exactly as for :func:`compile_filter`.
    """
    if filters is None or (isinstance(filters, Mapping) and not filters):
        return True
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a dict, got {type(metadata).__name__}")
    return _eval(parse_filter(filters), metadata)
