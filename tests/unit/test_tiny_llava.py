"""The shipped tiny LLaVA: its vision tower is the tiny CLIP's, it loads through LlavaAnswerer
offline and answers held-out LUMA-Shapes questions, and its training command runs."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag.answer import GateDecision, GateNumbers, LlavaAnswerer
from luma_rag.answer.prompts import INSTRUCTIONS
from luma_rag.answer.tiny_llava import (
    CLARIFY_MARKER,
    CLARIFY_REPLY,
    TINY_LLAVA_DIR,
    TINY_LLAVA_MODEL,
    TinyLlavaSpec,
    build_tokenizer,
)
from luma_rag.datasets.manifest import ShapeItem
from luma_rag.datasets.questions import (
    QUESTION_KINDS,
    VERIFY_TEMPLATES,
    make_question,
    make_verification,
    parse_answer,
    question_words,
)
from luma_rag.errors import ConfigError, InvalidInputError, LumaError
from luma_rag.results import Hit

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

#: Measured held-out accuracy of the shipped checkpoint (v4): 0.997 over the five kinds (1 550
#: questions, corpus seed 7331; v3b 0.966); all 19 of this module's questions (v3b: 17), so the
#: floor leaves two answers of slack for float differences between machines.
ACCURACY_FLOOR = 0.89
#: Shape answers on unseen combinations: 0.997 / 0.986 measured for v4 (seeds 7331 / 5519,
#: n 310 / 286; v3b 0.852, v2.1 0.848, v1 0.407); 32 of this module's 33 held-out items (v3b:
#: 20); the floor is issue #12's target, which v3b fails; chance is 0.125.
SHAPE_FLOOR = 0.90
#: yes/no verdicts on held-out items: 0.994 / 0.993 measured for v4 (seeds 7331 / 5519, half
#: true; v3b 0.965, v2.1 0.842, v2 0.500, always "no"); all 33 of the claims here (v3b 31, v2.1
#: 27): two claims of slack; P(>= 0.93 | 0.5) < 0.01 % at n = 33.
VERIFY_FLOOR = 0.93


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[ShapeItem]:
    from luma_rag.datasets import generate, load_manifest

    root = tmp_path_factory.mktemp("shapes-llava")
    return load_manifest(generate(root, n=160, seed=4242))


@pytest.fixture(scope="module")
def tiny() -> LlavaAnswerer:
    answerer = LlavaAnswerer(TINY_LLAVA_MODEL, device="cpu", max_new_tokens=16)
    answerer.load()
    return answerer


def _decision(kind: str, sources: list[str]) -> GateDecision:
    hits = tuple(
        Hit(id=f"i{n}", score=0.9 - 0.1 * n, tier="hot", rank=n, modality="image", source=s)
        for n, s in enumerate(sources)
    )
    nan = math.nan
    numbers = GateNumbers(nan, nan, 0.1, 0.0, 0.0, 0.0, 0.0, 0.05, kind == "answer", 1, True, 3, 1)
    k_used = {"answer": 1, "widen": len(hits), "clarify": 0}[kind]
    clarify = "Do you mean the red one or the blue one?" if kind == "clarify" else None
    return GateDecision(kind, k_used, hits, "test", numbers, clarify, hits=hits)  # type: ignore[arg-type]


# -- the vision tower ---------------------------------------------------------------------------


def test_converted_vision_tower_matches_open_clip(corpus: list[ShapeItem]) -> None:
    """The open_clip -> transformers converter the tiny LLaVA is built with reproduces the
    shipped tiny CLIP's pre-projection image features, and the shipped LLaVA's tower has that
    architecture. (Its weights are tiny CLIP v2's, which v3 replaced as the retriever: the
    LLaVA README says why; `training.json` records the tower's digest.)"""
    from luma_rag.encoders import get_encoder
    from luma_rag.encoders.open_clip_to_hf import clip_vision_config, load_visual_weights
    from luma_rag.encoders.registry import get_model_config
    from luma_rag.media import load_image

    clip: Any = get_encoder("luma-tiny")
    visual = copy.deepcopy(clip.model.visual).eval()
    visual.proj = None  # open_clip's image feature before its projection
    config = clip_vision_config(get_model_config("luma-tiny-clip") or {})
    converted = transformers.CLIPVisionModel(config).eval()
    load_visual_weights(converted, clip.model.state_dict())
    pixels = torch.stack([clip._preprocess(load_image(it.image_path)) for it in corpus[:8]])
    with torch.inference_mode():
        want = visual(pixels)
        got = converted(pixel_values=pixels).pooler_output
    assert torch.allclose(got, want, atol=1e-4), float((got - want).abs().max())

    model = transformers.LlavaForConditionalGeneration.from_pretrained(
        TINY_LLAVA_DIR, dtype=torch.float32, local_files_only=True
    ).eval()
    tower = model.model.vision_tower
    assert tower.config.hidden_act == "gelu"
    for key in ("hidden_size", "num_hidden_layers", "image_size", "patch_size"):
        assert getattr(tower.config, key) == getattr(config, key), key
    record = json.loads((TINY_LLAVA_DIR / "training.json").read_text())
    assert len(record["vision_tower"]["sha256"]) == 64


def test_converter_refuses_what_it_does_not_know() -> None:
    from luma_rag.encoders.open_clip_to_hf import clip_vision_config, convert_visual_state_dict

    with pytest.raises(ConfigError, match="no open_clip ViT"):
        convert_visual_state_dict({"text.weight": torch.zeros(1)})
    with pytest.raises(ConfigError, match="counterpart"):
        convert_visual_state_dict({"visual.conv1.weight": torch.zeros(1), "visual.attn_pool": 1})
    with pytest.raises(ConfigError, match="plain open_clip ViTs"):
        clip_vision_config({"embed_dim": 8, "vision_cfg": {"layers": [1, 1], "width": 8}})


# -- the shipped checkpoint through LlavaAnswerer -----------------------------------------------


def test_shipped_checkpoint_is_safetensors_and_small() -> None:
    names = {p.name for p in TINY_LLAVA_DIR.iterdir()}
    assert "model.safetensors" in names and "training.json" in names and "README.md" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pkl"))]
    assert sum(p.stat().st_size for p in TINY_LLAVA_DIR.iterdir()) < 8_500_000
    report = json.loads((TINY_LLAVA_DIR / "training.json").read_text())
    assert report["metrics"]["test"]["accuracy"] >= 0.8


def test_tiny_llava_answers_held_out_questions(
    tiny: LlavaAnswerer, corpus: list[ShapeItem]
) -> None:
    test = [it for it in corpus if it.split == "test"]
    assert len(test) >= 8
    rng = np.random.default_rng(0)
    correct = []
    for n, item in enumerate(test[:20]):
        q = make_question(item.attributes, QUESTION_KINDS[n % len(QUESTION_KINDS)], rng)
        answer = tiny.answer(q.text, _decision("answer", [str(item.image_path)]))
        assert answer.telemetry["prompt_tokens"] > 65  # the 65 vision tokens are in the prompt
        assert "Question" not in answer.text and "USER" not in answer.text.upper()
        correct.append(parse_answer(answer.text, q.kind) == getattr(item.attributes, q.kind))
    assert np.mean(correct) >= ACCURACY_FLOOR, correct


def test_tiny_llava_shape_answers_are_never_empty(
    tiny: LlavaAnswerer, corpus: list[ShapeItem]
) -> None:
    """Shape questions and (untrained) yes/no questions on unseen shape/colour pairs, through
    the answerer's generation: never an empty answer; shape at issue #12's target (0.90; v4
    0.986-0.997 on fresh corpora, checkpoint README), far above chance (0.125)."""
    held_out = [it for it in corpus if it.split != "train"]
    assert len(held_out) >= 20
    rng = np.random.default_rng(3)
    shape_ok = []
    for n, item in enumerate(held_out):
        decision = _decision("answer", [str(item.image_path)])
        q = make_question(item.attributes, "shape", rng)
        answer = tiny.answer(q.text, decision).text
        assert answer.strip()
        shape_ok.append(parse_answer(answer, "shape") == item.attributes.shape)
        v = make_verification(item.attributes, rng, truthful=n % 2 == 0)
        assert tiny.answer(v.text, decision).text.strip()
    assert np.mean(shape_ok) >= SHAPE_FLOOR, shape_ok


def _claimed_referent(text: str) -> str:
    """The referent of a yes/no question written from :data:`VERIFY_TEMPLATES`."""
    for template in VERIFY_TEMPLATES:
        head, tail = template.split("{ref}")
        if text.startswith(head) and text.endswith(tail):
            return text[len(head) : len(text) - len(tail)]
    raise AssertionError(f"not a verification question: {text!r}")


def test_tiny_llava_verifies_through_the_generic_prompt(
    tiny: LlavaAnswerer, corpus: list[ShapeItem]
) -> None:
    """The default verified path's question ("Does this image show <referent>? Answer yes or
    no.", :class:`VlmVerifier`) on held-out items, true and false claims alternating: the
    describe-then-judge replies parse, and the verdicts beat a floor well above chance."""
    from luma_rag.answer.verify_vlm import VlmVerifier

    held_out = [it for it in corpus if it.split != "train"]
    checker = VlmVerifier(tiny, referent=_claimed_referent)
    rng = np.random.default_rng(11)
    right, unread = [], 0
    for n, item in enumerate(held_out):
        v = make_verification(item.attributes, rng, truthful=n % 2 == 0)
        hit = Hit(id=item.id, score=1.0, tier="hot", rank=0, modality="image",
                  source=str(item.image_path))  # fmt: skip
        verdict = checker(v.text, hit)
        unread += verdict is None
        right.append(verdict == (v.answer == "yes"))
    assert unread == 0
    assert np.mean(right) >= VERIFY_FLOOR, right


def test_tiny_llava_widens_and_clarifies(tiny: LlavaAnswerer, corpus: list[ShapeItem]) -> None:
    item = next(it for it in corpus if it.split == "test")
    sources = [str(item.image_path), str(corpus[0].image_path)]
    widen = tiny.answer("What color is the shape?", _decision("widen", sources))
    assert parse_answer(widen.text, "color") == item.attributes.color
    clarify = tiny.answer("What color is the shape?", _decision("clarify", sources))
    assert clarify.text == CLARIFY_REPLY
    assert "".join(tiny.stream("What color is the shape?", _decision("widen", sources))).strip()


def test_only_the_clarify_instructions_carry_the_marker() -> None:
    assert CLARIFY_MARKER in INSTRUCTIONS["clarify"]
    assert not any(CLARIFY_MARKER in INSTRUCTIONS[k] for k in ("answer", "widen"))


def test_production_default_is_unchanged() -> None:
    from luma_rag.answer import DEFAULT_LLAVA_MODEL

    assert DEFAULT_LLAVA_MODEL == "llava-hf/llava-1.5-7b-hf"
    assert LlavaAnswerer().model_id == DEFAULT_LLAVA_MODEL


def test_gated_answer_evaluation_runs(tiny: LlavaAnswerer, corpus: list[ShapeItem]) -> None:
    from luma_rag.eval.gate_tables import gate_tables
    from luma_rag.eval.gate_variants import evaluate_gated_answers

    report = evaluate_gated_answers(corpus[0].root, tiny, n_questions=5, seed=1)
    gate = report["referents"]["full"]["gate"]
    assert gate["all"]["n"] == 5 and gate["all"]["baseline"]["coverage"] == 1
    for r in report["probe"]:
        assert r["gate"]["decision"] in ("answer", "widen", "clarify", "not_in_memory")
    table = gate_tables(report)
    assert "| gate |" in table and "ambiguous query" in table


# -- questions and tokenizer --------------------------------------------------------------------


def test_questions_and_answers_round_trip(corpus: list[ShapeItem]) -> None:
    tokenizer = build_tokenizer(question_words())
    unk = tokenizer.unk_token_id
    rng = np.random.default_rng(1)
    for item in corpus[:30]:
        for kind in QUESTION_KINDS:
            q = make_question(item.attributes, kind, rng)
            assert parse_answer(q.answer, kind) == getattr(item.attributes, kind)
            assert unk not in tokenizer(q.text)["input_ids"], q.text
            if kind != "count":  # the referent never gives the answer away
                assert parse_answer(q.retrieval_text, kind) is None, q
    assert tokenizer.decode(tokenizer("Which one do you mean?")["input_ids"]) == CLARIFY_REPLY


def test_bad_input_raises_typed_errors(tmp_path: Path) -> None:
    from luma_rag.datasets.attributes import ShapeAttributes
    from luma_rag.training.train_llava import LlavaTrainConfig, train_llava

    attrs = ShapeAttributes("circle", "red", "small", "left", 1, "plain")
    with pytest.raises(InvalidInputError):
        make_question(attrs, "motion", np.random.default_rng(0))
    with pytest.raises(InvalidInputError):
        make_question(attrs, "color", np.random.default_rng(0), named=("background",))
    with pytest.raises(InvalidInputError):
        parse_answer("red", "weight")
    with pytest.raises(ConfigError):
        LlavaTrainConfig(steps=0)
    with pytest.raises(ConfigError):
        TinyLlavaSpec(hidden_size=30, heads=4)
    with pytest.raises(LumaError):
        train_llava([tmp_path / "nothing"], tmp_path / "out", LlavaTrainConfig(steps=1))
    from luma_rag.eval.gate_variants import evaluate_gated_answers

    with pytest.raises(InvalidInputError):
        evaluate_gated_answers(tmp_path, n_questions=0)


# -- training -----------------------------------------------------------------------------------


def test_training_command_runs_a_few_steps(
    corpus: list[ShapeItem], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from luma_rag.training.train_llava import main

    data = corpus[0].root
    out = tmp_path / "llava"
    argv = ["--data", str(data), "--out", str(out), "--steps", "3", "--batch-size", "8"]
    argv += ["--hidden-size", "32", "--layers", "1", "--heads", "2", "--intermediate-size", "64"]
    mix = ["--verify-share", "0.5", "--verify-gate", "0.5", "--verify-reply", "pairs"]
    assert main([*argv, *mix, "--grayscale", "0.5", "--eval-every", "2", "--val-items", "4"]) == 0
    assert '"steps": 3' in capsys.readouterr().out
    report = json.loads((out / "training.json").read_text())
    assert report["steps_done"] == 3 and set(report["metrics"]) >= {"test"}
    assert report["config"]["verify_reply"] == "pairs" and report["config"]["grayscale"] == 0.5
    assert report["metrics"]["test"]["n_verify"] > 0
    assert "model.safetensors" in report["files"]
    assert report["vision_tower"] == {"model": "luma-tiny-clip", "file": None}  # the registry's
    answer = LlavaAnswerer(out, device="cpu", max_new_tokens=2).answer(
        "What color is the shape?", _decision("answer", [str(corpus[0].image_path)])
    )
    assert isinstance(answer.text, str)
    assert main(["--data", str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_batched_answers_equal_one_by_one(tiny: LlavaAnswerer, corpus: list[ShapeItem]) -> None:
    rng = np.random.default_rng(3)
    test = [it for it in corpus if it.split == "test"][:6]
    requests = [
        (
            make_question(it.attributes, QUESTION_KINDS[n % 5], rng).text,
            _decision("answer", [str(it.image_path)]),
        )
        for n, it in enumerate(test)
    ]
    requests.append(("What color is it?", _decision("answer", [])))  # no image: one by one
    batched = tiny.answer_many(requests, batch_size=4)
    single = [tiny.answer(q, d) for q, d in requests]
    assert [a.text for a in batched] == [a.text for a in single]
    assert [a.decision for a in batched] == [d for _, d in requests]
    assert batched[0].telemetry["batched"] == 4 and "batched" not in batched[-1].telemetry
