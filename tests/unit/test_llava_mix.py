"""The tiny LLaVA's gate-phrased yes/no questions: asked exactly as the verified answer path
asks, claims true or false by exactly one attribute, replies the describe-then-judge form, and
every word known to the model's tokenizer."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from luma_rag.answer.verify_vlm import VlmVerifier, parse_yes_no
from luma_rag.datasets.attributes import ShapeAttributes
from luma_rag.datasets.questions import question_words, verification_words
from luma_rag.datasets.vocab import COLORS, POSITIONS, SHAPES, SIZES
from luma_rag.training.llava_mix import GATE_PROMPT, gate_verification, verification_reply

_KEYS = ("size", "color", "shape", "position")


def _items(n: int, seed: int) -> list[ShapeAttributes]:
    rng = np.random.default_rng(seed)
    return [
        ShapeAttributes(
            str(rng.choice(SHAPES)),
            str(rng.choice(COLORS)),
            str(rng.choice(SIZES)),
            str(rng.choice(POSITIONS)),
            int(rng.integers(1, 3)),
            "plain",
        )
        for _ in range(n)
    ]


def test_the_prompt_is_the_verifiers_own() -> None:
    default = inspect.signature(VlmVerifier).parameters["image_prompt"].default
    assert default == GATE_PROMPT


@pytest.mark.parametrize("truthful", [True, False])
def test_claims_differ_from_the_image_in_exactly_the_swapped_attribute(truthful: bool) -> None:
    rng = np.random.default_rng(5)
    differing: dict[str, int] = {}
    for attrs in _items(300, 1):
        v = gate_verification(attrs, rng, truthful=truthful)
        head, tail = GATE_PROMPT.split("{referent}")
        assert v.text.startswith(head) and v.text.endswith(tail), v.text
        wrong = [k for k, value in v.claimed.items() if value != getattr(attrs, k)]
        assert len(wrong) == (0 if truthful else 1), (v, attrs)
        for k in wrong:
            differing[k] = differing.get(k, 0) + 1
        claim, seen, verdict = v.reply.split(" : ") if v.seen else ("", "", v.reply)
        assert claim.split() == [str(v.claimed[k]) for k in _KEYS if k in v.claimed]
        assert seen.split() == [str(getattr(attrs, k)) for k in _KEYS if k in v.claimed]
        assert parse_yes_no(v.reply) is truthful and verdict == v.answer
    if not truthful:  # every attribute kind gets false claims
        assert set(differing) == set(_KEYS), differing


def test_every_word_is_in_the_tokenizer_vocabulary() -> None:
    known = set(question_words()) | set(verification_words())
    rng = np.random.default_rng(7)
    for n, attrs in enumerate(_items(200, 2)):
        v = gate_verification(attrs, rng, truthful=n % 2 == 0)
        words = v.text.lower().replace("?", " ").replace(".", " ").split()
        assert set(words) <= known, set(words) - known


def test_the_same_seed_writes_the_same_questions() -> None:
    attrs = _items(20, 3)
    a = [
        gate_verification(x, np.random.default_rng([9, i]), truthful=i % 2 == 0)
        for i, x in enumerate(attrs)
    ]
    b = [
        gate_verification(x, np.random.default_rng([9, i]), truthful=i % 2 == 0)
        for i, x in enumerate(attrs)
    ]
    assert a == b
    assert len({v.text for v in a}) > 10


def test_paired_replies_judge_each_attribute_and_parse_like_the_verifier() -> None:
    from luma_rag.datasets.questions import make_verification
    from luma_rag.errors import InvalidInputError

    rng = np.random.default_rng(13)
    known = set(question_words()) | set(verification_words())
    for n, attrs in enumerate(_items(200, 4)):
        make = make_verification if n % 3 else gate_verification
        v = make(attrs, rng, truthful=n % 2 == 0)
        assert verification_reply(v, "claim-seen") == v.reply
        reply = verification_reply(v, "pairs")
        assert parse_yes_no(reply) is (v.answer == "yes")
        assert set(reply.replace(":", " ").split()) <= known
        assert len(reply.split()) <= 14  # within the 16 new tokens the answerers allow
        if not v.seen:
            continue
        words = reply.split(" : ")[0].split()
        triples = [words[i : i + 3] for i in range(0, len(words), 3)]
        assert [t[0] for t in triples] == [str(v.claimed[k]) for k in _KEYS if k in v.claimed]
        assert [t[1] for t in triples] == v.seen.split()
        assert [t[2] for t in triples] == ["yes" if t[0] == t[1] else "no" for t in triples]
        assert ("no" in [t[2] for t in triples]) is (v.answer == "no")
    with pytest.raises(InvalidInputError):
        verification_reply(v, "verdict-first")


def test_evaluation_reads_the_reply_style_a_checkpoint_was_trained_with(tmp_path: Path) -> None:
    from luma_rag.training.llava_eval import _reply_style, eval_questions

    assert _reply_style(tmp_path) == "claim-seen"  # no training.json: v2.1's form
    (tmp_path / "training.json").write_text(json.dumps({"config": {"verify_reply": "pairs"}}))
    assert _reply_style(tmp_path) == "pairs"
    attrs = _items(1, 5)[0]
    item = SimpleNamespace(attributes=attrs)
    (*_, paired) = eval_questions([item], 3, "pairs")[-1]  # type: ignore[list-item]
    (*_, plain) = eval_questions([item], 3)[-1]  # type: ignore[list-item]
    assert " : " in paired and paired.split()[-1] == plain.split()[-1]
    assert paired != plain or len(plain.split()) == 1
