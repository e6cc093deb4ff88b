"""Well-posed targeted questions (luma_rag.eval.well_posed): the targeted set singles out its
answers, ambiguous draws are rejected, counted and kept apart, the old set stays reachable."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

from luma_rag.datasets.attributes import ShapeAttributes, relevant
from luma_rag.datasets.manifest import ShapeItem
from luma_rag.errors import InvalidInputError
from luma_rag.eval.gate_questions import Record, questions
from luma_rag.eval.trust_report import wilson
from luma_rag.eval.well_posed import (
    ambiguous_summary,
    is_ambiguous,
    markdown_lines,
    question_set,
    targeted,
)


def _item(i: int, shape: str, color: str, size: str, position: str, count: int = 1) -> ShapeItem:
    attrs = ShapeAttributes(shape, color, size, position, count, "plain")
    return ShapeItem(f"it-{i}", f"{i}.png", "c", ("c",), None, None, "test", attrs)


def _gallery() -> list[ShapeItem]:
    """Two small red circles that differ only in position (every position question about them
    is ambiguous); a blue square alone (well posed for every kind); two green stars that differ
    only in count (count questions about them are ambiguous)."""
    return [
        _item(0, "circle", "red", "small", "left"),
        _item(1, "circle", "red", "small", "right"),
        _item(2, "square", "blue", "large", "top"),
        _item(3, "star", "green", "small", "center", 1),
        _item(4, "star", "green", "small", "center", 2),
    ]


def _brute_ambiguous(q: Any, target: ShapeItem, items: list[ShapeItem]) -> bool:
    values = {getattr(it.attributes, q.kind) for it in items if relevant(q.named, it.attributes)}
    return values != {getattr(target.attributes, q.kind)}


def test_targeted_questions_single_out_their_answer() -> None:
    items = _gallery()
    qset = targeted(items, 50, seed=3)
    assert len(qset.targeted) == 50
    for target, q in qset.targeted:
        assert not _brute_ambiguous(q, target, items), q.text
    assert qset.ambiguous and all(_brute_ambiguous(q, t, items) for t, q in qset.ambiguous)
    # position: only the square and the two stars single out their position
    pos_targets = {t.id for t, q in qset.targeted if q.kind == "position"}
    assert pos_targets <= {"it-2", "it-3", "it-4"}
    assert qset.distinct_targets["position"] == len(pos_targets)
    assert qset.well_posed_items == {
        "shape": 5, "color": 5, "position": 3, "count": 3, "size": 5,
    }  # fmt: skip
    # every draw is accepted or rejected; the ambiguous set holds rejected draws, capped
    for kind in qset.draws:
        accepted = sum(q.kind == kind for _, q in qset.targeted)
        assert qset.draws[kind] == accepted + qset.rejected[kind]
        kept = sum(q.kind == kind for _, q in qset.ambiguous)
        assert kept == min(qset.rejected[kind], 10)
    assert qset.rejected["position"] > 0 and qset.rejected["count"] > 0
    assert qset.rejected["shape"] == qset.rejected["color"] == 0
    again = targeted(items, 50, seed=3)
    assert [q.text for _, q in again.targeted] == [q.text for _, q in qset.targeted]


def test_random_referents_are_widened_before_a_redraw() -> None:
    items = _gallery()
    qset = targeted(items, 200, seed=5, referent="random")
    assert sum(qset.widened.values()) > 0  # some subset referent was ambiguous, full was not
    assert all(not _brute_ambiguous(q, t, items) for t, q in qset.targeted)


def test_a_kind_no_item_singles_out_gets_no_question(caplog: pytest.LogCaptureFixture) -> None:
    items = _gallery()[:2]  # the two circles: position never singled out
    with caplog.at_level(logging.WARNING, logger="luma_rag.eval.well_posed"):
        qset = targeted(items, 10, seed=1)
    assert not any(q.kind == "position" for _, q in qset.targeted) and len(qset.targeted) == 8
    assert qset.draws["position"] == 0 and "position" in caplog.text


def test_as_drawn_mode_is_the_earlier_generator() -> None:
    items = _gallery()
    old = questions(items, 40, 7, "full")
    qset = question_set(items, 40, 7, "as-drawn")
    assert [q.text for _, q in qset.targeted] == [q.text for _, q in old]
    assert qset.ambiguous == []
    n_amb = sum(is_ambiguous(q, t, items) for t, q in old)
    assert n_amb > 0 and sum(qset.rejected.values()) == n_amb
    assert markdown_lines({"questions": qset.to_dict()})[1].startswith("Question set: **as drawn")
    with pytest.raises(InvalidInputError, match="question mode"):
        question_set(items, 4, 7, "sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "match"),
    [(([], 4, 1), "empty"), ((_gallery(), -1, 1), "n must"), ((_gallery(), 4, 1, "half"), "full")],
)
def test_bad_requests_raise(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        targeted(*args)


def test_ambiguous_summary_counts_every_outcome() -> None:
    def rec(kind: str, decision: str, correct: bool) -> Record:
        return Record(kind, decision, True, correct, False, "", True)

    records = [
        rec("position", "clarify", False),
        rec("position", "clarify", False),
        rec("position", "answer", True),
        rec("count", "widen", False),
        rec("count", "not_in_memory", False),
    ]
    out = ambiguous_summary(records, wilson)
    assert out["n"] == 5 and out["clarify"]["n"] == 2 and out["clarify"]["share"] == 0.4
    assert out["answer"] == {"n": 1, "n_target_value": 1, "n_other": 0}
    assert out["widen"] == {"n": 1, "n_target_value": 0, "n_other": 1}
    assert out["not_in_memory"]["n"] == 1
    assert out["by_kind"] == {"position": {"n": 3, "clarify": 2}, "count": {"n": 2, "clarify": 0}}
    lo, hi = out["clarify"]["wilson95"]
    assert lo is not None and hi is not None and lo < 0.4 < hi
    qset = targeted(_gallery(), 10, seed=3)
    lines = markdown_lines({"questions": qset.to_dict(), "ambiguous": {"gate": out}})
    assert "| gate | 2/5 = 40.0 %" in lines[-1] and "well posed" in lines[1]
    assert np.isclose(out["clarify"]["share"], 2 / 5)


@pytest.mark.parametrize(
    ("text", "expected", "right"),
    [
        ("two", "count:two", True),
        ("There are 2.", "count:two", True),
        ("one", "count:two", False),
        ("Red.", "color:red", True),
        ("crimson", "color:red", True),
        ("blue", "color:red", False),
        ("", "color:red", False),
        ("on the left", "position:left", True),
    ],
)
def test_calibration_reads_the_expected_answer_as_it_reads_the_model(
    text: str, expected: str, right: bool
) -> None:
    """The val-split LTT compares what the model said with the expected word, both parsed (a
    count is an int: "two" once never matched the parsed 2, so every count counted wrong)."""
    from luma_rag.eval.trust_calibrate import answer_matches

    assert answer_matches(text, expected) is right
