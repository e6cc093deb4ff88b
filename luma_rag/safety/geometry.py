"""The pairwise (geometric) refinement of Safe@1 / Safe@k: one query perturbation for all.

Distances between candidates are upper bounds computed in float64 from one Gram product with
a proven summation-error allowance (:func:`pair_distances`) — never as float32
``sqrt(2 − 2⟨v_i, v_j⟩)``, which cancels to 0 for items closer than ~1e-4 and would certify
near-duplicates that a query move towards the runner-up flips — and every pairwise
comparison carries the scores' rounding allowance (:func:`score_rounding_error`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from luma_rag.errors import InvalidInputError
from luma_rag.safety.bounds import as_vector, check_radius, score_rounding_error
from luma_rag.safety.certificate import Certificate, ranked

__all__ = ["pair_distances", "refine_ranked", "refine_with_geometry"]


def refine_with_geometry(
    certificate: Certificate,
    scores: ArrayLike,
    vectors: ArrayLike,
    r: float,
    e: ArrayLike,
    multiplier: float = 2.0,
    max_rows: int = 256,
    *,
    score_dtype: Any = np.float32,
) -> Certificate:
    """Sharpen Safe@1 / Safe@k using that one query perturbation moves every score together.

    With a shared query perturbation Δu (‖Δu‖ ≤ r) and item perturbations Δv_i (‖Δv_i‖ ≤ e_i),
    for a unit query u::

        (s'_i − s'_j) − (s_i − s_j) = ⟨Δu, v_i − v_j⟩ + ⟨u + Δu, Δv_i − Δv_j⟩
        |…| ≤ r·‖v_i − v_j‖ + (1 + r)(e_i + e_j)

    so item i stays ahead of j when s_i − s_j exceeds that bound (scaled by multiplier / 2)
    plus the rounding allowance 2η of the two float scores (:func:`score_rounding_error`).
    ``‖v_i − v_j‖`` is bounded from above in float64 (:func:`pair_distances`) — never taken
    as float32 ``sqrt(2 − 2⟨v_i, v_j⟩)``, which collapses to 0 for near-duplicates and would
    certify a pair that any query move towards the runner-up flips.
    Since ‖v_i − v_j‖ ≤ 2 (up to rounding) this is never much stricter than the per-item test
    of :func:`certify`, and it is sound for the same perturbations. Safe@k' holds when every
    pair (i ≤ k', j > k') passes.

    Args:
        certificate: the per-item certificate of the same ranking (its τ, ``floor_k`` and the
            completeness reading built on them are kept).
        scores: exact scores, float (n,), sorted descending, as computed in ``score_dtype``.
        vectors: the candidates' (unit) vectors, float (n, d), in score order.
        r: query-side radius (ρ + ε_q). e: item-side radii (n,).
        multiplier: scale of the perturbation terms (2.0: sound).
        max_rows: refine prefixes up to this length only (cost O(max_rows · n · d)); longer
            prefixes keep the per-item verdict, which is sound and never looser.
        score_dtype: dtype the scores were computed in; sets the rounding allowance.

    Returns:
        A certificate whose safe1 / safek / slack_1 / slack_k / safe_prefix come from the
        pairwise test.
    """
    s, _ = ranked(scores, certificate.tau)  # validates order, finiteness and shapes
    v = np.asarray(vectors, dtype=np.float64)
    radii = as_vector("e", e)
    r = check_radius("r", r)
    n = s.size
    if v.ndim != 2 or v.shape[0] != n or radii.shape != (n,):
        raise InvalidInputError(
            f"scores ({n},), vectors (n, d) and e (n,) must agree; got {v.shape} and {radii.shape}"
        )
    if n == 0:
        return certificate
    eta = score_rounding_error(max(1, v.shape[1]), score_dtype)
    return refine_ranked(certificate, s, v, r, radii, float(multiplier), max_rows, eta)


def refine_ranked(
    certificate: Certificate,
    s: np.ndarray,
    v: np.ndarray,
    r: float,
    radii: np.ndarray,
    multiplier: float,
    max_rows: int,
    eta: float,
) -> Certificate:
    """:func:`refine_with_geometry` on inputs already known valid (the pipeline's own arrays).

    Args:
        certificate: the per-item certificate of the ranking. s: float64 (n,) sorted
            descending, n >= 1. v: (n, d) vectors (float32 or float64; float32 values).
        r: query radius >= 0. radii: float64 (n,) item radii >= 0. multiplier: > 0.
        max_rows: refine prefixes up to this length. eta: the scores' rounding allowance.
    """
    n = s.size
    kk = min(certificate.k, n)  # only prefixes up to k are certified: rows i < kk suffice
    rows = min(kk, max(1, int(max_rows)))
    width = min(rows, n - 1)
    if r == 0 and not radii.any():
        # need[i, j] = 2η for every pair, and fl(fl(s_i − s_j) − 2η) is monotone in s_i and
        # -s_j, so the minimum over i < p <= j sits at (p − 1, p): the same float64 slack as
        # the full matrix below, in O(n) instead of O(rows · n).
        slack = np.full(rows, np.inf)
        slack[:width] = (s[:width] - s[1 : width + 1]) - 2.0 * eta
    else:
        slack = _pair_slack(s, v, r, radii, multiplier, eta, rows, width)
    safe = slack > 0
    prefix = np.flatnonzero(safe)
    if rows < kk:  # prefixes beyond max_rows keep the per-item verdict
        safe_prefix = int(prefix[0]) + 1 if prefix.size else certificate.safe_prefix
        return dataclasses.replace(
            certificate,
            safe1=bool(safe[0]),
            slack_1=float(slack[0]),
            safe_prefix=safe_prefix,
        )
    return dataclasses.replace(
        certificate,
        safe1=bool(safe[0]),
        safek=bool(safe[kk - 1]),
        slack_1=float(slack[0]),
        slack_k=float(slack[kk - 1]),
        safe_prefix=int(prefix[0]) + 1 if prefix.size else None,
    )


def _pair_slack(
    s: np.ndarray,
    v: np.ndarray,
    r: float,
    radii: np.ndarray,
    multiplier: float,
    eta: float,
    rows: int,
    width: int,
) -> np.ndarray:
    """float64 (rows,): slack of each prefix p <= rows, min over i < p <= j of the pair margin."""
    item = radii[:rows, None] + radii[None, :]
    need = (1.0 + r + eta) * item
    if r > 0:  # r = 0 (no query radius): r·dist is 0 for every (finite) distance, skip the Gram
        need += r * pair_distances(np.asarray(v, dtype=np.float64), rows)
    need = need * (float(multiplier) / 2.0) + 2.0 * eta
    margin = s[:rows, None] - s[None, :] - need  # margin[i, j]: how safely i stays ahead of j
    # slack of prefix p = min over i < p <= j of margin[i, j]; +inf when nothing is outside
    suffix = np.minimum.accumulate(margin[:, ::-1], axis=1)[:, ::-1]  # min over j' >= j
    cols = np.full((rows, rows), np.inf)
    cols[:, :width] = suffix[:, 1 : width + 1]  # column p-1: min over j >= p
    return np.diagonal(np.minimum.accumulate(cols, axis=0)).copy()  # min over i < p


def pair_distances(v: np.ndarray, rows: int) -> np.ndarray:
    """Upper bounds on ‖v_i − v_j‖ for i < ``rows`` and every j, with one float64 Gram product.

    Float32 entries multiply exactly in float64 (24 + 24 < 53 bits), so the only error in
    ‖v_i‖² + ‖v_j‖² − 2⟨v_i, v_j⟩ is the float64 summation of d products, each of the three
    terms off by at most γ_d·‖v_i‖‖v_j‖ (γ_d = d·u / (1 − d·u), u = 2⁻⁵³, for any summation
    order, FMA or blocking). Adding 4·γ_d·max‖v‖² (+ a few ulps for the final combination)
    before the square root therefore bounds the true squared distance from above, also for
    near-duplicates where the difference cancels (the bound then is ~sqrt(4γ_d) ≈ 5e-7 at
    d = 512, far below the float32 score allowance η).

    Args:
        v: float64 (n, d) vectors that were float32 (exactly representable).
        rows: how many leading rows i to return.

    Returns:
        float64 (rows, n), each entry ≥ the exact distance.
    """
    d = v.shape[1]
    sq = np.einsum("jd,jd->j", v, v)
    gram = v[:rows] @ v.T
    u = 2.0**-53
    gamma = d * u / (1.0 - d * u)
    top = float(sq.max(initial=0.0))
    slack = 4.0 * gamma * top + 8.0 * u * (2.0 * top + 2.0 * top)
    d2 = sq[:rows, None] + sq[None, :] - 2.0 * gram
    return np.sqrt(np.maximum(d2, 0.0) + slack) * (1.0 + 4.0 * u)
