"""Random draws of LUMA-Shapes attributes: what one item shows, before anything is planned.

Shared by :mod:`~luma_rag.datasets.sampling` (full item plans) and
:func:`~luma_rag.datasets.captions.paraphrase_groups` (captions without rendering), so neither
imports the other.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from luma_rag.datasets.attributes import ShapeAttributes
from luma_rag.datasets.vocab import BACKGROUNDS, COLORS, MOTIONS, POSITIONS, SHAPES, SIZES

__all__ = ["P_TWO", "choice", "draw_attributes"]

#: Probability that an item shows two copies of its shape.
P_TWO: Final = 0.25


def choice(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    """One of ``options``, uniformly."""
    return options[int(rng.integers(len(options)))]


def draw_attributes(rng: np.random.Generator, video: bool) -> ShapeAttributes:
    """Random attributes of one item (pairs are always small; motion only for video)."""
    shape = choice(rng, SHAPES)
    color = choice(rng, COLORS)
    count = 2 if rng.random() < P_TWO else 1
    size = choice(rng, SIZES)
    position = choice(rng, POSITIONS)
    background = choice(rng, BACKGROUNDS)
    motion = choice(rng, MOTIONS)
    return ShapeAttributes(
        shape=shape,
        color=color,
        size="small" if count == 2 else size,  # pairs are always small, so they fit
        position=position,
        count=count,
        background=background,
        motion=motion if video else None,
    )
