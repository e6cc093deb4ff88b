"""The demo's example questions: ones the corpus answers, each with one right answer.

A question names an item by a referent ("the small white shape at the bottom") and asks one
attribute of it. An example is only useful when the corpus agrees on its answer, so
:func:`demo_questions` picks, for each kind in turn, the first item whose referent — every
attribute but the asked one, whatever the count — describes no other item of the corpus. Its
answer (from the corpus manifest) is then the only right one, and :func:`verdict` reads an
app answer against it (``python -m luma_rag.app.check_examples`` runs them through the app).

Example:
    >>> qs = demo_questions(load_manifest("stores/demo/shapes"))
    >>> qs[0].text, qs[0].answer
    ('What colour is the huge disc near the top?', 'blue')
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from luma_rag.datasets import ShapeItem

__all__ = ["EXAMPLE_KINDS", "DemoQuestion", "demo_questions", "verdict"]

logger = logging.getLogger(__name__)

#: The kinds the examples ask, in turn.
EXAMPLE_KINDS: Final = ("color", "shape", "position", "size")
_REFERENT: Final = ("size", "color", "shape", "position")

Verdict = Literal["right", "wrong", "no answer"]


@dataclass(frozen=True)
class DemoQuestion:
    """An example question and its one right answer.

    Attributes:
        text: The question, e.g. ``"What size is the red star on the left?"``.
        kind: The attribute asked (``"color"``, ``"shape"``, ``"position"``, ``"size"``).
        answer: The canonical answer word from the manifest (``"small"``).
        item_id: The one corpus item the referent describes.
    """

    text: str
    kind: str
    answer: str
    item_id: str


def _key(item: ShapeItem, kind: str) -> tuple[object, ...]:
    """What a question of ``kind`` names of ``item``: every referent attribute but the asked
    one. Not the count: "the red stars" against "the red star" is the only cue neither the
    tiny CLIP nor the tiny LLaVA's yes/no check reads (its verification questions never
    claim a wrong count), so an example singled out by its number alone would test that."""
    a = item.attributes
    return tuple(getattr(a, k) for k in _REFERENT if k != kind)


def demo_questions(items: Sequence[ShapeItem], n: int = 4) -> list[DemoQuestion]:
    """``n`` questions, one per kind in turn, each about an item its referent singles out.

    Args:
        items: The corpus (LUMA-Shapes items with attributes).
        n: How many (fewer when the corpus has no such item for a kind).

    Returns:
        The questions, deterministic for a corpus (the wording is seeded per question).
    """
    import numpy as np

    from luma_rag.datasets.questions import make_question

    out: list[DemoQuestion] = []
    used: set[str] = set()
    for i in range(n):
        kind = EXAMPLE_KINDS[i % len(EXAMPLE_KINDS)]
        counts: dict[tuple[object, ...], int] = {}
        for it in items:
            counts[_key(it, kind)] = counts.get(_key(it, kind), 0) + 1
        pick = next((it for it in items if it.id not in used and counts[_key(it, kind)] == 1), None)
        if pick is None:
            logger.info("no item of the corpus is singled out by a %s question", kind)
            continue
        used.add(pick.id)
        rng = np.random.default_rng(i)
        q = make_question(pick.attributes, kind, rng, named=_REFERENT)
        out.append(DemoQuestion(q.text, kind, q.answer, pick.id))
    return out


def verdict(question: DemoQuestion, decision: str, answer_text: str) -> Verdict:
    """Read an app answer against the question's right answer.

    Args:
        question: The example.
        decision: The gate's decision (``"answer"``, ``"widen"``, ``"clarify"``,
            ``"not_in_memory"``).
        answer_text: The reply's text.

    Returns:
        ``"right"`` when the gate answered (ANSWER or WIDEN) and the text names the right
        value and no other; ``"no answer"`` for CLARIFY / NOT_IN_MEMORY; else ``"wrong"``.
    """
    from luma_rag.datasets.questions import parse_answer

    if decision.lower() not in ("answer", "widen"):
        return "no answer"
    named = parse_answer(answer_text, question.kind)
    return "right" if named == parse_answer(question.answer, question.kind) else "wrong"
