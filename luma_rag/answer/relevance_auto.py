"""The store's relevance model: loaded if persisted, else calibrated on first use and saved.

:class:`~luma_rag.answer.gate.GatedRetriever` (``relevance="auto"``) and the integrations call
:func:`store_relevance`. Calibration (:func:`luma_rag.relevance.calibrate_relevance`) samples
at most ``max_items`` items that carry text, embeds perturbed versions of their texts with the
query embedder (the store's encoder, or the foreign embedder passed in), and persists the
model under ``Luma.calibration("relevance:<embedder>")``; a persisted model of an older
method (:data:`~luma_rag.relevance.RELEVANCE_VERSION`) is recalibrated, one a user set
(``source: "user"``) is kept. A store with fewer than 10 texts
gets no relevance test (logged), rather than a guessed one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from luma_rag.errors import InvalidInputError, LumaError
from luma_rag.relevance import (
    RELEVANCE_VERSION,
    RelevanceConfig,
    RelevanceModel,
    calibrate_relevance,
)

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
    if stored and stored.get("source") != "user" and stored.get("version") != RELEVANCE_VERSION:
        logger.info("the stored relevance calibration is of an older method; recalibrating")
        stored = None
    if embed_text is None:
        encoder = getattr(luma, "encoder", None)
        embed_text = None if encoder is None else encoder.encode_text
    if stored:
        try:
            model = RelevanceModel.from_dict(stored)
        except InvalidInputError as e:
            logger.warning("ignoring the stored relevance calibration (%s); recalibrating", e)
        else:
            return model if embed_text is None else model.with_embedder(embed_text)
    if embed_text is None:
        return None
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
