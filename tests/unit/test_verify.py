"""Tests of luma_rag.answer.verify and luma_rag.datasets.verifier: verified answering (agree /
disagree / none verified / CLARIFY passthrough / abstention), question parsing, and the attribute
verifier on a few generated LUMA-Shapes images with the shipped tiny LLaVA."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag.answer import (
    Answer,
    GateDecision,
    GateNumbers,
    VerifyConfig,
    VerifyingAnswerer,
)
from luma_rag.datasets.manifest import ShapeItem
from luma_rag.datasets.questions import QUESTION_KINDS, make_question
from luma_rag.datasets.verifier import (
    AttributeVerifier,
    answerer_kind_accuracy,
    kind_accuracy_from_training,
    parse_question,
    question_kind,
    shapes_normalise,
)
from luma_rag.errors import ConfigError, InvalidInputError, LumaError
from luma_rag.results import Hit

# -- fakes --------------------------------------------------------------------------------------

META = {
    "a": {"shape": "star", "color": "pink", "size": "small", "position": "left"},
    "b": {"shape": "star", "color": "pink", "size": "small", "position": "right"},
    "c": {"shape": "circle", "color": "blue", "size": "large", "position": "top"},
    "d": {"shape": "star", "color": "pink", "size": "small", "position": "bottom"},
}


def _hits(ids: str) -> tuple[Hit, ...]:
    return tuple(
        Hit(
            id=i,
            score=0.9 - 0.1 * n,
            tier="hot",
            rank=n,
            modality="image",
            metadata=META[i],
            source=f"/img/{i}.png",
        )
        for n, i in enumerate(ids)
    )


def _decision(kind: str, ids: str = "abcd") -> GateDecision:
    hits = _hits(ids)
    nan = math.nan
    numbers = GateNumbers(nan, nan, 0.1, 0.0, 0.0, 0.0, 0.0, 0.05, kind == "answer", 1, True, 9, 1)
    k_used = {"answer": 1, "widen": 2, "clarify": 0}[kind]
    evidence = {"answer": hits, "widen": hits[:2], "clarify": hits[:2]}[kind]
    clarify = "Did you mean a or b?" if kind == "clarify" else None
    return GateDecision(kind, k_used, evidence, "gate", numbers, clarify, hits=hits)  # type: ignore[arg-type]


class FakeAnswerer:
    """Answers with a fixed word per top evidence id; records every call."""

    def __init__(self, words: dict[str, str]) -> None:
        self.words = words
        self.calls: list[tuple[str, str, str | None]] = []

    def answer(self, question: str, decision: GateDecision) -> Answer:
        top = decision.evidence[0].id if decision.evidence else None
        self.calls.append((question, decision.decision, top))
        if decision.decision == "clarify":
            text = decision.clarification or ""
        else:
            text = self.words.get(str(top), "unsure")
        return Answer(text, decision, [], {"answerer": "fake"})


def _verifier(table: dict[str, bool | None]) -> Any:
    seen: list[str] = []

    def verify(question: str, hit: Hit) -> bool | None:
        seen.append(hit.id)
        return table.get(hit.id)

    verify.seen = seen  # type: ignore[attr-defined]
    # The LUMA-Shapes question grammar, as AttributeVerifier carries it.
    verify.kind_of = question_kind  # type: ignore[attr-defined]
    verify.normalise = shapes_normalise  # type: ignore[attr-defined]
    return verify


def test_a_verifier_without_a_question_grammar_compares_answers_as_text() -> None:
    def plain(question: str, hit: Hit) -> bool | None:
        return hit.id in ("b", "d")

    agree = VerifyingAnswerer(FakeAnswerer({"b": "Pink.", "d": "pink"}), plain)
    ans = agree.answer(Q, _decision("answer"))
    assert ans.text == "Pink." and ans.telemetry["verification"]["kind"] is None
    assert ans.telemetry["verification"]["answers"] == {"b": "pink", "d": "pink"}
    differ = VerifyingAnswerer(FakeAnswerer({"b": "pink", "d": "a pink star"}), plain)
    assert differ.answer(Q, _decision("answer")).decision.decision == "clarify"


Q = "What color is the small star?"

# -- the verifying answerer ---------------------------------------------------------------------


def test_an_unverified_top_hit_turns_answer_into_widen_over_the_verified_hits() -> None:
    bot = VerifyingAnswerer(
        FakeAnswerer({"b": "pink", "d": "Pink."}),
        _verifier({"a": False, "b": True, "c": False, "d": True}),
    )
    ans = bot.answer(Q, _decision("answer"))
    assert ans.text == "pink"
    assert ans.decision.decision == "widen"  # the certified top-1 "a" failed the check
    assert [h.id for h in ans.decision.evidence] == ["b", "d"]  # verified hits only
    assert ans.decision.k_used == 2
    assert ans.telemetry["verified"] == ["b", "d"]
    info = ans.telemetry["verification"]
    assert info["outcome"] == "widened" and info["rejected"] == ["a", "c"]
    assert info["answers"] == {"b": "pink", "d": "pink"}
    assert "not the top hit" in ans.decision.reason


def test_answer_stays_answer_only_when_its_top_hit_is_verified() -> None:
    bot = VerifyingAnswerer(
        FakeAnswerer({"a": "pink", "d": "Pink."}),
        _verifier({"a": True, "b": False, "c": False, "d": True}),
    )
    ans = bot.answer(Q, _decision("answer"))
    assert ans.decision.decision == "answer" and ans.decision.k_used == 1
    assert ans.decision.evidence[0].id == "a" and ans.text == "pink"
    assert ans.telemetry["verification"]["outcome"] == "answered"
    assert "the top hit is verified (2 of the top 4" in ans.decision.reason


def test_not_in_memory_is_never_verified_into_an_answer() -> None:
    inner = FakeAnswerer({"a": "pink"})
    verifier = _verifier({"a": True, "b": True})
    decision = dataclasses.replace(_decision("clarify"), decision="not_in_memory", evidence=())
    cfg = VerifyConfig(rescue_clarify=True)
    ans = VerifyingAnswerer(inner, verifier, cfg).answer(Q, decision)
    assert ans.decision is decision and verifier.seen == []


def test_rescue_clarify_widens_over_verified_hits_that_agree() -> None:
    verifier = _verifier({"a": False, "b": True, "c": False, "d": True})
    cfg = VerifyConfig(rescue_clarify=True)
    inner = FakeAnswerer({"b": "pink", "d": "pink"})
    ans = VerifyingAnswerer(inner, verifier, cfg).answer(Q, _decision("clarify"))
    assert ans.decision.decision == "widen"
    assert [h.id for h in ans.decision.evidence] == ["b", "d"]
    # they disagree: still a CLARIFY, naming the verified candidates
    inner2 = FakeAnswerer({"b": "pink", "d": "red"})
    ans2 = VerifyingAnswerer(inner2, verifier, cfg).answer(Q, _decision("clarify"))
    assert ans2.decision.decision == "clarify"
    assert [h.id for h in ans2.decision.evidence] == ["b", "d"]


def test_widen_keeps_its_decision_and_k_verify_limits_the_check() -> None:
    verifier = _verifier({"a": True, "b": True, "c": True})
    bot = VerifyingAnswerer(FakeAnswerer({"a": "pink", "b": "pink"}), verifier, VerifyConfig(2))
    ans = bot.answer(Q, _decision("widen"))
    assert ans.decision.decision == "widen" and ans.text == "pink"
    assert verifier.seen == ["a", "b"]


def test_verified_hits_that_disagree_clarify_over_them() -> None:
    bot = VerifyingAnswerer(
        FakeAnswerer({"a": "pink", "b": "pink", "d": "red"}),
        _verifier({"a": True, "b": True, "d": True}),
    )
    ans = bot.answer(Q, _decision("answer"))
    assert ans.decision.decision == "clarify"
    assert [h.id for h in ans.decision.evidence] == ["a", "d"]  # one per distinct answer
    assert ans.text == "Did you mean the star on the left or the star at the bottom?"
    assert ans.telemetry["verification"]["outcome"] == "ambiguous"
    assert ans.telemetry["verified"] == ["a", "b", "d"]
    # An unreadable answer counts as disagreement.
    bot2 = VerifyingAnswerer(FakeAnswerer({"a": "pink"}), _verifier({"a": True, "b": True}))
    assert bot2.answer(Q, _decision("answer")).decision.decision == "clarify"


def test_nothing_verified_clarifies() -> None:
    inner = FakeAnswerer({"a": "pink"})
    bot = VerifyingAnswerer(inner, _verifier({"a": False, "b": None, "c": False}))
    ans = bot.answer(Q, _decision("answer"))
    assert ans.decision.decision == "clarify"
    assert ans.telemetry["verified"] == []
    assert ans.telemetry["verification"]["outcome"] == "unverified"
    assert [h.id for h in ans.decision.evidence] == ["b", "d"]  # the undecided ones
    assert all(call[1] == "clarify" for call in inner.calls)  # never answered from a hit


def test_clarify_passes_through_unchanged() -> None:
    inner = FakeAnswerer({})
    verifier = _verifier({"a": True})
    decision = _decision("clarify")
    ans = VerifyingAnswerer(inner, verifier).answer(Q, decision)
    assert ans.decision is decision and ans.text == "Did you mean a or b?"
    assert "verified" not in ans.telemetry and verifier.seen == []


def test_abstention_on_unreliable_kinds_is_a_switch() -> None:
    acc = {"shape": 0.34, "color": 0.99}
    q = "What shape is the small pink shape on the left?"
    on = VerifyingAnswerer(
        FakeAnswerer({"a": "star"}),
        _verifier({"a": True}),
        VerifyConfig(abstain_unreliable=True),
        kind_accuracy=acc,
    )
    ans = on.answer(q, _decision("answer"))
    assert ans.decision.decision == "clarify"
    assert "unreliably" in ans.decision.reason and "0.34" in ans.decision.reason
    assert ans.telemetry["verification"]["outcome"] == "abstained"
    assert on.unreliable("shape") and not on.unreliable("color")
    colour = VerifyingAnswerer(
        FakeAnswerer({"a": "pink"}),
        _verifier({"a": True}),
        VerifyConfig(abstain_unreliable=True),
        kind_accuracy=acc,
    )
    assert colour.answer(Q, _decision("answer", "a")).text == "pink"  # reliable: answered
    off = VerifyingAnswerer(FakeAnswerer({"a": "star"}), _verifier({"a": True}), kind_accuracy=acc)
    assert off.answer(q, _decision("answer", "a")).text == "star"


def test_bad_input_raises_typed_errors() -> None:
    inner = FakeAnswerer({})
    with pytest.raises(InvalidInputError):
        VerifyingAnswerer(inner, "not callable")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        VerifyingAnswerer(object(), _verifier({}))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):  # abstention needs accuracies
        VerifyingAnswerer(inner, _verifier({}), VerifyConfig(abstain_unreliable=True))
    bot = VerifyingAnswerer(inner, _verifier({}))
    with pytest.raises(InvalidInputError):
        bot.answer("  ", _decision("answer"))
    with pytest.raises(InvalidInputError):
        bot.answer(Q, "answer")  # type: ignore[arg-type]
    for bad in ({"k_verify": 0}, {"min_kind_accuracy": 1.5}, {"max_options": 1}):
        with pytest.raises(ConfigError):
            VerifyConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        AttributeVerifier(inner, reliable_kinds=["smell"])
    with pytest.raises(InvalidInputError):
        AttributeVerifier(inner, reliable_kinds="color")
    with pytest.raises(LumaError):
        AttributeVerifier(inner, reliable_kinds=["color"])(Q, "a")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        parse_question("")
    with pytest.raises(InvalidInputError):
        kind_accuracy_from_training("/nonexistent/training.json")


def test_parse_question_reads_kind_and_referent() -> None:
    assert parse_question("What color is the small circle on the left?") == (
        "color",
        {"shape": "circle", "size": "small", "position": "left", "count": 1},
    )
    assert parse_question("How many large red squares at the top are there?") == (
        "count",
        {"shape": "square", "color": "red", "size": "large", "position": "top"},
    )
    kind, named = parse_question("What shape are the tiny pink shapes on the right?")
    assert kind == "shape" and named == {
        "color": "pink",
        "size": "small",
        "position": "right",
        "count": 2,
    }
    assert parse_question("tell me about a red star")[0] is None


# -- the attribute verifier on real images with the shipped tiny LLaVA ---------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[ShapeItem]:
    from luma_rag.datasets import generate, load_manifest

    return load_manifest(generate(tmp_path_factory.mktemp("shapes-verify"), n=3, seed=11))


def _image_hit(item: ShapeItem, rank: int = 0) -> Hit:
    return Hit(
        id=item.id,
        score=0.9 - 0.1 * rank,
        tier="hot",
        rank=rank,
        modality="image",
        source=str(Path(item.root) / item.image),
    )


def test_attribute_verifier_with_the_tiny_llava(corpus: list[ShapeItem]) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from luma_rag.answer import LlavaAnswerer

    llava = LlavaAnswerer("luma-tiny-llava", device="cpu", max_new_tokens=16)
    verifier = AttributeVerifier(llava)  # reliable kinds from the checkpoint's training.json
    acc = answerer_kind_accuracy(llava)
    assert acc is not None
    assert list(verifier.reliable_kinds) == [k for k in QUESTION_KINDS if acc[k] >= 0.9]
    assert "shape" in verifier.reliable_kinds  # since v4 (session 13) the tiny LLaVA reads shape
    rng = np.random.default_rng(0)
    full = ("size", "color", "shape", "position")
    for item in corpus:
        q = make_question(item.attributes, "color", rng, named=full)
        assert verifier(q, _image_hit(item)) is True
        assert verifier(q.text, _image_hit(item)) is True  # same from the text
    a, b = corpus[0], corpus[1]
    differs = {
        k
        for k in ("size", "position", "count")
        if getattr(a.attributes, k) != getattr(b.attributes, k)
    }
    assert differs, "the fixture corpus should hold two items that differ"
    q = make_question(a.attributes, "color", rng, named=full)
    assert verifier(q, _image_hit(b)) is False
    # A referent naming only an unreliable kind cannot be checked.
    no_shape = AttributeVerifier(llava, reliable_kinds=[k for k in QUESTION_KINDS if k != "shape"])
    shape_only = make_question(a.attributes, "color", rng, named=("shape",))
    shape_only = dataclasses.replace(shape_only, named={"shape": a.attributes.shape})
    assert no_shape(shape_only, _image_hit(a)) is None
    assert verifier(shape_only, _image_hit(a)) is True  # shape is checked where it is reliable
    # End to end: two verified items, both answered from their own image.
    bot = VerifyingAnswerer(llava, verifier, VerifyConfig(k_verify=2))
    hits = (_image_hit(a, 0), _image_hit(b, 1))
    nan = math.nan
    numbers = GateNumbers(nan, nan, 0.1, 0.0, 0.0, 0.0, 0.0, 0.05, True, 1, True, 3, 1)
    decision = GateDecision("answer", 1, hits, "gate", numbers, hits=hits)
    ans = bot.answer(q.text, decision)
    assert ans.telemetry["verified"] == [a.id]
    assert ans.decision.decision == "answer" and ans.text.lower().startswith(q.answer)


def test_verification_evaluation_runs(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from luma_rag.datasets import generate
    from luma_rag.eval.gate_tables import gate_tables
    from luma_rag.eval.gate_variants import VERIFY_VARIANTS, compare_verification

    root = generate(tmp_path / "corpus", n=60, seed=4242)
    report = compare_verification(root, n_questions=5, seed=1, referents=("full",))
    variants = report["referents"]["full"]
    assert list(variants) == [name for name, _, _ in VERIFY_VARIANTS]
    assert all(v["all"]["n"] == 5 for v in variants.values())
    assert "shape" in report["reliable_kinds"]  # the tiny LLaVA v4 reads shape
    table = gate_tables(report)
    assert "gate + verification + abstention" in table and "ambiguous query" in table
    with pytest.raises(InvalidInputError):
        compare_verification(root, n_questions=0)
