"""Coverage and risk of gated answering on LUMA-Shapes held-out questions: one variant runner.

A store is filled with the test split's images (unseen shape/colour combinations) and their
captions; each targeted question (:mod:`luma_rag.eval.gate_questions`) is gated, answered by
every *variant* and scored. A variant is a name, an answerer (or one per question kind) and
which gate it reads: ``"base"`` (the given :class:`GateConfig`), ``"calibrated"`` (ρ
calibrated on another split) or ``"deep"`` (the base gate fetching the ranking ``k_verify``
deep for a verifier). :func:`run_variants` is the runner; the three experiments are presets:

* :func:`evaluate_gated_answers` — the gate with the store's ρ, one referent kind;
* :func:`compare_gates` — store ρ / ρ calibrated on the **val** split (disjoint items, other
  question seed; :mod:`luma_rag.answer.calibrate`), each with and without answer consensus;
* :func:`compare_verification` — the gate alone / + evidence verification
  (:class:`~luma_rag.datasets.verifier.AttributeVerifier`) / + abstention on kinds the
  answerer reads unreliably.

Every report has ``{"referents": {referent: {variant: groups}}, "probe": [...]}``, which
:func:`luma_rag.eval.gate_tables.gate_tables` prints. Command line: ``luma eval answers``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from luma_rag._checks import check_k
from luma_rag.answer.base import Answer, Answerer
from luma_rag.answer.calibrate import RadiusCalibrationConfig
from luma_rag.answer.consensus import ConsensusAnswerer, ConsensusConfig
from luma_rag.answer.gate import GateConfig, GateDecision, GatedRetriever
from luma_rag.answer.verify import VerifyConfig, VerifyingAnswerer
from luma_rag.datasets.manifest import ShapeItem
from luma_rag.datasets.questions import QUESTION_KINDS
from luma_rag.datasets.verifier import AttributeVerifier, answerer_kind_accuracy
from luma_rag.errors import InvalidInputError
from luma_rag.eval.gate_questions import (
    AMBIGUOUS_QUERIES,
    PROBE_KINDS,
    CachedAnswerer,
    Record,
    Referent,
    ScoringContext,
    answer_normaliser,
    calibrate_on_split,
    check_referents,
    default_answerer,
    gallery,
    groups,
    questions,
    score,
    split_items,
)

__all__ = [
    "GATE_VARIANTS",
    "VERIFY_VARIANTS",
    "Variant",
    "compare_gates",
    "compare_verification",
    "evaluate_gated_answers",
    "run_variants",
]


@dataclasses.dataclass(frozen=True)
class Variant:
    """One answering system to score.

    Attributes:
        name: Its row in the tables.
        answerer: Who answers from the gate's decision.
        gate: Which gate's decision it reads (a key of :func:`run_variants`' ``gates``).
        by_kind: Per question kind answerers (e.g. consensus with a kind's normaliser);
            ``answerer`` for kinds not in it.
    """

    name: str
    answerer: Answerer
    gate: str = "base"
    by_kind: Mapping[str, Answerer] | None = None

    def for_kind(self, kind: str) -> Answerer:
        """The answerer for questions of ``kind``."""
        return (self.by_kind or {}).get(kind, self.answerer)


def _outcome(answer: Answer, decision: GateDecision) -> str:
    return str((answer.telemetry.get("verification") or {}).get("outcome", decision.decision))


def run_variants(
    luma: Any,
    items: Sequence[ShapeItem],
    gates: Mapping[str, GateConfig],
    variants: Sequence[Variant],
    *,
    baseline: Answerer,
    referents: Sequence[Referent],
    n_questions: int,
    seed: int,
) -> dict[str, Any]:
    """Gate, answer and score every targeted question for every variant.

    Args:
        luma: A store holding ``items``' images (with an encoder).
        items: The gallery, and the questions' targets.
        gates: Gate settings by name; ``"base"`` is required (the no-gate baseline answers
            from its top-1 hit).
        variants: What to score, in table order.
        baseline: The answerer of the no-gate baseline.
        referents: Referent kinds to ask (``"full"``, ``"random"``).
        n_questions: Questions per referent kind.
        seed: Seed of targets and questions.

    Returns:
        ``{"referents": {referent: {variant: groups}}, "outcomes": {referent: {variant:
        {outcome: count}}}, "probe": [{"question", "query", variant: {"decision", "k_used",
        "answer"}}]}``.
    """
    retrievers = {name: GatedRetriever(luma, cfg, record_gaps=False) for name, cfg in gates.items()}
    base_k = gates["base"].k
    by_id = {it.id: it for it in items}
    out: dict[str, Any] = {"referents": {}, "outcomes": {}, "probe": []}
    for referent in referents:
        records: dict[str, list[Record]] = {v.name: [] for v in variants}
        outcomes: dict[str, dict[str, int]] = {v.name: {} for v in variants}
        for target, q in questions(items, n_questions, seed, referent):
            decisions = {name: r.query(q.retrieval_text) for name, r in retrievers.items()}
            ctx = ScoringContext.of(q, target, decisions["base"], baseline, base_k, items, by_id)
            for v in variants:
                ans = v.for_kind(q.kind).answer(q.text, decisions[v.gate])
                outcome = _outcome(ans, decisions["base"])
                outcomes[v.name][outcome] = outcomes[v.name].get(outcome, 0) + 1
                records[v.name].append(score(q, ans, ctx))
        out["referents"][referent] = {name: groups(r) for name, r in records.items()}
        out["outcomes"][referent] = outcomes
    for (question, text), kind in zip(AMBIGUOUS_QUERIES, PROBE_KINDS, strict=True):
        decisions = {name: r.query(text) for name, r in retrievers.items()}
        row: dict[str, Any] = {"question": question, "query": text}
        for v in variants:
            ans = v.for_kind(kind).answer(question, decisions[v.gate])
            row[v.name] = {
                "decision": ans.decision.decision,
                "k_used": ans.decision.k_used,
                "answer": ans.text,
            }
        out["probe"].append(row)
    return out


def evaluate_gated_answers(
    data_dir: str | Path,
    answerer: Answerer | None = None,
    *,
    n_questions: int = 400,
    seed: int = 0,
    gate: GateConfig | None = None,
    encoder: Any = "luma-tiny",
    referent: Referent = "full",
) -> dict[str, Any]:
    """Coverage / risk of the gate + answerer against the no-gate baseline.

    Args:
        data_dir: A LUMA-Shapes corpus; its test split is the gallery and the targets.
        answerer: Default ``LlavaAnswerer("luma-tiny-llava", device="cpu")``.
        n_questions: Targeted questions (kinds in turn, targets drawn with ``seed``).
        seed: Seed of targets and questions.
        gate: Gate settings (default ``GateConfig()``).
        encoder: The store's encoder (an :class:`~luma_rag.encoders.base.Encoder` or name).
        referent: ``"full"``: questions name every attribute of the target but the asked one
            ("What color is the small circle on the left?"); ``"random"``: a random subset
            ("What color is the circle?"), so many are ambiguous.

    Returns:
        The :func:`run_variants` report for one variant, ``"gate"``.

    Raises:
        InvalidInputError: No test split, a bad referent or ``n_questions < 1``.
    """
    check_referents([referent])
    check_k(n_questions, "n_questions")
    items = split_items(data_dir, "test")
    bot = CachedAnswerer(answerer or default_answerer())
    cfg = gate or GateConfig()
    started = time.perf_counter()
    with gallery(items, encoder, "luma-gate-eval-") as luma:
        report = run_variants(
            luma,
            items,
            {"base": cfg},
            [Variant("gate", bot)],
            baseline=bot,
            referents=[referent],
            n_questions=n_questions,
            seed=seed,
        )
    meta = {"gate": dataclasses.asdict(cfg), "n_gallery": len(items), "n_questions": n_questions}
    return {**meta, "seed": seed, **report, "seconds": round(time.perf_counter() - started, 1)}


#: ``(name, calibrated ρ, consensus)`` per compared variant, in table order.
GATE_VARIANTS: Final = (
    ("gate, store ρ", False, False),
    ("gate, store ρ + consensus", False, True),
    ("gate, calibrated ρ", True, False),
    ("gate, calibrated ρ + consensus", True, True),
)


def compare_gates(
    data_dir: str | Path,
    answerer: Answerer | None = None,
    *,
    n_questions: int = 400,
    seed: int = 0,
    referents: Sequence[Referent] = ("full", "random"),
    gate: GateConfig | None = None,
    encoder: Any = "luma-tiny",
    calibration_split: str = "val",
    calibration_questions: int = 400,
    calibration_seed: int = 1,
    calibration: RadiusCalibrationConfig | None = None,
    consensus: ConsensusConfig | None = None,
) -> dict[str, Any]:
    """Coverage / risk of the :data:`GATE_VARIANTS` on the test split's questions.

    ρ is calibrated on ``calibration_split`` (default ``val``: other items, other shape/colour
    combinations, questions drawn with ``calibration_seed``), never on the test items; the
    calibration target is the top-1 matching the referent, for every referent kind asked.

    Returns:
        The :func:`run_variants` report plus ``"calibration"`` (what was calibrated on).

    Raises:
        InvalidInputError: a split without items, calibrating on the test split, a bad
            referent, or a count < 1.
    """
    check_k(n_questions, "n_questions")
    check_k(calibration_questions, "calibration_questions")
    if calibration_split == "test":
        raise InvalidInputError("calibrate on a split other than the test split")
    check_referents(referents)
    started = time.perf_counter()
    base = gate or GateConfig()
    cal, cal_info = calibrate_on_split(
        data_dir,
        calibration_split,
        n_questions=calibration_questions,
        seed=calibration_seed,
        referents=referents,
        config=calibration or RadiusCalibrationConfig(),
        encoder=encoder,
    )
    items = split_items(data_dir, "test")
    bot = CachedAnswerer(answerer or default_answerer())
    ccfg = consensus or ConsensusConfig()
    agree: dict[str, Answerer] = {
        k: ConsensusAnswerer(bot, ccfg, normalise=answer_normaliser(k)) for k in QUESTION_KINDS
    }
    variants = [
        Variant(name, bot, "calibrated" if calibrated else "base", agree if checked else None)
        for name, calibrated, checked in GATE_VARIANTS
    ]
    with gallery(items, encoder, "luma-gate-cmp-") as luma:
        report = run_variants(
            luma,
            items,
            {"base": base, "calibrated": cal.gate_config(base)},
            variants,
            baseline=bot,
            referents=referents,
            n_questions=n_questions,
            seed=seed,
        )
    return {
        "calibration": cal_info,
        "gate": dataclasses.asdict(base),
        "consensus": dataclasses.asdict(ccfg),
        "n_gallery": len(items),
        "n_questions": n_questions,
        "seed": seed,
        **report,
        "answerer_calls": bot.calls,
        "seconds": round(time.perf_counter() - started, 1),
    }


#: ``(name, verify, abstain)`` per compared variant, in table order.
VERIFY_VARIANTS: Final = (
    ("gate", False, False),
    ("gate + abstention", False, True),
    ("gate + verification", True, False),
    ("gate + verification + abstention", True, True),
)


class _Abstaining:
    """The gate alone with abstention only: unreliable kinds go to the verifying answerer
    (which refuses them before verifying anything), the rest straight to the answerer."""

    def __init__(self, inner: VerifyingAnswerer) -> None:
        self.inner = inner

    def answer(self, question: str, decision: GateDecision) -> Answer:
        kind = self.inner.kind_of(question)
        if decision.decision != "clarify" and self.inner.unreliable(kind):
            return self.inner.answer(question, decision)
        return self.inner.answerer.answer(question, decision)


def compare_verification(
    data_dir: str | Path,
    answerer: Answerer | None = None,
    *,
    n_questions: int = 400,
    seed: int = 0,
    referents: Sequence[Referent] = ("full", "random"),
    gate: GateConfig | None = None,
    encoder: Any = "luma-tiny",
    verify: VerifyConfig | None = None,
    kind_accuracy: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Coverage / risk of the :data:`VERIFY_VARIANTS` on the test split's questions.

    The verifier is an :class:`~luma_rag.datasets.verifier.AttributeVerifier` over the same
    answerer; reliable kinds and abstention read the per-kind **val** accuracy of the
    answerer's checkpoint (``kind_accuracy`` overrides it), never the test questions. The
    verifying variants read the base gate's ranking fetched ``k_verify`` deep (same decision).

    Returns:
        The :func:`run_variants` report plus ``"kind_accuracy"``, ``"reliable_kinds"``,
        ``"verify"`` and ``"verifier_reads"``.

    Raises:
        InvalidInputError: no test split, ``n_questions < 1``, a bad referent, or no per-kind
            accuracy for the answerer.
    """
    check_k(n_questions, "n_questions")
    check_referents(referents)
    started = time.perf_counter()
    raw = answerer or default_answerer()
    acc = kind_accuracy if kind_accuracy is not None else answerer_kind_accuracy(raw)
    if acc is None:
        raise InvalidInputError("no per-kind accuracy for the answerer: pass kind_accuracy=")
    base = gate or GateConfig()
    vcfg = verify or VerifyConfig()
    bot = CachedAnswerer(raw)
    verifier = AttributeVerifier(bot, kind_accuracy=acc, min_accuracy=vcfg.min_kind_accuracy)
    checked = VerifyingAnswerer(bot, verifier, dataclasses.replace(vcfg, abstain_unreliable=False))
    strict = VerifyingAnswerer(bot, verifier, dataclasses.replace(vcfg, abstain_unreliable=True))
    answerers: dict[str, Answerer] = {
        "gate": bot,
        "gate + abstention": _Abstaining(strict),
        "gate + verification": checked,
        "gate + verification + abstention": strict,
    }
    variants = [
        Variant(name, answerers[name], "deep" if verifies else "base")
        for name, verifies, _ in VERIFY_VARIANTS
    ]
    items = split_items(data_dir, "test")
    deep = dataclasses.replace(base, fetch_k=max(base.k, vcfg.k_verify))
    with gallery(items, encoder, "luma-gate-verify-") as luma:
        report = run_variants(
            luma,
            items,
            {"base": base, "deep": deep},
            variants,
            baseline=bot,
            referents=referents,
            n_questions=n_questions,
            seed=seed,
        )
    return {
        "gate": dataclasses.asdict(base),
        "verify": dataclasses.asdict(vcfg),
        "kind_accuracy": acc,
        "reliable_kinds": list(verifier.reliable_kinds),
        "n_gallery": len(items),
        "n_questions": n_questions,
        "seed": seed,
        **report,
        "answerer_calls": bot.calls,
        "verifier_reads": verifier.reads,
        "seconds": round(time.perf_counter() - started, 1),
    }
