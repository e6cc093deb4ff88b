"""Held-out accuracy of the tiny LLaVA: one question of every kind about every item, and one
yes/no verification question (true or false, alternately) per item.

An answer counts when greedy decoding gives exactly the canonical word ("red", "two", "yes")
and then stops; measured in one teacher-forced forward pass (the argmax of every answer
token and of the end token is what greedy decoding produces). A verification reply is a
reading and a verdict ("large hexagon : large star : no"); ``accuracy_verify`` asks the whole
reply to be exact, ``accuracy_verify_verdict`` (:func:`verify_verdicts`) only the verdict,
generated through :class:`~luma_rag.answer.llava.LlavaAnswerer` and read by
:func:`~luma_rag.answer.verify_vlm.parse_yes_no`, as the verified answer path reads it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

from luma_rag.datasets.manifest import ShapeItem
from luma_rag.datasets.questions import QUESTION_KINDS, make_question, make_verification
from luma_rag.encoders._images import load_image
from luma_rag.errors import InvalidInputError
from luma_rag.training.llava_mix import verification_reply
from luma_rag.training.llava_run import Run, batch, embed, encode, import_torch, make_run

__all__ = [
    "EVAL_KINDS",
    "cached_accuracy",
    "eval_questions",
    "evaluate_questions",
    "score",
    "verify_verdicts",
]

#: Kinds scored: the five question kinds and ``verify`` (yes/no).
EVAL_KINDS: Final = (*QUESTION_KINDS, "verify")

#: ``(item index, kind, question text, canonical answer)``.
EvalQuestion = tuple[int, str, str, str]


def eval_questions(
    items: Sequence[ShapeItem], seed: int, reply_style: str = "claim-seen"
) -> list[EvalQuestion]:
    """One question of every kind and one verification question about every item; the same
    for the same seed (item ``i`` is asked a true claim when ``i`` is even). Verification
    answers are written in ``reply_style``
    (:func:`~luma_rag.training.llava_mix.verification_reply`)."""
    out: list[EvalQuestion] = []
    for index, it in enumerate(items):
        rng = np.random.default_rng([seed, index])
        for kind in QUESTION_KINDS:
            q = make_question(it.attributes, kind, rng)
            out.append((index, kind, q.text, q.answer))
        v = make_verification(it.attributes, rng, truthful=index % 2 == 0)
        out.append((index, "verify", v.text, verification_reply(v, reply_style)))
    return out


def exact(logits: Any, batch: dict[str, Any]) -> Any:
    """bool (n,): every answer token (and the end token) is the argmax of its position."""
    labels = batch["labels"][:, 1:]
    pred = logits[:, :-1].argmax(-1)
    scored = labels != -100
    return ((pred == labels) | ~scored).all(dim=1)


def first_special(logits: Any, b: dict[str, Any], special: Sequence[int]) -> Any:
    """bool (n,): the greedy first answer token is a special token (plain greedy decoding
    would then end with no visible text)."""
    labels = b["labels"][:, 1:]
    first = (labels != -100).int().argmax(dim=1)  # position predicting the first answer token
    pred = logits[:, :-1].argmax(-1)
    token = pred[range(len(pred)), first]
    return sum((token == i) for i in special).bool()


def score(
    questions: Sequence[EvalQuestion], correct: list[bool], empty: list[bool] | None = None
) -> dict[str, Any]:
    """Overall and per-kind accuracy (the overall one over the five question kinds only),
    and how many questions plain greedy decoding would answer with no visible text."""
    kinds = np.array([q[1] for q in questions])
    hits = np.array(correct, dtype=bool)
    asked = kinds != "verify"
    out: dict[str, Any] = {
        "n_questions": int(asked.sum()),
        "accuracy": float(hits[asked].mean()) if asked.any() else None,
    }
    for kind in EVAL_KINDS:
        part = hits[kinds == kind]
        out[f"accuracy_{kind}"] = float(part.mean()) if part.size else None
    out["n_verify"] = int((~asked).sum())
    if empty is not None:
        out["n_empty_first_token"] = int(sum(empty))
    return out


def cached_accuracy(
    run: Run,
    items: list[ShapeItem],
    split: str,
    limit: int,
    seed: int,
    reply_style: str = "claim-seen",
) -> dict[str, Any]:
    """Exact-answer accuracy from the cached vision features (monitoring during training)."""
    torch = import_torch()
    questions = eval_questions(items[: limit or len(items)], seed, reply_style)
    correct: list[bool] = []
    run.model.eval()
    for i in range(0, len(questions), 256):
        chunk = questions[i : i + 256]
        b = batch(run, [encode(run, text, False, answer) for _, _, text, answer in chunk], torch)
        feats = run.features[split][[j for j, *_ in chunk]]
        with torch.inference_mode():
            embeds = embed(run, b["input_ids"], feats)
            logits = run.model(inputs_embeds=embeds, attention_mask=b["attention_mask"]).logits
        correct += exact(logits, b).tolist()
    return score(questions, correct)


def evaluate_questions(
    model_dir: str | Path,
    items: Sequence[ShapeItem],
    *,
    seed: int = 0,
    batch_size: int = 64,
    reply_style: str | None = None,
) -> dict[str, Any]:
    """Held-out question accuracy of a saved tiny LLaVA, pixels in, through ``from_pretrained``.

    Each item is asked one question of every kind and one yes/no verification question
    (seeded, :func:`eval_questions`). An answer is correct when greedy
    decoding gives exactly the canonical answer word and then stops; this is measured in one
    teacher-forced forward pass (the argmax of every answer token and of the end token).

    Args:
        model_dir: A directory written by ``save_pretrained`` (model + processor).
        items: LUMA-Shapes items to ask about.
        seed: Seed of the questions.
        batch_size: Questions per forward pass.
        reply_style: How the model writes yes/no replies (for ``accuracy_verify``, the exact
            reply); None: the ``verify_reply`` of the ``training.json`` beside the weights,
            else ``"claim-seen"``.

    Returns:
        ``{"n_questions", "accuracy", "accuracy_<kind>" per kind and "verify", "n_verify",
        "n_empty_first_token"}`` (the last: questions on which plain greedy decoding, without
        :class:`~luma_rag.answer.llava.LlavaAnswerer`'s guard, would say nothing).

    Raises:
        InvalidInputError: ``items`` is empty.
    """
    if not items:
        raise InvalidInputError("items is empty; pass the items to ask about")
    torch = import_torch()
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(model_dir, local_files_only=True)
    model = LlavaForConditionalGeneration.from_pretrained(
        model_dir, dtype=torch.float32, local_files_only=True
    ).eval()
    run = make_run(model, processor)
    questions = eval_questions(items, seed, reply_style or _reply_style(Path(model_dir)))
    tokenizer = processor.tokenizer
    special = sorted({int(i) for i in tokenizer.all_special_ids})
    correct: list[bool] = []
    empty: list[bool] = []
    for i in range(0, len(questions), batch_size):
        chunk = questions[i : i + batch_size]
        b = batch(run, [encode(run, text, False, answer) for _, _, text, answer in chunk], torch)
        images = [load_image(items[j].image_path) for j, *_ in chunk]
        pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            logits = model(
                input_ids=b["input_ids"],
                attention_mask=b["attention_mask"],
                pixel_values=pixels,
            ).logits
        correct += exact(logits, b).tolist()
        empty += first_special(logits, b, special).tolist()
    out = score(questions, correct, empty)
    out.update(verify_verdicts(model_dir, items, questions))
    return out


def _reply_style(model_dir: Path) -> str:
    """The ``verify_reply`` a checkpoint was trained with (its ``training.json``)."""
    report = model_dir / "training.json"
    if not report.is_file():
        return "claim-seen"
    config = json.loads(report.read_text(encoding="utf-8")).get("config", {})
    return str(config.get("verify_reply", "claim-seen"))


def verify_verdicts(
    model_dir: str | Path, items: Sequence[ShapeItem], questions: Sequence[EvalQuestion]
) -> dict[str, Any]:
    """Share of the verification questions whose generated reply has the right verdict.

    Returns:
        ``{"accuracy_verify_verdict", "n_verify_unread"}`` (the latter: replies with no
        verdict in them, counted wrong).
    """
    from luma_rag.answer.llava import LlavaAnswerer
    from luma_rag.answer.verify_vlm import parse_yes_no, single_hit_decision
    from luma_rag.results import Hit

    asked = [(j, text, answer) for j, kind, text, answer in questions if kind == "verify"]
    if not asked:
        return {"accuracy_verify_verdict": None, "n_verify_unread": 0}
    bot = LlavaAnswerer(str(model_dir), device="cpu", max_new_tokens=16)
    requests = []
    for j, text, _ in asked:
        hit = Hit(id=items[j].id, score=1.0, tier="hot", rank=0, modality="image",
                  source=str(items[j].image_path))  # fmt: skip
        requests.append((text, single_hit_decision(hit)))
    replies = bot.answer_many(requests)
    verdicts = [parse_yes_no(r.text) for r in replies]
    right = [
        v is not None and v == answer.endswith("yes")
        for v, (*_, answer) in zip(verdicts, asked, strict=True)
    ]
    return {
        "accuracy_verify_verdict": float(np.mean(right)),
        "n_verify_unread": int(sum(v is None for v in verdicts)),
    }
