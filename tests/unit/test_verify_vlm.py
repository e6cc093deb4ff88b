"""Verification with any VLM: yes/no questions about the top hits (luma_rag.answer.verify_vlm)."""

from __future__ import annotations

import math

import pytest

from luma_rag.answer.base import Answer
from luma_rag.answer.gate import GateDecision, GateNumbers
from luma_rag.answer.verify import VerifyConfig
from luma_rag.answer.verify_vlm import VlmVerifier, parse_yes_no, referent_of, verified_answerer
from luma_rag.errors import InvalidInputError
from luma_rag.results import Hit

#: What each item "shows", and its colour (what the fake VLM answers when asked).
ITEMS = {
    "a": ("small red circle", "red"),
    "b": ("big blue square", "blue"),
    "c": ("small red circle", "pink"),  # looks the same, different answer: ambiguous
    "d": ("big blue square", "blue"),
}


class FakeVlm:
    """Answers yes/no about what the top evidence shows, else its colour; counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def answer(self, question: str, decision: GateDecision) -> Answer:
        self.calls += 1
        hit = decision.evidence[0]
        shows, colour = ITEMS[hit.id]
        if question.startswith(("Does", "Is this")):
            text = "Yes." if any(w in question for w in [shows]) else "No."
        else:
            text = colour
        return Answer(text, decision, [], {})


def _hit(i: str, rank: int) -> Hit:
    return Hit(i, 0.9 - 0.01 * rank, "hot", rank, "image", {}, ITEMS[i][0], f"/{i}.png")


def _decision(ids: str) -> GateDecision:
    hits = tuple(_hit(i, r) for r, i in enumerate(ids))
    nan = math.nan
    numbers = GateNumbers(nan, nan, 1.0, 0, 0, 0, 0, 0.1, True, 1, True, len(hits), 1)
    return GateDecision("answer", 1, hits, "gate", numbers, hits=hits)


def test_referent_and_yes_no_parsing() -> None:
    assert referent_of("What color is the small red circle?") == "the small red circle"
    assert referent_of("How many stars are there?") == "stars"
    assert referent_of("Is there a dog?") == "a dog"
    assert parse_yes_no("Yes, it does.") is True
    assert parse_yes_no("no") is False
    assert parse_yes_no("maybe red") is None
    assert parse_yes_no("") is None
    assert parse_yes_no("It is a red circle.") is True
    assert parse_yes_no("It is not a red circle.") is False
    assert parse_yes_no("It does not.") is False
    # a model that describes first and judges last (the tiny LLaVA's trained reply)
    assert parse_yes_no("small blue square left: no") is False
    assert parse_yes_no("large red: yes") is True
    assert parse_yes_no("red, not yes or no maybe") is None


def test_answers_when_verified_evidence_agrees() -> None:
    vlm = FakeVlm()
    bot = verified_answerer(vlm, VerifyConfig(k_verify=4))
    ans = bot.answer("What color is the big blue square?", _decision("bdac"))
    assert ans.decision.decision == "answer" and ans.text == "blue"
    assert set(ans.telemetry["verified"]) == {"b", "d"}


def test_clarifies_naming_the_verified_candidates_when_they_disagree() -> None:
    bot = verified_answerer(FakeVlm(), VerifyConfig(k_verify=4))
    ans = bot.answer("What color is the small red circle?", _decision("acbd"))
    assert ans.decision.decision == "clarify"
    assert {h.id for h in ans.decision.evidence} == {"a", "c"}


def test_clarifies_when_nothing_verifies() -> None:
    bot = verified_answerer(FakeVlm(), VerifyConfig(k_verify=2))
    ans = bot.answer("What color is the green triangle?", _decision("ab"))
    assert ans.decision.decision == "clarify"
    assert ans.telemetry["verification"]["outcome"] == "unverified"


def test_verifier_caches_and_checks_its_prompts() -> None:
    vlm = FakeVlm()
    check = VlmVerifier(vlm)
    hit = _hit("a", 0)
    assert check("What color is the small red circle?", hit) is True
    assert check("What color is the small red circle?", hit) is True
    assert vlm.calls == 1
    assert check.prompt("Is there a dog?", hit) == "Does this image show a dog? Answer yes or no."
    with pytest.raises(InvalidInputError):
        VlmVerifier(vlm, image_prompt="Is it there?")
    with pytest.raises(InvalidInputError):
        VlmVerifier(object())  # type: ignore[arg-type]


def test_verifier_cache_is_bounded_and_keyed_on_content() -> None:
    """The least recently used verdicts go first; an item re-added with new text under the
    same id is asked again."""
    import dataclasses

    vlm = FakeVlm()
    check = VlmVerifier(vlm, max_cached=2)
    q = "What color is the small red circle?"
    a, b, c = _hit("a", 0), _hit("b", 1), _hit("c", 2)
    check.many(q, [a, b])
    check(q, a)  # a is now the most recent
    assert vlm.calls == 2
    check(q, c)  # evicts b, keeps a
    assert vlm.calls == 3 and len(check._cache) == 2
    check(q, a)
    assert vlm.calls == 3
    check(q, b)
    assert vlm.calls == 4
    check(q, dataclasses.replace(b, text="new content"))
    assert vlm.calls == 5
    for bad in (0, -1, True, 2.5):
        with pytest.raises(InvalidInputError, match="max_cached"):
            VlmVerifier(vlm, max_cached=bad)  # type: ignore[arg-type]


def test_referent_of_strips_every_question_frame_of_the_shapes_templates() -> None:
    from luma_rag.datasets.questions import QUESTION_TEMPLATES

    for kind, templates in QUESTION_TEMPLATES.items():
        plural = kind == "count"
        ref = "tiny green stars at the top" if plural else "tiny green star at the top"
        for template in templates:
            be = "are" if plural else "is"
            q = template.format(ref=ref, be=be, Be=be.capitalize())
            assert referent_of(q).removeprefix("the ") == ref, q
    assert referent_of("What is the boiling point of water?") == "the boiling point of water"
    assert referent_of("Can you see a red car?") == "a red car"
    assert referent_of("a plain phrase.") == "a plain phrase"


class BatchVlm(FakeVlm):
    """FakeVlm with ``answer_many``: records each batch's size."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def answer_many(self, requests: list[tuple[str, GateDecision]]) -> list[Answer]:
        self.batches.append(len(requests))
        return [self.answer(q, d) for q, d in requests]


def test_yes_no_checks_are_batched_and_asked_once() -> None:
    vlm = BatchVlm()
    check = VlmVerifier(vlm)
    hits = [_hit(i, r) for r, i in enumerate("abcd")]
    q = "What color is the small red circle?"
    assert check.many(q, hits) == [True, False, True, False]
    assert vlm.batches == [4] and vlm.calls == 4
    assert check.ask([(q, hits[0]), ("Is there a big blue square?", hits[1])]) == [True, True]
    assert vlm.calls == 5  # only the new prompt was asked
    bot = verified_answerer(BatchVlm(), VerifyConfig(k_verify=4))
    ans = bot.answer("What color is the big blue square?", _decision("bdac"))
    assert ans.text == "blue" and bot.answerer.batches == [4, 2]  # type: ignore[attr-defined]


def test_answer_all_checks_what_answer_many_returns() -> None:
    from luma_rag.answer.base import answer_all

    class Short(FakeVlm):
        def answer_many(self, requests: list[tuple[str, GateDecision]]) -> list[Answer]:
            return []

    d = _decision("ab")
    with pytest.raises(InvalidInputError, match="one per request"):
        answer_all(Short(), [("q", d), ("q", d)])
    assert [a.text for a in answer_all(FakeVlm(), [("What color?", d)])] == ["red"]
