"""Near-duplicate image sets for the memory-spill experiment (the paper's ×20 augmentation).

Each base image becomes ``copies`` files: copy 0 is the original, the others are small
meaning-preserving variants — a crop of a few pixels resized back, a shift of a few pixels, a
brightness / contrast change (:func:`luma_rag.calibration.augment_image`). A copy keeps its base
item's caption and attributes, so group-aware relevance treats the whole group alike.

Example:
    >>> dups = write_near_duplicates(items[:31], tmp_path / "aug", copies=20, seed=0)
    >>> len(dups)
    620
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag.datasets.manifest import ShapeItem
from luma_rag.errors import InvalidInputError

__all__ = ["NearDuplicate", "near_duplicate", "write_near_duplicates"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NearDuplicate:
    """One file of a near-duplicate group.

    Attributes:
        id: ``"<base id>-dupNN"``.
        path: the PNG written.
        base: id of the base item (the group).
        copy: 0 for the original, 1.. for the variants.
        item: the base :class:`~luma_rag.datasets.manifest.ShapeItem` (caption, attributes).
    """

    id: str
    path: Path
    base: str
    copy: int
    item: ShapeItem


def near_duplicate(image: Any, rng: np.random.Generator) -> Any:
    """A near-duplicate of a Pillow image: crop ≤ 4 % per side resized back, then shift + light.

    Args:
        image: a ``PIL.Image.Image`` (RGB).
        rng: the random generator (seeded by the caller).

    Returns:
        A new image of the same size.
    """
    from PIL import Image

    from luma_rag.calibration import augment_image

    w, h = image.size
    cw, ch = max(1, w // 25), max(1, h // 25)
    left, right = (int(v) for v in rng.integers(0, cw + 1, 2))
    top, bottom = (int(v) for v in rng.integers(0, ch + 1, 2))
    cropped = image.crop((left, top, w - right, h - bottom)).resize(
        (w, h), Image.Resampling.BILINEAR
    )
    return augment_image(cropped, rng)


def write_near_duplicates(
    items: Sequence[ShapeItem], out_dir: str | os.PathLike[str], copies: int, seed: int = 0
) -> list[NearDuplicate]:
    """Write ``copies`` near-duplicates of each item's image into ``out_dir``.

    Args:
        items: base items (their ``image_path`` must exist).
        out_dir: a directory (created); files are ``<id>-dupNN.png``.
        copies: files per base item, >= 1 (copy 0 is the original, re-encoded as PNG).
        seed: seed of the augmentations; the output depends only on it and the inputs.

    Returns:
        ``len(items) * copies`` entries, grouped by base item in input order.

    Raises:
        InvalidInputError: no items, or ``copies < 1``.
    """
    from PIL import Image

    if not items:
        raise InvalidInputError("write_near_duplicates needs at least one base item")
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise InvalidInputError(f"copies must be an int >= 1, got {copies!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    dups: list[NearDuplicate] = []
    for it in items:
        with Image.open(it.image_path) as im:
            base = im.convert("RGB")
        for c in range(copies):
            variant = base if c == 0 else near_duplicate(base, rng)
            path = out / f"{it.id}-dup{c:02d}.png"
            variant.save(path)
            dups.append(NearDuplicate(f"{it.id}-dup{c:02d}", path, it.id, c, it))
    logger.info("wrote %d near-duplicates of %d images to %s", len(dups), len(items), out)
    return dups
