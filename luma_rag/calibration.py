"""The encoder radius ρ: how far two inputs that mean the same land apart in embedding space.

ρ is the ``quantile`` (0.9 by default) of ‖e(x) − e(x′)‖ over pairs (x, x′) that mean the
same — several captions of one image, augmentations of one image, two voices speaking one
caption. It enters the Safe@k bound on the query side (see :mod:`luma_rag.safety`), which
turns "margin > 0" into a certificate that actually separates stable from fragile rankings.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from luma_rag.errors import InvalidInputError

__all__ = [
    "augment_image",
    "group_pairs",
    "radius_from_augmentations",
    "radius_from_groups",
    "radius_from_pairs",
]


def radius_from_pairs(a: np.ndarray, b: np.ndarray, quantile: float = 0.9) -> float:
    """``quantile`` of the row distances ‖a_i − b_i‖ of two (n, d) arrays of unit vectors."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] == 0:
        raise InvalidInputError(
            f"need two equal (n, d) arrays with n >= 1, got {a.shape} and {b.shape}"
        )
    if not (0.0 < quantile <= 1.0):
        raise InvalidInputError(f"quantile must be in (0, 1], got {quantile}")
    dist = np.linalg.norm(a - b, axis=1)
    if not np.isfinite(dist).all():
        raise InvalidInputError("embeddings contain NaN or inf")
    return float(np.quantile(dist, quantile))


def group_pairs(
    groups: Sequence[Sequence[int]], max_per_group: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs within each group of same-meaning inputs (at most ``max_per_group`` each)."""
    left: list[int] = []
    right: list[int] = []
    for g in groups:
        for i, j in itertools.islice(itertools.combinations(list(g), 2), max_per_group):
            left.append(i)
            right.append(j)
    return np.array(left, dtype=np.int64), np.array(right, dtype=np.int64)


def radius_from_groups(
    embed: Callable[[list[str]], np.ndarray],
    groups: Sequence[Sequence[str]],
    quantile: float = 0.9,
) -> float:
    """ρ for a text encoder from groups of paraphrases (each group: captions of one item)."""
    flat: list[str] = []
    index_groups: list[list[int]] = []
    for g in groups:
        index_groups.append(list(range(len(flat), len(flat) + len(g))))
        flat.extend(g)
    left, right = group_pairs(index_groups)
    if left.size == 0:
        raise InvalidInputError("need at least one group with two or more paraphrases")
    emb = embed(flat)
    rho = radius_from_pairs(emb[left], emb[right], quantile)
    return rho if math.isfinite(rho) else 0.0


def augment_image(image: Any, rng: np.random.Generator) -> Any:
    """A meaning-preserving variant of a Pillow image: a shift of a few pixels and a small
    brightness / contrast change (no flips or crops: position is part of the meaning)."""
    from PIL import ImageChops, ImageEnhance

    w = image.size[0]
    dx, dy = (int(v) for v in rng.integers(-max(1, w // 32), max(1, w // 32) + 1, 2))
    out = ImageChops.offset(image, dx, dy)
    out = ImageEnhance.Brightness(out).enhance(float(rng.uniform(0.9, 1.1)))
    return ImageEnhance.Contrast(out).enhance(float(rng.uniform(0.9, 1.1)))


def radius_from_augmentations(
    embed: Callable[[list[Any]], np.ndarray],
    images: Sequence[Any],
    *,
    n_aug: int = 2,
    quantile: float = 0.9,
    seed: int = 0,
) -> float:
    """ρ for an image encoder: distances between each image and ``n_aug`` augmentations of it."""
    if len(images) == 0 or n_aug < 1:
        raise InvalidInputError("need at least one image and one augmentation")
    rng = np.random.default_rng(seed)
    originals = list(images) * n_aug
    variants = [augment_image(im, rng) for im in originals]
    return radius_from_pairs(embed(originals), embed(variants), quantile)
