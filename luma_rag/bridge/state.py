"""The bridge's immutable state and its validation when restored from a file.

:class:`BridgeState` is swapped whole by :class:`~luma_rag.bridge.ProcrustesBridge`, so
readers never see a half update; :func:`restore_state` checks every array of a state dict
(shapes, dtypes, finiteness, semi-orthogonality, counters) before trusting it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from luma_rag.bridge.config import BridgeConfig
from luma_rag.errors import StoreCorruptedError

__all__ = ["BridgeState", "Refresh", "restore_state"]

_ORTHO_TOL = 1e-6  # max |T Tᵀ − I| accepted when loading (fresh SVDs give ~1e-14)
_MAX_EPS = 2.0 + 1e-6  # ‖A − B‖₂ ≤ 2 for two semi-orthogonal matrices
_REQUIRED_KEYS = frozenset(
    {"M", "pairs_seen", "history_pairs_seen", "history_epsilon", "history_time"}
)


class Refresh(NamedTuple):
    """One refit of ``T``: its version, the pair count then, its drift ε and Unix time."""

    version: int
    pairs_seen: int
    epsilon: float
    time: float
    # Smallest ‖x T‖ of a stored item projected with this version before renormalisation
    # (1.0 until one is; only below 1 when source_dim > target_dim).
    min_norm: float = 1.0


@dataclass(frozen=True)
class BridgeState:
    """Immutable snapshot; the bridge swaps it whole so readers never see a half update."""

    m: np.ndarray  # (source_dim, target_dim) float64, read-only
    t: np.ndarray | None  # (source_dim, target_dim) float64, read-only; None before the fit
    pairs_seen: int
    history: tuple[Refresh, ...]

    @property
    def version(self) -> int:
        return len(self.history)

    @property
    def since_refresh(self) -> int:
        return self.pairs_seen - (self.history[-1].pairs_seen if self.history else 0)


def _semi_orthogonality_error(t: np.ndarray) -> float:
    gram = t @ t.T if t.shape[0] <= t.shape[1] else t.T @ t
    return float(np.abs(gram - np.eye(gram.shape[0])).max())


def restore_state(config: BridgeConfig, state: dict[str, np.ndarray]) -> BridgeState:
    """Validate a state dict against ``config`` and build the snapshot it describes."""

    def bad(message: str) -> StoreCorruptedError:
        return StoreCorruptedError(f"bridge state is inconsistent: {message}")

    if not isinstance(state, dict):
        raise bad(f"expected a dict of arrays, got {type(state).__name__}")
    keys = set(state)
    missing, unknown = _REQUIRED_KEYS - keys, keys - _REQUIRED_KEYS - {"T", "history_min_norm"}
    if missing or unknown:
        raise bad(f"missing keys {sorted(missing)}, unknown keys {sorted(unknown)}")
    arrays: dict[str, np.ndarray] = {}
    for key, value in state.items():
        kind = "iu" if key in ("pairs_seen", "history_pairs_seen") else "fiu"
        if not isinstance(value, np.ndarray) or value.dtype.kind not in kind:
            raise bad(f"{key} must be a numeric array of kind {kind!r}")
        if not np.isfinite(value).all():
            raise bad(f"{key} holds NaN or inf")
        arrays[key] = np.array(value, dtype=np.int64 if kind == "iu" else np.float64)

    shape = (config.source_dim, config.target_dim)
    m, t = arrays["M"], arrays.get("T")
    hist_pairs, hist_eps = arrays["history_pairs_seen"], arrays["history_epsilon"]
    hist_time = arrays["history_time"]
    # Stores written before the norms were recorded: unknown, so as small as possible (sound).
    unknown_norm = 0.0 if config.source_dim > config.target_dim else 1.0
    hist_norm = arrays.get("history_min_norm", np.full(hist_eps.shape, unknown_norm))
    if hist_norm.shape != hist_eps.shape or np.any(hist_norm < 0) or np.any(hist_norm > 1 + 1e-6):
        raise bad("history_min_norm must match the history and lie in [0, 1]")
    if m.shape != shape or (t is not None and t.shape != shape):
        shapes = f"M {m.shape}" + ("" if t is None else f", T {t.shape}")
        raise bad(f"{shapes}; the config expects {shape}")
    if arrays["pairs_seen"].shape != (1,):
        raise bad(f"pairs_seen must have shape (1,), got {arrays['pairs_seen'].shape}")
    pairs_seen = int(arrays["pairs_seen"][0])
    v = hist_eps.shape[0]
    if not hist_pairs.shape == hist_eps.shape == hist_time.shape == (v,):
        raise bad("the history arrays must be 1-D and of equal length")
    if (t is not None) != (v > 0):
        raise bad(f"T is {'present' if t is not None else 'absent'} with {v} refreshes")
    if pairs_seen < 0 or (pairs_seen == 0 and m.any()):
        raise bad(f"pairs_seen={pairs_seen} disagrees with M")
    if v and (hist_pairs[0] < 1 or np.any(np.diff(hist_pairs) < 0) or hist_pairs[-1] > pairs_seen):
        raise bad("history pairs_seen must be >= 1, non-decreasing and <= pairs_seen")
    if np.any(hist_eps < 0) or np.any(hist_eps > _MAX_EPS) or (v and hist_eps[0] != 0.0):
        raise bad("history epsilons must lie in [0, 2], the first one 0")
    if t is not None and _semi_orthogonality_error(t) > _ORTHO_TOL:
        raise bad("T is not semi-orthogonal")
    for a in (m, t):
        if a is not None:
            a.setflags(write=False)
    history = tuple(
        Refresh(i + 1, int(p), float(e), float(s), float(nm))
        for i, (p, e, s, nm) in enumerate(
            zip(hist_pairs, hist_eps, hist_time, hist_norm, strict=True)
        )
    )
    return BridgeState(m=m, t=t, pairs_seen=pairs_seen, history=history)
