"""The filter language's syntax tree and its validation (shared by every translator).

:func:`parse_filter` turns a user filter into a tree of :class:`Cond` / :class:`Junction` /
:class:`Not`, raising :class:`~luma_rag.errors.InvalidInputError` on anything the language
(see :mod:`luma_rag.filters`) does not allow. Translators (:mod:`luma_rag.filters.sqlite`,
:mod:`luma_rag.filters.python`, a server backend's own) walk the tree; they never re-validate.
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from luma_rag.errors import InvalidInputError

__all__ = [
    "MAX_DEPTH",
    "RANGE_OPS",
    "Cond",
    "Junction",
    "Node",
    "Not",
    "Param",
    "check_known_keys",
    "conditions",
    "parse_filter",
]

MAX_DEPTH: Final = 32
"""Deepest allowed nesting of filter dicts (``$and`` / ``$or`` / ``$not`` levels)."""

Param: TypeAlias = str | int | float

RANGE_OPS: Final[dict[str, tuple[str, Callable[[Any, Any], bool]]]] = {
    "$gt": (">", operator.gt),
    "$gte": (">=", operator.ge),
    "$lt": ("<", operator.lt),
    "$lte": ("<=", operator.le),
}
_FIELD_OPS: Final = (
    "$eq",
    "$ne",
    *RANGE_OPS,
    "$in",
    "$nin",
    "$contains",
    "$text_match",
    "$exists",
)
_COMBINATORS: Final = ("$and", "$or", "$not")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_MAX_KEYS_SHOWN: Final = 50


# ----------------------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class Cond:
    """One field operator: ``{key: {op: operand}}``."""

    key: str
    op: str
    operand: Any


@dataclass(frozen=True)
class Junction:
    """``$and`` / ``$or`` over children."""

    op: str
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """``$not`` of a child."""

    child: Node


Node: TypeAlias = Cond | Junction | Not


# ----------------------------------------------------------------------------- parsing


def _parse(filters: Any, depth: int) -> Node:
    """Validate a (non-empty) filter dict and build its syntax tree."""
    if depth > MAX_DEPTH:
        raise InvalidInputError(
            f"filter nesting is deeper than {MAX_DEPTH} levels; flatten it, e.g. merge "
            "nested $and lists into one"
        )
    if not isinstance(filters, Mapping):
        raise InvalidInputError(
            f"a filter must be a dict such as {{'color': 'red'}}, got {type(filters).__name__}"
        )
    if not filters:
        raise InvalidInputError(
            "empty filter {} inside $and/$or/$not; remove it (only a top-level {} means "
            "'no filtering')"
        )
    nodes: list[Node] = []
    for key, value in filters.items():
        if not isinstance(key, str):
            raise InvalidInputError(
                f"filter keys must be str, got {type(key).__name__} {key!r}; write the "
                "metadata key as a string"
            )
        if key.startswith("$"):
            nodes.append(_parse_combinator(key, value, depth))
        else:
            nodes.extend(_parse_field(key, value))
    return nodes[0] if len(nodes) == 1 else Junction("$and", tuple(nodes))


def _parse_combinator(op: str, value: Any, depth: int) -> Node:
    if op == "$not":
        return Not(_parse(value, depth + 1))
    if op in ("$and", "$or"):
        if not isinstance(value, list | tuple):
            raise InvalidInputError(
                f"{op} needs a list of filters, e.g. {{'{op}': [{{'a': 1}}, {{'b': 2}}]}}; "
                f"got {type(value).__name__}"
            )
        if not value:
            raise InvalidInputError(f"{op} needs at least one filter; remove the empty {op}")
        return Junction(op, tuple(_parse(child, depth + 1) for child in value))
    if op in _FIELD_OPS:
        raise InvalidInputError(
            f"operator {op!r} must be applied to a metadata key, e.g. {{'size': {{'{op}': ...}}}}"
        )
    raise InvalidInputError(
        f"unknown operator {op!r}; valid combinators: {', '.join(_COMBINATORS)}; valid field "
        f"operators: {', '.join(_FIELD_OPS)}"
    )


def _parse_field(key: str, value: Any) -> list[Cond]:
    _check_text(key, "metadata key")
    if isinstance(value, list | tuple):
        raise InvalidInputError(
            f"key {key!r} got a list; to match any of several values write "
            f"{{'{key}': {{'$in': [...]}}}}"
        )
    if not isinstance(value, Mapping):
        _check_scalar(key, "$eq", value)
        return [Cond(key, "$eq", value)]
    if not value:
        raise InvalidInputError(
            f"key {key!r} has an empty operator dict; give an operator such as "
            f"{{'{key}': {{'$exists': True}}}}"
        )
    conds = []
    for op, operand in value.items():
        if not isinstance(op, str) or not op.startswith("$"):
            raise InvalidInputError(
                f"key {key!r}: {op!r} is not an operator; matching nested objects is not "
                f"supported, use operators only (valid: {', '.join(_FIELD_OPS)})"
            )
        if op not in _FIELD_OPS:
            hint = f"; write {{'$not': {{'{key}': ...}}}}" if op == "$not" else ""
            raise InvalidInputError(
                f"unknown operator {op!r} on key {key!r}; valid field operators: "
                f"{', '.join(_FIELD_OPS)}{hint}"
            )
        _check_operand(key, op, operand)
        conds.append(Cond(key, op, operand))
    range_kinds = {isinstance(c.operand, str) for c in conds if c.op in RANGE_OPS}
    if len(range_kinds) > 1:
        raise InvalidInputError(
            f"key {key!r} mixes string and number operands in its range operators; "
            "use all numbers or all strings"
        )
    return conds


def _check_operand(key: str, op: str, operand: Any) -> None:
    if op in ("$eq", "$ne", "$contains"):
        _check_scalar(key, op, operand)
    elif op in RANGE_OPS:
        if isinstance(operand, bool) or not isinstance(operand, int | float | str):
            raise InvalidInputError(
                f"{op} on key {key!r} needs a number or a string, got "
                f"{type(operand).__name__} {operand!r}; use $eq / $exists for booleans and None"
            )
        _check_scalar(key, op, operand)
    elif op in ("$in", "$nin"):
        if not isinstance(operand, list | tuple):
            raise InvalidInputError(
                f"{op} on key {key!r} needs a list, got {type(operand).__name__} {operand!r}; "
                f"write {{'{op}': [{operand!r}]}}"
            )
        for item in operand:
            _check_scalar(key, op, item)
    elif op == "$text_match":
        if not isinstance(operand, str):
            raise InvalidInputError(
                f"$text_match on key {key!r} needs a string, got {type(operand).__name__}"
            )
        _check_text(operand, "$text_match operand")
    elif op == "$exists" and not isinstance(operand, bool):
        got = f"{type(operand).__name__} {operand!r}"
        raise InvalidInputError(f"$exists on key {key!r} needs True or False, got {got}")


def _check_scalar(key: str, op: str, value: Any) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        _check_text(value, f"{op} operand on key {key!r}")
    elif isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise InvalidInputError(
                f"{op} on key {key!r}: {value} does not fit in a signed 64-bit integer; "
                "pass a float or a smaller integer"
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(
                f"{op} on key {key!r}: {value!r} is not a finite number; JSON cannot store it"
            )
    else:
        raise InvalidInputError(
            f"{op} on key {key!r} needs a str, int, float, bool or None, got "
            f"{type(value).__name__} {value!r}"
            + ("; lists are only allowed with $in/$nin" if isinstance(value, list | tuple) else "")
        )


def _check_text(text: str, what: str) -> None:
    if "\x00" in text:
        raise InvalidInputError(
            f"{what} {text!r} contains a NUL character, which SQLite's JSON functions "
            "truncate; remove it"
        )


def conditions(node: Node) -> list[Cond]:
    if isinstance(node, Cond):
        return [node]
    if isinstance(node, Not):
        return conditions(node.child)
    return [cond for child in node.children for cond in conditions(child)]


def check_known_keys(node: Node, known_keys: Collection[str]) -> None:
    known = set(known_keys)
    for cond in conditions(node):
        if cond.op == "$exists" or cond.key in known:
            continue
        shown = sorted(map(str, known))
        more = len(shown) - _MAX_KEYS_SHOWN
        listing = repr(shown[:_MAX_KEYS_SHOWN]) + (f" and {more} more" if more > 0 else "")
        close = difflib.get_close_matches(cond.key, shown, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InvalidInputError(
            f"no stored item has metadata key {cond.key!r}; known keys: {listing}{hint}"
        )


def parse_filter(filters: Any) -> Node:
    """Validate a non-empty filter and return its syntax tree."""
    return _parse(filters, depth=1)
