"""The Milvus filter translator, on its own (no server): shapes, soundness markers, errors."""

from __future__ import annotations

from typing import Any

import pytest

from luma_rag.backends.milvus_filters import MilvusFilter, to_milvus
from luma_rag.errors import InvalidInputError
from luma_rag.filters import compile_filter


def _tr(filters: dict[str, Any]) -> MilvusFilter:
    out = to_milvus(filters)
    assert out is not None
    return out


def test_nothing_to_filter() -> None:
    assert to_milvus(None) is None
    assert to_milvus({}) is None


@pytest.mark.parametrize(
    ("filters", "expr"),
    [
        ({"color": "red"}, 'meta["color"] == "red"'),
        ({"n": 3}, 'meta["n"] == 3'),
        ({"x": 0.5}, 'meta["x"] == 0.5'),
        ({"flag": True}, 'meta["flag"] == true'),
        ({"n": {"$ne": 3}}, 'not (meta["n"] == 3)'),
        ({"n": {"$gte": 1}}, 'meta["n"] >= 1'),
        ({"s": {"$lt": "m"}}, 'meta["s"] < "m"'),
        ({"n": {"$in": [1, 2]}}, 'meta["n"] in [1, 2]'),
        ({"n": {"$nin": ["a"]}}, 'not (meta["n"] in ["a"])'),
        ({"n": {"$exists": True}}, 'exists meta["n"]'),
        ({"n": {"$exists": False}}, 'not (exists meta["n"])'),
        ({'q"k': "v"}, 'meta["q\\"k"] == "v"'),
        ({"a": 1, "b": 2}, '(meta["a"] == 1) and (meta["b"] == 2)'),
        ({"$or": [{"a": 1}, {"b": 2}]}, '(meta["a"] == 1) or (meta["b"] == 2)'),
        ({"$not": {"a": 1}}, 'not (meta["a"] == 1)'),
    ],
)
def test_exact_translations(filters: dict[str, Any], expr: str) -> None:
    out = _tr(filters)
    assert out.exact
    assert out.upper == expr
    assert out.lower == expr


def test_mixed_type_in_list_splits_by_type() -> None:
    out = _tr({"n": {"$in": [1, "1", True]}})
    assert out.exact
    assert out.upper == '(meta["n"] in [1]) or (meta["n"] in ["1"]) or (meta["n"] in [true])'


def test_empty_in_matches_nothing_and_empty_nin_everything() -> None:
    none = _tr({"n": {"$in": []}})
    assert none.exact and none.upper == 'id == ""'
    everything = _tr({"n": {"$nin": []}})
    assert everything.exact and everything.upper == ""


@pytest.mark.parametrize(
    "filters",
    [{"s": {"$text_match": "ab"}}, {"s": None}, {"s": {"$contains": "x"}}, {"s": {"$in": [None]}}],
)
def test_untranslatable_conditions_relax_soundly(filters: dict[str, Any]) -> None:
    out = _tr(filters)
    assert not out.exact
    assert out.upper == 'exists meta["s"]'  # every match has the key
    assert out.lower != out.upper


def test_contains_lower_bound_is_array_membership() -> None:
    assert _tr({"s": {"$contains": "x"}}).lower == 'json_contains(meta["s"], "x")'


def test_negation_swaps_upper_and_lower() -> None:
    out = _tr({"$not": {"s": {"$text_match": "ab"}}})
    assert not out.exact
    assert out.upper == ""  # NOT(nothing certain) = anything may match
    assert out.lower == 'not (exists meta["s"])'  # NOT(key exists) certainly matches
    ne_null = _tr({"s": {"$ne": None}})
    assert ne_null.upper == "" and ne_null.lower == 'not (exists meta["s"])'


def test_and_with_a_relaxed_part_keeps_the_exact_part() -> None:
    out = _tr({"a": 1, "s": {"$text_match": "x"}})
    assert out.upper == '(meta["a"] == 1) and (exists meta["s"])'
    assert out.lower is None


def test_keys_are_reported() -> None:
    assert _tr({"$or": [{"a": 1}, {"$not": {"b": 2}}]}).keys == frozenset({"a", "b"})


@pytest.mark.parametrize(
    "filters",
    [{"a": {"$bogus": 1}}, {"$and": []}, {"a": {"$gt": True}}, {"a": {"$in": 3}}, {1: 2}],
)
def test_invalid_filters_raise_like_the_sql_compiler(filters: Any) -> None:
    with pytest.raises(InvalidInputError) as sql_err:
        compile_filter(filters)
    with pytest.raises(InvalidInputError) as milvus_err:
        to_milvus(filters)
    assert str(milvus_err.value) == str(sql_err.value)


def test_user_strings_cannot_break_out_of_the_literal() -> None:
    out = _tr({"name": 'x" or id != "'})
    assert out.upper == 'meta["name"] == "x\\" or id != \\""'
