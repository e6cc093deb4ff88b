"""The benchmark's contenders by name (constants only: importing this loads no numpy / FAISS)."""

from __future__ import annotations

__all__ = ["FULL_SLOW_MAX", "METHODS", "SIMPLE"]

METHODS = ("numpy-exact", "faiss-hnsw", "langchain-faiss", "llamaindex-simple", "luma")
SIMPLE = "llamaindex-simple"
FULL_SLOW_MAX = 10_000  # at or below this size the slow baseline gets every query
