"""The store's relevance model: loaded if persisted, else calibrated on first use and saved.

:class:`~luma_rag.answer.gate.GatedRetriever` (``relevance="auto"``) and the integrations call
:func:`store_relevance`. Calibration (:func:`luma_rag.relevance.calibrate_relevance`) samples
at most ``max_items`` items that carry text, embeds perturbed versions of their texts with the
query embedder (the store's encoder, or the foreign embedder passed in), and persists the
model under ``Luma.calibration("relevance:<embedder>")``. A store with fewer than 10 texts
gets no relevance test (logged), rather than a guessed one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from luma_rag.errors import InvalidInputError, LumaError
from luma_rag.relevance import RelevanceConfig, RelevanceModel, calibrate_relevance

if TYPE_CHECKING:
    from luma_rag.engine import Luma

__all__ = ["store_relevance"]

logger = logging.getLogger(__name__)


def store_relevance(
    luma: Luma,
    embed_text: Callable[[list[str]], Any] | None = None,
    *,
    embedder: str = "encoder",
    config: RelevanceConfig | None = None,
) -> RelevanceModel | None:
    """The relevance model of ``luma`` for one query embedder (persisted after first use).

    Args:
        luma: An open store.
        embed_text: The query text embedder (default: the store's encoder).
        embedder: A name for that embedder (part of the persisted key).
        config: Calibration settings (default :class:`RelevanceConfig`).

    Returns:
        The model, or ``None`` when the store cannot support one (no text embedder, fewer
        than 10 items with text, or a stand-in without calibration storage).
    """
    key = f"relevance:{embedder}"
    get = getattr(luma, "calibration", None)
    if get is None:
        return None
    stored = get(key)
    if stored:
        try:
            return RelevanceModel.from_dict(stored)
        except InvalidInputError as e:
            logger.warning("ignoring the stored relevance calibration (%s); recalibrating", e)
    if embed_text is None:
        encoder = getattr(luma, "encoder", None)
        if encoder is None:
            return None
        embed_text = encoder.encode_text
    cfg = config or RelevanceConfig()
    ids = luma.ids()
    if len(ids) > 4 * cfg.max_items:  # sample before reading: bounded time on big stores
        rng = np.random.default_rng(cfg.seed)
        ids = [ids[int(i)] for i in rng.choice(len(ids), 4 * cfg.max_items, replace=False)]
    items = [it for it in luma.get(ids) if it.get("text")]
    if len(items) < 10:
        logger.info("no relevance test: %d items carry text (10 needed)", len(items))
        return None
    start = time.perf_counter()
    try:
        model = calibrate_relevance(
            [it["text"] for it in items], np.stack([it["vector"] for it in items]), embed_text, cfg
        )
    except LumaError as e:
        logger.warning("relevance calibration failed (%s); no relevance test", e)
        return None
    try:
        luma.set_calibration(key, model.to_dict())
    except LumaError as e:  # a read-only store: use it for this session, unsaved
        logger.info("relevance calibration not saved (%s)", e)
    logger.info("relevance calibrated in %.1f s and saved as %r", time.perf_counter() - start, key)
    return model
