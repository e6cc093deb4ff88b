"""The interface every memory tier implements, so a tier (e.g. a Milvus-backed one) can be
swapped in without touching the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = ["Tier", "TierHits", "bitmap_from_mask", "empty_hits", "live_positions"]


@dataclass(frozen=True)
class TierHits:
    """What one tier found for one query.

    Attributes:
        keys: int64 (m,) item keys, best first.
        scores: float32 (m,) the tier's own scores (exact or from codes).
        zeta: float32 (m,) per-item quantization error ||x - x_hat|| (0 where stored exactly).
        outside_bound: an upper bound on the true score of any allowed item of this tier that is
            *not* in ``keys``: ``-inf`` when the tier returned everything that could match,
            ``+inf`` when the tier cannot certify its misses (HNSW).
        vectors: float32 (m, d) the items' exact stored vectors when the tier holds them in RAM
            (the rerank then reads nothing from disk), else None.
        outside_after: float (m + 1,) or None: ``outside_after[c]`` bounds the true score of any
            allowed item of this tier not among the first ``c`` keys (``outside_after[m]`` is
            ``outside_bound``), so a caller may rerank a prefix only. None: no prefix may be cut.
        score_slack: when set, every returned score is within this distance of the exact
            float32 score from the raw vectors (fp16 storage), so a caller may skip rescoring
            the hits that cannot rank high enough. None: no such bound.
    """

    keys: np.ndarray
    scores: np.ndarray
    zeta: np.ndarray
    outside_bound: float
    vectors: np.ndarray | None = None
    outside_after: np.ndarray | None = None
    score_slack: float | None = None


def empty_hits() -> TierHits:
    """The answer of an empty tier: nothing found, nothing missed."""
    return TierHits(
        keys=np.zeros(0, dtype=np.int64),
        scores=np.zeros(0, dtype=np.float32),
        zeta=np.zeros(0, dtype=np.float32),
        outside_bound=float("-inf"),
    )


def live_positions(pos_keys: np.ndarray, alive: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Index position of each of ``keys`` among the live positions (-1 where not live).

    A search of the live keys, sorted, instead of a key -> position map kept per item (a Python
    dict cost ~100 B per hot item): nothing per item in RAM, O(n log n) per call.

    Args:
        pos_keys: int64 (n,) key at each index position. alive: bool (n,) live positions (a
            key is live at one position at most). keys: int64 (m,) keys to look up.

    Returns:
        int64 (m,) positions, -1 for keys that are not live.
    """
    keys = np.asarray(keys, dtype=np.int64)
    live_pos = np.flatnonzero(alive)
    if not live_pos.size:
        return np.full(len(keys), -1, dtype=np.int64)
    live_keys = pos_keys[live_pos]
    order = np.argsort(live_keys, kind="stable")
    at = np.minimum(np.searchsorted(live_keys, keys, sorter=order), len(order) - 1)
    found = live_keys[order[at]] == keys
    return np.where(found, live_pos[order[at]], -1).astype(np.int64)


def bitmap_from_mask(mask: np.ndarray) -> np.ndarray:
    """Pack a bool mask into the little-endian bitmap that ``faiss.IDSelectorBitmap`` reads."""
    return np.packbits(np.ascontiguousarray(mask, dtype=bool), bitorder="little")


class Tier(Protocol):
    """A store of unit vectors keyed by int64 keys, searchable by inner product."""

    name: str

    def __len__(self) -> int:
        """Number of live items."""
        ...

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add (n,) int64 keys with (n, d) float32 unit vectors."""
        ...

    def remove(self, keys: np.ndarray) -> None:
        """Remove keys (unknown keys are ignored)."""
        ...

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> TierHits:
        """Top ``k`` for a (d,) float32 unit query; ``allowed`` is a bool mask over keys or None."""
        ...

    def train(self) -> bool:
        """(Re)train the tier's index if its data calls for it; True when it did or started."""
        ...

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and a JSON header from which :meth:`restore` rebuilds the tier."""
        ...

    def restore(self, arrays: dict[str, np.ndarray], header: dict[str, Any]) -> None:
        """Replace the tier's state with a snapshot's."""
        ...

    def keys(self) -> np.ndarray:
        """int64 keys currently in the tier."""
        ...

    def nbytes(self) -> int:
        """RAM held by the tier's index structures, in bytes."""
        ...
