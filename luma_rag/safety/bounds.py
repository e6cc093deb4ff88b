"""Perturbation bounds of the Safe@k certificate: the settings and τ per candidate.

With a query-side radius ``r = ρ + ε_q`` and item-side radii ``e_i = ε_i + ζ_i``, the corrected
Lemma 1 bounds how far each score can move: for unit ``u``, ``v`` and any ``Δu``, ``Δv``,

    |⟨u+Δu, v+Δv⟩ − ⟨u, v⟩| = |⟨Δu, v⟩ + ⟨u, Δv⟩ + ⟨Δu, Δv⟩| ≤ ‖Δu‖ + ‖Δv‖ + ‖Δu‖·‖Δv‖

(the paper drops the last term). See :mod:`luma_rag.safety` for the whole certificate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from luma_rag._checks import is_real
from luma_rag._config import ConfigBase, check
from luma_rag.errors import InvalidInputError

__all__ = ["SafetyConfig", "as_vector", "check_radius", "perturbation_bound"]


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

    Example:
        >>> cfg = SafetyConfig(multiplier=2.0, rho=0.05)
        >>> SafetyConfig.from_json(cfg.to_json()) == cfg
        True
    """

    multiplier: float = 2.0
    rho: float = 0.0

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
