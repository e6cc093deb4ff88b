"""LUMA-RAG: lifelong multimodal retrieval with a two-tier memory and Safe@k certificates."""

from luma_rag.bridge import BridgeConfig, ProcrustesBridge
from luma_rag.config import LumaConfig
from luma_rag.engine import Luma
from luma_rag.errors import LumaError
from luma_rag.memory import HotTierConfig, SpillConfig, WarmTierConfig
from luma_rag.results import Hit, QueryResult, Telemetry
from luma_rag.safety import SafetyConfig

__all__ = [
    "BridgeConfig",
    "Hit",
    "HotTierConfig",
    "Luma",
    "LumaConfig",
    "LumaError",
    "ProcrustesBridge",
    "QueryResult",
    "SafetyConfig",
    "SpillConfig",
    "Telemetry",
    "WarmTierConfig",
]

__version__ = "0.1.0"
