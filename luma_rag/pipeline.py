"""The query pipeline, top to bottom: candidates → rerank → bounds → certificate → completeness
→ telemetry.

1. **candidates + rerank** — the backend probes its index (hot HNSW ∪ warm IVF-PQ, or every
   match of a small filter) and rescores every candidate exactly against the raw vectors
   (:meth:`~luma_rag.store.base.StoreBackend.candidates`; one rerank path,
   :meth:`~luma_rag.memory.tiered.TieredMemory.rerank`).
2. **bounds** — τ_i per candidate from r = ρ + ε_q (query side) and ε_i (item drift through the
   bridge) (:func:`~luma_rag.safety.perturbation_bound`).
3. **certificate** — Safe@1 / Safe@k on the intervals, then the pairwise refinement that uses
   one shared query perturbation (:func:`~luma_rag.safety.certify`,
   :func:`~luma_rag.safety.refine_with_geometry`).
4. **completeness** — for each prefix k' <= k, whether anything outside the candidates could
   overtake it under the same bounds (the backend's ``outside_bound`` plus the worst item
   drift and the rounding allowance): ``complete_at``. A Safe@1 query that is not complete at
   1 is rescanned exactly (``SafetyConfig.complete_on_demand``; :meth:`StoreBackend.rescan`)
   and certified again, so the gate never answers from a set an ANN tier may have cut short.

Every τ carries the float32 rounding allowance η (:func:`~luma_rag.safety.score_rounding_error`).
5. **telemetry** — the paper's numbers (γ, δ_k, ε, ζ, ρ) and per-stage timings.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from luma_rag.memory.tiered import TIER_NAMES, WARM, Candidates
from luma_rag.results import Hit, QueryResult, Telemetry
from luma_rag.safety import (
    Certificate,
    SafetyConfig,
    score_rounding_error,
)
from luma_rag.safety.certificate import certify_ranked
from luma_rag.safety.geometry import refine_ranked
from luma_rag.store.base import StoreBackend

__all__ = ["run_query"]

logger = logging.getLogger(__name__)


def run_query(
    backend: StoreBackend,
    query: np.ndarray,
    k: int,
    *,
    filters: Mapping[str, Any] | None,
    rho: float,
    eps_q: float,
    safety: SafetyConfig,
    stages: dict[str, float],
    started: float,
    rho_source: str = "unset",
    notes: list[str] | None = None,
) -> QueryResult:
    """Search ``backend`` for the top ``k`` of a validated query and certify the result.

    Args:
        backend: the store.
        query: float32 (dim,) unit vector, already in the store's space.
        k: validated number of hits.
        filters: metadata filter or None.
        rho: encoder radius for this query. eps_q: bridge drift on the query (0 if unbridged).
        safety: the multiplier of every bound, and whether to rescan exactly on demand.
        stages: seconds already spent per stage (e.g. ``bridge``); completed here.
        started: ``time.perf_counter()`` when the caller started (for ``latency_ms``).
        rho_source: where ``rho`` came from (``"calibrated"``, ``"user"``, ``"unset"``).
        notes: the caller's notes on this query (e.g. ``k`` clamped); the backend's are added.
    """
    mult = safety.multiplier
    r = rho + eps_q
    eta = score_rounding_error(int(query.shape[0]))
    with backend.reading():
        t = time.perf_counter()
        cands = backend.candidates(query, k, filters)  # 1. candidates + exact rerank
        stages["candidates"] = time.perf_counter() - t
        t = time.perf_counter()
        cert, eps_items = _certify(backend, cands, k, r, mult, eta)  # 2. bounds, 3. certificate
        stages["certify"] = time.perf_counter() - t
        t = time.perf_counter()
        complete_at = _complete_at(backend, cands, cert, k, r, mult, eta)  # 4. completeness
        stages["rescan"] = 0.0
        if cert.safe1 and complete_at < 1 and safety.complete_on_demand:
            cands = backend.rescan(query, k, filters)  # the gate would ANSWER: make it complete
            cert, eps_items = _certify(backend, cands, k, r, mult, eta)
            complete_at = _complete_at(backend, cands, cert, k, r, mult, eta)
            stages["rescan"] = time.perf_counter() - t
        complete = cands.keys.size > 0 and complete_at >= min(k, int(cands.keys.size))
        stages["complete"] = time.perf_counter() - t
        t = time.perf_counter()
        top = cands.keys[:k]
        details = backend.details(top.tolist())
        backend.record_hits(top, time.time())
        stages["records"] = time.perf_counter() - t
    hits = [
        Hit(
            id=details[kk].id,
            score=float(s),
            tier=TIER_NAMES[int(tier)],
            rank=rank,
            modality=details[kk].modality,
            metadata=details[kk].metadata,
            text=details[kk].text,
            source=details[kk].source,
        )
        for rank, (kk, s, tier) in enumerate(
            zip(top.tolist(), cands.scores[:k], cands.tiers[:k], strict=True)
        )
        if kk in details
    ]
    notes = list(notes or ())
    if len(hits) < k:  # fewer matches than asked (a filter), or an index probe fell short
        notes.append(f"only {len(hits)} of the k={k} hits asked for were found")
    zeta = cands.zeta[cands.tiers == WARM]
    tel = Telemetry(  # 5. telemetry
        margin_top2=cert.margin_top2,
        delta_k=cert.delta_k,
        epsilon=eps_q,
        epsilon_items=float(eps_items.max(initial=0.0)),
        zeta_mean=float(zeta.sum() / zeta.size) if zeta.size else 0.0,  # = mean(), fewer calls
        zeta_max=float(zeta.max()) if zeta.size else 0.0,
        rho=rho,
        safe1=cert.safe1,
        safek=cert.safek,
        safe_k_min=cert.safe_prefix,
        complete=bool(complete),
        complete_at=int(complete_at),
        rho_source=rho_source,  # type: ignore[arg-type]
        k=k,
        n_candidates=int(cands.keys.size),
        latency_ms=(time.perf_counter() - started) * 1000.0,
        stages_ms={name: seconds * 1000.0 for name, seconds in stages.items()},
        notes=(*notes, *backend.notes),
    )
    return QueryResult(hits=hits, telemetry=tel, certificate=cert)


def _certify(
    backend: StoreBackend, cands: Candidates, k: int, r: float, mult: float, eta: float
) -> tuple[Certificate, np.ndarray]:
    """Per-item τ (+ rounding allowance η), Safe@1 / Safe@k, then the pairwise refinement.

    The arrays are the backend's own (finite exact scores sorted descending, drifts >= 0, a
    validated r), so the unvalidated cores of :func:`certify` / :func:`refine_with_geometry`
    run on them: same numbers, a fraction of the small-array calls.
    """
    eps_items = backend.item_drift(cands.keys)
    s = cands.scores.astype(np.float64)
    tau = (r + eps_items + r * eps_items) * (mult / 2.0) + eta  # perturbation_bound + η
    cert = certify_ranked(s, tau, k)
    if cands.keys.size > 1:  # the shared query perturbation: a sharper, still sound test
        cert = refine_ranked(cert, s, cands.vectors, r, eps_items, mult, 256, eta)
    return cert, eps_items


def _complete_at(
    backend: StoreBackend,
    cands: Candidates,
    cert: Certificate,
    k: int,
    r: float,
    mult: float,
    eta: float,
) -> int:
    """Largest k' <= k whose top k' no outside item can overtake under the same bounds."""
    kk = min(k, int(cands.keys.size))
    if kk == 0:
        return 0
    if math.isinf(cands.outside_bound):  # -inf: nothing was left out; +inf: not certifiable
        return kk if cands.outside_bound < 0 else 0
    e = backend.worst_drift()
    slack = (r + e + r * e) * (mult / 2.0) + eta  # perturbation_bound(r, [e], mult) + η
    rival = cands.outside_bound + slack
    floors = np.minimum.accumulate(cands.scores[:kk].astype(np.float64) - cert.tau[:kk])
    ok = floors >= rival  # completeness(f, [rival]) for every prefix floor f, at once
    return kk if bool(ok.all()) else int(np.argmin(ok))
