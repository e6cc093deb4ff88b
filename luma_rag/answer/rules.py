"""The gate's rules, pure: from one query result (and a relevance verdict) to a decision.

NOT_IN_MEMORY when the relevance verdict says the evidence is not relevant; ANSWER when the
result is Safe@1 and complete at 1; WIDEN to the smallest safe ``k'`` (complete at ``k'``)
that leaves a candidate out; else CLARIFY. See :mod:`luma_rag.answer.gate` for why, and for
the store-backed :class:`~luma_rag.answer.gate.GatedRetriever` that calls :func:`decide`.
"""

from __future__ import annotations

import dataclasses
import math

from luma_rag.answer.clarify import clarifying_question
from luma_rag.answer.decision import (
    NOT_IN_MEMORY_QUESTION,
    GateConfig,
    GateDecision,
    GateNumbers,
)
from luma_rag.errors import InvalidInputError
from luma_rag.relevance import RelevanceVerdict
from luma_rag.results import Hit, QueryResult

__all__ = ["decide"]


def _numbers(
    result: QueryResult, *, slack: float, delta_k: float, safe_k: int | None, k_checked: int
) -> GateNumbers:
    tel = result.telemetry
    return GateNumbers(
        margin_top2=float(tel.margin_top2),
        delta_k=float(delta_k),
        slack=float(slack),
        epsilon=float(tel.epsilon),
        epsilon_items=float(tel.epsilon_items),
        zeta_mean=float(tel.zeta_mean),
        zeta_max=float(tel.zeta_max),
        rho=float(tel.rho),
        safe1=bool(tel.safe1),
        safe_k=safe_k,
        complete=bool(tel.complete),
        n_candidates=int(result.certificate.n),
        k_checked=int(k_checked),
        complete_at=_complete_at(result),
        rho_source=str(tel.rho_source),
        top_exact=_complete_at(result) >= 1,
    )


def _complete_at(result: QueryResult) -> int:
    """Largest k' the result is complete at (``complete`` alone implies the full k)."""
    tel, cert = result.telemetry, result.certificate
    full = min(int(cert.k), int(cert.n)) if tel.complete else 0
    return max(int(tel.complete_at), full)


def _widened_slack(result: QueryResult, kp: int) -> float:
    """Slack of the top-``kp`` set: exact at the certified ``k``, else from the hits.

    Beyond the returned hits only τ is known, so their rival ``s + τ`` is bounded by the last
    hit's score plus their largest τ: exact when τ is uniform, a lower bound on the slack
    otherwise.
    """
    cert = result.certificate
    if kp == min(cert.k, cert.n):
        return float(cert.slack_k)
    scores = [h.score for h in result.hits]
    tau = [float(t) for t in cert.tau]
    m = len(scores)
    floor = min(s - t for s, t in zip(scores[:kp], tau[:kp], strict=True))
    rivals = [s + t for s, t in zip(scores[kp:m], tau[kp:m], strict=True)]
    if cert.n > m:
        rivals.append(scores[-1] + max(tau[m:]))
    return floor - max(rivals) if rivals else math.inf


def _leading(result: QueryResult, limit: int) -> tuple[Hit, ...]:
    """Candidates that could be the top-1 under the bounds (at least two), best first."""
    hits, tau = result.hits, result.certificate.tau
    if len(hits) <= 2:
        return tuple(hits)
    top_floor = hits[0].score - float(tau[0])
    lead = [h for i, h in enumerate(hits) if i == 0 or h.score + float(tau[i]) >= top_floor]
    if len(lead) < 2:
        lead = list(hits[:2])
    return tuple(lead[:limit])


def decide(
    result: QueryResult,
    config: GateConfig | None = None,
    relevance: RelevanceVerdict | None = None,
) -> GateDecision:
    """Decide ANSWER, WIDEN, CLARIFY or NOT_IN_MEMORY for one query result. Pure.

    NOT_IN_MEMORY when ``relevance`` says the evidence is not relevant. ANSWER when the
    result is Safe@1 and complete at 1; else WIDEN to the certificate's ``safe_prefix`` (the
    smallest safe ``k'``, computed by the engine over all reranked candidates) when it is
    ``<= k_max`` and leaves a candidate out; else CLARIFY. The certificate checks prefixes up
    to the ``k`` the result was fetched with only; when that is below ``min(k_max, n − 1)``
    the CLARIFY is returned with ``settled=False`` (see the module docstring).

    Args:
        result: A query's hits, telemetry and certificate.
        config: Gate settings (default :class:`GateConfig`).
        relevance: The relevance verdict for this query (None: not checked).

    Returns:
        The :class:`GateDecision`.

    Raises:
        InvalidInputError: the result holds more hits than its certificate covers.
    """
    decision = _decide(result, config if config is not None else GateConfig(), relevance)
    return dataclasses.replace(decision, relevance=relevance)


def _decide(
    result: QueryResult, cfg: GateConfig, relevance: RelevanceVerdict | None
) -> GateDecision:
    cert, hits = result.certificate, list(result.hits)
    n = int(cert.n)
    if len(hits) > n:
        raise InvalidInputError(
            f"the result has {len(hits)} hits but its certificate covers {n} candidates; "
            "certify the full ranked candidate list"
        )
    widen_limit = max(0, min(cfg.k_max, n - 1))  # k' = n leaves nothing out: vacuous
    k_checked = min(cert.k, widen_limit, len(hits))
    all_hits = tuple(hits)
    if not hits:
        question = clarifying_question([])
        numbers = _numbers(result, slack=math.nan, delta_k=math.nan, safe_k=None, k_checked=0)
        return GateDecision(
            "clarify",
            0,
            (),
            "no candidates: the memory holds nothing that matches",
            numbers,
            question,
            hits=all_hits,
        )
    if relevance is not None and not relevance.relevant:
        numbers = _numbers(
            result, slack=cert.slack_1, delta_k=cert.delta_k, safe_k=None, k_checked=0
        )
        return GateDecision(
            "not_in_memory", 0, (), relevance.reason, numbers, NOT_IN_MEMORY_QUESTION, hits=all_hits
        )
    complete_at = _complete_at(result)
    if result.telemetry.safe1 and complete_at >= 1:
        numbers = _numbers(result, slack=cert.slack_1, delta_k=cert.delta_k, safe_k=1, k_checked=1)
        reason = (
            f"Safe@1: the top item's lower bound beats every rival's upper bound "
            f"(margin γ={cert.margin_top2:.4g}, slack {cert.slack_1:.4g})"
        )
        return GateDecision("answer", 1, tuple(hits[: cfg.k]), reason, numbers, hits=all_hits)

    kp = cert.safe_prefix
    if kp is not None and 1 < kp <= min(k_checked, complete_at):
        slack = _widened_slack(result, kp)
        delta = hits[kp - 1].score - hits[kp].score if kp < len(hits) else cert.delta_k
        numbers = _numbers(result, slack=slack, delta_k=delta, safe_k=kp, k_checked=k_checked)
        reason = (
            f"not Safe@1 (margin γ={cert.margin_top2:.4g} within the bounds), but the top "
            f"{kp} are Safe@{kp}: no perturbation within the bounds changes that set"
        )
        return GateDecision("widen", kp, tuple(hits[:kp]), reason, numbers, hits=all_hits)

    settled = cert.k >= widen_limit
    lead = _leading(result, cfg.max_options)
    numbers = _numbers(
        result, slack=cert.slack_1, delta_k=cert.delta_k, safe_k=None, k_checked=k_checked
    )
    if result.telemetry.safe1:
        reason = "Safe@1 among the candidates, but they are not proven complete; not answering"
    elif settled:
        reason = (
            f"no set of k' <= {widen_limit} results is stable (Safe@1 slack "
            f"{cert.slack_1:.4g}); the leading candidates are too close to tell apart"
        )
    else:
        reason = (
            f"not Safe@1 and no safe k' <= {k_checked}; the result was fetched with "
            f"k={cert.k}, so re-query with k={cfg.k_max} to check larger sets"
        )
    return GateDecision(
        "clarify", 0, lead, reason, numbers, clarifying_question(lead), settled, hits=all_hits
    )
