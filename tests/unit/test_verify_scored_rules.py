"""The score-gap path's guards (luma_rag.answer.scored): which CLARIFYs may be verified
(``min_coverage``), the yes-score gap to a rejected hit (``gap``) and the retrieval drop
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
    """The score-gap path without guards (session 6's), ``cfg`` changed."""
    from luma_rag.answer.scored import SESSION6_SCORED

    config = dataclasses.replace(SESSION6_SCORED, **cfg)
    return ScoredVerifyingAnswerer(vlm, VlmVerifier(vlm), config)


def _clarify(coverage: float | None, ids: str = "bda") -> GateDecision:
    verdict = RelevanceVerdict(True, "relevant", 0.3, 0.2, coverage, 0.5, "calibrated")
    return dataclasses.replace(_decision(ids, "clarify"), relevance=verdict)


def test_a_clarify_is_verified_only_when_every_query_word_is_known_to_the_store() -> None:
    """ "a green apple on the left" is a green shape on the left to a model of shapes: a
    CLARIFY whose query has words the store does not know (coverage < 1) stays a CLARIFY."""
    vlm = ScoringVlm()
    strict = _bot(vlm, min_coverage=1.0)
    assert strict.answer(QUESTION, _clarify(1.0)).decision.decision == "widen"
    before = vlm.calls
    partly = strict.answer(QUESTION, _clarify(0.67))
    assert partly.decision.decision == "clarify" and vlm.calls == before + 1  # no yes/no asked
    unchecked = strict.answer(QUESTION, _decision("bda", "clarify"))  # no relevance verdict
    assert unchecked.decision.decision == "clarify"
    assert strict.answer(QUESTION, _clarify(None)).decision.decision == "clarify"
    old = ScoredVerifyingAnswerer(vlm, VlmVerifier(vlm), SESSION6_SCORED)
    assert old.answer(QUESTION, _clarify(0.67)).decision.decision == "widen"


def _answer(coverage: float | None, kind: str = "answer") -> GateDecision:
    verdict = RelevanceVerdict(True, "relevant", 0.3, 0.2, coverage, 0.5, "calibrated")
    return dataclasses.replace(_decision("bae", kind), relevance=verdict)


def test_a_gate_answer_or_widen_on_a_partly_unknown_query_is_not_answered() -> None:
    """ "a blue bicycle near the top": the gate widened over two blue shapes at the top and
    both verify; 'bicycle' is unknown to the store, so the path does not answer."""
    vlm = ScoringVlm()
    bot = _bot(vlm, min_coverage=1.0)
    for kind in ("answer", "widen"):
        out = bot.answer(QUESTION, _answer(0.67, kind))  # type: ignore[arg-type]
        assert out.decision.decision == "clarify"
        assert out.telemetry["verification"]["outcome"] == "ungrounded"
        assert "67%" in out.decision.reason
    assert bot.answer(QUESTION, _answer(1.0)).decision.decision == "answer"
    unchecked = bot.answer(QUESTION, _decision("bae"))  # no lexical check: verified as usual
    assert unchecked.decision.decision == "answer" and unchecked.text == "blue"
    assert _bot(vlm, min_coverage=None).answer(QUESTION, _answer(0.67)).text == "blue"


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
    with pytest.raises(ConfigError, match="min_coverage"):
        ScoredVerifyConfig(min_coverage=1.5)
    with pytest.raises(ConfigError, match="gap"):
        ScoredVerifyConfig(gap=-0.1)
    with pytest.raises(ConfigError, match="max_drop"):
        ScoredVerifyConfig(max_drop=-1)
    cfg = ScoredVerifyConfig(min_coverage=1, gap=0.3, max_drop=0.05)
    assert cfg.min_coverage == 1.0 and isinstance(cfg.min_coverage, float)
    assert ScoredVerifyConfig.from_json(cfg.to_json()) == cfg


class Unsure(ScoringVlm):
    """Reports the probability of each answer it gives: ``conf`` for item 'b'."""

    def __init__(self, conf: float) -> None:
        super().__init__()
        self.conf = conf

    def answer(self, question: str, decision: GateDecision) -> Any:
        out = super().answer(question, decision)
        if question.startswith("Does") or decision.evidence[0].id != "b":
            return out
        return dataclasses.replace(out, telemetry={"answer_confidence": self.conf})


def test_an_answer_the_answerer_itself_doubts_becomes_a_clarify() -> None:
    unsure = _bot(Unsure(0.6), min_confidence=0.9).answer(QUESTION, _decision("bae"))
    assert unsure.decision.decision == "clarify"
    assert unsure.telemetry["verification"]["outcome"] == "unsure reading"
    assert "0.60" in unsure.decision.reason
    sure = _bot(Unsure(0.95), min_confidence=0.9).answer(QUESTION, _decision("bae"))
    assert sure.decision.decision == "answer" and sure.text == "blue"
    silent = _bot(ScoringVlm(), min_confidence=0.9).answer(QUESTION, _decision("bae"))
    assert silent.decision.decision == "answer"  # reports no probability: not held to it
    certified = _bot(Unsure(0.6), min_confidence=0.9, certified_top=True)
    assert certified.answer(QUESTION, _decision("bae")).decision.decision == "clarify"
    assert ScoredVerifyConfig().min_confidence == 0.9
    with pytest.raises(ConfigError, match="min_confidence"):
        ScoredVerifyConfig(min_confidence=2)


def test_a_certified_verified_top_hit_is_answered_even_when_a_contender_disagrees() -> None:
    """'a' and 'c' both show the small red circle and answer red / pink: the path CLARIFIES,
    unless the gate certified 'a' and ``certified_top`` trusts that certificate."""
    question = "What color is the small red circle?"
    assert _bot(ScoringVlm()).answer(question, _decision("acb")).decision.decision == "clarify"
    ans = _bot(ScoringVlm(), certified_top=True).answer(question, _decision("acb"))
    assert ans.decision.decision == "answer" and ans.text == "red"
    widen = _bot(ScoringVlm(), certified_top=True).answer(question, _decision("acb", "widen"))
    assert widen.decision.decision == "clarify"  # only a certified ANSWER is trusted so
