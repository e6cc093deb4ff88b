"""Score-gap verification (luma_rag.answer.scored) and the verdict probability
(luma_rag.answer.verdict): with fakes, and the tiny LLaVA's P(yes) on held-out claims."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from luma_rag.answer.base import Answer
from luma_rag.answer.gate import GateDecision, GateNumbers
from luma_rag.answer.scored import ScoredVerifyConfig, ScoredVerifyingAnswerer
from luma_rag.answer.verdict import VERDICT_KEY, verdict_probabilities, verdict_score
from luma_rag.answer.verify import VerifyConfig, VerifyingAnswerer
from luma_rag.answer.verify_vlm import VlmVerifier, answer_gated, verified_answerer
from luma_rag.errors import ConfigError, InvalidInputError, LumaError
from luma_rag.results import Hit

#: What each item shows, its colour, and how sure the fake VLM is that it shows it.
ITEMS = {
    "a": ("small red circle", "red"),
    "b": ("big blue square", "blue"),
    "c": ("small red circle", "pink"),  # fits the same referent, answers differently
    "d": ("big blue square", "blue"),
    "e": ("tiny green star", "green"),
}


class ScoringVlm:
    """Answers a yes/no question with a verdict and P(yes) (``sure`` when it shows the
    referent, ``1 - sure`` when not, overridable per item), else the item's colour."""

    def __init__(self, sure: float = 0.9, override: dict[str, float] | None = None) -> None:
        self.sure, self.override, self.calls = sure, override or {}, 0

    def answer(self, question: str, decision: GateDecision) -> Answer:
        self.calls += 1
        hit = decision.evidence[0]
        shows, colour = ITEMS[hit.id]
        if question.startswith("Does"):
            p = self.sure if shows in question else 1.0 - self.sure
            p = self.override.get(hit.id, p)
            text = f"{shows} : {'yes' if p >= 0.5 else 'no'}"
            return Answer(text, decision, [], {VERDICT_KEY: p})
        return Answer(colour, decision, [], {})


def _hit(i: str, rank: int) -> Hit:
    return Hit(i, 0.9 - 0.01 * rank, "hot", rank, "image", {}, ITEMS[i][0], f"/{i}.png")


def _decision(ids: str, kind: str = "answer") -> GateDecision:
    hits = tuple(_hit(i, r) for r, i in enumerate(ids))
    nan = math.nan
    numbers = GateNumbers(nan, nan, 1.0, 0, 0, 0, 0, 0.1, kind == "answer", 1, True, len(hits), 1)
    k_used = {"answer": 1, "widen": 2, "clarify": 0, "not_in_memory": 0}[kind]
    return GateDecision(kind, k_used, hits, "gate", numbers, hits=hits)  # type: ignore[arg-type]


def _bot(vlm: Any, **cfg: Any) -> ScoredVerifyingAnswerer:
    """The score-gap path without guards (session 6's), ``cfg`` changed."""
    from luma_rag.answer.scored import SESSION6_SCORED

    config = dataclasses.replace(SESSION6_SCORED, **cfg)
    return ScoredVerifyingAnswerer(vlm, VlmVerifier(vlm), config)


def test_default_verified_path_is_the_guarded_scored_one_and_yes_no_is_opt_in() -> None:
    from luma_rag.answer.scored import SESSION6_SCORED

    vlm = ScoringVlm()
    default = verified_answerer(vlm)
    assert isinstance(default, ScoredVerifyingAnswerer)
    assert default.config == ScoredVerifyConfig() and default.config.min_coverage is not None
    assert isinstance(verified_answerer(vlm, VerifyConfig(k_verify=4)), VerifyingAnswerer)
    bot = verified_answerer(vlm, ScoredVerifyConfig(k_verify=2))
    assert isinstance(bot, ScoredVerifyingAnswerer) and bot.config.k_verify == 2
    assert verified_answerer(vlm, SESSION6_SCORED).config.min_coverage is None
    with pytest.raises(InvalidInputError, match="config"):
        verified_answerer(vlm, {"k_verify": 2})  # type: ignore[arg-type]


def test_certified_and_verified_top_hit_is_answered() -> None:
    ans = _bot(ScoringVlm(), k_verify=3).answer("What color is the big blue square?",
                                                _decision("bae"))  # fmt: skip
    assert ans.decision.decision == "answer" and ans.text == "blue"
    info = ans.telemetry["verification"]
    assert info["outcome"] == "answered" and ans.telemetry["verified"] == ["b"]
    assert info["scores"]["b"] == pytest.approx(0.9) and info["scores"]["a"] < 0.5


def test_a_gate_clarify_is_rescued_into_a_widen_over_agreeing_verified_hits() -> None:
    question = "What color is the big blue square?"
    ans = _bot(ScoringVlm(), k_verify=3).answer(question, _decision("bda", "clarify"))
    assert ans.decision.decision == "widen" and ans.text == "blue"
    assert [h.id for h in ans.decision.evidence] == ["b", "d"] and ans.decision.k_used == 2
    off = _bot(ScoringVlm(), k_verify=3, verify_clarify=False)
    assert off.answer(question, _decision("bda", "clarify")).decision.decision == "clarify"


def test_a_verified_hit_that_is_not_certified_top_is_widened_not_answered() -> None:
    ans = _bot(ScoringVlm(), k_verify=3).answer("What color is the big blue square?",
                                                _decision("eba"))  # fmt: skip
    assert ans.decision.decision == "widen" and [h.id for h in ans.decision.evidence] == ["b"]


def test_contenders_that_answer_differently_make_a_clarify_naming_them() -> None:
    ans = _bot(ScoringVlm(), k_verify=3).answer("What color is the small red circle?",
                                                _decision("acb"))  # fmt: skip
    assert ans.decision.decision == "clarify"
    assert {h.id for h in ans.decision.evidence} == {"a", "c"}
    assert ans.telemetry["verification"]["outcome"] == "ambiguous"


def test_the_score_gap_decides_what_a_yes_string_cannot() -> None:
    """'c' says yes, but only at 0.55: with accept 0.7 it is not verified, with doubt 0.5 it
    still counts against answering; with doubt 0.6 the certified top hit is answered."""
    vlm = ScoringVlm(override={"c": 0.55})
    question = "What color is the small red circle?"
    strict = _bot(vlm, k_verify=3, accept=0.7, doubt=0.5).answer(question, _decision("acb"))
    assert strict.decision.decision == "clarify"
    assert strict.telemetry["verified"] == ["a"]
    gap = _bot(vlm, k_verify=3, accept=0.7, doubt=0.6).answer(question, _decision("acb"))
    assert gap.decision.decision == "answer" and gap.text == "red"


def test_nothing_verified_clarifies_and_not_in_memory_passes_through() -> None:
    vlm = ScoringVlm()
    ans = _bot(vlm).answer("What color is the purple hexagon?", _decision("abe"))
    assert ans.decision.decision == "clarify" and ans.telemetry["verified"] == []
    assert ans.telemetry["verification"]["outcome"] == "unverified"
    before = vlm.calls
    nim = _bot(vlm).answer("who won the 1998 world cup?", _decision("abe", "not_in_memory"))
    assert nim.decision.decision == "not_in_memory" and vlm.calls == before + 1


def test_only_the_top_k_verify_hits_are_checked() -> None:
    vlm = ScoringVlm()
    ans = _bot(vlm, k_verify=2).answer("What color is the big blue square?", _decision("eabd"))
    assert ans.telemetry["verification"]["checked"] == ["e", "a"]
    assert ans.decision.decision == "clarify"


def test_a_plain_boolean_verifier_works_as_scores_of_one_and_zero() -> None:
    vlm = ScoringVlm()

    def verifier(question: str, hit: Hit) -> bool | None:
        return ITEMS[hit.id][0] in question

    bot = ScoredVerifyingAnswerer(vlm, verifier, ScoredVerifyConfig(k_verify=3))
    ans = bot.answer("What color is the big blue square?", _decision("bae"))
    assert ans.decision.decision == "answer"
    assert ans.telemetry["verification"]["scores"] == {"b": 1.0, "a": 0.0, "e": 0.0}


def test_verdict_score_falls_back_to_the_parsed_verdict() -> None:
    assert verdict_score({VERDICT_KEY: 0.8}, False) == pytest.approx(0.8)
    assert verdict_score({}, True) == 1.0 and verdict_score({}, False) == 0.0
    assert verdict_score({VERDICT_KEY: None}, None) == 0.5
    assert verdict_score({VERDICT_KEY: float("nan")}, True) == 1.0


def test_bad_settings_raise_typed_errors() -> None:
    with pytest.raises(ConfigError, match="doubt"):
        ScoredVerifyConfig(accept=0.5, doubt=0.7)
    with pytest.raises(ConfigError, match="k_verify"):
        ScoredVerifyConfig(k_verify=0)
    with pytest.raises(InvalidInputError, match="verifier"):
        ScoredVerifyingAnswerer(ScoringVlm(), 3)
    bad = ScoredVerifyingAnswerer(ScoringVlm(), SimpleNamespace(scores=lambda pairs: [2.0]))
    with pytest.raises(LumaError, match=r"\[0, 1\]"):
        bad.answer("What color is the big blue square?", _decision("b"))


def test_verdict_probabilities_read_the_last_yes_or_no_token() -> None:
    torch = pytest.importorskip("torch")
    tok = SimpleNamespace(eos_token_id=0, unk_token_id=9)
    tok.encode = lambda w, add_special_tokens=False: {"yes": [5], "no": [6]}.get(
        w.strip().lower(), [9]
    )
    # two rows of 3 new tokens after a 1-token prompt: "x yes <eos>", "no x x"
    seqs = torch.tensor([[1, 3, 5, 0], [1, 6, 3, 3]])
    scores = [torch.zeros(2, 8) for _ in range(3)]
    scores[1][0, 5], scores[1][0, 6] = math.log(3.0), 0.0  # row 0 at its verdict: 3:1 for yes
    scores[0][1, 5], scores[0][1, 6] = 0.0, math.log(4.0)  # row 1 at its verdict: 1:4 for yes
    out = verdict_probabilities(SimpleNamespace(sequences=seqs, scores=scores), 1, tok)
    assert out == [pytest.approx(0.75), pytest.approx(0.2)]
    bare = SimpleNamespace(sequences=torch.tensor([[1, 3, 0]]), scores=[torch.zeros(1, 8)] * 2)
    none = verdict_probabilities(bare, 1, tok)
    assert none == [None]
    assert np.isfinite(out[0])


def test_tiny_llava_reports_a_verdict_probability_that_ranks_true_claims_higher(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The shipped tiny LLaVA's P(yes) at its verdict: reported for every reply, on the side
    of 0.5 its parsed verdict is on, and higher for true claims than for false ones on
    held-out items (AUC floor well above the 0.5 of a score that carries nothing)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from luma_rag.answer.llava import OFFLINE_LLAVA_MODEL, LlavaAnswerer
    from luma_rag.answer.verify_vlm import parse_yes_no
    from luma_rag.datasets import generate, load_manifest
    from luma_rag.datasets.questions import make_verification

    items = load_manifest(generate(tmp_path_factory.mktemp("verdict"), n=120, seed=5353))
    held_out = [it for it in items if it.split != "train"][:32]
    tiny = LlavaAnswerer(OFFLINE_LLAVA_MODEL, device="cpu", max_new_tokens=16)
    rng = np.random.default_rng(13)
    claims = [make_verification(it.attributes, rng, truthful=n % 2 == 0)
              for n, it in enumerate(held_out)]  # fmt: skip
    hits = [Hit(it.id, 1.0, "hot", 0, "image", source=str(it.image_path)) for it in held_out]
    replies = tiny.answer_many([(c.text, _single(h)) for c, h in zip(claims, hits, strict=True)])
    probs = [r.telemetry[VERDICT_KEY] for r in replies]
    assert all(p is not None and 0.0 <= p <= 1.0 for p in probs)
    for reply, p in zip(replies, probs, strict=True):
        assert (p >= 0.5) == parse_yes_no(reply.text), (reply.text, p)
    true = np.asarray([c.answer == "yes" for c in claims])
    p = np.asarray(probs)
    auc = float(np.mean([(a > b) + 0.5 * (a == b) for a in p[true] for b in p[~true]]))
    assert auc >= 0.7, auc


def _single(hit: Hit) -> GateDecision:
    from luma_rag.answer.verify_vlm import single_hit_decision

    return single_hit_decision(hit)


def test_answer_gated_takes_the_default_verified_path() -> None:
    """``answer_gated`` gates the query, then verifies with the answerer itself: the guarded
    score-gap path by default, other settings, the yes/no path or none on request."""
    from luma_rag.answer.gate import GatedRetriever

    asked: list[str] = []

    def query(text: str, *, filters: Any = None) -> GateDecision:
        asked.append(text)
        return _decision("bda", "clarify")

    gate = GatedRetriever(SimpleNamespace(), relevance=None)  # type: ignore[arg-type]
    gate.query = query  # type: ignore[method-assign]
    question = "What color is the big blue square?"
    plain = answer_gated(gate, question, ScoringVlm(), query="a big blue square")
    assert asked == ["a big blue square"]
    # the default verifies a CLARIFY only when the relevance test knew every query word;
    # this gate ran none
    assert plain.decision.decision == "clarify"
    loose = ScoredVerifyConfig(min_coverage=None)
    scored = answer_gated(gate, question, ScoringVlm(), verify=loose)
    assert scored.decision.decision == "widen" and scored.text == "blue"
    assert answer_gated(gate, question, ScoringVlm(), verify=False).decision.decision == "clarify"
    legacy = answer_gated(gate, question, ScoringVlm(), verify=VerifyConfig(k_verify=3))
    assert legacy.decision.decision == "clarify" and asked[-1] == question


def test_choose_scored_config_picks_the_loosest_accept_that_keeps_the_risk() -> None:
    from luma_rag.answer.scored_ltt import choose_scored_config

    rng = np.random.default_rng(5)
    n = 600
    score = rng.random(n)
    right = rng.random(n) < np.where(score >= 0.7, 0.99, 0.5)  # risky below 0.7

    def answered(cfg: ScoredVerifyConfig) -> list[bool]:
        assert cfg.doubt <= cfg.accept and cfg.k_verify == 2
        return [bool(r) for r in right[score >= cfg.accept]]

    out = choose_scored_config(answered, n, base=ScoredVerifyConfig(k_verify=2),
                               alpha=0.1, delta=0.1)  # fmt: skip
    assert out["feasible"] and 0.6 <= out["accept"] <= 0.75 and out["risk"] <= 0.1
    assert out["config"]["accept"] == out["accept"] and out["config"]["k_verify"] == 2
    never = choose_scored_config(lambda cfg: [False] * 300, n)
    assert not never["feasible"] and never["config"] is None
    with pytest.raises(InvalidInputError, match="highest first"):
        choose_scored_config(answered, n, grid=(0.5, 0.9))
    with pytest.raises(InvalidInputError, match="alpha"):
        choose_scored_config(answered, n, alpha=0.0)
