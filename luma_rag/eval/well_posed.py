"""Well-posed targeted questions: only questions whose referent singles out the asked value.

A targeted question ("Where is the small red circle?") can only be *answered right* when the
gallery determines its answer: every item its referent matches (the named attributes, count
included through the noun's number) shares the target's value of the asked attribute. When
matching items disagree the question is **ambiguous** — memory does not say which one is
meant, the right outcome is CLARIFY, and an answer is a guess. The as-drawn generator
(:func:`~luma_rag.eval.gate_questions.questions`) asks both kinds alike; on the held-out
corpora 12289 / 12373 153 of 160 position questions were ambiguous.

:func:`question_set` draws the targeted set from well-posed questions only. Per question
(kinds in turn, as the as-drawn generator) a target is drawn uniformly from the gallery and a
question written about it; when the referent is ambiguous and names fewer attributes than it
could (``referent="random"``), every other attribute is named instead (with ``"full"``
referents — the trust evaluation's — nothing more can be named: size, colour, shape, position
and the count are all there); when it is still ambiguous the draw is **rejected** (counted per
kind) and the target redrawn. So a kind's targets are uniform over the gallery items that kind
can single out, drawn with replacement: a kind with few such items repeats them in other
words — :attr:`QuestionSet.distinct_targets` says how many there are, and intervals that
treat its questions as independent overstate the evidence. A kind no item can single out
gets no question (logged). The rejected draws, up to as many per kind as the targeted set
has, form the separately reported **ambiguous** set.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np

from luma_rag.datasets.attributes import relevant
from luma_rag.datasets.manifest import ShapeItem
from luma_rag.datasets.questions import QUESTION_KINDS, Question, make_question
from luma_rag.errors import InvalidInputError

__all__ = [
    "QUESTION_MODES",
    "QuestionMode",
    "QuestionSet",
    "ambiguous_summary",
    "as_drawn",
    "is_ambiguous",
    "markdown_lines",
    "question_set",
    "targeted",
]

logger = logging.getLogger(__name__)

#: ``well-posed``: targeted questions single out their answer (ambiguous ones reported apart);
#: ``as-drawn``: the generator before session 9 (ambiguous questions mixed in).
QuestionMode = Literal["well-posed", "as-drawn"]
QUESTION_MODES: Final[tuple[QuestionMode, ...]] = ("well-posed", "as-drawn")
_FULL: Final = ("size", "color", "shape", "position")
_KINDS: Final[tuple[str, ...]] = QUESTION_KINDS
#: Draws per requested question before a kind is given up (only reached when no gallery
#: item of that kind is well posed, which is checked first).
_MAX_DRAWS: Final = 100_000


def is_ambiguous(q: Question, target: ShapeItem, items: Sequence[ShapeItem]) -> bool:
    """Whether gallery items the referent of ``q`` matches disagree on the asked attribute."""
    value = getattr(target.attributes, q.kind)
    return any(
        relevant(q.named, it.attributes) and getattr(it.attributes, q.kind) != value for it in items
    )


@dataclass(frozen=True)
class QuestionSet:
    """Targeted questions, split by whether the gallery determines their answer.

    Attributes:
        mode: How the targeted set was drawn (:data:`QuestionMode`).
        targeted: ``(target, question)`` pairs scored against the target's value. In
            ``well-posed`` mode none is ambiguous.
        ambiguous: Rejected ``(target, question)`` draws (``well-posed`` mode only; the right
            outcome is CLARIFY), at most as many per kind as ``targeted`` has.
        draws: Targets drawn per kind (accepted + rejected).
        rejected: Draws rejected as ambiguous per kind.
        widened: Draws made well posed by naming every other attribute, per kind.
        distinct_targets: Distinct target items per kind in ``targeted``.
        well_posed_items: Gallery items each kind can single out (full referent).
    """

    mode: QuestionMode
    targeted: list[tuple[ShapeItem, Question]]
    ambiguous: list[tuple[ShapeItem, Question]] = field(default_factory=list)
    draws: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    widened: dict[str, int] = field(default_factory=dict)
    distinct_targets: dict[str, int] = field(default_factory=dict)
    well_posed_items: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """What the report records about the set (counts only)."""
        per_kind = {
            k: sum(q.kind == k for _, q in self.targeted) for k in _KINDS
        }  # fmt: skip
        amb = {k: sum(q.kind == k for _, q in self.ambiguous) for k in _KINDS}
        return {
            "mode": self.mode,
            "n_targeted": len(self.targeted),
            "n_ambiguous": len(self.ambiguous),
            "targeted_by_kind": per_kind,
            "ambiguous_by_kind": amb,
            "draws": dict(self.draws),
            "rejected": dict(self.rejected),
            "widened": dict(self.widened),
            "distinct_targets": dict(self.distinct_targets),
            "well_posed_items": dict(self.well_posed_items),
        }


def as_drawn(
    items: Sequence[ShapeItem], n: int, seed: int, referent: Literal["full", "random"]
) -> list[tuple[ShapeItem, Question]]:
    """``n`` (target, question) pairs, kinds in turn, targets drawn with ``seed`` — the
    generator before session 9: ambiguous questions are mixed in."""
    rng = np.random.default_rng([seed, 7])
    picks = rng.integers(len(items), size=n)
    named = _FULL if referent == "full" else None
    return [
        (
            items[int(i)],
            make_question(items[int(i)].attributes, QUESTION_KINDS[j % 5], rng, named=named),
        )
        for j, i in enumerate(picks)
    ]


def _well_posed_items(items: Sequence[ShapeItem], kind: str) -> list[ShapeItem]:
    rng = np.random.default_rng(0)  # synonyms do not change which values a referent names
    return [
        it
        for it in items
        if not is_ambiguous(make_question(it.attributes, kind, rng, named=_FULL), it, items)
    ]


def targeted(
    items: Sequence[ShapeItem], n: int, seed: int, referent: Literal["full", "random"] = "full"
) -> QuestionSet:
    """``n`` well-posed targeted questions (kinds in turn) and the rejected ambiguous draws.

    Args:
        items: The gallery, which the targets are drawn from.
        n: Questions requested; kinds with no well-posed item are skipped, so fewer may come.
        seed: Seed of the targets, templates and synonyms (its own stream: the questions
            differ from the as-drawn generator's with the same seed).
        referent: ``"full"`` (every attribute but the asked one) or ``"random"`` (a random
            subset, widened to full when that singles the answer out).

    Returns:
        The :class:`QuestionSet` (``mode="well-posed"``).

    Raises:
        InvalidInputError: An empty gallery, a negative ``n`` or an unknown referent.
    """
    if not items:
        raise InvalidInputError("the gallery is empty; generate a larger corpus")
    if n < 0:
        raise InvalidInputError(f"n must be >= 0, got {n}")
    if referent not in ("full", "random"):
        raise InvalidInputError(f"referent must be 'full' or 'random', got {referent!r}")
    rng = np.random.default_rng([seed, 17])
    named = _FULL if referent == "full" else None
    possible = {k: len(_well_posed_items(items, k)) for k in _KINDS}
    draws = dict.fromkeys(_KINDS, 0)
    rejected, widened = dict.fromkeys(_KINDS, 0), dict.fromkeys(_KINDS, 0)
    wanted = {k: sum(QUESTION_KINDS[j % 5] == k for j in range(n)) for k in _KINDS}
    out: list[tuple[ShapeItem, Question]] = []
    amb: list[tuple[ShapeItem, Question]] = []
    for j in range(n):
        kind = QUESTION_KINDS[j % 5]
        if possible[kind] == 0:
            continue
        for _ in range(_MAX_DRAWS):
            target = items[int(rng.integers(len(items)))]
            draws[kind] += 1
            q = make_question(target.attributes, kind, rng, named=named)
            ambiguous = is_ambiguous(q, target, items)
            if ambiguous and named is None:
                q = make_question(target.attributes, kind, rng, named=_FULL)
                ambiguous = is_ambiguous(q, target, items)
                widened[kind] += not ambiguous
            if not ambiguous:
                out.append((target, q))
                break
            rejected[kind] += 1
            if sum(a.kind == kind for _, a in amb) < wanted[kind]:
                amb.append((target, q))
    for name, m in possible.items():
        if m == 0 and wanted[name]:
            logger.warning("no gallery item singles out its %s: no %s question asked", name, name)
    distinct = {k: len({t.id for t, q in out if q.kind == k}) for k in _KINDS}
    return QuestionSet("well-posed", out, amb, draws, rejected, widened, distinct, possible)


def question_set(
    items: Sequence[ShapeItem], n: int, seed: int, mode: QuestionMode = "well-posed"
) -> QuestionSet:
    """The trust evaluation's questions (full referents): :func:`targeted` in ``well-posed``
    mode; in ``as-drawn`` mode the earlier generator's ``n`` questions, ambiguous ones mixed
    in (``ambiguous`` empty; ``rejected`` counts the ambiguous among them)."""
    if mode == "well-posed":
        return targeted(items, n, seed, "full")
    if mode != "as-drawn":
        raise InvalidInputError(f"question mode must be one of {QUESTION_MODES}, got {mode!r}")
    qs = as_drawn(items, n, seed, "full")
    draws = {k: sum(q.kind == k for _, q in qs) for k in _KINDS}
    rejected = {k: sum(q.kind == k and is_ambiguous(q, t, items) for t, q in qs) for k in draws}
    distinct = {k: len({t.id for t, q in qs if q.kind == k}) for k in _KINDS}
    possible = {k: len(_well_posed_items(items, k)) for k in _KINDS}
    zero = dict.fromkeys(_KINDS, 0)
    return QuestionSet("as-drawn", qs, [], draws, rejected, zero, distinct, possible)


def ambiguous_summary(records: Sequence[Any], off_wilson: Any) -> dict[str, Any]:
    """Outcomes on the ambiguous set (right outcome: CLARIFY).

    Args:
        records: :class:`~luma_rag.eval.gate_questions.Record` per ambiguous question;
            ``correct`` means the answer named the target's value (one of the values the
            matching items disagree on).
        off_wilson: ``(k, n) -> (low, high)`` interval function.

    Returns:
        ``{"n", "clarify": {"n", "share", "wilson95"}, "answer" / "widen": {"n",
        "n_target_value", "n_other"}, "not_in_memory": {"n"}, "by_kind": {kind: {"n",
        "clarify"}}}``.
    """
    n = len(records)
    out: dict[str, Any] = {"n": n}
    clar = sum(r.decision == "clarify" for r in records)
    out["clarify"] = {"n": clar, "share": clar / n if n else None, "wilson95": off_wilson(clar, n)}
    for name in ("answer", "widen"):
        part = [r for r in records if r.decision == name]
        right = sum(r.correct for r in part)
        out[name] = {"n": len(part), "n_target_value": right, "n_other": len(part) - right}
    out["not_in_memory"] = {"n": sum(r.decision == "not_in_memory" for r in records)}
    out["by_kind"] = {
        k: {
            "n": sum(r.kind == k for r in records),
            "clarify": sum(r.kind == k and r.decision == "clarify" for r in records),
        }
        for k in _KINDS
        if any(r.kind == k for r in records)
    }
    return out


def _pct(k: int, n: int) -> str:
    return "—" if n == 0 else f"{100 * k / n:.1f} %"


def markdown_lines(report: dict[str, Any]) -> list[str]:
    """README lines on a trust report's question set and its ambiguous set (none for reports
    made before the set was recorded)."""
    qs = report.get("questions")
    if not qs:
        return []
    kinds = [k for k in _KINDS if qs["draws"].get(k)]
    if qs["mode"] == "as-drawn":
        amb = ", ".join(f"{k} {qs['rejected'][k]}/{qs['draws'][k]}" for k in kinds)
        return ["", f"Question set: **as drawn** (ambiguous questions mixed in: {amb})."]
    per_kind = "; ".join(
        f"{k}: {qs['targeted_by_kind'][k]} questions on {qs['distinct_targets'][k]} distinct "
        f"targets ({qs['well_posed_items'][k]} items can be singled out), "
        f"{qs['rejected'][k]} of {qs['draws'][k]} draws rejected"
        for k in kinds
    )
    lines = [
        "",
        f"Question set: **well posed** — a targeted question's referent singles out the asked "
        f"value in the gallery, ambiguous draws are rejected and the target redrawn ({per_kind}). "
        f"The {qs['n_ambiguous']} rejected ambiguous questions "
        f"({', '.join(f'{k} {v}' for k, v in qs['ambiguous_by_kind'].items() if v)}) are "
        f"scored apart; their right outcome is CLARIFY:",
        "",
        "| variant | CLARIFY (95 % Wilson) | ANSWER: target's value / other | "
        "WIDEN: target's value / other | NOT IN MEMORY |",
        "|---|---|---|---|---|",
    ]
    for name, a in report.get("ambiguous", {}).items():
        c = a["clarify"]
        lo, hi = c["wilson95"]
        ci = "" if lo is None else f" [{100 * lo:.1f}, {100 * hi:.1f}]"
        lines.append(
            f"| {name} | {c['n']}/{a['n']} = {_pct(c['n'], a['n'])}{ci} | "
            f"{a['answer']['n_target_value']} / {a['answer']['n_other']} | "
            f"{a['widen']['n_target_value']} / {a['widen']['n_other']} | "
            f"{a['not_in_memory']['n']} |"
        )
    return lines
