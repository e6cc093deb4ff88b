"""Two-tier memory: hot HNSW, warm IVF-PQ, the spill policy, and the tiered manager."""

from luma_rag.memory.base import Tier, TierHits
from luma_rag.memory.hot import HotTier, HotTierConfig
from luma_rag.memory.spill import SpillConfig
from luma_rag.memory.tiered import Candidates, TieredMemory
from luma_rag.memory.warm import WarmTier, WarmTierConfig

__all__ = [
    "Candidates",
    "HotTier",
    "HotTierConfig",
    "SpillConfig",
    "Tier",
    "TierHits",
    "TieredMemory",
    "WarmTier",
    "WarmTierConfig",
]
