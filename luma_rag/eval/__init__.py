"""Evaluation: retrieval and certificate metrics, and the experiment runners.

:mod:`luma_rag.eval.metrics` is pure numpy. :mod:`luma_rag.eval.experiments` runs a store on
a LUMA-Shapes corpus; :mod:`luma_rag.eval.run` is the whole protocol behind ``luma eval``
(spill, telemetry over time, failure injection, latency, tables and plots). Runner names are
imported lazily so ``import luma_rag.eval`` loads no model code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from luma_rag.eval.metrics import (
    coverage_risk,
    latency_summary,
    mrr,
    ndcg_at_k,
    ranking_summary,
    recall_at_k,
)

if TYPE_CHECKING:
    from luma_rag.eval.experiments import run_audio, run_baseline, run_video
    from luma_rag.eval.run import ProtocolConfig, run_protocol

__all__ = [
    "ProtocolConfig",
    "coverage_risk",
    "latency_summary",
    "mrr",
    "ndcg_at_k",
    "ranking_summary",
    "recall_at_k",
    "run_audio",
    "run_baseline",
    "run_protocol",
    "run_video",
]

_LAZY = {
    "run_audio": "luma_rag.eval.experiments",
    "run_baseline": "luma_rag.eval.experiments",
    "run_video": "luma_rag.eval.experiments",
    "ProtocolConfig": "luma_rag.eval.run",
    "run_protocol": "luma_rag.eval.run",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
