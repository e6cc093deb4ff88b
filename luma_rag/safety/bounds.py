"""Perturbation bounds of the Safe@k certificate: the settings and τ per candidate.

With a query-side radius ``r = ρ + ε_q`` and item-side radii ``e_i = ε_i + ζ_i``, the corrected
Lemma 1 bounds how far each score can move: for unit ``u``, ``v`` and any ``Δu``, ``Δv``,

    |⟨u+Δu, v+Δv⟩ − ⟨u, v⟩| = |⟨Δu, v⟩ + ⟨u, Δv⟩ + ⟨Δu, Δv⟩| ≤ ‖Δu‖ + ‖Δv‖ + ‖Δu‖·‖Δv‖

(the paper drops the last term). See :mod:`luma_rag.safety` for the whole certificate.

Floating point. Scores arrive as float32 inner products, so two items whose exact scores differ
by less than the rounding of a dot product may come back in the wrong order. Every comparison
therefore carries a rounding allowance η (:func:`score_rounding_error`): the worst-case error of
a length-``d`` float32 dot product of vectors of norm at most ``1 + d·u`` (Higham's γ_d bound,
any summation order), which callers add to τ and to every outside bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from luma_rag._checks import is_real
from luma_rag._config import ConfigBase, check
from luma_rag.errors import InvalidInputError

__all__ = [
    "SafetyConfig",
    "as_vector",
    "check_radius",
    "perturbation_bound",
    "score_rounding_error",
]


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
            ``safe1`` with ``complete_at >= 1`` means the certified top-1 is the store's exact
            top-1. ``False`` skips the rescan (``complete`` is then reported as it is).

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
            is_real(self.multiplier) and math.isfinite(self.multiplier) and self.multiplier > 0,
            f"SafetyConfig.multiplier must be a finite number > 0 (2.0 reproduces the paper), "
            f"got {self.multiplier!r}",
        )
        check(
            is_real(self.rho) and math.isfinite(self.rho) and self.rho >= 0,
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


def as_vector(name: str, values: ArrayLike) -> NDArray[np.float64]:
    """Convert ``values`` to a 1-D float64 array or raise :class:`InvalidInputError`."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{name} must be a 1-D array of numbers ({e})") from e
    if array.ndim != 1:
        raise InvalidInputError(f"{name} must be 1-D with shape (n,), got shape {array.shape}")
    return array


def check_radius(name: str, value: float) -> float:
    """Return ``value`` as a float after checking it is a finite number ``>= 0``."""
    if not is_real(value) or not math.isfinite(value) or value < 0:
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
    r = check_radius("r (query-side radius rho + eps_q)", r)
    if not is_real(multiplier) or not math.isfinite(multiplier) or multiplier <= 0:
        raise InvalidInputError(f"multiplier must be a finite number > 0, got {multiplier!r}")
    radii = as_vector("e (item-side radii eps_i + zeta_i)", e)
    if not np.all(np.isfinite(radii)) or np.any(radii < 0):
        raise InvalidInputError(
            "e (item-side radii eps_i + zeta_i) must be finite and >= 0; "
            "got a negative, NaN or infinite entry"
        )
    tau: NDArray[np.float64] = (r + radii + r * radii) * (float(multiplier) / 2.0)
    return tau
