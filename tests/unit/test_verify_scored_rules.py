"""The score-gap path's guards (luma_rag.answer.scored): which CLARIFYs may be verified
(``rescue_coverage``), the yes-score gap to a rejected hit (``gap``) and the retrieval drop
of the hit answered from (``max_drop``); with the fake VLM of test_verify_scored."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from luma_rag.answer.gate import GateDecision
from luma_rag.answer.scored import SESSION6_SCORED, ScoredVerifyConfig, ScoredVerifyingAnswerer
from luma_rag.answer.verify_vlm import VlmVerifier
from luma_rag.errors import ConfigError
from luma_rag.relevance import RelevanceVerdict
from tests.unit.test_verify_scored import ScoringVlm, _decision

QUESTION = "What color is the big blue square?"


def _bot(vlm: Any, **cfg: Any) -> ScoredVerifyingAnswerer:
    return ScoredVerifyingAnswerer(vlm, VlmVerifier(vlm), ScoredVerifyConfig(**cfg))


def _clarify(coverage: float | None, ids: str = "bda") -> GateDecision:
    verdict = RelevanceVerdict(True, "relevant", 0.3, 0.2, coverage, 0.5, "calibrated")
    return dataclasses.replace(_decision(ids, "clarify"), relevance=verdict)


def test_a_clarify_is_verified_only_when_every_query_word_is_known_to_the_store() -> None:
    """"a green apple on the left" is a green shape on the left to a model of shapes: a
    CLARIFY whose query has words the store does not know (coverage < 1) stays a CLARIFY."""
    vlm = ScoringVlm()
    strict = _bot(vlm, rescue_coverage=1.0)
    assert strict.answer(QUESTION, _clarify(1.0)).decision.decision == "widen"
    before = vlm.calls
    partly = strict.answer(QUESTION, _clarify(0.67))
    assert partly.decision.decision == "clarify" and vlm.calls == before + 1  # no yes/no asked
    unchecked = strict.answer(QUESTION, _decision("bda", "clarify"))  # no relevance verdict
    assert unchecked.decision.decision == "clarify"
    assert strict.answer(QUESTION, _clarify(None)).decision.decision == "clarify"
    old = ScoredVerifyingAnswerer(vlm, VlmVerifier(vlm), SESSION6_SCORED)
    assert old.answer(QUESTION, _clarify(0.67)).decision.decision == "widen"


def test_a_gate_answer_is_verified_whatever_the_coverage() -> None:
    ans = _bot(ScoringVlm(), rescue_coverage=1.0).answer(QUESTION, _decision("bae"))
    assert ans.decision.decision == "answer" and ans.text == "blue"


def test_the_verified_hit_must_beat_a_rejected_one_by_the_gap() -> None:
    """'a' (not the referent) scores 0.45 < doubt 0.5: rejected; 'b' verifies at 0.9. A gap
    of 0.5 is more than 0.9 - 0.45: CLARIFY naming both; a gap of 0.4 answers."""
    vlm = ScoringVlm(override={"a": 0.45})
    wide = _bot(vlm, doubt=0.5, gap=0.5).answer(QUESTION, _decision("bae"))
    assert wide.decision.decision == "clarify"
    assert wide.telemetry["verification"]["outcome"] == "unsure"
    assert {h.id for h in wide.decision.evidence} >= {"a", "b"}
    ok = _bot(vlm, doubt=0.5, gap=0.4).answer(QUESTION, _decision("bae"))
    assert ok.decision.decision == "answer" and ok.text == "blue"


def test_a_verified_hit_far_below_the_top_in_retrieval_is_not_answered_from() -> None:
    """'b' verifies but ranks second, 0.01 below the rejected top hit 'e'."""
    vlm = ScoringVlm()
    far = _bot(vlm, max_drop=0.005).answer(QUESTION, _decision("eba"))
    assert far.decision.decision == "clarify"
    assert far.telemetry["verification"]["outcome"] == "unsure"
    near = _bot(vlm, max_drop=0.02).answer(QUESTION, _decision("eba"))
    assert near.decision.decision == "widen" and near.text == "blue"


def test_guard_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="rescue_coverage"):
        ScoredVerifyConfig(rescue_coverage=1.5)
    with pytest.raises(ConfigError, match="gap"):
        ScoredVerifyConfig(gap=-0.1)
    with pytest.raises(ConfigError, match="max_drop"):
        ScoredVerifyConfig(max_drop=-1)
    cfg = ScoredVerifyConfig(rescue_coverage=1, gap=0.3, max_drop=0.05)
    assert cfg.rescue_coverage == 1.0 and isinstance(cfg.rescue_coverage, float)
    assert ScoredVerifyConfig.from_json(cfg.to_json()) == cfg
