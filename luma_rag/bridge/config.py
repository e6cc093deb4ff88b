"""Settings of the CLAP → CLIP bridge (see :mod:`luma_rag.bridge`)."""

from __future__ import annotations

from dataclasses import dataclass

from luma_rag._checks import is_int
from luma_rag._config import ConfigBase, check

__all__ = ["BridgeConfig"]


@dataclass(frozen=True)
class BridgeConfig(ConfigBase):
    """Settings of a :class:`ProcrustesBridge`.

    Attributes:
        source_dim: Dimension of the source (CLAP) embeddings, e.g. 512.
        target_dim: Dimension of the target (CLIP) embeddings, e.g. 512 or 768; may differ
            from ``source_dim`` (``T`` is then rectangular).
        refresh_every: Pairs between two refreshes of ``T`` (the paper uses 512).
        forgetting: Per-pair decay ``λ`` in ``(0, 1]``: each new pair multiplies the old
            correlation by ``λ`` (``M ← λ M + xᵀ y``), so the memory is about ``1 / (1 − λ)``
            pairs. Applied per pair, not per call, so the result does not depend on how the
            stream is batched. ``1.0`` (default) keeps every pair forever.
        min_pairs: Pairs before the first ``T`` is fitted. ``None`` (default) means
            ``max(refresh_every, min(source_dim, target_dim))``: never before the regular
            cadence, and never from a correlation that cannot have full rank (with fewer pairs
            than ``min(source_dim, target_dim)`` part of ``T`` is arbitrary). After the first
            fit, refreshes follow every ``refresh_every`` pairs.
        inertia: Weight ``μ`` of the previous map in each refit, relative to ``‖M‖₂``: the
            refit maximises ``tr(Tᵀ (M + μ‖M‖₂ T_prev))``, i.e. it solves Procrustes with a
            proximal term ``‖T − T_prev‖_F²``. Where the pairs pin ``T`` down (directions with
            singular values of ``M`` well above ``μ‖M‖₂``) this is plain Procrustes; in the
            directions no pair visits, plain Procrustes returns an arbitrary rotation that
            changes at every refit, so ε (a worst case over all unit queries) saturates at 2
            whatever the data do. With inertia those directions keep their previous map and ε
            measures how the map really moved. ``0`` is plain Procrustes at every refit.
    """

    source_dim: int
    target_dim: int
    refresh_every: int = 512
    forgetting: float = 1.0
    min_pairs: int | None = None
    inertia: float = 0.01

    def __post_init__(self) -> None:
        for name in ("source_dim", "target_dim", "refresh_every"):
            value = getattr(self, name)
            check(
                is_int(value) and value >= 1,
                f"BridgeConfig.{name} must be a positive int, got {value!r}",
            )
        check(
            self.min_pairs is None or (is_int(self.min_pairs) and self.min_pairs >= 1),
            f"BridgeConfig.min_pairs must be None (automatic) or a positive int, "
            f"got {self.min_pairs!r}",
        )
        f = self.forgetting
        check(
            isinstance(f, int | float) and not isinstance(f, bool) and 0.0 < f <= 1.0,
            f"BridgeConfig.forgetting must be in (0, 1] (1.0 = no forgetting, "
            f"0.999 ≈ a memory of 1000 pairs), got {f!r}",
        )
        object.__setattr__(self, "forgetting", float(f))
        mu = self.inertia
        check(
            isinstance(mu, int | float) and not isinstance(mu, bool) and 0.0 <= mu <= 1.0,
            f"BridgeConfig.inertia must be in [0, 1] (0 = plain Procrustes), got {mu!r}",
        )
        object.__setattr__(self, "inertia", float(mu))

    @property
    def resolved_min_pairs(self) -> int:
        """Pairs before the first automatic refresh (``min_pairs`` with its default applied)."""
        if self.min_pairs is not None:
            return self.min_pairs
        return max(self.refresh_every, min(self.source_dim, self.target_dim))
