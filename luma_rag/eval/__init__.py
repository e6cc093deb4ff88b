"""Evaluation: retrieval and certificate metrics, and the experiment runners.

:mod:`luma_rag.eval.metrics` is pure numpy. :mod:`luma_rag.eval.experiments` runs a store on
a LUMA-Shapes corpus (``python -m luma_rag.eval.experiments --data DIR --out DIR``); its
names are imported lazily so ``import luma_rag.eval`` loads no model code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from luma_rag.eval.metrics import coverage_risk, latency_summary, mrr, ndcg_at_k, recall_at_k

if TYPE_CHECKING:
    from luma_rag.eval.experiments import run_audio, run_baseline, run_video

__all__ = [
    "coverage_risk",
    "latency_summary",
    "mrr",
    "ndcg_at_k",
    "recall_at_k",
    "run_audio",
    "run_baseline",
    "run_video",
]

_LAZY = frozenset({"run_audio", "run_baseline", "run_video"})


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("luma_rag.eval.experiments"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
