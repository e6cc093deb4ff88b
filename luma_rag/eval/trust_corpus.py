"""One corpus's pass of the trust evaluation: the gate's decisions and every variant's scored
answers, before any summary (:mod:`luma_rag.eval.trust` pools passes over several corpora and
builds the report from them).

A pass stores the corpus's test split in a temporary LUMA store (the given encoder), asks its
well-posed targeted questions, its ambiguous draws and the off-topic list through the gate (and,
when calibrated on the val split, the LTT gate), prefetches every yes/no check and answer in
batches, and scores each variant's answer per question.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from luma_rag.answer.confidence import ConfidenceAnswerer, ConfidenceConfig
from luma_rag.answer.consensus import ConsensusAnswerer, ConsensusConfig
from luma_rag.answer.gate import GateConfig, GatedRetriever
from luma_rag.answer.readable import ReadableAnswerer
from luma_rag.answer.relevance_auto import store_relevance
from luma_rag.answer.scored import ScoredVerifyConfig
from luma_rag.answer.verify_vlm import VlmVerifier
from luma_rag.eval.gate_questions import (
    CachedAnswerer,
    Record,
    ScoringContext,
    gallery,
    score,
    split_items,
)
from luma_rag.eval.offtopic import OFF_TOPIC
from luma_rag.eval.trust_calibrate import calibrate_on_val, prefetch
from luma_rag.eval.trust_confidence import CONSENSUS_GRID, confidence_floor, consensus_rho
from luma_rag.eval.trust_score import trust_score
from luma_rag.eval.trust_variants import variants as trust_variants
from luma_rag.eval.well_posed import QuestionMode, question_set

__all__ = ["CorpusRun", "RunSettings", "run_corpus"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSettings:
    """What every corpus of one evaluation shares (:func:`luma_rag.eval.trust.evaluate_trust`)."""

    encoder: Any
    verify: bool
    k_verify: int
    n_calibration: int
    attr_verify: bool
    alpha: float
    delta: float
    scored: ScoredVerifyConfig
    legacy: bool
    calibrate: bool
    question_mode: QuestionMode


@dataclass
class CorpusRun:
    """One corpus's raw outcomes; the targeted lists are aligned question by question.

    Attributes:
        meta: The corpus's own facts for the report (data, n_gallery, seed, questions, relevance,
            calibrations).
        records: Scored answers per variant, targeted questions.
        unclear: Scored answers per variant, the ambiguous set.
        margins: The gate's raw top-2 margin per targeted question (0 when undefined).
        slacks: The certificate's slack per targeted question (-9 when undefined).
        trusts: The gate score per targeted question (empty without verification).
        base_wrong: Whether the no-gate top-1 answer is wrong, per targeted question.
        off_decisions: Per variant, the decision on each off-topic question.
    """

    meta: dict[str, Any]
    records: dict[str, list[Record]] = field(default_factory=dict)
    unclear: dict[str, list[Record]] = field(default_factory=dict)
    margins: list[float] = field(default_factory=list)
    slacks: list[float] = field(default_factory=list)
    trusts: list[float] = field(default_factory=list)
    base_wrong: list[bool] = field(default_factory=list)
    off_decisions: dict[str, list[str]] = field(default_factory=dict)


def run_corpus(
    data_dir: str | Path, n_questions: int, seed: int, bot: CachedAnswerer, s: RunSettings
) -> CorpusRun:
    """One corpus's pass (module docstring); ``bot`` is shared so its cache spans corpora."""
    started = time.perf_counter()
    items, val = split_items(data_dir, "test"), split_items(data_dir, "val")
    cal = floor = consensus = None
    if s.calibrate:
        cal = calibrate_on_val(val, s.encoder, bot, s.n_calibration, seed + 1, s.k_verify,
                               s.verify, s.alpha, s.delta, mode=s.question_mode)  # fmt: skip
        floor = confidence_floor(val, s.encoder, bot, n=s.n_calibration, seed=seed + 2,
                                 alpha=s.alpha, delta=s.delta, mode=s.question_mode)  # fmt: skip
        consensus = consensus_rho(
            val, s.encoder, bot, rho=cal.rho, score_floor=cal.score_floor, n=s.n_calibration,
            seed=seed + 3, alpha=s.alpha, delta=s.delta, mode=s.question_mode,
        )  # fmt: skip
        logger.info(
            "trust: calibrated (%s) after %.0f s", cal.reason, time.perf_counter() - started
        )
    by_id = {it.id: it for it in items}
    checker = VlmVerifier(bot)
    cal_verify = None if cal is None else cal.verify and s.verify
    variants = trust_variants(
        bot, checker, s.k_verify, s.verify, s.attr_verify, cal_verify, s.scored, s.legacy
    )
    if floor is not None and floor["feasible"]:
        conf_cfg = ConfidenceConfig(floor=float(floor["floor"]))
        variants["gate+confidence"] = ("gate", ReadableAnswerer(ConfidenceAnswerer(bot, conf_cfg)))
    rho_c = None
    if consensus is not None:
        rho_c = consensus["setting"] if consensus["feasible"] else CONSENSUS_GRID[0]
        variants["gate+ltt+consensus"] = (
            "ltt",
            ReadableAnswerer(ConsensusAnswerer(bot, ConsensusConfig(rho=float(rho_c)))),
        )
    with gallery(items, s.encoder, "luma-trust-") as luma:
        relevance = store_relevance(luma)
        cfg = GateConfig(k=10, k_max=10)
        gates = {"gate": GatedRetriever(luma, cfg, record_gaps=False, relevance=relevance)}
        if cal is not None:
            ltt_rel = relevance
            if relevance is not None and math.isfinite(cal.score_floor):
                ltt_rel = relevance.override(score_floor={"text": cal.score_floor})
            ltt_cfg = dataclasses.replace(cfg, rho=cal.rho)
            gates["ltt"] = GatedRetriever(luma, ltt_cfg, record_gaps=False, relevance=ltt_rel)
        qset = question_set(items, n_questions, seed, s.question_mode)
        qs, n_t = qset.targeted + qset.ambiguous, len(qset.targeted)
        decided = [{g: gate.query(q.retrieval_text) for g, gate in gates.items()} for _, q in qs]
        off = [{g: gate.query(text) for g, gate in gates.items()} for text in OFF_TOPIC]
        logger.info(
            "trust: %d gate decisions after %.0f s", len(decided) * 2, time.perf_counter() - started
        )
        if s.verify:
            jobs = [(q.text, d["gate"].hits) for (_, q), d in zip(qs, decided, strict=True)]
            jobs += [
                (text, d["gate"].hits)
                for text, d in zip(OFF_TOPIC, off, strict=True)
                if d["gate"].decision != "not_in_memory"
            ]
            prefetch(bot, checker, jobs, s.k_verify if s.legacy else s.scored.k_verify)
            logger.info("trust: prefetched after %.0f s", time.perf_counter() - started)
        run = CorpusRun(meta={})
        records: dict[str, list[Record]] = {name: [] for name in variants}
        for (target, q), d in zip(qs, decided, strict=True):
            ctx = ScoringContext.of(q, target, d["gate"], bot, cfg.k, items, by_id)
            for name, (g, ans) in variants.items():
                records[name].append(score(q, ans.answer(q.text, d[g]), ctx))
            num = d["gate"].numbers
            run.margins.append(num.margin_top2 if math.isfinite(num.margin_top2) else 0.0)
            run.slacks.append(num.slack if math.isfinite(num.slack) else -9.0)
            if s.verify:
                trust = trust_score(
                    q.text,
                    d["gate"],
                    bot,
                    checker.scores,
                    k=s.scored.k_verify,
                    doubt=s.scored.doubt,
                )
                run.trusts.append(trust)
            run.base_wrong.append(not records["gate"][-1].baseline_correct)
        run.unclear = {name: recs[n_t:] for name, recs in records.items()}
        run.records = {name: recs[:n_t] for name, recs in records.items()}
        run.margins, run.slacks = run.margins[:n_t], run.slacks[:n_t]
        run.trusts, run.base_wrong = run.trusts[:n_t], run.base_wrong[:n_t]
        pairs = list(zip(OFF_TOPIC, off, strict=True))
        run.off_decisions = {
            name: [ans.answer(t, d[g]).decision.decision for t, d in pairs]
            for name, (g, ans) in variants.items()
        }
    run.meta = {
        "data": str(data_dir),
        "n_gallery": len(items),
        "n_val_items": len(val),
        "seed": seed,
        "questions": qset.to_dict(),
        "relevance": None
        if relevance is None
        else {
            "score_floor": relevance.score_floor,
            "lexical_floor": relevance.lexical_floor,
            "n_pairs": relevance.n_pairs,
            "alpha": relevance.alpha,
        },
        "cal": cal,
        "confidence_floor": floor,
        "consensus_radius": None if consensus is None else consensus | {"used": rho_c},
        "seconds": round(time.perf_counter() - started, 1),
    }
    return run
