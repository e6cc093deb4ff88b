"""Metadata filters: a small Mongo/Chroma-like language, compiled to SQLite SQL.

Item metadata lives in SQLite as one JSON object per item (column ``metadata``).
:func:`compile_filter` translates a user filter into a boolean SQL expression over that
column plus positional parameters; :func:`matches` evaluates the same language in pure
Python. The two agree exactly (a property test checks this against a real SQLite).

Language::

    {"color": "red"}                              # equality
    {"color": "red", "shape": "circle"}           # several entries AND together
    {"size": {"$gte": 1, "$lt": 5}}               # several operators on one key AND together
    {"$and": [f1, f2]}  {"$or": [f1, f2]}  {"$not": f}

Field operators: ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$in``, ``$nin``,
``$contains``, ``$text_match``, ``$exists``. Operands are ``str``, ``int``, ``float``,
``bool`` or ``None``; lists only for ``$in`` / ``$nin``.

Semantics:

* A key names a top-level metadata key literally: ``"a.b"`` is the key ``a.b``, not a
  nested path. Keys starting with ``$`` are operators, so such metadata keys cannot be
  filtered on.
* Types are strict. ``True`` never equals ``1`` and ``False`` never equals ``0`` (SQLite's
  ``json_extract`` would say they do; the SQL checks the JSON type). ``int`` and ``float``
  compare numerically (``1 == 1.0``). Strings compare lexicographically by code point.
  A number never equals a string, and a list or object never equals a scalar.
* A comparison on a missing key is False: ``$eq``, ``$gt``/``$gte``/``$lt``/``$lte``,
  ``$in``, ``$contains``, ``$text_match``. ``$ne`` is exactly ``NOT $eq`` and ``$nin`` is
  exactly ``NOT $in``, so both are True on a missing key (as in MongoDB).
* ``None`` matches a stored JSON ``null`` only; unlike MongoDB, ``{"k": None}`` does not
  match items without ``k``. Use ``{"k": {"$exists": False}}`` for those.
* Range operators with a number operand match number values only; with a string operand,
  string values only. Anything else (a string field against a number, a bool, a list, a
  null) is False at row level, not an error.
* ``$in: [v1, v2]`` is ``$eq v1 OR $eq v2``; ``$in: []`` matches nothing and ``$nin: []``
  matches everything.
* ``$contains: x`` is True when the value is an array with an element equal to ``x``
  (same strict equality as ``$eq``), or when the value is a string and ``x`` is a string
  occurring in it (case-sensitive).
* ``$text_match: s`` is True when the value is a string containing ``s`` ignoring case.
  Case folding is ASCII-only, like SQLite's ``lower()``: ``"É"`` and ``"é"`` differ.
* ``$exists: True`` is True when the key is present, whatever its value (``null`` included).

Errors (:class:`~luma_rag.errors.InvalidInputError`, raised by both functions): unknown
operators, operands of the wrong type, ``bool``/``None``/lists as range operands, mixing
string and number operands in the range operators of one key, empty ``$and``/``$or``
lists, empty nested filters, non-``str`` keys, nesting deeper than :data:`MAX_DEPTH`,
integers outside the signed 64-bit range, non-finite floats, and NUL characters in keys or
string operands (SQLite's JSON functions truncate text at NUL).

SQL shape: every condition is ``EXISTS (SELECT 1 FROM json_each(metadata) AS _lf WHERE
_lf.key = ? AND ...)``, so each one is 0 or 1, never NULL, and ``NOT`` stays a true
negation. Keys are matched through ``json_each``'s decoded ``key`` column rather than
``json_extract`` paths: a path cannot address a key containing ``"`` or ``\\``, nor a
non-ASCII key stored by ``json.dumps`` with its default ``ensure_ascii=True``. Keys and
values only ever travel as ``?`` parameters; the SQL text holds constants only.

Limits: metadata is assumed to be written by ``json.dumps`` of a ``dict`` (no duplicate
keys). Stored integers beyond 64 bits and stored strings containing NUL are not supported:
SQLite reads the first as floats and truncates the second, so the two sides may disagree.
"""

from __future__ import annotations

import difflib
import logging
import math
import operator
import string
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from luma_rag.errors import InvalidInputError

__all__ = ["MAX_DEPTH", "CompiledFilter", "compile_filter", "matches"]

logger = logging.getLogger(__name__)

MAX_DEPTH: Final = 32
"""Deepest allowed nesting of filter dicts (``$and`` / ``$or`` / ``$not`` levels)."""

Param: TypeAlias = str | int | float

_RANGE_OPS: Final[dict[str, tuple[str, Callable[[Any, Any], bool]]]] = {
    "$gt": (">", operator.gt),
    "$gte": (">=", operator.ge),
    "$lt": ("<", operator.lt),
    "$lte": ("<=", operator.le),
}
_FIELD_OPS: Final = (
    "$eq",
    "$ne",
    *_RANGE_OPS,
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
_ASCII_LOWER: Final = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_MISSING: Final = object()
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


# ----------------------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class _Cond:
    """One field operator: ``{key: {op: operand}}``."""

    key: str
    op: str
    operand: Any


@dataclass(frozen=True)
class _Junction:
    """``$and`` / ``$or`` over children."""

    op: str
    children: tuple[_Node, ...]


@dataclass(frozen=True)
class _Not:
    """``$not`` of a child."""

    child: _Node


_Node: TypeAlias = _Cond | _Junction | _Not


# ----------------------------------------------------------------------------- parsing


def _parse(filters: Any, depth: int) -> _Node:
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
    nodes: list[_Node] = []
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
    return nodes[0] if len(nodes) == 1 else _Junction("$and", tuple(nodes))


def _parse_combinator(op: str, value: Any, depth: int) -> _Node:
    if op == "$not":
        return _Not(_parse(value, depth + 1))
    if op in ("$and", "$or"):
        if not isinstance(value, list | tuple):
            raise InvalidInputError(
                f"{op} needs a list of filters, e.g. {{'{op}': [{{'a': 1}}, {{'b': 2}}]}}; "
                f"got {type(value).__name__}"
            )
        if not value:
            raise InvalidInputError(f"{op} needs at least one filter; remove the empty {op}")
        return _Junction(op, tuple(_parse(child, depth + 1) for child in value))
    if op in _FIELD_OPS:
        raise InvalidInputError(
            f"operator {op!r} must be applied to a metadata key, e.g. {{'size': {{'{op}': ...}}}}"
        )
    raise InvalidInputError(
        f"unknown operator {op!r}; valid combinators: {', '.join(_COMBINATORS)}; valid field "
        f"operators: {', '.join(_FIELD_OPS)}"
    )


def _parse_field(key: str, value: Any) -> list[_Cond]:
    _check_text(key, "metadata key")
    if isinstance(value, list | tuple):
        raise InvalidInputError(
            f"key {key!r} got a list; to match any of several values write "
            f"{{'{key}': {{'$in': [...]}}}}"
        )
    if not isinstance(value, Mapping):
        _check_scalar(key, "$eq", value)
        return [_Cond(key, "$eq", value)]
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
        conds.append(_Cond(key, op, operand))
    range_kinds = {isinstance(c.operand, str) for c in conds if c.op in _RANGE_OPS}
    if len(range_kinds) > 1:
        raise InvalidInputError(
            f"key {key!r} mixes string and number operands in its range operators; "
            "use all numbers or all strings"
        )
    return conds


def _check_operand(key: str, op: str, operand: Any) -> None:
    if op in ("$eq", "$ne", "$contains"):
        _check_scalar(key, op, operand)
    elif op in _RANGE_OPS:
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


def _conds(node: _Node) -> list[_Cond]:
    if isinstance(node, _Cond):
        return [node]
    if isinstance(node, _Not):
        return _conds(node.child)
    return [cond for child in node.children for cond in _conds(child)]


def _check_known_keys(node: _Node, known_keys: Collection[str]) -> None:
    known = set(known_keys)
    for cond in _conds(node):
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


# ----------------------------------------------------------------------------- SQL


def _sql(node: _Node) -> tuple[str, tuple[Param, ...]]:
    if isinstance(node, _Not):
        sql, params = _sql(node.child)
        return f"(NOT {sql})", params
    if isinstance(node, _Junction):
        parts = [_sql(child) for child in node.children]
        joiner = " AND " if node.op == "$and" else " OR "
        return (
            "(" + joiner.join(sql for sql, _ in parts) + ")",
            tuple(p for _, params in parts for p in params),
        )
    return _cond_sql(node)


def _cond_sql(cond: _Cond) -> tuple[str, tuple[Param, ...]]:
    op, operand = cond.op, cond.operand
    if op == "$exists":
        sql = f"EXISTS ({_FIELD_ROW})"
        return (sql if operand else f"(NOT {sql})"), (cond.key,)
    if op in ("$ne", "$nin"):
        sql, params = _cond_sql(_Cond(cond.key, "$eq" if op == "$ne" else "$in", operand))
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
    if op in _RANGE_OPS:
        kind = "'text'" if isinstance(operand, str) else "'integer', 'real'"
        return f"(_lf.type IN ({kind}) AND _lf.value {_RANGE_OPS[op][0]} ?)", (operand,)
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


# ----------------------------------------------------------------------------- Python


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


def _eval(node: _Node, metadata: Mapping[str, Any]) -> bool:
    if isinstance(node, _Not):
        return not _eval(node.child, metadata)
    if isinstance(node, _Junction):
        results = (_eval(child, metadata) for child in node.children)
        return all(results) if node.op == "$and" else any(results)
    return _eval_cond(node, metadata.get(node.key, _MISSING))


def _eval_cond(cond: _Cond, value: Any) -> bool:
    op, operand = cond.op, cond.operand
    if op == "$exists":
        return (value is not _MISSING) == operand
    if op == "$ne":
        return not _eval_cond(_Cond(cond.key, "$eq", operand), value)
    if op == "$nin":
        return not _eval_cond(_Cond(cond.key, "$in", operand), value)
    if value is _MISSING:
        return False
    if op == "$eq":
        return _scalar_eq(value, operand)
    if op == "$in":
        return any(_scalar_eq(value, item) for item in operand)
    if op in _RANGE_OPS:
        compare = _RANGE_OPS[op][1]
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


# ----------------------------------------------------------------------------- public API


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
    node = _parse(filters, depth=1)
    if known_keys is not None:
        _check_known_keys(node, known_keys)
    sql, params = _sql(node)
    keys = frozenset(cond.key for cond in _conds(node))
    logger.debug("compiled metadata filter on keys %s", sorted(keys))
    return CompiledFilter(sql=sql, params=params, keys=keys)


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
    return _eval(_parse(filters, depth=1), metadata)
