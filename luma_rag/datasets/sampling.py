"""Seeded plan of one LUMA-Shapes item: its attributes and everything needed to render it.

Item ``i`` of a corpus with seed ``s`` draws from five independent generators, one per
purpose, seeded by ``SeedSequence(s, spawn_key=(i, purpose))``. So an item does not depend on
``n`` (a corpus of 24 items is a prefix of one of 2000), on the worker that renders it, or on
whether audio or video is asked for: every value is always drawn, and ``--video`` only decides
whether the drawn direction of motion is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from luma_rag.datasets.attributes import ShapeAttributes
from luma_rag.datasets.captions import make_captions
from luma_rag.datasets.draws import choice as _choice
from luma_rag.datasets.draws import draw_attributes
from luma_rag.datasets.render import Background, Scene
from luma_rag.datasets.speech import PITCH_RANGE, RATE_RANGE, VARIANTS, VOICES, SpeechParams
from luma_rag.datasets.splits import Split, split_for
from luma_rag.datasets.vocab import (
    COLOR_RGB,
)

__all__ = ["ItemPlan", "plan_item"]

_ATTRS, _RENDER, _CAPTIONS, _SPEECH, _VIDEO = range(5)

#: Nominal radius as a fraction of the frame side.
RADIUS: Final = {"small": 0.11, "large": 0.2}
#: Centre of each position as a fraction of the frame side, ``(x, y)`` with y down.
ANCHORS: Final = {
    "left": (0.27, 0.5),
    "right": (0.73, 0.5),
    "top": (0.5, 0.27),
    "bottom": (0.5, 0.73),
    "center": (0.5, 0.5),
}
#: Half the distance between the two shapes of a pair, as a fraction of the frame side.
PAIR_OFFSET: Final = 0.2
POSITION_JITTER: Final = 0.04
#: Total displacement over a clip, as a fraction of the frame side.
TRAVEL: Final = 0.3
DIRECTIONS: Final = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
}
COLOR_JITTER: Final = 10
MAX_ROTATION: Final = 12.0
CLIP_SECONDS: Final = (1, 2, 3)


@dataclass(frozen=True)
class ItemPlan:
    """Everything drawn for one item before any file is written.

    Attributes:
        index: Position in the corpus.
        attributes: What the item shows.
        split: "train", "val" or "test" (see :mod:`.splits`).
        captions: 3-5 paraphrases; the first is the primary caption.
        background: The grey background.
        scene: The still image's shapes, in pixels.
        speech: How the primary caption is spoken.
        clip_frames: Number of video frames (``fps`` x 1-3 s).
        travel: Displacement over the clip in pixels, ``(dx, dy)``; the clip passes through
            the still image's position at its midpoint.
    """

    index: int
    attributes: ShapeAttributes
    split: Split
    captions: tuple[str, ...]
    background: Background
    scene: Scene
    speech: SpeechParams
    clip_frames: int
    travel: tuple[float, float]

    def clip_scene(self, frame: int) -> Scene:
        """Return the scene of video frame ``frame`` (0-based, < ``clip_frames``)."""
        t = frame / (self.clip_frames - 1) - 0.5 if self.clip_frames > 1 else 0.0
        dx, dy = self.travel[0] * t, self.travel[1] * t
        centers = tuple((x + dx, y + dy) for x, y in self.scene.centers)
        return Scene(
            self.scene.shape, self.scene.rgb, centers, self.scene.radius, self.scene.rotation
        )


def _rng(seed: int, index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, purpose)))


def _scene(rng: np.random.Generator, attrs: ShapeAttributes, size: int) -> tuple[Scene, Background]:
    jitter = rng.integers(-COLOR_JITTER, COLOR_JITTER + 1, 3)
    base = COLOR_RGB[attrs.color]
    rgb = (
        int(np.clip(base[0] + jitter[0], 0, 255)),
        int(np.clip(base[1] + jitter[1], 0, 255)),
        int(np.clip(base[2] + jitter[2], 0, 255)),
    )
    rotation = float(rng.uniform(-MAX_ROTATION, MAX_ROTATION))
    jx, jy = rng.uniform(-POSITION_JITTER, POSITION_JITTER, 2)
    ax, ay = ANCHORS[attrs.position]
    cx, cy = (ax + jx) * size, (ay + jy) * size
    if attrs.count == 1:
        centers: tuple[tuple[float, float], ...] = ((cx, cy),)
    else:
        off = PAIR_OFFSET * size
        vertical = attrs.position in ("left", "right")  # a pair at the side stands in a column
        centers = ((cx, cy - off), (cx, cy + off)) if vertical else ((cx - off, cy), (cx + off, cy))
    background = Background(
        kind=attrs.background,
        gray=int(rng.integers(80, 151)),
        angle=int(rng.integers(4)) * 45,
        period=int(rng.integers(6, 15)),
        seed=int(rng.integers(2**31)),
    )
    scene = Scene(attrs.shape, rgb, centers, RADIUS[attrs.size] * size, rotation)
    return scene, background


def plan_item(
    seed: int, index: int, *, size: int, fps: int, video: bool, split_seed: int
) -> ItemPlan:
    """Draw item ``index`` of the corpus with seed ``seed``.

    Args:
        seed: Corpus seed, >= 0.
        index: Item index, >= 0.
        size: Frame side in pixels.
        fps: Video frame rate (sets the frame count).
        video: Whether the item gets a direction of motion.
        split_seed: Seed of the held-out combinations.

    Returns:
        The item's plan.
    """
    attrs = draw_attributes(_rng(seed, index, _ATTRS), video)
    scene, background = _scene(_rng(seed, index, _RENDER), attrs, size)

    rng = _rng(seed, index, _CAPTIONS)
    k = int(rng.integers(3, 6))
    mention_background = bool(rng.random() < 0.5)
    captions = make_captions(attrs, rng, k=k, mention_background=mention_background)

    rng = _rng(seed, index, _SPEECH)
    speech = SpeechParams(
        voice=_choice(rng, VOICES) + _choice(rng, VARIANTS),
        rate=int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1)),
        pitch=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
    )

    rng = _rng(seed, index, _VIDEO)
    seconds = CLIP_SECONDS[int(rng.integers(len(CLIP_SECONDS)))]
    ux, uy = DIRECTIONS[attrs.motion or "left"]
    return ItemPlan(
        index=index,
        attributes=attrs,
        split=split_for(attrs.shape, attrs.color, split_seed),
        captions=tuple(captions),
        background=background,
        scene=scene,
        speech=speech,
        clip_frames=fps * seconds,
        travel=(ux * TRAVEL * size, uy * TRAVEL * size),
    )
