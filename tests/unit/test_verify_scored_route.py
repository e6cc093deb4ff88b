"""The verification route to ANSWER (luma_rag.answer.scored, ``verified_top``): the store's
exact top-1, verified with the highest yes-score, every contender answering the same, read
with ``top_confidence``, is ANSWERed whatever the certificate said; with the fake VLM of
test_verify_scored."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from luma_rag.answer.base import Answer
from luma_rag.answer.gate import GateDecision
from luma_rag.answer.scored import (
    SESSION7_SCORED,
    ScoredVerifyConfig,
    ScoredVerifyingAnswerer,
)
from luma_rag.answer.verify_vlm import VlmVerifier, verified_answerer
from luma_rag.errors import ConfigError
from luma_rag.relevance import RelevanceVerdict
from tests.unit.test_verify_scored import ScoringVlm, _decision

QUESTION = "What color is the big blue square?"


def _gated(ids: str, kind: str = "clarify", complete_at: int = 1) -> GateDecision:
    """A grounded gate decision over ``ids`` (coverage 1), complete at ``complete_at``."""
    d = _decision(ids, kind)
    verdict = RelevanceVerdict(True, "relevant", 0.3, 0.2, 1.0, 0.5, "calibrated")
    numbers = dataclasses.replace(d.numbers, complete_at=complete_at, safe1=kind == "answer")
    return dataclasses.replace(d, numbers=numbers, relevance=verdict)


def _bot(vlm: Any, **cfg: Any) -> ScoredVerifyingAnswerer:
    return ScoredVerifyingAnswerer(vlm, VlmVerifier(vlm), ScoredVerifyConfig(**cfg))


class Confident(ScoringVlm):
    """:class:`ScoringVlm` that reports the probability of each answer it reads."""

    def __init__(self, conf: float = 1.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.conf = conf

    def answer(self, question: str, decision: GateDecision) -> Answer:
        out = super().answer(question, decision)
        if question.startswith("Does"):
            return out
        return dataclasses.replace(out, telemetry={"answer_confidence": self.conf})


@pytest.mark.parametrize("gate", ["clarify", "widen"])
def test_a_verified_top1_whose_contenders_agree_is_answered_whatever_the_certificate(
    gate: str,
) -> None:
    """'b' and 'd' both show the big blue square and answer blue; 'b' is the exact top-1 and
    scores highest: the certificate said CLARIFY / WIDEN, verification certifies 'b'."""
    vlm = Confident(override={"d": 0.8})
    ans = _bot(vlm).answer(QUESTION, _gated("bda", gate))
    assert ans.decision.decision == "answer" and ans.text == "blue"
    assert ans.decision.evidence[0].id == "b" and ans.decision.k_used == 1
    info = ans.telemetry["verification"]
    assert info["route"] == "verification" and info["answered_from"] == "b"
    assert "certified by verification" in ans.decision.reason
    old = ScoredVerifyingAnswerer(vlm, VlmVerifier(vlm), SESSION7_SCORED)
    assert old.answer(QUESTION, _gated("bda", gate)).decision.decision == "widen"


def test_the_route_needs_the_exact_top1() -> None:
    """Not complete at 1 (an ANN tier may hide a better item): a WIDEN, never an ANSWER."""
    ans = _bot(Confident(override={"d": 0.8})).answer(QUESTION, _gated("bda", complete_at=0))
    assert ans.decision.decision == "widen"
    assert ans.telemetry["verification"].get("route") is None


def test_the_route_needs_the_top1_to_score_highest_and_be_verified_enough() -> None:
    higher = _bot(Confident(override={"d": 0.95})).answer(QUESTION, _gated("bda"))
    assert higher.decision.decision == "widen"  # 'd' fits better than the top-1
    low = _bot(Confident(override={"b": 0.6, "d": 0.55}), verified_top=0.7)
    assert low.answer(QUESTION, _gated("bda")).decision.decision == "widen"
    ok = _bot(Confident(override={"b": 0.75, "d": 0.55}), verified_top=0.7)
    assert ok.answer(QUESTION, _gated("bda")).decision.decision == "answer"


def test_exclusive_needs_the_top1_to_be_the_only_contender() -> None:
    vlm = Confident(override={"d": 0.8})
    assert _bot(vlm, exclusive=True).answer(QUESTION, _gated("bda")).decision.decision == "widen"
    alone = _bot(vlm, exclusive=True).answer(QUESTION, _gated("bae"))
    assert alone.decision.decision == "answer"
    assert alone.telemetry["verification"]["route"] == "verification"


def test_a_contender_that_answers_otherwise_still_clarifies() -> None:
    """'a' and 'c' both show the small red circle and answer red / pink: no route to ANSWER."""
    ans = _bot(Confident()).answer("What color is the small red circle?", _gated("acb"))
    assert ans.decision.decision == "clarify"
    assert ans.telemetry["verification"]["outcome"] == "ambiguous"


def test_the_route_needs_a_confident_reading() -> None:
    unsure = _bot(Confident(0.95, override={"d": 0.8})).answer(QUESTION, _gated("bda"))
    assert unsure.decision.decision == "widen"  # >= min_confidence 0.9, < top_confidence 0.99
    loose = _bot(Confident(0.95, override={"d": 0.8}), top_confidence=0.9, answer_confidence=0.9)
    assert loose.answer(QUESTION, _gated("bda")).decision.decision == "answer"


def test_every_answer_needs_answer_confidence_the_certificate_route_too() -> None:
    """A Safe@1 top-1, verified and alone, read with probability 0.95 (< 0.99): CLARIFY."""
    unsure = _bot(Confident(0.95)).answer(QUESTION, _gated("bae", "answer"))
    assert unsure.decision.decision == "clarify"
    assert unsure.telemetry["verification"]["outcome"] == "unsure reading"
    old = _bot(Confident(0.95), answer_confidence=None).answer(QUESTION, _gated("bae", "answer"))
    assert old.decision.decision == "answer"
    assert old.telemetry["verification"]["route"] == "certificate"


def test_bounded_needs_a_hit_of_the_pool_that_does_not_fit() -> None:
    """Every checked hit fits ('b' and 'd' of a pool of two): an item past the pool may fit too
    and answer otherwise, so no ANSWER by verification; with a rejected hit in the pool, or
    ``bounded=False``, the route applies."""
    vlm = Confident(override={"d": 0.8})
    full = _bot(vlm, k_verify=2).answer(QUESTION, _gated("bda"))
    assert full.decision.decision == "widen"
    assert _bot(vlm, k_verify=3).answer(QUESTION, _gated("bda")).decision.decision == "answer"
    free = _bot(vlm, k_verify=2, bounded=False).answer(QUESTION, _gated("bda"))
    assert free.decision.decision == "answer"


def test_a_vlm_without_a_yes_probability_reads_as_one_or_zero() -> None:
    """A verifier that only says yes / no: scores 1 / 0, the route still applies."""

    def says(question: str, hit: Any) -> bool:
        return hit.id in ("b", "d")

    bot = ScoredVerifyingAnswerer(Confident(), says, ScoredVerifyConfig())
    ans = bot.answer(QUESTION, _gated("bda"))
    assert ans.decision.decision == "answer" and ans.telemetry["verification"]["scores"]["b"] == 1


def test_the_default_has_the_route_and_the_certificate_route_is_kept() -> None:
    default = verified_answerer(ScoringVlm())
    assert default.config == ScoredVerifyConfig() and default.config.verified_top is not None
    assert SESSION7_SCORED.verified_top is None
    ans = _bot(Confident()).answer(QUESTION, _gated("bae", "answer"))
    assert ans.decision.decision == "answer"
    assert ans.telemetry["verification"]["route"] == "certificate"
    bads = ({"verified_top": 1.5}, {"top_confidence": -0.1}, {"exclusive": 1}, {"bounded": None},
            {"answer_confidence": 2})  # fmt: skip
    for bad in bads:
        with pytest.raises(ConfigError):
            ScoredVerifyConfig(**bad)
