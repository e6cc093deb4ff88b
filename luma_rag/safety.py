"""Safe@k certificates: per-candidate perturbation bounds, Safe@1 / Safe@k, completeness.

A retrieval result is *safe at k* when no perturbation of the query and of the items within
their stated radii can change the top-k set. The radii come from three sources (see
``DESIGN.md``, "Safe@k — the certificate, stated soundly"):

* ε — bridge drift, on the query (ε_q) and on items projected through the bridge (ε_i);
* ζ — product-quantization error of an item whose score comes from codes (ζ_i);
* ρ — the encoder radius: how far two inputs that mean the same land apart.

With a query-side radius ``r = ρ + ε_q`` and item-side radii ``e_i = ε_i + ζ_i``, the corrected
Lemma 1 bounds how far each score can move: for unit ``u``, ``v`` and any ``Δu``, ``Δv``,

    |⟨u+Δu, v+Δv⟩ − ⟨u, v⟩| = |⟨Δu, v⟩ + ⟨u, Δv⟩ + ⟨Δu, Δv⟩| ≤ ‖Δu‖ + ‖Δv‖ + ‖Δu‖·‖Δv‖

(the paper drops the last term). Every candidate then has an interval ``[s_i − τ_i, s_i + τ_i]``
holding its perturbed score, and the certificate compares intervals:

* Safe@1 ⇔ ``s_1 − τ_1 > max_{j≥2} (s_j + τ_j)``;
* Safe@k ⇔ ``min_{i≤k} (s_i − τ_i) > max_{j>k} (s_j + τ_j)``.

Inequalities are strict, so tied scores are never safe. With a uniform τ = ε + ζ these are the
paper's ``γ > 2(ε+ζ)`` and ``δ_k > 2(ε+ζ)``.

Everything here is pure numpy on float64 and allocation-light; it runs once per query.

Floating point. Scores arrive as float32 inner products, so two items whose exact scores differ
by less than the rounding of a dot product may come back in the wrong order. Every comparison
therefore carries a rounding allowance η (:func:`score_rounding_error`): the worst-case error of
a length-``d`` float32 dot product of vectors of norm at most ``1 + d·u`` (Higham's γ_d bound,
any summation order), which callers add to τ. Distances between candidates are computed from
the vector differences in float64 (never as ``sqrt(2 − 2⟨v_i, v_j⟩)``, which cancels to 0 for
items closer than ~1e-4 in float32).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from luma_rag._config import ConfigBase, check
from luma_rag.errors import InvalidInputError

__all__ = [
    "Certificate",
    "SafetyConfig",
    "certify",
    "completeness",
    "perturbation_bound",
    "refine_with_geometry",
    "score_rounding_error",
    "smallest_safe_k",
]

logger = logging.getLogger(__name__)


def _is_real(value: object) -> bool:
    """Whether ``value`` is a real number (``bool`` excluded)."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


@dataclass(frozen=True)
class SafetyConfig(ConfigBase):
    """Settings of the Safe@k certificate.

    Attributes:
        multiplier: Scale of every bound: τ is multiplied by ``multiplier / 2``. ``2.0``
            reproduces the paper and is the smallest value for which the certificate is a
            guarantee; values below 2 trade soundness for coverage, values above add slack
            (e.g. for radii that are estimates). Must be finite and ``> 0``.
        rho: Encoder radius ρ used for queries given as raw vectors (no encoder attached, so
            nothing calibrated it). ``0.0`` means such queries are treated as exact.
            Must be finite and ``>= 0``.
        complete_on_demand: When a query is Safe@1 (the gate would ANSWER) but its candidate
            set is not proven complete (an HNSW or IVF-PQ tier may have missed a better item),
            rescan the allowed items exactly from the raw vectors and certify again, so that
            ``safe1 and complete`` means the certified top-1 is the store's exact top-1.
            ``False`` skips the rescan (``complete`` is then reported as it is).

    Example:
        >>> cfg = SafetyConfig(multiplier=2.0, rho=0.05)
        >>> SafetyConfig.from_json(cfg.to_json()) == cfg
        True
    """

    multiplier: float = 2.0
    rho: float = 0.0
    complete_on_demand: bool = True

    def __post_init__(self) -> None:
        check(
            _is_real(self.multiplier) and math.isfinite(self.multiplier) and self.multiplier > 0,
            f"SafetyConfig.multiplier must be a finite number > 0 (2.0 reproduces the paper), "
            f"got {self.multiplier!r}",
        )
        check(
            _is_real(self.rho) and math.isfinite(self.rho) and self.rho >= 0,
            f"SafetyConfig.rho must be a finite number >= 0 (0.0 treats raw-vector queries as "
            f"exact), got {self.rho!r}",
        )
        check(
            isinstance(self.complete_on_demand, bool),
            f"SafetyConfig.complete_on_demand must be True or False, "
            f"got {self.complete_on_demand!r}",
        )
        # Store plain floats so to_json() is stable whatever numeric type came in.
        object.__setattr__(self, "multiplier", float(self.multiplier))
        object.__setattr__(self, "rho", float(self.rho))


def _as_vector(name: str, values: ArrayLike) -> NDArray[np.float64]:
    """Convert ``values`` to a 1-D float64 array or raise :class:`InvalidInputError`."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{name} must be a 1-D array of numbers ({e})") from e
    if array.ndim != 1:
        raise InvalidInputError(f"{name} must be 1-D with shape (n,), got shape {array.shape}")
    return array


def _check_radius(name: str, value: float) -> float:
    """Return ``value`` as a float after checking it is a finite number ``>= 0``."""
    if not _is_real(value) or not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


_UNIT_ROUNDOFF = {np.dtype(np.float32): 2.0**-24, np.dtype(np.float64): 2.0**-53}


def score_rounding_error(dim: int, dtype: Any = np.float32) -> float:
    """Worst-case rounding error of one score ``⟨q, v⟩`` computed in ``dtype``.

    For a length-``d`` dot product in floating point with unit roundoff ``u``, any summation
    order gives ``|fl(⟨q, v⟩) − ⟨q, v⟩| <= γ_d · Σ|q_i v_i| <= γ_d ‖q‖‖v‖`` with
    ``γ_d = d·u / (1 − d·u)`` (Higham, *Accuracy and Stability*, §3.1). Stored unit vectors are
    themselves unit only up to rounding, ``‖v‖ <= 1 + γ_d``; both norms are charged. The
    result is doubled as a safety factor for the inputs' own conversion (float64 → float32)
    and for the comparison itself, so it is a deliberate overestimate: at ``d = 512`` in
    float32 it is ≈ 6e-5, far below any margin a calibrated ρ certifies.

    Args:
        dim: Vector dimension ``d``, ``>= 1``.
        dtype: The dtype scores were computed in (float32 or float64).

    Returns:
        η, the allowance to add to every τ (and to every outside bound).

    Raises:
        InvalidInputError: ``dim < 1`` or an unsupported dtype.
    """
    if not isinstance(dim, int | np.integer) or isinstance(dim, bool) or dim < 1:
        raise InvalidInputError(f"dim must be an integer >= 1, got {dim!r}")
    u = _UNIT_ROUNDOFF.get(np.dtype(dtype))
    if u is None:
        raise InvalidInputError(f"dtype must be float32 or float64, got {dtype!r}")
    du = float(dim) * u
    if du >= 0.5:
        raise InvalidInputError(f"dim {dim} is too large to bound rounding in {dtype!r}")
    gamma = du / (1.0 - du)
    return 2.0 * gamma * (1.0 + gamma) ** 2


def perturbation_bound(r: float, e: ArrayLike, multiplier: float = 2.0) -> NDArray[np.float64]:
    """Per-candidate bound τ on how far each score can move.

    ``τ_i = (r + e_i + r·e_i) · multiplier / 2``, from the corrected Lemma 1: for unit ``u``,
    ``v`` and perturbations with ``‖Δu‖ ≤ r``, ``‖Δv‖ ≤ e_i``,
    ``|⟨u+Δu, v+Δv⟩ − ⟨u, v⟩| ≤ ‖Δu‖ + ‖Δv‖ + ‖Δu‖·‖Δv‖``.

    Args:
        r: Query-side radius ``ρ + ε_q`` (encoder radius plus bridge drift on the query);
            finite, ``>= 0``.
        e: Item-side radii ``ε_i + ζ_i``, shape ``(n,)``, any real dtype; finite, ``>= 0``.
        multiplier: Scale, ``> 0``; ``2.0`` is the sound, paper-equivalent setting.

    Returns:
        τ, float64 array of shape ``(n,)``, a new array.

    Raises:
        InvalidInputError: ``r`` or ``e`` negative or not finite, ``e`` not 1-D, or
            ``multiplier`` not finite and ``> 0``.
    """
    r = _check_radius("r (query-side radius rho + eps_q)", r)
    if not _is_real(multiplier) or not math.isfinite(multiplier) or multiplier <= 0:
        raise InvalidInputError(f"multiplier must be a finite number > 0, got {multiplier!r}")
    radii = _as_vector("e (item-side radii eps_i + zeta_i)", e)
    if not np.all(np.isfinite(radii)) or np.any(radii < 0):
        raise InvalidInputError(
            "e (item-side radii eps_i + zeta_i) must be finite and >= 0; "
            "got a negative, NaN or infinite entry"
        )
    tau: NDArray[np.float64] = (r + radii + r * radii) * (float(multiplier) / 2.0)
    return tau


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

        def num(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "safe1": self.safe1,
            "safek": self.safek,
            "k": self.k,
            "n": self.n,
            "margin_top2": num(self.margin_top2),
            "delta_k": num(self.delta_k),
            "slack_1": num(self.slack_1),
            "slack_k": num(self.slack_k),
            "floor_k": num(self.floor_k),
            "safe_prefix": self.safe_prefix,
            "tau": [float(t) for t in self.tau],
        }


def _check_k(name: str, k: int) -> int:
    """Return ``k`` as an int after checking it is an integer ``>= 1``."""
    if not isinstance(k, int | np.integer) or isinstance(k, bool | np.bool_) or k < 1:
        raise InvalidInputError(f"{name} must be an integer >= 1, got {k!r}")
    return int(k)


def _ranked(scores: ArrayLike, tau: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Validate a ranked list: finite, same shape ``(n,)``, scores descending, ``tau >= 0``."""
    s = _as_vector("scores", scores)
    t = _as_vector("tau", tau)
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
    k = _check_k("k", k)
    s, t = _ranked(scores, tau)
    n = int(s.size)
    nan = float("nan")
    t = t.copy()
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
    k_max = _check_k("k_max", k_max)
    s, t = _ranked(scores, tau)
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
    if not _is_real(kth_score) or not math.isfinite(kth_score):
        raise InvalidInputError(f"kth_score must be a finite number, got {kth_score!r}")
    kth_tau = _check_radius("kth_tau", kth_tau)
    bounds = _as_vector("outside_upper_bounds", outside_upper_bounds)
    if np.any(np.isnan(bounds)):
        raise InvalidInputError(
            "outside_upper_bounds contain NaN; use +inf for a region that cannot be bounded"
        )
    if bounds.size == 0:
        return True
    return bool(float(kth_score) - kth_tau >= float(bounds.max()))


def refine_with_geometry(
    certificate: Certificate,
    scores: ArrayLike,
    vectors: ArrayLike,
    r: float,
    e: ArrayLike,
    multiplier: float = 2.0,
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
    ``‖v_i − v_j‖`` is computed from the float64 difference of the vectors — never as
    ``sqrt(2 − 2⟨v_i, v_j⟩)``, which in float32 collapses to 0 for near-duplicates and would
    certify a pair that any query move towards the runner-up flips — and is rounded up.
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
        score_dtype: dtype the scores were computed in; sets the rounding allowance.

    Returns:
        A certificate whose safe1 / safek / slack_1 / slack_k / safe_prefix come from the
        pairwise test.
    """
    s, _ = _ranked(scores, certificate.tau)  # validates order, finiteness and shapes
    v = np.asarray(vectors, dtype=np.float64)
    radii = _as_vector("e", e)
    r = _check_radius("r", r)
    n = s.size
    if v.ndim != 2 or v.shape[0] != n or radii.shape != (n,):
        raise InvalidInputError(
            f"scores ({n},), vectors (n, d) and e (n,) must agree; got {v.shape} and {radii.shape}"
        )
    if n == 0:
        return certificate
    eta = score_rounding_error(max(1, v.shape[1]), score_dtype)
    kk = min(certificate.k, n)  # only prefixes up to k are certified: rows i < kk suffice
    dist = np.empty((kk, n))
    for i in range(kk):  # row by row: (n, d) temporaries, not (kk, n, d)
        diff = v - v[i]  # float64 differences of float32 vectors: (nearly) exact
        dist[i] = np.sqrt(np.einsum("jd,jd->j", diff, diff))
    dist *= 1.0 + 1e-12  # round the float64 norm up
    item = radii[:kk, None] + radii[None, :]
    need = (r * dist + (1.0 + r + eta) * item) * (float(multiplier) / 2.0) + 2.0 * eta
    margin = s[:kk, None] - s[None, :] - need  # margin[i, j]: how safely i stays ahead of j
    # slack of prefix p = min over i < p <= j of margin[i, j]; +inf when nothing is outside
    suffix = np.minimum.accumulate(margin[:, ::-1], axis=1)[:, ::-1]  # min over j' >= j
    cols = np.full((kk, kk), np.inf)
    width = min(kk, n - 1)
    cols[:, :width] = suffix[:, 1 : width + 1]  # column p-1: min over j >= p
    slack = np.diagonal(np.minimum.accumulate(cols, axis=0)).copy()  # min over i < p
    safe = slack > 0
    prefix = np.flatnonzero(safe)
    return dataclasses.replace(
        certificate,
        safe1=bool(safe[0]),
        safek=bool(safe[kk - 1]),
        slack_1=float(slack[0]),
        slack_k=float(slack[kk - 1]),
        safe_prefix=int(prefix[0]) + 1 if prefix.size else None,
    )
