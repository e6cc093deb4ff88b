"""The cached dev loop of #17 (luma_rag.eval.trust_dev): VLM calls persisted and replayed,
wrong answers attributed to a stage, figures per rule; with the fake VLM of
test_verify_scored (no model, no store)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from luma_rag.answer.base import Answer
from luma_rag.answer.scored import SESSION6_SCORED, ScoredVerifyingAnswerer
from luma_rag.answer.verify_vlm import VlmVerifier
from luma_rag.eval.gate_questions import CachedAnswerer
from luma_rag.eval.trust_dev import DevCase, VlmCache, figures, model_tag, prefill, replay, stage
from tests.unit.test_verify_scored import ScoringVlm, _decision

BLUE = "What color is the big blue square?"


def _case(ids: str, kind: str = "answer", **kw: object) -> DevCase:
    base = {"kind": "color", "value": "blue", "target": "b", "matching": frozenset("bd"),
            "good": frozenset("bd")}  # fmt: skip
    return DevCase("test", BLUE, _decision(ids, kind), **{**base, **kw})  # type: ignore[arg-type]


def test_the_cache_persists_every_call_and_a_replay_asks_the_model_nothing(
    tmp_path: Path,
) -> None:
    vlm = ScoringVlm()
    bot = CachedAnswerer(vlm, top_only=True, clarify_text=True)
    cases = [_case("bae"), _case("eba", "clarify"), _case("abe", "not_in_memory")]
    prefill(bot, VlmVerifier(bot), cases, 3, answer_floor=0.5)
    # the same question about the same 3 hits: 3 yes/no checks (none for the NOT_IN_MEMORY);
    # answers from each top hit ("b", "e") and each "yes" ("b")
    assert vlm.calls == 3 + 2
    VlmCache(bot, tmp_path / "c.json", "tiny:v1").save()

    fresh_vlm = ScoringVlm()
    fresh = CachedAnswerer(fresh_vlm, top_only=True, clarify_text=True)
    assert VlmCache(fresh, tmp_path / "c.json", "tiny:v1").load() == 5
    rule = ScoredVerifyingAnswerer(fresh, VlmVerifier(fresh), SESSION6_SCORED)
    out = replay(cases, rule)
    assert fresh_vlm.calls == 0
    assert [a.decision.decision for a in out] == ["answer", "widen", "not_in_memory"]
    assert out[0].telemetry["verification"]["scores"]["b"] == 0.9  # P(yes) came back
    other = CachedAnswerer(ScoringVlm(), top_only=True)
    assert VlmCache(other, tmp_path / "c.json", "tiny:v2").load() == 0  # another checkpoint


def test_wrong_answers_are_attributed_to_the_stage_at_fault() -> None:
    def said(case: DevCase, text: str, frm: str, decision: str = "widen") -> Answer:
        d = dataclasses.replace(case.decision, decision=decision)  # type: ignore[arg-type]
        return Answer(text, d, [], {"verification": {"answered_from": frm}})

    case = _case("eab")
    assert stage(case, said(case, "blue", "b"), 3) is None
    assert stage(case, said(case, "red", "b"), 3) == "answer text"
    assert stage(case, said(case, "green", "e"), 3) == "verification"
    assert stage(case, said(case, "green", "e", "clarify"), 3) is None
    assert stage(case, said(case, "green", "e"), 1) == "retrieval"  # no right item in the top 1
    amb = _case("eab", matching=frozenset("bde"))
    assert stage(amb, said(amb, "green", "e"), 3) == "ambiguous"
    off = DevCase("test", "who won the 1998 world cup?", _decision("abe", "clarify"))
    assert off.off_topic and stage(off, said(off, "red", "a"), 3) == "off-topic"


def test_figures_count_coverage_risk_kinds_and_off_topic() -> None:
    cases = [_case("bae"), _case("eba", "clarify"),
             DevCase("test", "a green apple on the left", _decision("eab", "clarify"))]  # fmt: skip
    answers = [
        Answer("blue", cases[0].decision, [], {}),
        Answer("red", dataclasses.replace(cases[1].decision, decision="widen"), [], {}),
        Answer("?", cases[2].decision, [], {}),
    ]
    fig = figures(cases, answers, 3)
    assert fig["n"] == 2 and fig["coverage"] == 1.0 and fig["risk"] == 0.5
    assert fig["answer"] == {"n": 1, "wrong": 0} and fig["widen"] == {"n": 1, "wrong": 1}
    assert fig["answered_by_kind"] == {"color": 1.0}
    assert fig["off_topic"] == {"n": 1, "refused": 1}
    assert fig["wrong_by_stage"] == {"verification": 1}


def test_model_tag_names_an_answerer_without_local_weights() -> None:
    assert model_tag(ScoringVlm()) == "ScoringVlm:None"


def test_citation_marks_are_not_read_as_the_answer() -> None:
    """A readable answer "one [1]–[2]" answers a count question with one, not 1 and 2."""
    from luma_rag.datasets.questions import parse_answer
    from luma_rag.eval.gate_questions import uncited

    assert parse_answer("one [1]–[2]", "count") is None  # what the scorer used to read
    assert parse_answer(uncited("one [1]–[2]"), "count") == 1
    assert parse_answer(uncited("Two [3]."), "count") == 2
    case = dataclasses.replace(_case("bae"), kind="count", value=1)
    assert case.right("one [1]–[2]") and not case.right("two [1]")
