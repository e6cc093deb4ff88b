"""The confidence-floor variant of issue #17's evaluation: its floor, chosen on the val split.

:class:`~luma_rag.answer.confidence.ConfidenceAnswerer` turns an ANSWER / WIDEN whose answer
the model itself found improbable into a CLARIFY. Its floor is chosen here on held-out
(question, intended item) pairs of the corpus's **val** split — never the test split the
report scores — by :func:`~luma_rag.answer.confidence.choose_floor` (Learn-then-Test): the
store is the val items, each question's referent is searched, the answerer answers from the
top-1, and an answer is right when it names the intended item's value.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from luma_rag.answer.base import Answerer
from luma_rag.answer.confidence import CONFIDENCE_KEY, choose_floor
from luma_rag.answer.verify_vlm import single_hit_decision
from luma_rag.datasets.questions import parse_answer
from luma_rag.datasets.shapes import ShapeItem
from luma_rag.eval.gate_questions import gallery
from luma_rag.eval.well_posed import QuestionMode, question_set

__all__ = ["confidence_floor"]

logger = logging.getLogger(__name__)


def confidence_floor(
    val: Sequence[ShapeItem],
    encoder: Any,
    answerer: Answerer,
    *,
    n: int,
    seed: int,
    alpha: float,
    delta: float,
    mode: QuestionMode = "as-drawn",
) -> dict[str, Any]:
    """Choose the floor on ``n`` val questions; the :func:`choose_floor` report plus counts.

    Answers without a reported confidence count as confidence 0 (never kept). ``mode``: the
    questions (:func:`~luma_rag.eval.well_posed.question_set`; only its targeted set is used).
    """
    from luma_rag.answer.base import answer_all

    with gallery(val, encoder, "luma-trust-conf-") as luma:
        qs = question_set(val, n, seed, mode).targeted
        vectors = luma.encoder.encode_text([q.retrieval_text for _, q in qs])
        tops = [luma.search(v, 1, rho=0.0).hits for v in vectors]
    asked = [(t, q, hits[0]) for (t, q), hits in zip(qs, tops, strict=True) if hits]
    answers = answer_all(answerer, [(q.text, single_hit_decision(h)) for _, q, h in asked])
    conf, right = [], []
    for (target, q, _), ans in zip(asked, answers, strict=True):
        value = ans.telemetry.get(CONFIDENCE_KEY)
        conf.append(float(value) if isinstance(value, int | float) else 0.0)
        right.append(parse_answer(ans.text, q.kind) == getattr(target.attributes, q.kind))
    out = choose_floor(conf, right, alpha=alpha, delta=delta)
    out["n_val_questions"] = len(asked)
    out["val_right_without_floor"] = sum(right) / len(right) if right else None
    logger.info("confidence floor on %d val questions: %s", len(asked), out)
    return out


#: Contender radii tried for the consensus variant, strictest (most contenders) first.
CONSENSUS_GRID: tuple[float, ...] = (0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.05, 0.0)


def consensus_rho(
    val: Sequence[ShapeItem],
    encoder: Any,
    answerer: Answerer,
    *,
    rho: float,
    score_floor: float,
    n: int,
    seed: int,
    alpha: float,
    delta: float,
    mode: QuestionMode = "as-drawn",
) -> dict[str, Any]:
    """Choose the consensus contender radius ρ_c on ``n`` val questions (Learn-then-Test).

    The gate is the ``gate+ltt`` one (radius ``rho``, text score floor ``score_floor``); each
    ρ_c of :data:`CONSENSUS_GRID` wraps ``answerer`` in a
    :class:`~luma_rag.answer.consensus.ConsensusAnswerer` (every hit that could be the top-1
    within ρ_c is asked too; answers that differ make a CLARIFY), and the radii are tested
    from the largest down: the smallest accepted one keeps the ANSWER + WIDEN risk ≤ ``alpha``
    with probability ≥ ``1 - delta``. ``mode``: as :func:`confidence_floor`'s.
    """
    import dataclasses
    import math

    from luma_rag.answer.confidence import fixed_sequence
    from luma_rag.answer.consensus import ConsensusAnswerer, ConsensusConfig
    from luma_rag.answer.gate import GateConfig, GatedRetriever
    from luma_rag.answer.relevance_auto import store_relevance

    with gallery(val, encoder, "luma-trust-cons-") as luma:
        relevance = store_relevance(luma)
        if relevance is not None and math.isfinite(score_floor):
            relevance = relevance.override(score_floor={"text": score_floor})
        cfg = dataclasses.replace(GateConfig(k=10, k_max=10), rho=rho)
        gate = GatedRetriever(luma, cfg, record_gaps=False, relevance=relevance)
        qs = question_set(val, n, seed, mode).targeted
        decided = [gate.query(q.retrieval_text) for _, q in qs]
    steps = []
    for rho_c in CONSENSUS_GRID:
        bot = ConsensusAnswerer(answerer, ConsensusConfig(rho=rho_c))
        outcomes = []
        for (target, q), d in zip(qs, decided, strict=True):
            ans = bot.answer(q.text, d)
            if ans.decision.decision in ("answer", "widen"):
                outcomes.append(
                    parse_answer(ans.text, q.kind) == getattr(target.attributes, q.kind)
                )
        steps.append((rho_c, outcomes))
    out: dict[str, Any]
    out = fixed_sequence(steps, n_total=len(qs), alpha=alpha, delta=delta)
    out["n_val_questions"] = len(qs)
    out["curve"] = [
        {"rho_c": r, "kept": len(o), "wrong": sum(1 for x in o if not x)} for r, o in steps
    ]
    logger.info("consensus radius on %d val questions: %s", len(qs), out)
    return out
