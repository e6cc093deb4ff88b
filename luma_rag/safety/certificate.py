"""Safe@1 / Safe@k verdicts on a ranked candidate list, and completeness beyond it.

Safe@k ⇔ ``min_{i≤k}(s_i − τ_i) > max_{j>k}(s_j + τ_j)`` (strict: ties are never safe).
The maths is stated in :mod:`luma_rag.safety`; everything here is pure float64 numpy.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from luma_rag._checks import check_k, is_real
from luma_rag._json import to_jsonable
from luma_rag.errors import InvalidInputError
from luma_rag.safety.bounds import as_vector, check_radius

__all__ = ["Certificate", "certify", "certify_ranked", "completeness", "ranked", "smallest_safe_k"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Certificate:
    """The Safe@1 / Safe@k verdict for one ranked candidate list, with its numbers.

    Attributes:
        safe1: Safe@1: no perturbation within τ changes the top-1 item.
        safek: Safe@k: no perturbation within τ changes the top-k set (as a set).
        k: The k it was certified for (as asked; may exceed ``n``).
        n: Number of candidates.
        margin_top2: γ = s_1 − s_2 (the paper's telemetry); NaN when ``n < 2``.
        delta_k: δ_k = s_k − s_{k+1}; NaN when ``n <= k``.
        tau: Per-candidate bound, float64 ``(n,)``, read-only.
        slack_1: ``(s_1 − τ_1) − max_{j≥2}(s_j + τ_j)``; Safe@1 ⇔ ``slack_1 > 0``.
            ``+inf`` when ``n == 1`` (no competitor), NaN when ``n == 0``.
        slack_k: ``min_{i≤k}(s_i − τ_i) − max_{j>k}(s_j + τ_j)``; Safe@k ⇔ ``slack_k > 0``.
            ``+inf`` when ``1 <= n <= k``, NaN when ``n == 0``.
        floor_k: ``min_{i≤min(k,n)}(s_i − τ_i)``: the lowest any of the top-k can fall. Pass it
            as ``kth_score`` to :func:`completeness` to extend Safe@k to items outside the
            candidate set. NaN when ``n == 0``.
        safe_prefix: The smallest ``k' <= k`` with Safe@k' (what the gate widens to), or
            ``None`` when there is none.

    ``eq=False``: certificates compare by identity (they hold an array).
    """

    safe1: bool
    safek: bool
    k: int
    n: int
    margin_top2: float
    delta_k: float
    tau: NDArray[np.float64]
    slack_1: float
    slack_k: float
    floor_k: float
    safe_prefix: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary for result metadata; NaN and ±inf become ``None``."""

        summary = to_jsonable(
            {
                "safe1": self.safe1,
                "safek": self.safek,
                "k": self.k,
                "n": self.n,
                "margin_top2": self.margin_top2,
                "delta_k": self.delta_k,
                "slack_1": self.slack_1,
                "slack_k": self.slack_k,
                "floor_k": self.floor_k,
                "safe_prefix": self.safe_prefix,
            }
        )
        return {**summary, "tau": [float(t) for t in self.tau]}


def ranked(scores: ArrayLike, tau: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Validate a ranked list: finite, same shape ``(n,)``, scores descending, ``tau >= 0``."""
    s = as_vector("scores", scores)
    t = as_vector("tau", tau)
    if s.shape != t.shape:
        raise InvalidInputError(
            f"scores and tau must have the same shape (n,), got {s.shape} and {t.shape}; "
            "compute tau for exactly the ranked candidates"
        )
    if not np.all(np.isfinite(s)):
        raise InvalidInputError("scores contain NaN or infinity; rerank with finite exact scores")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise InvalidInputError("tau must be finite and >= 0; build it with perturbation_bound()")
    if s.size > 1 and not np.all(s[:-1] >= s[1:]):
        raise InvalidInputError(
            "scores must be sorted in descending order (ties allowed); sort candidates and "
            "their tau together before certifying"
        )
    return s, t


def _prefix_slacks(
    scores: NDArray[np.float64], tau: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Floors, slacks and Safe@k' flags for every prefix length ``k' = 1..n``.

    Args:
        scores: Sorted exact scores, float64 ``(n,)`` with ``n >= 1``.
        tau: Bounds, float64 ``(n,)``.

    Returns:
        ``(floor, slack, safe)``, each of shape ``(n,)`` with entry ``k'-1`` for prefix ``k'``:
        ``floor = min_{i≤k'}(s_i − τ_i)`` (float64), ``slack = floor − max_{j>k'}(s_j + τ_j)``
        (float64, ``+inf`` at ``k' = n``), ``safe = floor > max_{j>k'}(s_j + τ_j)`` (bool).
    """
    floor = np.minimum.accumulate(scores - tau)
    ceiling = np.maximum.accumulate((scores + tau)[::-1])[::-1]
    rival = np.append(ceiling[1:], -np.inf)  # best competitor outside each prefix
    safe = floor > rival
    with np.errstate(over="ignore"):
        slack = floor - rival
    return floor, slack, safe


def certify(scores: ArrayLike, tau: ArrayLike, k: int) -> Certificate:
    """Certify a ranked candidate list at 1 and at ``k``.

    Safe@1 ⇔ ``s_1 − τ_1 > max_{j≥2}(s_j + τ_j)``; Safe@k ⇔
    ``min_{i≤k}(s_i − τ_i) > max_{j>k}(s_j + τ_j)``. Strict, so ties are not safe.

    With ``1 <= n <= k`` there is no competitor and ``safek`` is True (the set of all candidates
    cannot change); ``safe1`` is True iff ``n == 1`` or the Safe@1 condition holds. With
    ``n == 0`` both are False and every margin is NaN. The certificate covers the candidate set
    only; whether something outside it could intrude is :func:`completeness`.

    Args:
        scores: Exact scores of the candidates, shape ``(n,)``, sorted descending, finite.
        tau: Per-candidate bound from :func:`perturbation_bound`, shape ``(n,)``, ``>= 0``.
        k: Size of the set to certify, ``>= 1``.

    Returns:
        The :class:`Certificate`.

    Raises:
        InvalidInputError: unsorted or non-finite scores, negative or non-finite tau, shapes
            that differ or are not 1-D, ``k < 1`` or not an integer.
    """
    k = check_k(k)
    s, t = ranked(scores, tau)
    return certify_ranked(s, t.copy(), k)


def certify_ranked(s: NDArray[np.float64], t: NDArray[np.float64], k: int) -> Certificate:
    """:func:`certify` on inputs already known valid (the query pipeline's own arrays).

    Args:
        s: float64 (n,) finite exact scores, sorted descending. t: float64 (n,) finite τ >= 0,
            owned by the certificate from here on (made read-only). k: int >= 1.
    """
    n = int(s.size)
    nan = float("nan")
    t.flags.writeable = False
    if n == 0:
        return Certificate(False, False, k, 0, nan, nan, t, nan, nan, nan, None)

    floor, slack, safe = _prefix_slacks(s, t)
    kk = min(k, n)
    hits = np.flatnonzero(safe[:kk])
    cert = Certificate(
        safe1=bool(safe[0]),
        safek=bool(safe[kk - 1]),
        k=k,
        n=n,
        margin_top2=float(s[0] - s[1]) if n >= 2 else nan,
        delta_k=float(s[k - 1] - s[k]) if n > k else nan,
        tau=t,
        slack_1=float(slack[0]),
        slack_k=float(slack[kk - 1]),
        floor_k=float(floor[kk - 1]),
        safe_prefix=int(hits[0]) + 1 if hits.size else None,
    )
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "certify n=%d k=%d safe1=%s safek=%s slack_1=%.3g slack_k=%.3g",
            n,
            k,
            cert.safe1,
            cert.safek,
            cert.slack_1,
            cert.slack_k,
        )
    return cert


def smallest_safe_k(scores: ArrayLike, tau: ArrayLike, k_max: int) -> int | None:
    """Smallest ``k'`` in ``1..k_max`` with Safe@k', or ``None``.

    This is what the answer gate widens to when Safe@1 fails. Vectorised: one prefix minimum
    of ``s − τ`` and one suffix maximum of ``s + τ``, O(n).

    Note that Safe@n holds trivially (no competitor is left), so with ``k_max >= n >= 1`` the
    answer is at most ``n``; choose ``k_max < n`` when "all candidates" is not a useful answer.

    Args:
        scores: Exact scores, shape ``(n,)``, sorted descending, finite.
        tau: Per-candidate bound, shape ``(n,)``, ``>= 0``.
        k_max: Largest set size the caller accepts, ``>= 1``.

    Returns:
        The smallest safe ``k'``, or ``None`` if no ``k' <= k_max`` is safe (always ``None``
        when ``n == 0``).

    Raises:
        InvalidInputError: as :func:`certify`, with ``k_max`` in place of ``k``.
    """
    k_max = check_k(k_max, "k_max")
    s, t = ranked(scores, tau)
    if s.size == 0:
        return None
    _, _, safe = _prefix_slacks(s, t)
    hits = np.flatnonzero(safe[:k_max])
    return int(hits[0]) + 1 if hits.size else None


def completeness(kth_score: float, outside_upper_bounds: ArrayLike, kth_tau: float = 0.0) -> bool:
    """Whether no item outside the candidate set can beat the k-th candidate.

    True iff ``kth_score − kth_tau >= max(outside_upper_bounds)``; an empty set of bounds is
    complete. A tie with an outside bound counts as complete (a tie does not beat).

    The caller supplies bounds that already contain every slack it wants counted:

    * exact-retrieval completeness (is the returned top-k the true top-k?): ``kth_score = s_k``,
      ``kth_tau = 0`` and, per unscanned region, an upper bound on the exact score of anything
      in it — e.g. ADC score + ζ_max for a scanned IVF list, ⟨q, centroid⟩ + largest residual
      norm for a list that was not scanned;
    * completeness under perturbation (Safe@k extended to the whole collection): pass
      ``kth_score = Certificate.floor_k`` (``min_{i≤k}(s_i − τ_i)``) and outside bounds with
      each region's own τ added. ``kth_score = s_k`` with ``kth_tau = τ_k`` is the per-item
      reading of the paper.

    ``+inf`` is a valid bound (an unbounded region, e.g. an HNSW miss) and makes the answer
    False.

    Args:
        kth_score: Score of the k-th candidate (or a floor for the top k), finite.
        outside_upper_bounds: Upper bounds on outside items, shape ``(m,)``, any real dtype;
            no NaN.
        kth_tau: Slack subtracted from ``kth_score``; finite, ``>= 0``.

    Returns:
        Whether nothing outside can beat the k-th.

    Raises:
        InvalidInputError: non-finite ``kth_score``, bad ``kth_tau``, NaN or non-1-D bounds.
    """
    if not is_real(kth_score) or not math.isfinite(kth_score):
        raise InvalidInputError(f"kth_score must be a finite number, got {kth_score!r}")
    kth_tau = check_radius("kth_tau", kth_tau)
    bounds = as_vector("outside_upper_bounds", outside_upper_bounds)
    if np.any(np.isnan(bounds)):
        raise InvalidInputError(
            "outside_upper_bounds contain NaN; use +inf for a region that cannot be bounded"
        )
    if bounds.size == 0:
        return True
    return bool(float(kth_score) - kth_tau >= float(bounds.max()))
