"""The closed vocabulary of LUMA-Shapes: attribute values, their colours and their synonyms.

Every attribute has a small set of canonical values (the strings stored in the manifest) and,
for the ones that appear in captions, a list of surface words. The first word of each list is
the canonical one. :mod:`luma_rag.datasets.captions` draws from these lists to write captions
and inverts them to parse captions and queries back to attributes, so the two can never drift.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ATTRIBUTE_NAMES",
    "BACKGROUNDS",
    "BACKGROUND_PHRASES",
    "COLORS",
    "COLOR_RGB",
    "COLOR_WORDS",
    "COUNTS",
    "MOTIONS",
    "MOTION_VERBS",
    "POSITIONS",
    "POSITION_PHRASES",
    "SHAPES",
    "SHAPE_WORDS",
    "SIZES",
    "SIZE_WORDS",
]

#: Keys of ``attributes`` in the manifest, in manifest order.
ATTRIBUTE_NAMES: Final = (
    "shape",
    "color",
    "size",
    "position",
    "count",
    "background",
    "motion",
)

SHAPES: Final = (
    "circle",
    "square",
    "triangle",
    "star",
    "hexagon",
    "pentagon",
    "cross",
    "diamond",
)

#: Nominal sRGB of each colour; rendered colours are jittered by a few levels around these.
COLOR_RGB: Final[dict[str, tuple[int, int, int]]] = {
    "red": (220, 30, 30),
    "orange": (245, 130, 20),
    "yellow": (240, 220, 30),
    "green": (40, 170, 60),
    "cyan": (30, 200, 210),
    "blue": (30, 70, 220),
    "purple": (135, 50, 190),
    "pink": (245, 120, 180),
    "brown": (130, 75, 30),
    "white": (240, 240, 240),
}
COLORS: Final = tuple(COLOR_RGB)

SIZES: Final = ("small", "large")
POSITIONS: Final = ("left", "right", "top", "bottom", "center")
COUNTS: Final = (1, 2)
BACKGROUNDS: Final = ("plain", "noise", "stripes")
#: Directions of motion in video clips (``attributes.motion``); ``None`` for still items.
MOTIONS: Final = ("left", "right", "up", "down")

#: Surface words per shape as ``(singular, plural)`` pairs.
SHAPE_WORDS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "circle": (("circle", "circles"), ("disc", "discs"), ("disk", "disks")),
    "square": (("square", "squares"), ("box", "boxes")),
    "triangle": (("triangle", "triangles"),),
    "star": (("star", "stars"),),
    "hexagon": (("hexagon", "hexagons"),),
    "pentagon": (("pentagon", "pentagons"),),
    "cross": (("cross", "crosses"), ("plus sign", "plus signs")),
    "diamond": (("diamond", "diamonds"), ("rhombus", "rhombuses")),
}

COLOR_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "red": ("red", "crimson", "scarlet"),
    "orange": ("orange", "tangerine"),
    "yellow": ("yellow", "golden", "lemon"),
    "green": ("green", "emerald"),
    "cyan": ("cyan", "turquoise", "aqua"),
    "blue": ("blue", "azure", "cobalt"),
    "purple": ("purple", "violet"),
    "pink": ("pink", "rosy"),
    "brown": ("brown", "chocolate"),
    "white": ("white", "ivory"),
}

SIZE_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "small": ("small", "tiny", "little"),
    "large": ("large", "big", "huge"),
}

#: Phrases used in captions per position; the last word of each is what the parser keys on.
POSITION_PHRASES: Final[dict[str, tuple[str, ...]]] = {
    "left": ("on the left", "at left", "on the left side"),
    "right": ("on the right", "at right", "on the right side"),
    "top": ("at the top", "near the top", "in the upper part"),
    "bottom": ("at the bottom", "near the bottom", "in the lower part"),
    "center": ("in the center", "in the middle", "at the centre"),
}

BACKGROUND_PHRASES: Final[dict[str, tuple[str, ...]]] = {
    "plain": ("on a plain background", "against a flat backdrop", "on a uniform background"),
    "noise": ("on a noisy background", "against a grainy backdrop", "on a speckled background"),
    "stripes": ("on a striped background", "against a stripy backdrop", "over stripes"),
}

#: Verbs that introduce a direction of motion ("moving left", "drifting to the left").
MOTION_VERBS: Final = ("moving", "drifting", "sliding", "heading", "gliding")
