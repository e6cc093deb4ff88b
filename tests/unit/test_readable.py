"""Answers a person can read (luma_rag.answer.readable)."""

from __future__ import annotations

from luma_rag.answer.base import Answer
from luma_rag.answer.gate import GateConfig, GateDecision, decide
from luma_rag.answer.readable import ReadableAnswerer, clean_text
from luma_rag.relevance import RelevanceVerdict
from tests.unit.test_gate import make_result


class Echo:
    """Returns a fixed text; counts calls."""

    def __init__(self, text: str) -> None:
        self.text, self.calls = text, 0

    def answer(self, question: str, decision: GateDecision) -> Answer:
        self.calls += 1
        return Answer(self.text, decision, [], {"answerer": "echo"})


def _answer_decision() -> GateDecision:
    return decide(make_result([0.9, 0.5, 0.4], 0.01, k=3, texts=["a red star", "b", "c"]))


def test_empty_answer_falls_back_to_cited_evidence() -> None:
    ans = ReadableAnswerer(Echo("  . ")).answer("What is it?", _answer_decision())
    assert ans.text.startswith("I could not phrase an answer") and "[1] a red star" in ans.text
    assert ans.telemetry["readable"] == "fallback_to_evidence"


def test_inline_citations_are_added() -> None:
    ans = ReadableAnswerer(Echo("It is a red star.")).answer("What is it?", _answer_decision())
    assert ans.text == "It is a red star. [1]"
    widen = decide(make_result([0.9, 0.89, 0.5, 0.4], 0.01, k=4), GateConfig(k=4, k_max=4))
    assert widen.decision == "widen"
    ans = ReadableAnswerer(Echo("Red shapes.")).answer("What?", widen)
    assert ans.text.endswith(f"[1]–[{widen.k_used}]")
    kept = ReadableAnswerer(Echo("Red [1].")).answer("What?", _answer_decision())
    assert kept.text == "Red [1]." and kept.telemetry["readable"] == "unchanged"


def test_clarify_shows_the_gates_own_question() -> None:
    d = decide(
        make_result([0.9, 0.899, 0.898], 0.05, k=3, texts=["a red star", "a blue star", "x"])
    )
    assert d.decision == "clarify" and d.clarification
    ans = ReadableAnswerer(Echo("Which one do you mean?")).answer("What colour?", d)
    assert ans.text == d.clarification


def test_not_in_memory_does_not_call_the_model() -> None:
    verdict = RelevanceVerdict(False, "nothing in memory answers this: no known words")
    d = decide(make_result([0.9, 0.5], 0.01, k=2), relevance=verdict)
    echo = Echo("Paris is the capital of France.")
    ans = ReadableAnswerer(echo).answer("boiling point of water?", d)
    assert echo.calls == 0 and ans.citations == []
    assert ans.text.startswith("Nothing in memory answers this (no known words).")
    assert "add material" in ans.text


def test_node_fields_never_reach_the_text() -> None:
    leaked = "A red star. doc_id None and document_id None and ref_doc_id None"
    assert clean_text(leaked) == "A red star."
    ans = ReadableAnswerer(Echo(leaked)).answer("What?", _answer_decision())
    assert "doc_id" not in ans.text and ans.text.endswith("[1]")
