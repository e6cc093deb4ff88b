"""Embedders the engine does not own (LangChain ``Embeddings``, LlamaIndex ``BaseEmbedding``):
their ρ and their relevance test, calibrated on first use on the store's own texts, persisted.

The integrations call :func:`embedder_rho` before a search with a foreign query vector, so
the certificate is never silently computed with ρ = 0: it is either calibrated for that
embedder (:func:`luma_rag.rho.calibrate_rho` on a sample of the store's texts, bounded in
time, progress logged) or reported ``rho_source: "unset"``. :func:`embedder_relevance` is
:func:`~luma_rag.answer.relevance_auto.store_relevance` with the foreign embedder as the
query embedder. Both are keyed by :func:`~luma_rag.rho.embedder_name`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from luma_rag.errors import LumaError
from luma_rag.rho import Progress, RhoConfig, as_embed_fn, calibrate_rho, embedder_name

if TYPE_CHECKING:
    from luma_rag.engine import Luma
    from luma_rag.relevance import RelevanceModel

__all__ = ["embedder_relevance", "embedder_rho", "store_texts"]

logger = logging.getLogger(__name__)


def store_texts(luma: Luma, limit: int, seed: int = 0) -> list[str]:
    """Up to ``limit`` item texts of ``luma``, sampled with ``seed``."""
    ids = luma.ids()
    if len(ids) > limit:
        rng = np.random.default_rng(seed)
        ids = [ids[int(i)] for i in rng.choice(len(ids), limit, replace=False)]
    return [str(it["text"]) for it in luma.get(ids) if it.get("text")]


def embedder_rho(
    luma: Luma,
    embedder: Any,
    *,
    calibrate: bool = True,
    config: RhoConfig | None = None,
    progress: Progress | None = None,
) -> tuple[float, Literal["calibrated", "unset"]]:
    """ρ for a foreign text embedder over ``luma``, and where it came from.

    Args:
        luma: An open store.
        embedder: LangChain ``Embeddings`` / LlamaIndex ``BaseEmbedding`` / callable.
        calibrate: Calibrate now when nothing is stored (default); else report unset.
        config: Calibration settings (default: ``RhoConfig(time_budget_s=30)``).
        progress: ``progress(done, total)`` during calibration.

    Returns:
        ``(rho, "calibrated")``, or ``(0.0, "unset")`` when it is not calibrated and cannot
        be (no texts in the store, ``calibrate=False``, or the embedder failed).
    """
    key = f"rho:{embedder_name(embedder)}"
    stored = luma.calibration(key)
    if stored is not None:
        return float(stored["rho"]), "calibrated"
    if not calibrate:
        return 0.0, "unset"
    cfg = config or RhoConfig(time_budget_s=30.0)
    texts = store_texts(luma, 2 * cfg.max_items, cfg.seed)
    if not texts:
        logger.warning("no texts in the store to calibrate rho for %s: unset", key)
        return 0.0, "unset"
    try:
        est = calibrate_rho(embedder, texts, config=cfg, progress=progress)
    except LumaError as e:
        logger.warning("rho calibration for %s failed (%s): unset", key, e)
        return 0.0, "unset"
    try:
        luma.set_calibration(key, est.to_dict())
    except LumaError as e:  # a read-only store: use it for this session, unsaved
        logger.info("rho calibration for %s not saved (%s)", key, e)
    logger.info("rho for %s calibrated: %.4f (%d pairs)", key, est.rho, est.n_pairs)
    return est.rho, "calibrated"


def embedder_relevance(luma: Luma, embedder: Any) -> RelevanceModel | None:
    """The store's relevance test with ``embedder`` embedding the queries (persisted)."""
    from luma_rag.answer.relevance_auto import store_relevance

    return store_relevance(luma, as_embed_fn(embedder), embedder=embedder_name(embedder))
