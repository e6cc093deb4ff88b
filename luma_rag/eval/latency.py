"""Latency per query stage, from the engine's own per-stage timings (``Telemetry.stages_ms``).

Each text query goes through :meth:`Luma.query`; its telemetry times the stages in pipeline
order — ``encode`` (the text tower), ``bridge`` (0 for text), ``candidates`` (both tiers,
filters and the exact rerank from the raw vectors), ``certify`` (Safe@k and its pairwise
refinement), ``records`` (hit details from SQLite) and ``complete`` (the completeness bound) —
and ``end_to_end`` is the query's ``latency_ms`` as a user sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from luma_rag.engine import Luma
from luma_rag.errors import ConfigError, InvalidInputError
from luma_rag.eval.metrics import latency_summary

__all__ = ["STAGES", "stage_latency"]

logger = logging.getLogger(__name__)

#: The stages reported, in pipeline order.
STAGES = ("encode", "bridge", "candidates", "certify", "records", "complete", "end_to_end")


def stage_latency(luma: Luma, texts: Sequence[str], k: int = 10) -> dict[str, Any]:
    """p50 / p95 / p99 latency (ms) of each stage over ``texts``.

    Args:
        luma: an open store with an encoder attached.
        texts: the text queries (at least one).
        k: hits per query.

    Returns:
        ``{stage: latency_summary}`` for each of :data:`STAGES`, plus ``n_items``.

    Raises:
        InvalidInputError: no texts. ConfigError: the store has no encoder.
    """
    if isinstance(texts, str) or not texts:
        raise InvalidInputError("stage_latency needs a non-empty list of query texts")
    if luma.encoder is None:
        raise ConfigError("stage_latency needs a store opened with an encoder")
    ms: dict[str, list[float]] = {s: [] for s in STAGES}
    for text in texts:
        tel = luma.query(text, k=k).telemetry
        for stage, value in tel.stages_ms.items():
            ms.setdefault(stage, []).append(value)
        ms["end_to_end"].append(tel.latency_ms)
    out: dict[str, Any] = {s: latency_summary(v) for s, v in ms.items() if v}
    out["n_items"] = len(luma)
    return out
