"""Issue #17's held-out evaluation, the val-split part: Learn-then-Test calibration of the gate
(ρ, score floor, "require verification"), and the batched prefetch of every yes/no check and
answer the variants of :mod:`luma_rag.eval.trust` read."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from luma_rag.answer.base import Answerer
from luma_rag.answer.gate import GateDecision
from luma_rag.answer.relevance_auto import store_relevance
from luma_rag.answer.verify import VerifyConfig, VerifyingAnswerer
from luma_rag.answer.verify_vlm import VlmVerifier, single_hit_decision
from luma_rag.datasets.questions import parse_answer
from luma_rag.eval.gate_questions import CachedAnswerer, gallery
from luma_rag.eval.well_posed import QuestionMode, question_set
from luma_rag.results import Hit
from luma_rag.risk_control import GateRiskCalibration, calibrate_gate

__all__ = ["answer_matches", "calibrate_on_val", "legacy_verified", "prefetch"]


def prefetch(
    bot: CachedAnswerer, checker: VlmVerifier, jobs: Sequence[tuple[str, Sequence[Hit]]], k: int
) -> None:
    """Ask every yes/no check, then every answer the variants will read, in big batches.

    ``jobs``: ``(question, ranked hits)``. The answers (from the top-1 for the no-gate
    baseline, from each verified hit) are prefetched only when ``bot`` caches on the top
    evidence (what a later call with any decision over the same top hit then finds).
    """
    pools = [(q, list(hits[:k])) for q, hits in jobs if hits]
    verdicts = checker.ask([(q, h) for q, hits in pools for h in hits])
    if not bot.top_only:
        return
    requests, i = [], 0
    for q, hits in pools:
        requests.append((q, single_hit_decision(hits[0])))
        for hit in hits:
            if verdicts[i]:
                requests.append((q, single_hit_decision(hit)))
            i += 1
    bot.answer_many(requests)


def legacy_verified(bot: Answerer, checker: VlmVerifier, cfg: VerifyConfig) -> VerifyingAnswerer:
    """The default verified path (as :func:`~luma_rag.answer.verify_vlm.verified_answerer`
    builds it), sharing one yes/no cache."""
    return VerifyingAnswerer(bot, checker, cfg, kind_of=lambda _q: None)


def calibrate_on_val(
    val: Sequence[Any], encoder: Any, bot: CachedAnswerer, n: int, seed: int, k_verify: int,
    verify: bool, alpha: float, delta: float, mode: QuestionMode = "as-drawn",
) -> GateRiskCalibration:  # fmt: skip
    """Learn-then-Test on the val split: ρ, score floor and (with ``verify``) verification;
    ``mode``: the questions (:func:`~luma_rag.eval.well_posed.question_set`'s targeted set)."""
    with gallery(val, encoder, "luma-trust-val-") as luma:
        relevance = store_relevance(luma)
        qs = question_set(val, n, seed, mode).targeted
        triples = [(q.text, t.id, f"{q.kind}:{q.answer}") for t, q in qs]
        search = [q.retrieval_text for _, q in qs]
        options: dict[str, Any] = {"relevance": relevance, "search_texts": search}
        if not verify:
            return calibrate_gate(luma, triples, alpha=alpha, delta=delta,
                                  verify_options=(False,), **options)  # fmt: skip
        checker = VlmVerifier(bot)
        vectors = luma.encoder.encode_text(search)
        jobs = [
            (q.text, luma.search(v, 5, rho=0.0).hits) for (_, q), v in zip(qs, vectors, strict=True)
        ]
        prefetch(bot, checker, jobs, k_verify)
        verified = legacy_verified(bot, checker, VerifyConfig(k_verify=k_verify))

        def answer(question: str, hits: Any) -> tuple[str, bool]:
            """The ANSWER's text (from the top hit) and whether verification kept it."""
            d = _over(list(hits))
            out = verified.answer(question, d)
            kept = out.telemetry.get("verification", {}).get("outcome") == "answered"
            return bot.answer(question, d).text, kept

        return calibrate_gate(luma, triples, alpha=alpha, delta=delta, answer=answer,
                              is_right=answer_matches, **options)  # fmt: skip


def answer_matches(text: str, expected: str) -> bool:
    """Whether ``text`` names the value ``expected`` ("kind:word", e.g. ``"count:two"``).

    Both sides are read with :func:`~luma_rag.datasets.questions.parse_answer`: a count is read
    as an int from "two" as from "2" (before session 9 the read int was compared with the
    word, so every count answer counted as wrong in the calibration).
    """
    kind, word = expected.split(":", 1)
    got = parse_answer(text, kind)
    return got is not None and got == parse_answer(word, kind)


def _over(hits: Sequence[Hit]) -> GateDecision:
    """An ANSWER decision over ``hits`` (the top one certified), as the calibration asks."""
    return dataclasses.replace(single_hit_decision(hits[0]), evidence=tuple(hits), hits=tuple(hits))
