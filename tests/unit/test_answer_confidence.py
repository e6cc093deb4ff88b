"""Tests of luma_rag.answer.confidence: the confidence floor on ANSWER / WIDEN and the
Learn-then-Test choice of that floor."""

from __future__ import annotations

import math

import numpy as np
import pytest

from luma_rag.answer.base import Answer
from luma_rag.answer.confidence import (
    CONFIDENCE_KEY,
    ConfidenceAnswerer,
    ConfidenceConfig,
    choose_floor,
)
from luma_rag.answer.gate import GateDecision
from luma_rag.errors import ConfigError, InvalidInputError
from luma_rag.results import Hit


def _decision(kind: str) -> GateDecision:
    from luma_rag.answer import GateNumbers

    hits = tuple(
        Hit(id=i, score=0.9 - 0.1 * n, tier="hot", rank=n, modality="image", metadata={})
        for n, i in enumerate("abc")
    )
    nan = math.nan
    numbers = GateNumbers(nan, nan, 0.1, 0.0, 0.0, 0.0, 0.0, 0.05, kind == "answer", 1, True, 9, 1)
    k_used = {"answer": 1, "widen": 2, "clarify": 0, "not_in_memory": 0}[kind]
    return GateDecision(kind, k_used, hits[:2], "gate", numbers, None, hits=hits)  # type: ignore[arg-type]


class Fixed:
    """Answers "red" with a fixed confidence (or none)."""

    name = "fixed"

    def __init__(self, confidence: float | None) -> None:
        self.confidence = confidence

    def answer(self, question: str, decision: GateDecision) -> Answer:
        tel = {} if self.confidence is None else {CONFIDENCE_KEY: self.confidence}
        return Answer("red", decision, [], tel)


@pytest.mark.parametrize("kind", ["answer", "widen"])
def test_low_confidence_answer_becomes_clarify_naming_candidates(kind: str) -> None:
    out = ConfidenceAnswerer(Fixed(0.4), ConfidenceConfig(floor=0.9)).answer("q?", _decision(kind))
    assert out.decision.decision == "clarify"
    assert out.decision.clarification and out.decision.clarification.endswith("?")
    assert "'red'" in out.text and "0.40" in out.decision.reason
    assert out.telemetry["confidence"] == "below floor"
    assert out.telemetry["unconfirmed_answer"] == "red"


def test_confident_answer_and_other_decisions_pass_through() -> None:
    bot = ConfidenceAnswerer(Fixed(0.95), ConfidenceConfig(floor=0.9))
    out = bot.answer("q?", _decision("answer"))
    assert (out.decision.decision, out.text, out.telemetry["confidence"]) == (
        "answer",
        "red",
        "passed",
    )
    low = ConfidenceAnswerer(Fixed(0.1), ConfidenceConfig(floor=0.9))
    for kind in ("clarify", "not_in_memory"):
        assert low.answer("q?", _decision(kind)).decision.decision == kind


def test_unreported_confidence_is_marked_not_hidden() -> None:
    out = ConfidenceAnswerer(Fixed(None)).answer("q?", _decision("answer"))
    assert out.decision.decision == "answer"
    assert out.telemetry["confidence"] == "not reported"


def test_answer_many_matches_answer() -> None:
    bot = ConfidenceAnswerer(Fixed(0.5), ConfidenceConfig(floor=0.6))
    reqs = [("q1?", _decision("answer")), ("q2?", _decision("clarify"))]
    many = bot.answer_many(reqs)
    assert [a.decision.decision for a in many] == [
        bot.answer(q, d).decision.decision for q, d in reqs
    ]


@pytest.mark.parametrize("floor", [-0.1, 1.5, "x"])
def test_bad_floor_is_a_config_error(floor: object) -> None:
    with pytest.raises(ConfigError, match="floor"):
        ConfidenceConfig(floor=floor)  # type: ignore[arg-type]


def test_choose_floor_controls_risk_and_reports_infeasible() -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 4000)
    right = rng.uniform(size=4000) < conf  # higher confidence, more often right
    out = choose_floor(conf.tolist(), right.tolist(), alpha=0.1, delta=0.1)
    assert out["feasible"] and out["floor"] is not None
    kept = conf >= out["floor"]
    assert out["n_kept"] == int(kept.sum())
    assert 1.0 - right[kept].mean() <= 0.1 + 1e-9
    # nothing separates right from wrong and half are wrong: no floor can promise 10 %
    coin = rng.uniform(size=500) < 0.5
    bad = choose_floor(rng.uniform(0.5, 1.0, 500).tolist(), coin.tolist(), alpha=0.1, delta=0.1)
    assert not bad["feasible"] and bad["floor"] is None


def test_choose_floor_rejects_bad_input() -> None:
    with pytest.raises(InvalidInputError):
        choose_floor([0.9], [True, False])
    with pytest.raises(InvalidInputError):
        choose_floor([0.9], [True], alpha=0.0)


def test_generation_confidences_multiply_token_probabilities_up_to_the_end_token() -> None:
    import types

    import torch

    from luma_rag.answer.confidence import generation_confidences

    eos = 2
    tok = types.SimpleNamespace(eos_token_id=eos)
    # prompt width 1; row 0 generates [5, eos], row 1 [eos, pad]
    seqs = torch.tensor([[9, 5, eos], [9, eos, 0]])
    step0 = torch.log(
        torch.tensor([[0.1, 0.1, 0.2, 0.0, 0.0, 0.6], [0.1, 0.1, 0.7, 0.0, 0.0, 0.1]])
    )
    step1 = torch.log(
        torch.tensor([[0.1, 0.1, 0.5, 0.0, 0.0, 0.3], [0.9, 0.1, 0.0, 0.0, 0.0, 0.0]])
    )
    gen = types.SimpleNamespace(sequences=seqs, scores=(step0, step1))
    out, conf = generation_confidences(gen, 1, tok)
    assert out is seqs
    assert conf[0] == pytest.approx(0.6 * 0.5, rel=1e-5)
    assert conf[1] == pytest.approx(0.7, rel=1e-5)  # stops at the end token, pad not counted
    bare, none = generation_confidences(seqs, 1, tok)  # no scores: not reported
    assert bare is seqs and none == [None, None]
