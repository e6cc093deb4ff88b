"""``to_luma_filter`` on its own: a pure translation, checked against LUMA-RAG's parser."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from llama_index.vector_stores.lumarag import to_luma_filter

from luma_rag.filters import compile_filter, matches


def _f(key: str, value: Any, op: str | FilterOperator = FilterOperator.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)


def _fs(*filters: Any, condition: str | None = "and") -> MetadataFilters:
    return MetadataFilters(filters=list(filters), condition=condition)


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        (FilterOperator.EQ, "Ann", {"k": {"$eq": "Ann"}}),
        (FilterOperator.EQ, None, {"k": {"$eq": None}}),
        (FilterOperator.NE, 3, {"k": {"$ne": 3}}),
        (FilterOperator.GT, 1.5, {"k": {"$gt": 1.5}}),
        (FilterOperator.GTE, 2020, {"k": {"$gte": 2020}}),
        (FilterOperator.LT, "m", {"k": {"$lt": "m"}}),
        (FilterOperator.LTE, 0, {"k": {"$lte": 0}}),
        (FilterOperator.IN, ["a", "b"], {"k": {"$in": ["a", "b"]}}),
        (FilterOperator.IN, [], {"k": {"$in": []}}),
        (FilterOperator.NIN, [1, 2], {"k": {"$nin": [1, 2]}}),
        (FilterOperator.CONTAINS, "fox", {"k": {"$contains": "fox"}}),
        (FilterOperator.TEXT_MATCH, "Fox", {"k": {"$text_match": "Fox", "$contains": "Fox"}}),
        (FilterOperator.TEXT_MATCH_INSENSITIVE, "fox", {"k": {"$text_match": "fox"}}),
        (FilterOperator.ANY, ["a"], {"k": {"$contains": "a"}}),
        (
            FilterOperator.ANY,
            ["a", "b"],
            {"$or": [{"k": {"$contains": "a"}}, {"k": {"$contains": "b"}}]},
        ),
        (
            FilterOperator.ALL,
            ["a", "b"],
            {"$and": [{"k": {"$contains": "a"}}, {"k": {"$contains": "b"}}]},
        ),
    ],
    ids=lambda v: v.name if isinstance(v, FilterOperator) else None,
)
def test_each_operator(op: FilterOperator, value: Any, expected: dict[str, Any]) -> None:
    out = to_luma_filter(_fs(_f("k", value, op)))
    assert out == expected
    compile_filter(out)  # valid in LUMA-RAG's language


def test_none_and_empty_mean_no_filter() -> None:
    assert to_luma_filter(None) == {}
    assert to_luma_filter(MetadataFilters(filters=[])) == {}


def test_conditions_and_nesting() -> None:
    flt = _fs(
        _f("year", 2020, ">="),
        _fs(_f("author", "Ann"), _f("author", "Bob"), condition="or"),
        _fs(_f("tags", "dog", "contains"), condition="not"),
    )
    assert to_luma_filter(flt) == {
        "$and": [
            {"year": {"$gte": 2020}},
            {"$or": [{"author": {"$eq": "Ann"}}, {"author": {"$eq": "Bob"}}]},
            {"$not": {"tags": {"$contains": "dog"}}},
        ]
    }


def test_condition_none_is_and() -> None:
    flt = _fs(_f("a", 1), _f("b", 2), condition=None)
    assert to_luma_filter(flt) == {"$and": [{"a": {"$eq": 1}}, {"b": {"$eq": 2}}]}


def test_not_means_none_of_the_filters() -> None:
    # llama_index.core's build_metadata_filter_fn: NOT matches when no filter matches.
    out = to_luma_filter(_fs(_f("a", 1), _f("b", 2), condition=FilterCondition.NOT))
    assert out == {"$not": {"$or": [{"a": {"$eq": 1}}, {"b": {"$eq": 2}}]}}
    assert matches({"a": 3, "b": 3}, out)
    assert not matches({"a": 3, "b": 2}, out)


@pytest.mark.parametrize(
    ("metadata", "hit"),
    [
        ({"s": "a Fox here"}, True),
        ({"s": "a fox here"}, False),  # TEXT_MATCH is case-sensitive, as in llama_index.core
        ({"s": ["Fox"]}, False),  # ... and only on strings
        ({}, False),
    ],
)
def test_text_match_semantics(metadata: dict[str, Any], hit: bool) -> None:
    assert matches(metadata, to_luma_filter(_fs(_f("s", "Fox", "text_match")))) is hit


def test_translation_is_pure() -> None:
    flt = _fs(_f("tags", ["a", "b"], "in"), _fs(_f("x", 1), condition="not"))
    before = flt.model_dump()
    first = to_luma_filter(flt)
    first["$and"][0]["tags"]["$in"].append("mutated")
    assert flt.model_dump() == before
    assert to_luma_filter(flt) != first


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        (_f("k", None, ">"), "cannot compare"),
        (_f("k", [1, 2], ">="), "cannot compare"),
        (_f("k", "a", "in"), "needs a list"),
        (_f("k", 1, "nin"), "needs a list"),
        (_f("k", ["a"], "=="), "takes one value"),
        (_f("k", 5, "text_match"), "needs a string"),
        (_f("k", [], "any"), "at least one value"),
        (_f("k", None, "is_empty"), "IS_EMPTY"),
        (_f("$or", 1), "cannot be filtered on"),
        (_f("k", float("nan"), ">"), "finite"),
    ],
)
def test_bad_filters_raise_value_error(flt: MetadataFilter, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_luma_filter(_fs(flt))


def test_unknown_operator_raises() -> None:
    bogus = MetadataFilter.model_construct(key="k", value=1, operator="bogus")
    with pytest.raises(ValueError, match="unknown filter operator 'bogus'"):
        to_luma_filter(_fs(bogus))


def test_bool_cannot_be_range_compared() -> None:
    flag = MetadataFilter.model_construct(key="k", value=True, operator=FilterOperator.GT)
    with pytest.raises(ValueError, match="cannot compare bool"):
        to_luma_filter(_fs(flag))


def test_unknown_condition_raises() -> None:
    flt = MetadataFilters.model_construct(filters=[_f("a", 1)], condition="xor")
    with pytest.raises(ValueError, match="unknown filter condition"):
        to_luma_filter(flt)


def test_empty_nested_group_raises() -> None:
    with pytest.raises(ValueError, match="no filters"):
        to_luma_filter(_fs(_f("a", 1), MetadataFilters(filters=[])))


def test_not_a_metadata_filters_raises() -> None:
    with pytest.raises(ValueError, match="MetadataFilters"):
        to_luma_filter({"a": 1})  # type: ignore[arg-type]
