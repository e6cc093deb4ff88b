"""Metadata filters: a small Mongo/Chroma-like language, compiled to SQLite SQL.

Item metadata lives in SQLite as one JSON object per item (column ``metadata``).
:func:`compile_filter` translates a user filter into a boolean SQL expression over that
column plus positional parameters; :func:`matches` evaluates the same language in pure
Python. The two agree exactly (a property test checks this against a real SQLite). Both are
pure translators of one syntax tree (:func:`parse_filter`, :mod:`luma_rag.filters.syntax`);
another backend adds its own translator beside them.

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

from luma_rag.filters.python import matches
from luma_rag.filters.sqlite import CompiledFilter, compile_filter
from luma_rag.filters.syntax import MAX_DEPTH, parse_filter

__all__ = ["MAX_DEPTH", "CompiledFilter", "compile_filter", "matches", "parse_filter"]
