"""Which hot items spill to the warm tier, and which warm items earn promotion.

score = α·recency + β·frequency + γ·novelty, each in [0, 1]:
- recency = exp(−ln 2 · age / half_life), age since the item was added or last hit;
- frequency = log(1 + hits) / log(1 + max hits in the tier);
- novelty = 1 − (cosine to the nearest hot item when it arrived), clipped to [0, 1].
Lowest scores spill first. A warm item is promoted once it has been hit ``promote_hits`` times.

A spill is decided at once (:class:`Migration`) and carried out in chunks of ``chunk`` items,
each under its own hold of the write lock (:meth:`~luma_rag.memory.tiered.TieredMemory.migrate`):
encoding into the warm tier is the slow part, and queries run between the chunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from luma_rag._config import ConfigBase, check

__all__ = ["Migration", "SpillConfig", "spill_order", "spill_scores"]


@dataclass(frozen=True)
class SpillConfig(ConfigBase):
    """Weights and rates of the spill / promotion policy; ``chunk``: most items moved hot -> warm
    per write-lock hold (each chunk's encoding stalls queries for that long)."""

    alpha: float = 0.5
    beta: float = 0.3
    gamma: float = 0.2
    half_life_s: float = 3600.0
    promote_hits: int = 3
    slack: float = 0.05
    chunk: int = 128

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "gamma"):
            v = getattr(self, name)
            check(v >= 0 and math.isfinite(v), f"SpillConfig.{name} must be finite and >= 0")
        check(self.alpha + self.beta + self.gamma > 0, "SpillConfig weights cannot all be 0")
        check(self.half_life_s > 0, "SpillConfig.half_life_s must be > 0")
        check(self.promote_hits >= 1, "SpillConfig.promote_hits must be >= 1")
        check(
            0 <= self.slack < 0.5,
            "SpillConfig.slack (extra share spilled at once) must be in [0, 0.5)",
        )
        check(
            isinstance(self.chunk, int) and self.chunk >= 1,
            "SpillConfig.chunk (items moved hot -> warm per write-lock hold) must be an int >= 1",
        )


@dataclass(frozen=True)
class Migration:
    """Moves to the warm tier that were decided under the write lock and not yet carried out.

    Attributes:
        spilled: int64 (s,) keys live in the hot tier that move to warm; each stays findable in
            the hot tier until it is in the warm one.
        new_keys: int64 (w,) new keys that go straight to warm (in no index until then).
        new_vectors: float32 (w, d) their vectors.
    """

    spilled: np.ndarray
    new_keys: np.ndarray
    new_vectors: np.ndarray

    @staticmethod
    def empty(dim: int) -> Migration:
        """Nothing to move."""
        none = np.zeros(0, dtype=np.int64)
        return Migration(none, none, np.zeros((0, dim), dtype=np.float32))

    @property
    def keys(self) -> np.ndarray:
        """int64 every key that ends in the warm tier."""
        return np.concatenate([self.new_keys, self.spilled])

    def __len__(self) -> int:
        return len(self.spilled) + len(self.new_keys)


def spill_scores(
    config: SpillConfig,
    now: float,
    last_access: np.ndarray,
    hits: np.ndarray,
    novelty: np.ndarray,
) -> np.ndarray:
    """Retention score of each item: float64 (n,) from (n,) arrays; higher = keep hot."""
    age = np.maximum(0.0, now - np.asarray(last_access, dtype=np.float64))
    recency = np.exp(-math.log(2.0) * age / config.half_life_s)
    h = np.asarray(hits, dtype=np.float64)
    top = float(h.max()) if h.size else 0.0
    frequency = np.log1p(h) / math.log1p(top) if top > 0 else np.zeros_like(h)
    nov = np.clip(np.asarray(novelty, dtype=np.float64), 0.0, 1.0)
    return config.alpha * recency + config.beta * frequency + config.gamma * nov


def spill_order(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` lowest scores (ties broken by position: older first)."""
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.argsort(scores, kind="stable")[:count].astype(np.int64)
