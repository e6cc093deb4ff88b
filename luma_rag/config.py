"""The engine's configuration: one frozen dataclass composed of each component's config."""

from __future__ import annotations

from dataclasses import dataclass, field

from luma_rag._config import ConfigBase, check
from luma_rag.bridge import BridgeConfig
from luma_rag.memory.hot import HotTierConfig
from luma_rag.memory.spill import SpillConfig
from luma_rag.memory.warm import WarmTierConfig
from luma_rag.safety import SafetyConfig

__all__ = ["LumaConfig"]


@dataclass(frozen=True)
class LumaConfig(ConfigBase):
    """Everything an engine needs to know; only ``dim`` has no default.

    Attributes:
        dim: embedding dimension of the store (fixed at creation).
        hot_budget: most items the hot (HNSW) tier holds before spilling to warm.
        rerank_depth: candidates fetched from each tier and rescored exactly (at least k).
        exact_filter_below: a filtered query matching at most this many items scans them
            exactly from the raw vectors (exact and complete) instead of probing the tiers.
        hot / warm / spill / safety: component settings.
        bridge: CLAP→CLIP bridge settings (None: no bridge; audio needs one).
    """

    dim: int
    hot_budget: int = 10_000
    rerank_depth: int = 64
    exact_filter_below: int = 4096
    hot: HotTierConfig = field(default_factory=HotTierConfig)
    warm: WarmTierConfig = field(default_factory=WarmTierConfig)
    spill: SpillConfig = field(default_factory=SpillConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    bridge: BridgeConfig | None = None

    def __post_init__(self) -> None:
        check(
            isinstance(self.dim, int) and not isinstance(self.dim, bool) and 1 <= self.dim <= 65536,
            f"LumaConfig.dim must be an int in [1, 65536], got {self.dim!r}",
        )
        check(
            isinstance(self.hot_budget, int) and self.hot_budget >= 1,
            f"LumaConfig.hot_budget must be an int >= 1, got {self.hot_budget!r}",
        )
        for name, least in (("rerank_depth", 1), ("exact_filter_below", 0)):
            value = getattr(self, name)
            check(
                isinstance(value, int) and not isinstance(value, bool) and value >= least,
                f"LumaConfig.{name} must be an int >= {least}, got {value!r}",
            )
        for name, kind in (
            ("hot", HotTierConfig),
            ("warm", WarmTierConfig),
            ("spill", SpillConfig),
            ("safety", SafetyConfig),
        ):
            check(
                isinstance(getattr(self, name), kind),
                f"LumaConfig.{name} must be a {kind.__name__}, got {getattr(self, name)!r}",
            )
        check(
            self.bridge is None or isinstance(self.bridge, BridgeConfig),
            f"LumaConfig.bridge must be None or a BridgeConfig, got {self.bridge!r}",
        )
        if self.bridge is not None:
            check(
                self.bridge.target_dim == self.dim,
                f"LumaConfig.bridge.target_dim ({self.bridge.target_dim}) must equal "
                f"dim ({self.dim}): "
                "the bridge maps into the store's space",
            )
