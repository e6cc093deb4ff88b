"""The pairwise (geometric) refinement of Safe@1 / Safe@k: one query perturbation for all."""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike

from luma_rag.errors import InvalidInputError
from luma_rag.safety.bounds import as_vector, check_radius
from luma_rag.safety.certificate import Certificate, ranked

__all__ = ["refine_with_geometry"]


def refine_with_geometry(
    certificate: Certificate,
    scores: ArrayLike,
    vectors: ArrayLike,
    r: float,
    e: ArrayLike,
    multiplier: float = 2.0,
    max_rows: int = 256,
) -> Certificate:
    """Sharpen Safe@1 / Safe@k using that one query perturbation moves every score together.

    With a shared query perturbation Δu (‖Δu‖ ≤ r) and item perturbations Δv_i (‖Δv_i‖ ≤ e_i),
    for unit u, v_i::

        (s'_i − s'_j) − (s_i − s_j) = ⟨Δu, v_i − v_j⟩ + ⟨u + Δu, Δv_i − Δv_j⟩
        |…| ≤ r·‖v_i − v_j‖ + (1 + r)(e_i + e_j)

    so item i stays ahead of j when s_i − s_j exceeds that bound (scaled by multiplier / 2).
    Since ‖v_i − v_j‖ ≤ 2 this is never stricter than the per-item test of :func:`certify`
    (which charges 2r), and it is sound for the same perturbations. Safe@k' holds when every
    pair (i ≤ k', j > k') passes.

    Args:
        certificate: the per-item certificate of the same ranking (its τ, ``floor_k`` and the
            completeness reading built on them are kept).
        scores: exact scores, float (n,), sorted descending.
        vectors: the candidates' unit vectors, float (n, d), in score order.
        r: query-side radius (ρ + ε_q). e: item-side radii (n,).
        max_rows: refine prefixes up to this length only (cost O(max_rows · n)); longer
            prefixes keep the per-item verdict, which is sound and never looser.

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
    kk = min(certificate.k, n)  # only prefixes up to k are certified: rows i < kk suffice
    rows = min(kk, max(1, int(max_rows)))
    gram = np.clip(v[:rows] @ v.T, -1.0, 1.0)
    dist = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * gram))
    item = radii[:rows, None] + radii[None, :]
    need = (r * dist + (1.0 + r) * item) * (float(multiplier) / 2.0)
    margin = s[:rows, None] - s[None, :] - need  # margin[i, j]: how safely i stays ahead of j
    # slack of prefix p = min over i < p <= j of margin[i, j]; +inf when nothing is outside
    slack = np.full(rows, np.inf)
    for p in range(1, min(rows, n - 1) + 1):
        slack[p - 1] = float(margin[:p, p:].min())
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
