"""The engine's configuration: one frozen dataclass composed of each component's config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from luma_rag._config import ConfigBase, check
from luma_rag.bridge import BridgeConfig
from luma_rag.errors import ConfigError, DimensionMismatchError
from luma_rag.memory.hot import HotTierConfig
from luma_rag.memory.spill import SpillConfig
from luma_rag.memory.warm import WarmTierConfig
from luma_rag.safety import SafetyConfig

if TYPE_CHECKING:
    from luma_rag.encoders.base import Encoder

__all__ = ["LumaConfig", "session_config"]


@dataclass(frozen=True)
class LumaConfig(ConfigBase):
    """Everything an engine needs to know; only ``dim`` has no default.

    Attributes:
        dim: embedding dimension of the store (fixed at creation).
        hot_budget: most items the hot (HNSW) tier holds before spilling to warm.
        rerank_depth: candidates fetched from each tier and rescored exactly (at least k).
        exact_filter_below: a filtered query matching at most this many items scans them
            exactly from the raw vectors (exact and complete) instead of probing the tiers.
        max_k: largest ``k`` a search accepts (InvalidInputError above it); a ``k`` above the
            number of stored items is clamped to it (reported in the telemetry notes).
        hot / warm / spill / safety: component settings.
        bridge: CLAP→CLIP bridge settings (None: no bridge; audio needs one).
    """

    dim: int
    hot_budget: int = 10_000
    rerank_depth: int = 64
    exact_filter_below: int = 4096
    max_k: int = 10_000
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
        for name, least in (("rerank_depth", 1), ("exact_filter_below", 0), ("max_k", 1)):
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


def session_config(
    path: Path,
    stored: LumaConfig | None,
    config: LumaConfig | None,
    enc: Encoder | None,
    aenc: Encoder | None,
) -> LumaConfig:
    """The config of this session: the given one, else the stored one, fitted to the encoders."""
    if stored is None and config is None and enc is not None:
        config = LumaConfig(dim=enc.dim)
    cfg = config or stored
    if cfg is None:
        raise ConfigError(f"{path} holds no store; pass LumaConfig(dim=...) to create one")
    if enc is not None and enc.dim != cfg.dim:
        raise DimensionMismatchError(
            f"the encoder {enc.name} gives {enc.dim}-d vectors but the store at {path} is "
            f"{cfg.dim}-d; use a matching encoder or another path"
        )
    if stored is not None and config is not None and stored.dim != config.dim:
        raise DimensionMismatchError(
            f"{path} holds {stored.dim}-d vectors but the config says dim={config.dim}; "
            f"open it with dim={stored.dim} or use another path"
        )
    if aenc is not None and cfg.bridge is None:
        cfg = dataclasses.replace(cfg, bridge=BridgeConfig(source_dim=aenc.dim, target_dim=cfg.dim))
    if aenc is not None and cfg.bridge is not None and cfg.bridge.source_dim != aenc.dim:
        raise DimensionMismatchError(
            f"the audio encoder {aenc.name} gives {aenc.dim}-d vectors but the store's bridge "
            f"expects {cfg.bridge.source_dim}-d"
        )
    return cfg
