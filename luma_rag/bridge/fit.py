"""The streaming Procrustes fit: row checks, the correlation update, the proximal polar step.

Split from :mod:`luma_rag.bridge.procrustes` (which holds the bridge object) to keep each
module to one concept and under 400 lines.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from luma_rag.errors import DimensionMismatchError, InvalidInputError, LumaError

__all__ = ["accumulate", "fit", "unit_rows"]

logger = logging.getLogger(__name__)


def unit_rows(a: Any, name: str, dim: int, dim_label: str) -> np.ndarray:
    """Validate a (n, dim) or (dim,) real array and return its rows L2-normalised, float64."""
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as e:
        raise InvalidInputError(f"{name} is not a numeric array: {e}") from e
    if arr.dtype.kind not in "fiu":
        raise InvalidInputError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise InvalidInputError(f"{name} must be (n, {dim}) or ({dim},), got shape {arr.shape}")
    if arr.shape[-1] != dim:
        raise DimensionMismatchError(
            f"{name} has {arr.shape[-1]}-d vectors but the bridge's {dim_label} is {dim}; "
            f"pass embeddings of the model the bridge was configured for"
        )
    rows = arr.reshape(-1, dim).astype(np.float64)
    if rows.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty; pass at least one row")
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        raise InvalidInputError(f"row {int(np.argmin(finite))} of {name} holds NaN or inf")
    scale = np.abs(rows).max(axis=1, keepdims=True)  # rescale first: no overflow in the norm
    if not scale.all():
        zero = int(np.argmin(scale.reshape(-1)))
        raise InvalidInputError(
            f"row {zero} of {name} is all zeros; a zero vector has no direction"
        )
    rows /= scale
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.reshape(arr.shape)


def accumulate(m: np.ndarray, x: np.ndarray, y: np.ndarray, forgetting: float) -> np.ndarray:
    """Return ``λ^n M + Σ_i λ^(n-1-i) x_iᵀ y_i`` as a new array (M is never mutated)."""
    if forgetting == 1.0:
        return m + x.T @ y
    n = x.shape[0]
    weights = forgetting ** np.arange(n - 1, -1, -1, dtype=np.float64)
    return forgetting**n * m + (x * weights[:, None]).T @ y


def fit(m: np.ndarray, t_prev: np.ndarray | None, inertia: float = 0.0) -> tuple[np.ndarray, float]:
    """Procrustes solution ``U Vᵀ`` of ``M`` (+ ``inertia``·‖M‖₂·``t_prev``) and its spectral
    distance to ``t_prev``."""
    if not np.any(m):
        raise InvalidInputError(
            "the accumulated pair correlation M is zero (the pairs cancel out); feed pairs "
            "whose source and target agree"
        )
    try:
        target = m
        if t_prev is not None and inertia > 0:
            target = m + inertia * float(np.linalg.norm(m, 2)) * t_prev
        u, _, vt = np.linalg.svd(target, full_matrices=False)
        t = u @ vt
        eps = 0.0 if t_prev is None else float(np.linalg.norm(t - t_prev, 2))
    except np.linalg.LinAlgError as e:
        raise LumaError(f"SVD of the bridge correlation did not converge: {e}") from e
    t.setflags(write=False)
    return t, eps
