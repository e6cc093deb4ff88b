"""Targeted LUMA-Shapes questions for the gate experiments, and how one answer is scored.

Each question targets one test-split item: it asks one attribute ("What color is the small
circle on the left?") about a referent naming some of the item's other attributes; the
referent ("a small circle on the left") is what the store is queried with.

* An answer is **correct** when it names the target's value of the asked attribute
  (:func:`~luma_rag.datasets.questions.parse_answer`). When every gallery item the referent
  matches shares that value, any of them gives the correct answer (group-aware); when they
  disagree the question is **ambiguous**: only the target's value counts.
* **coverage**: share of questions answered (ANSWER or WIDEN); **risk**: share of the
  answered that are wrong. CLARIFY answers nothing.
* **top-1 matches**: share of a decision's questions whose top hit matches everything the
  referent names; it separates retrieval errors from the answerer's.
* The **no-gate baseline** always answers from the top-1 hit (the same answerer, given an
  ANSWER decision over the same hits): coverage 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from luma_rag.answer.base import Answer, Answerer, answer_all
from luma_rag.answer.calibrate import (
    GateCalibration,
    RadiusCalibrationConfig,
    calibrate_gate_radius,
)
from luma_rag.answer.gate import GateDecision
from luma_rag.datasets.attributes import relevant
from luma_rag.datasets.manifest import ShapeItem, load_manifest
from luma_rag.datasets.questions import QUESTION_KINDS, Question, parse_answer
from luma_rag.errors import InvalidInputError
from luma_rag.eval.well_posed import as_drawn, is_ambiguous

__all__ = [
    "AMBIGUOUS_QUERIES",
    "PROBE_KINDS",
    "CachedAnswerer",
    "Record",
    "Referent",
    "ScoringContext",
    "answer_normaliser",
    "calibrate_on_split",
    "check_referents",
    "default_answerer",
    "gallery",
    "groups",
    "questions",
    "rates",
    "score",
    "split_items",
    "uncited",
]

#: ``(question, retrieval text)`` pairs that name nothing that tells the gallery apart.
AMBIGUOUS_QUERIES: Final = (
    ("What color is the shape?", "a shape"),
    ("What shape is it?", "an object"),
    ("Where is the shape?", "a picture of a shape"),
    ("How big is the object?", "an image"),
    ("What color is the figure?", "a figure"),
)
#: The kind each ambiguous probe question asks (for per-kind answerers such as consensus).
PROBE_KINDS: Final = ("color", "shape", "position", "size", "color")

#: How much of the target a question's referent names: every other attribute, or a random
#: subset (each of size, colour, shape, position with probability 1/2).
Referent = Literal["full", "random"]


@dataclasses.dataclass
class Record:
    """One scored answer."""

    kind: str
    decision: str
    ambiguous: bool
    correct: bool
    baseline_correct: bool
    answer: str
    top1_relevant: bool


def check_referents(referents: Sequence[str]) -> None:
    """Raise :class:`InvalidInputError` unless every referent is 'full' or 'random'."""
    for referent in referents:
        if referent not in ("full", "random"):
            raise InvalidInputError(f"referent must be 'full' or 'random', got {referent!r}")


#: ``n`` (target, question) pairs, kinds in turn, targets drawn with ``seed`` (the as-drawn
#: generator: ambiguous questions mixed in; :func:`luma_rag.eval.well_posed.targeted` draws
#: well-posed ones).
questions = as_drawn

#: Whether items the referent matches disagree on the asked attribute.
_ambiguous = is_ambiguous


def rates(records: Sequence[Record]) -> dict[str, Any]:
    """Coverage, risk, per-decision shares / risks / top-1 matches and the baseline's risk."""
    n = len(records)
    answered = [r for r in records if r.decision in ("answer", "widen")]
    out: dict[str, Any] = {"n": n, "coverage": len(answered) / n if n else None}
    out["risk"] = float(np.mean([not r.correct for r in answered])) if answered else None
    for name in ("answer", "widen", "clarify"):
        part = [r for r in records if r.decision == name]
        scored = bool(part) and name != "clarify"
        out[name] = {
            "n": len(part),
            "share": len(part) / n if n else None,
            "risk": float(np.mean([not r.correct for r in part])) if scored else None,
            "accuracy_if_answered": float(np.mean([r.correct for r in part])) if scored else None,
            "top1_relevant": float(np.mean([r.top1_relevant for r in part])) if part else None,
        }
    out["baseline"] = {
        "coverage": 1.0 if n else None,
        "risk": float(np.mean([not r.baseline_correct for r in records])) if n else None,
    }
    return out


def groups(records: Sequence[Record]) -> dict[str, Any]:
    """:func:`rates` of all / unambiguous / ambiguous / no-shape questions and per kind."""
    return {
        "all": rates(records),
        "unambiguous": rates([r for r in records if not r.ambiguous]),
        "ambiguous": rates([r for r in records if r.ambiguous]),
        "no_shape": rates([r for r in records if r.kind != "shape"]),
        "by_kind": {k: rates([r for r in records if r.kind == k]) for k in QUESTION_KINDS},
    }


def default_answerer() -> Answerer:
    """The shipped tiny LLaVA on CPU, short answers."""
    from luma_rag.answer.llava import OFFLINE_LLAVA_MODEL, LlavaAnswerer

    return LlavaAnswerer(OFFLINE_LLAVA_MODEL, device="cpu", max_new_tokens=16)


def split_items(data_dir: str | Path, split: str) -> list[ShapeItem]:
    """The items of one split; :class:`InvalidInputError` when it has none."""
    items = [it for it in load_manifest(Path(data_dir)) if it.split == split]
    if not items:
        raise InvalidInputError(f"{data_dir} has no {split}-split items; generate a larger corpus")
    return items


@contextlib.contextmanager
def gallery(items: Sequence[ShapeItem], encoder: Any, prefix: str) -> Iterator[Any]:
    """A temporary store holding ``items``' images (closed and deleted afterwards)."""
    from luma_rag.engine import Luma
    from luma_rag.eval.experiments import ingest_items

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        luma = Luma.open(tmp, encoder=encoder)
        try:
            ingest_items(luma, items)
            yield luma
        finally:
            luma.close()


def _answer_top1(decision: GateDecision, k: int) -> GateDecision:
    """An ANSWER decision over the same hits: what a system without the gate would do."""
    return dataclasses.replace(
        decision, decision="answer", k_used=1, evidence=decision.hits[:k], clarification=None
    )


@dataclasses.dataclass(frozen=True)
class ScoringContext:
    """What scoring one question's answers needs, whatever variant answered it."""

    value: Any  # the intended item's value of the asked attribute
    baseline: Answer  # the no-gate answer: always from the top-1 hit
    ambiguous: bool
    top: ShapeItem | None

    @classmethod
    def of(
        cls,
        q: Question,
        target: ShapeItem,
        decision: GateDecision,
        answerer: Answerer,
        k: int,
        items: Sequence[ShapeItem],
        by_id: dict[str, ShapeItem],
    ) -> ScoringContext:
        """Score against ``target``; the baseline answers from ``decision``'s top-1."""
        return cls(
            value=getattr(target.attributes, q.kind),
            baseline=answerer.answer(q.text, _answer_top1(decision, k)),
            ambiguous=_ambiguous(q, target, items),
            top=by_id.get(decision.hits[0].id) if decision.hits else None,
        )


#: Inline citations ("[1]", "[1]–[3]") a readable answer carries: never part of its value
#: (their digits would read as counts).
_CITATIONS: Final = re.compile(r"\[\d+\](?:\s*[–-]\s*\[\d+\])?")


def uncited(text: str) -> str:
    """``text`` without its inline citation marks."""
    return _CITATIONS.sub(" ", text)


def score(q: Question, answer: Answer, ctx: ScoringContext) -> Record:
    """Score one answer (and the no-gate baseline's) against the intended item's value; the
    answer's citation marks are not read."""
    return Record(
        kind=q.kind,
        decision=answer.decision.decision,
        ambiguous=ctx.ambiguous,
        correct=parse_answer(uncited(answer.text), q.kind) == ctx.value,
        baseline_correct=parse_answer(uncited(ctx.baseline.text), q.kind) == ctx.value,
        answer=answer.text,
        top1_relevant=ctx.top is not None and relevant(q.named, ctx.top.attributes),
    )


class CachedAnswerer:
    """Memoises an answerer on what its prompt depends on (variants share most calls).

    Args:
        inner: The answerer.
        top_only: Key on the question, whether it is a CLARIFY and the top evidence only —
            right for answerers that read nothing else (the tiny LLaVA: its chat template
            keeps only the question, and it is shown the top image); default: the whole
            decision (kind, size, every evidence id, clarifying question).
        clarify_text: Answer a CLARIFY (and a NOT_IN_MEMORY) with the gate's own clarifying
            question, without calling ``inner`` — for scoring runs, which never score their
            text (and :class:`~luma_rag.answer.readable.ReadableAnswerer` shows the gate's
            question).
    """

    def __init__(
        self, inner: Answerer, *, top_only: bool = False, clarify_text: bool = False
    ) -> None:
        self.inner = inner
        self.top_only = top_only
        self.clarify_text = clarify_text
        self.cache: dict[tuple[Any, ...], Answer] = {}
        self.calls = 0

    def _key(self, question: str, decision: GateDecision) -> tuple[Any, ...]:
        if self.top_only:
            top = decision.evidence[0].id if decision.evidence else None
            return (question, decision.decision == "clarify", top)
        return (
            question,
            decision.decision,
            decision.k_used,
            tuple(h.id for h in decision.evidence),
            decision.clarification,
        )

    def answer(self, question: str, decision: GateDecision) -> Answer:
        """The inner answer for this prompt (computed once), carrying ``decision``."""
        return self.answer_many([(question, decision)])[0]

    def answer_many(self, requests: Sequence[tuple[str, GateDecision]]) -> list[Answer]:
        """:meth:`answer` per request; the uncached ones go to the inner answerer in one batch."""
        keys = [self._key(q, d) for q, d in requests]
        todo: dict[tuple[Any, ...], tuple[str, GateDecision]] = {}
        for key, req in zip(keys, requests, strict=True):
            if key not in self.cache and not self._skip(req[1]):
                todo.setdefault(key, req)
        if todo:
            self.calls += len(todo)
            for key, ans in zip(todo, answer_all(self.inner, list(todo.values())), strict=True):
                self.cache[key] = ans
        return [
            Answer(d.clarification or "Which one do you mean?", d, [], {"answerer": "gate"})
            if self._skip(d)
            else dataclasses.replace(self.cache[key], decision=d)
            for key, (_, d) in zip(keys, requests, strict=True)
        ]

    def _skip(self, decision: GateDecision) -> bool:
        return self.clarify_text and decision.decision in ("clarify", "not_in_memory")


def answer_normaliser(kind: str) -> Callable[[str], str | None]:
    """``text -> canonical value of kind`` (None: unreadable), for answer consensus."""

    def read(text: str) -> str | None:
        value = parse_answer(text, kind)
        return None if value is None else str(value)

    return read


def calibrate_on_split(
    data_dir: str | Path,
    split: str,
    *,
    n_questions: int,
    seed: int,
    referents: Sequence[Referent],
    config: RadiusCalibrationConfig,
    encoder: Any,
) -> tuple[GateCalibration, dict[str, Any]]:
    """Calibrate ρ with a store of ``split``'s items and their own questions (top-1 labels)."""
    items = split_items(data_dir, split)
    queries: list[tuple[str, frozenset[str]]] = []
    for referent in referents:
        for _, q in questions(items, n_questions, seed, referent):
            right = frozenset(it.id for it in items if relevant(q.named, it.attributes))
            queries.append((q.retrieval_text, right))
    with gallery(items, encoder, "luma-gate-cal-") as luma:
        store_rho = dict(luma.rho)
        cal, radii = calibrate_gate_radius(luma, queries, config)
    finite = np.asarray([r for r in radii if math.isfinite(r)])
    info = {
        "split": split,
        "n_items": len(items),
        "n_queries": len(queries),
        "seed": seed,
        "referents": list(referents),
        "store_rho": store_rho,
        "critical_radius_median": float(np.median(finite)) if finite.size else None,
        **cal.to_dict(),
    }
    return cal, info
