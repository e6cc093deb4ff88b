"""Tests for luma_rag.filters: the SQL translation and the Python reference must agree."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from luma_rag.errors import InvalidInputError
from luma_rag.filters import MAX_DEPTH, CompiledFilter, compile_filter, matches

ROWS: list[dict[str, Any]] = [
    {"color": "red", "size": 3, "tags": ["a", "b"], "flag": True, "note": "Hello World"},
    {"color": "blue", "size": 5.5, "tags": ["b", 1], "flag": False, "note": None},
    {"color": "Red", "size": "big", "tags": [True, None], "flag": 1},
    {"size": 0, "tags": "abc", "flag": 0, "note": "héllo"},
    {"color": None, "size": -2, "tags": [], "nested": {"x": 1}},
    {},
]


def _sqlite_keys(
    rows: Sequence[Mapping[str, Any]], filters: Mapping[str, Any], *, ensure_ascii: bool = True
) -> list[int]:
    """Keys that SQLite returns for the compiled filter over ``rows`` (key = list index)."""
    con = sqlite3.connect(":memory:")
    try:
        con.execute("CREATE TABLE items (key INTEGER PRIMARY KEY, metadata TEXT)")
        con.executemany(
            "INSERT INTO items (key, metadata) VALUES (?, ?)",
            [(i, json.dumps(row, ensure_ascii=ensure_ascii)) for i, row in enumerate(rows)],
        )
        compiled = compile_filter(filters)
        params: tuple[Any, ...] = ()
        if compiled is None:
            query = "SELECT key FROM items ORDER BY key"
        else:
            query = f"SELECT key FROM items WHERE {compiled.sql} ORDER BY key"
            params = compiled.params
        return [key for (key,) in con.execute(query, params)]
    finally:
        con.close()


def _python_keys(rows: Sequence[Mapping[str, Any]], filters: Mapping[str, Any]) -> list[int]:
    return [i for i, row in enumerate(rows) if matches(row, filters)]


def _keys(filters: Mapping[str, Any], rows: Sequence[Mapping[str, Any]] = ROWS) -> list[int]:
    """Matching keys, after checking that SQLite and Python agree."""
    expected = _python_keys(rows, filters)
    assert _sqlite_keys(rows, filters) == expected
    assert _sqlite_keys(rows, filters, ensure_ascii=False) == expected
    return expected


# ----------------------------------------------------------------------------- API shape


def test_none_and_empty_mean_no_filtering() -> None:
    assert compile_filter(None) is None
    assert compile_filter({}) is None
    assert matches({"a": 1}, None)
    assert matches({"a": 1}, {})


def test_compiled_filter_shape() -> None:
    compiled = compile_filter({"color": "red", "size": {"$gt": 2}})
    assert isinstance(compiled, CompiledFilter)
    assert compiled.keys == frozenset({"color", "size"})
    assert compiled.params == ("color", "red", "size", 2)
    assert compiled.sql.count("?") == len(compiled.params)
    with pytest.raises(AttributeError):
        compiled.sql = "1"  # type: ignore[misc]


# ----------------------------------------------------------------------------- operators


def test_equality_and_implicit_and() -> None:
    assert _keys({"color": "red"}) == [0]
    assert _keys({"color": "red", "size": 3}) == [0]
    assert _keys({"color": "red", "size": 4}) == []
    assert _keys({"color": {"$eq": "blue"}}) == [1]


def test_equality_is_type_strict() -> None:
    assert _keys({"flag": True}) == [0]
    assert _keys({"flag": False}) == [1]
    assert _keys({"flag": 1}) == [2]
    assert _keys({"flag": 0}) == [3]
    assert _keys({"flag": 1.0}) == [2]
    assert _keys({"size": "3"}) == []


def test_none_matches_json_null_only() -> None:
    assert _keys({"color": None}) == [4]
    assert _keys({"note": {"$eq": None}}) == [1]
    assert _keys({"color": {"$ne": None}}) == [0, 1, 2, 3, 5]


def test_ne_is_true_on_missing_key() -> None:
    assert _keys({"color": {"$ne": "red"}}) == [1, 2, 3, 4, 5]
    assert _keys({"flag": {"$ne": 1}}) == [0, 1, 3, 4, 5]


def test_numeric_ranges() -> None:
    assert _keys({"size": {"$gt": 3}}) == [1]
    assert _keys({"size": {"$gte": 3}}) == [0, 1]
    assert _keys({"size": {"$lt": 3}}) == [3, 4]
    assert _keys({"size": {"$lte": 3}}) == [0, 3, 4]
    assert _keys({"size": {"$gte": 0, "$lt": 5.5}}) == [0, 3]
    assert _keys({"size": {"$gt": 5.4999}}) == [1]


def test_range_never_matches_bools_or_other_types() -> None:
    assert _keys({"flag": {"$gte": 0}}) == [2, 3]
    assert _keys({"tags": {"$gt": -100}}) == []
    assert _keys({"nested": {"$gt": -100}}) == []


def test_string_ranges_are_lexicographic_and_type_strict() -> None:
    assert _keys({"size": {"$gt": "a"}}) == [2]
    assert _keys({"color": {"$gte": "Red", "$lt": "red"}}) == [1, 2]
    assert _keys({"color": {"$lt": "a"}}) == [2]  # "R" < "a"
    assert _keys({"size": {"$lt": 10}}) == [0, 1, 3, 4]  # "big" is not a number


def test_in_and_nin() -> None:
    assert _keys({"color": {"$in": ["red", "blue"]}}) == [0, 1]
    assert _keys({"flag": {"$in": [True, 0]}}) == [0, 3]
    assert _keys({"color": {"$in": [None]}}) == [4]
    assert _keys({"color": {"$in": []}}) == []
    assert _keys({"color": {"$nin": ["red", "blue"]}}) == [2, 3, 4, 5]
    assert _keys({"color": {"$nin": []}}) == [0, 1, 2, 3, 4, 5]
    assert _keys({"size": {"$in": (3, "big")}}) == [0, 2]


def test_contains_on_arrays_and_strings() -> None:
    assert _keys({"tags": {"$contains": "b"}}) == [0, 1, 3]
    assert _keys({"tags": {"$contains": 1}}) == [1]
    assert _keys({"tags": {"$contains": True}}) == [2]
    assert _keys({"tags": {"$contains": None}}) == [2]
    assert _keys({"note": {"$contains": "World"}}) == [0]
    assert _keys({"note": {"$contains": "world"}}) == []
    assert _keys({"note": {"$contains": ""}}) == [0, 3]
    assert _keys({"nested": {"$contains": "x"}}) == []
    assert _keys({"size": {"$contains": 3}}) == []


def test_text_match_is_case_insensitive_ascii() -> None:
    assert _keys({"note": {"$text_match": "hello"}}) == [0]
    assert _keys({"note": {"$text_match": "WORLD"}}) == [0]
    assert _keys({"note": {"$text_match": "HÉLLO"}}) == []  # ASCII-only folding
    assert _keys({"note": {"$text_match": "hÉllo"}}) == []
    assert _keys({"note": {"$text_match": "Héllo"}}) == [3]
    assert _keys({"color": {"$text_match": "RE"}}) == [0, 2]
    assert _keys({"tags": {"$text_match": "a"}}) == [3]


def test_text_match_treats_like_wildcards_literally() -> None:
    rows = [{"t": "100%"}, {"t": "a_b"}, {"t": "axb"}]
    assert _keys({"t": {"$text_match": "%"}}, rows) == [0]
    assert _keys({"t": {"$text_match": "_"}}, rows) == [1]


def test_exists() -> None:
    assert _keys({"note": {"$exists": True}}) == [0, 1, 3]
    assert _keys({"note": {"$exists": False}}) == [2, 4, 5]
    assert _keys({"color": {"$exists": True, "$ne": None}}) == [0, 1, 2]


def test_combinators() -> None:
    assert _keys({"$or": [{"color": "red"}, {"size": {"$lt": 0}}]}) == [0, 4]
    assert _keys({"$and": [{"color": {"$exists": True}}, {"flag": {"$exists": True}}]}) == [
        0,
        1,
        2,
    ]
    assert _keys({"$not": {"color": "red"}}) == [1, 2, 3, 4, 5]
    assert _keys({"$not": {"$or": [{"flag": True}, {"flag": False}]}}) == [2, 3, 4, 5]
    assert _keys({"$and": [{"$not": {"size": {"$gt": 0}}}], "tags": {"$contains": 1}}) == []
    assert _keys({"$or": [{"$and": [{"size": 0}]}, {"flag": 1}]}) == [2, 3]


def test_not_of_missing_key_comparison_is_true() -> None:
    # Every condition is 0/1 in SQL (never NULL), so NOT is a real negation.
    assert _keys({"$not": {"missing": {"$gt": 1}}}) == [0, 1, 2, 3, 4, 5]
    assert _keys({"$not": {"missing": {"$text_match": "x"}}}) == [0, 1, 2, 3, 4, 5]


def test_large_and_mixed_numbers_compare_exactly() -> None:
    rows: list[dict[str, Any]] = [
        {"n": 2**53 + 1},
        {"n": 2**53},
        {"n": float(2**53)},
        {"n": 2**63 - 1},
        {"n": -(2**63)},
    ]
    assert _keys({"n": {"$gt": float(2**53)}}, rows) == [0, 3]
    assert _keys({"n": 2**53}, rows) == [1, 2]
    assert _keys({"n": {"$lte": -(2**63)}}, rows) == [4]


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"a": {"$regex": "x"}}, r"unknown operator '\$regex' on key 'a'.*\$text_match"),
        ({"$nor": [{"a": 1}]}, r"unknown operator '\$nor'; valid combinators: \$and"),
        ({"$gt": 3}, r"must be applied to a metadata key"),
        ({"a": {"$not": {"$gt": 1}}}, r"\{'\$not': \{'a'"),
        ({"a": {"$in": "red"}}, r"\$in on key 'a' needs a list"),
        ({"a": {"$nin": 3}}, r"\$nin on key 'a' needs a list"),
        ({"a": {"$in": [[1]]}}, r"needs a str, int, float, bool or None"),
        ({"a": {"$gt": [1]}}, r"\$gt on key 'a' needs a number or a string"),
        ({"a": {"$lt": {"x": 1}}}, r"needs a number or a string"),
        ({"a": {"$gte": None}}, r"needs a number or a string"),
        ({"a": {"$lte": True}}, r"use \$eq / \$exists for booleans"),
        ({"a": {"$gte": 1, "$lt": "5"}}, r"mixes string and number"),
        ({"a": {"$text_match": 3}}, r"\$text_match on key 'a' needs a string"),
        ({"a": {"$exists": 1}}, r"\$exists on key 'a' needs True or False"),
        ({"a": {"$eq": [1]}}, r"lists are only allowed with \$in/\$nin"),
        ({"a": {"$contains": ["x"]}}, r"lists are only allowed"),
        ({"a": [1, 2]}, r"write \{'a': \{'\$in'"),
        ({"a": object()}, r"needs a str, int, float, bool or None"),
        ({"a": {}}, r"empty operator dict"),
        ({"a": {"$eq": 1, "b": 2}}, r"'b' is not an operator"),
        ({"$and": []}, r"\$and needs at least one filter"),
        ({"$or": []}, r"\$or needs at least one filter"),
        ({"$and": {"a": 1}}, r"\$and needs a list of filters"),
        ({"$or": [{"a": 1}, {}]}, r"empty filter"),
        ({"$not": [{"a": 1}]}, r"a filter must be a dict"),
        ({"$and": ["a"]}, r"a filter must be a dict"),
        ({1: "x"}, r"filter keys must be str"),
        ({"a": 2**63}, r"signed 64-bit"),
        ({"a": {"$gt": float("nan")}}, r"not a finite number"),
        ({"a": float("inf")}, r"not a finite number"),
        ({"a\x00b": 1}, r"NUL character"),
        ({"a": {"$text_match": "x\x00"}}, r"NUL character"),
    ],
)
def test_invalid_filters_raise_actionable_errors(filters: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        compile_filter(filters)
    with pytest.raises(InvalidInputError, match=message):
        matches({"a": 1}, filters)


def test_non_mapping_filter_raises() -> None:
    with pytest.raises(InvalidInputError, match="must be a dict"):
        compile_filter([{"a": 1}])  # type: ignore[arg-type]


def _nested_not(levels: int) -> dict[str, Any]:
    filters: dict[str, Any] = {"a": 1}
    for _ in range(levels - 1):
        filters = {"$not": filters}
    return filters


def test_nesting_limit() -> None:
    assert compile_filter(_nested_not(MAX_DEPTH)) is not None
    assert _keys(_nested_not(MAX_DEPTH), [{"a": 1}, {"a": 2}]) == [1]
    with pytest.raises(InvalidInputError, match="deeper than 32"):
        compile_filter(_nested_not(MAX_DEPTH + 1))
    with pytest.raises(InvalidInputError, match="deeper than 32"):
        matches({}, _nested_not(MAX_DEPTH + 1))


def test_unknown_key_is_named_with_known_keys() -> None:
    with pytest.raises(
        InvalidInputError,
        match=r"no stored item has metadata key 'colour'; known keys: \['color', 'shape'\]"
        r"; did you mean 'color'\?",
    ):
        compile_filter({"colour": "red"}, known_keys={"shape", "color"})
    with pytest.raises(InvalidInputError, match="key 'zzz'"):
        compile_filter({"$or": [{"color": 1}, {"$not": {"zzz": 1}}]}, known_keys=["color"])
    with pytest.raises(InvalidInputError, match="key 'zzz'"):
        compile_filter({"zzz": {"$exists": True, "$eq": 1}}, known_keys=["color"])


def test_exists_is_exempt_from_known_keys() -> None:
    compiled = compile_filter({"new": {"$exists": False}}, known_keys=["color"])
    assert compiled is not None
    assert compiled.keys == frozenset({"new"})
    assert compile_filter({"color": "red"}, known_keys=["color"]) is not None


def test_known_keys_listing_is_truncated() -> None:
    known = [f"k{i:03d}" for i in range(80)]
    with pytest.raises(InvalidInputError, match=r"'k049'\] and 30 more"):
        compile_filter({"nope": 1}, known_keys=known)


# ----------------------------------------------------------------------------- keys, injection

SPECIAL_KEYS = ["a.b", "a b", 'qu"ote', "back\\slash", "é", "😀", "[0]", "a/b\tc", "", "x'y"]


@pytest.mark.parametrize("key", SPECIAL_KEYS)
def test_special_character_keys(key: str) -> None:
    rows: list[dict[str, Any]] = [{key: 1, "other": 2}, {"other": 1}, {key: "1"}]
    assert _keys({key: 1}, rows) == [0]
    assert _keys({key: {"$exists": True}}, rows) == [0, 2]
    assert _keys({key: {"$ne": 1}}, rows) == [1, 2]


def test_dotted_key_is_not_a_nested_path() -> None:
    rows: list[dict[str, Any]] = [{"a": {"b": 1}}, {"a.b": 1}]
    assert _keys({"a.b": 1}, rows) == [1]


def test_sql_text_holds_no_user_data() -> None:
    marker_key = "KEYMARKER') OR 1=1 --"
    marker_value = "VALUEMARKER'; DROP TABLE items; --"
    compiled = compile_filter(
        {
            marker_key: {"$in": [marker_value, 12345]},
            "$or": [{"k": {"$text_match": marker_value}}, {"k": {"$contains": marker_value}}],
        }
    )
    assert compiled is not None
    for needle in ("MARKER", "12345", "DROP"):
        assert needle not in compiled.sql


def test_sql_injection_is_harmless() -> None:
    rows = [{"name": "alice"}, {"x') OR 1=1 --": "y"}]
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE items (key INTEGER PRIMARY KEY, metadata TEXT)")
    con.executemany(
        "INSERT INTO items VALUES (?, ?)", [(i, json.dumps(r)) for i, r in enumerate(rows)]
    )
    for filters in (
        {"name": "x' OR '1'='1"},
        {"name": {"$in": ["'); DROP TABLE items; --"]}},
        {'name") OR 1=1 --': 1},
        {"name": {"$text_match": "%' OR 1=1 --"}},
    ):
        compiled = compile_filter(filters)
        assert compiled is not None
        assert (
            con.execute(f"SELECT key FROM items WHERE {compiled.sql}", compiled.params).fetchall()
            == []
        )
    assert con.execute("SELECT count(*) FROM items").fetchone() == (2,)
    con.close()


# ----------------------------------------------------------------------------- property test

_KEYS = ["a", "b.c", 'q"k', "é"]
_MISSING_KEY = "zz"
_STRINGS = st.text(alphabet="aAbÉé %_'\"", max_size=3)
_NUMBERS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 2.5, -1.5, 2**53 + 1, float(2**53), 2**63 - 1]),
    st.floats(allow_nan=False, allow_infinity=False),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, _STRINGS)
_VALUES = st.one_of(
    _SCALARS,
    st.lists(_SCALARS, max_size=3),
    st.lists(st.lists(_SCALARS, max_size=2), max_size=2),
    st.dictionaries(st.sampled_from(_KEYS), _SCALARS, max_size=2),
)
_ROWS = st.lists(
    st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=4), min_size=2, max_size=8
)
_FIELDS = st.sampled_from([*_KEYS, _MISSING_KEY])


@st.composite
def _range_ops(draw: st.DrawFn) -> dict[str, Any]:
    operands = _STRINGS if draw(st.booleans()) else _NUMBERS
    ops = draw(st.lists(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), min_size=1, max_size=2))
    return {op: draw(operands) for op in ops}


_OP_DICTS = st.one_of(
    st.builds(lambda v: {"$eq": v}, _SCALARS),
    st.builds(lambda v: {"$ne": v}, _SCALARS),
    _range_ops(),
    st.builds(lambda v: {"$in": v}, st.lists(_SCALARS, max_size=3)),
    st.builds(lambda v: {"$nin": v}, st.lists(_SCALARS, max_size=3)),
    st.builds(lambda v: {"$contains": v}, _SCALARS),
    st.builds(lambda v: {"$text_match": v}, _STRINGS),
    st.builds(lambda v: {"$exists": v}, st.booleans()),
)


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(part)
    return merged


_FIELD_FILTERS = st.one_of(
    st.builds(lambda k, v: {k: v}, _FIELDS, _SCALARS),
    st.builds(lambda k, v: {k: v}, _FIELDS, _OP_DICTS),
    st.builds(lambda k, a, b: {k: {**a, **b}}, _FIELDS, _OP_DICTS, _OP_DICTS),
)
_FILTERS = st.recursive(
    _FIELD_FILTERS,
    lambda inner: st.one_of(
        st.builds(lambda fs: {"$and": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda fs: {"$or": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda f: {"$not": f}, inner),
        st.builds(_merge, st.lists(inner, min_size=2, max_size=3)),
    ),
    max_leaves=8,
)


def _valid(filters: Mapping[str, Any]) -> bool:
    try:
        compile_filter(filters)
    except InvalidInputError:  # e.g. two op dicts merged into a str/number range mix
        return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_ROWS, filters=_FILTERS.filter(_valid), ensure_ascii=st.booleans())
def test_sql_agrees_with_python(
    rows: list[dict[str, Any]], filters: dict[str, Any], ensure_ascii: bool
) -> None:
    expected = _python_keys(rows, filters)
    assert _sqlite_keys(rows, filters, ensure_ascii=ensure_ascii) == expected
