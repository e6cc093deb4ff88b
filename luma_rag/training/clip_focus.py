"""Shape-focused batches for the tiny CLIP: draw more of the shapes its image embedding confuses.

Why: CLIP v3's linear shape probe misses pentagons and hexagons (each mostly read as the
other), on unseen *and* on seen combinations (seed 5519, probe fitted on half the train split:
hexagon 76/143, pentagon 108/136, every other shape >= 0.92), while a small CNN reads the two
apart from the same 64 px pixels (colour-free masks: 76/76 test items). So the information is
in the pixels and the tower is under-trained on that distinction: in a random batch of 128
items there are few pentagon/hexagon pairs for the group InfoNCE to tell apart, and the two
are 2/8 of the shape head's gradient.

Before the contrastive epochs, a ridge probe of shape on the model's unit image embeddings,
two folds over the train split (seen combinations only; nothing held out is read), gives each
shape its error rate. A share ``focus`` of every batch's probability mass then goes to the
shapes in proportion to those errors, the rest stays proportional to their counts. The
confused shapes fill the batch, so they become each other's in-batch negatives and get the
heads' gradient. Sampling draws items that exist; no new (shape, colour) pair is made.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from luma_rag.datasets.vocab import SHAPES
from luma_rag.training.compositional import ridge_predict

__all__ = ["focus_weights", "shape_errors"]

logger = logging.getLogger(__name__)


def shape_errors(model: Any, pixels: Any, shape_codes: Any, torch: Any, batch: int = 256) -> Any:
    """Per-shape error rate of a two-fold ridge probe of shape on the model's image embeddings.

    Args:
        model: open_clip model (put in eval mode here; the caller sets train mode back).
        pixels: float ``(n, 3, H, W)`` normalised train images.
        shape_codes: int64 ``(n,)`` shape index per image (:data:`SHAPES` order).
        torch: The torch module.
        batch: Images per forward pass.

    Returns:
        float64 ``(len(SHAPES),)``: share of each shape's items the probe reads wrong.
    """
    model.eval()
    with torch.no_grad():
        emb = torch.cat(
            [
                model.encode_image(pixels[i : i + batch], normalize=True)
                for i in range(0, len(pixels), batch)
            ]
        )
    x = emb.numpy()
    y = shape_codes.numpy()
    wrong = np.zeros(len(y), dtype=bool)
    for fold in (0, 1):
        fit = np.arange(len(y)) % 2 != fold
        wrong[~fit] = ridge_predict(x[fit], y[fit], len(SHAPES), x[~fit]) != y[~fit]
    counts = np.bincount(y, minlength=len(SHAPES))
    errors = np.bincount(y, weights=wrong, minlength=len(SHAPES)) / np.maximum(counts, 1)
    logger.info(
        "shape probe errors on the train split: %s", dict(zip(SHAPES, errors.round(3), strict=True))
    )
    return errors


def focus_weights(shape_codes: Any, errors: np.ndarray, focus: float, torch: Any) -> Any:
    """Sampling weight of every item: shapes get ``focus`` of the mass by their error.

    Args:
        shape_codes: int64 ``(n,)`` shape index per item.
        errors: float ``(len(SHAPES),)`` from :func:`shape_errors`.
        focus: Share of the probability mass given by error instead of by count, in [0, 1].
        torch: The torch module.

    Returns:
        float64 tensor ``(n,)`` summing to 1.
    """
    y = shape_codes.numpy()
    counts = np.bincount(y, minlength=len(SHAPES)).astype(np.float64)
    by_error = errors / errors.sum() if errors.sum() > 0 else counts / counts.sum()
    share = (1.0 - focus) * counts / counts.sum() + focus * by_error
    per_item = share[y] / counts[y]
    return torch.from_numpy(per_item / per_item.sum())
