"""Conversion and validation of user vectors at the library boundary (FAISS-style)."""

from __future__ import annotations

from typing import Any

import numpy as np

from luma_rag.errors import DimensionMismatchError, InvalidInputError

__all__ = ["as_query", "as_unit_matrix"]


def as_unit_matrix(x: Any, dim: int, *, name: str = "vectors") -> np.ndarray:
    """Validate a batch of vectors and return them L2-normalised.

    Args:
        x: array-like of shape (n, dim) (a single (dim,) vector is not accepted here: wrap it).
        dim: the dimension the store was created with.
        name: what to call the argument in error messages.

    Returns:
        float32 C-contiguous array (n, dim) with unit rows.

    Raises:
        InvalidInputError: not numeric, not 2-D, empty, NaN/inf, or a zero row.
        DimensionMismatchError: second axis is not ``dim``.
    """
    if isinstance(x, (str, bytes)):
        raise InvalidInputError(f"{name} must be a numeric array, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise InvalidInputError(f"{name} could not be read as an array: {e}") from e
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise InvalidInputError(
            f"{name} must hold real numbers (float32 preferred), got dtype {arr.dtype}"
        )
    if arr.ndim != 2:
        raise InvalidInputError(
            f"{name} must be 2-D (n, {dim}), got shape {arr.shape}; for one vector pass x[None, :]"
        )
    if arr.shape[0] == 0:
        raise InvalidInputError(f"{name} is an empty batch (shape {arr.shape}); pass at least one")
    if arr.shape[1] != dim:
        raise DimensionMismatchError(
            f"{name}: got {arr.shape[1]}-d, but the store holds {dim}-d vectors; "
            f"encode with the store's model or open a new store with dim={arr.shape[1]}"
        )
    out = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)[:5].tolist()
        raise InvalidInputError(f"{name} contain NaN or inf in rows {bad}; clean them first")
    norms = np.linalg.norm(out.astype(np.float64), axis=1)
    zero = norms < 1e-12
    if zero.any():
        bad = np.flatnonzero(zero)[:5].tolist()
        raise InvalidInputError(
            f"{name} rows {bad} are zero vectors, which have no direction to compare by cosine"
        )
    return np.ascontiguousarray(out / norms[:, None].astype(np.float32), dtype=np.float32)


def as_query(x: Any, dim: int) -> np.ndarray:
    """Validate one query vector; accepts (dim,) or (1, dim). Returns float32 (dim,) unit."""
    if isinstance(x, np.ndarray) and x.shape == (dim,) and x.dtype == np.float32:
        fast = _unit_row(x)
        if fast is not None:
            return fast
    arr = np.asarray(x) if not isinstance(x, (str, bytes)) else x
    if isinstance(arr, np.ndarray) and arr.ndim == 1:
        arr = arr[None, :]
    if isinstance(arr, np.ndarray) and arr.ndim == 2 and arr.shape[0] != 1:
        raise InvalidInputError(
            f"search takes one query vector, got a batch of shape {arr.shape}; loop over rows"
        )
    return as_unit_matrix(arr, dim, name="query")[0]


def _unit_row(x: np.ndarray) -> np.ndarray | None:
    """:func:`as_unit_matrix` of one float32 (d,) row in a few array calls: the same float64
    norm (pairwise sum of squares, then sqrt) and the same float32 division; None when the row
    is not finite or is zero (the full path then raises its error)."""
    x64 = x.astype(np.float64)
    norm = float(np.sqrt(np.add.reduce(x64 * x64)))
    if not 1e-12 <= norm <= 3.0e38:
        return None  # NaN / inf, a zero vector, or a norm float32 cannot hold
    return np.ascontiguousarray(x / np.float32(norm), dtype=np.float32)
