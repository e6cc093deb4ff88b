"""What a query returns: hits with exact scores, and the telemetry behind its certificate."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from luma_rag.safety import Certificate

__all__ = ["Hit", "QueryResult", "Telemetry"]


@dataclass(frozen=True)
class Hit:
    """One retrieved item. ``score`` is the exact cosine against its raw vector.

    ``text`` is the item's caption / text / transcript, ``source`` the media file it came from.
    """

    id: str
    score: float
    tier: Literal["hot", "warm"]
    rank: int
    modality: str
    metadata: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class Telemetry:
    """The numbers behind a query's Safe@k certificate (the paper's telemetry, plus ρ).

    Attributes:
        margin_top2: γ = s1 − s2. delta_k: δ_k = s_k − s_{k+1} (NaN when undefined).
        epsilon: bridge drift used on the query side (ε_q; 0 when the query did not cross it).
        epsilon_items: largest item-side drift ε_i among the candidates.
        zeta_mean / zeta_max: PQ reconstruction error of the warm candidates (0 when exact).
        rho: encoder radius used. safe1 / safek: the certificate. safe_k_min: smallest k' ≤ k
            with Safe@k' (None if none). complete: no item outside the candidates can overtake
            the top k even under the same perturbations. latency_ms: wall time of the query.
        stages_ms: wall time per stage, in order: ``encode`` (only for :meth:`Luma.query`),
            ``bridge`` (projection, 0 when not bridged), ``candidates`` (both tiers, filters
            and the exact rerank), ``certify`` (Safe@k and its pairwise refinement),
            ``rescan`` (the exact rescan a Safe@1 query gets when its candidates were not
            proven complete; 0 otherwise), ``complete`` (the completeness bound, rescan
            included) and ``records`` (hit details from SQLite).
        complete_at: the largest ``k' <= k`` such that no item outside the candidates can
            overtake the top ``k'`` under the same perturbations (0: not even the top-1 is
            protected, e.g. an HNSW tier that was not rescanned). ``complete`` is
            ``complete_at >= min(k, n)``; the gate needs ``complete_at >= 1`` to ANSWER.
        rho_source: where ρ came from: ``"calibrated"`` (measured on this store's data for
            the embedder in use), ``"user"`` (set by the caller), or ``"unset"`` (nobody
            calibrated or set it: ρ is the config default, usually 0, and the certificate
            then only says the ranking is stable under float rounding).
        notes: what this result should be read with: ``k`` clamped to the items stored, a
            query text truncated to the encoder's context, an index rebuilt after a damaged
            snapshot (recall may differ). Empty when nothing applies.
    """

    margin_top2: float
    delta_k: float
    epsilon: float
    epsilon_items: float
    zeta_mean: float
    zeta_max: float
    rho: float
    safe1: bool
    safek: bool
    safe_k_min: int | None
    complete: bool
    k: int
    n_candidates: int
    latency_ms: float
    stages_ms: dict[str, float] = field(default_factory=dict)
    complete_at: int = 0
    rho_source: Literal["calibrated", "user", "unset"] = "unset"
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (NaN becomes None)."""
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
        }


@dataclass(frozen=True)
class QueryResult:
    """Hits best first, their telemetry, and the full certificate."""

    hits: list[Hit]
    telemetry: Telemetry
    certificate: Certificate

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    @property
    def ids(self) -> list[str]:
        """Ids of the hits, best first."""
        return [h.id for h in self.hits]
