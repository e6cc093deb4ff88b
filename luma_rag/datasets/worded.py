"""LUMA-Shapes with words: some images carry a written word (for OCR).

Item ``i`` of a set with seed ``s`` is LUMA-Shapes item ``i`` of seed ``s`` rendered at
``size`` pixels; with probability ``p_word`` (drawn from ``SeedSequence(s, spawn_key=(i, 8))``)
a word from :data:`WORDS` is written under the shape in white on a dark band. Words are drawn
without repeats while the list lasts, so a word query has one right image.

Example:
    >>> items = worded_images("data/worded", n=100, seed=5606)
    >>> [it.word for it in items[:3]]
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from luma_rag.datasets.attributes import ShapeAttributes
from luma_rag.datasets.render import background_array, render_frame, require_pillow
from luma_rag.datasets.sampling import plan_item
from luma_rag.datasets.splits import DEFAULT_SPLIT_SEED
from luma_rag.errors import InvalidInputError

__all__ = ["WORDED_MANIFEST", "WORDS", "WordedItem", "worded_images"]

logger = logging.getLogger(__name__)

WORDED_MANIFEST: Final = "worded.jsonl"
_WORD_PURPOSE: Final = 8  # spawn key (the corpus uses 0-4, edits 7)
#: Everyday words, none of them a LUMA-Shapes attribute word.
WORDS: Final = (
    "harbor", "violin", "garden", "rocket", "candle", "pirate", "forest", "castle", "dragon",
    "bottle", "window", "pencil", "rabbit", "island", "silver", "anchor", "basket", "bridge",
    "cactus", "copper", "desert", "engine", "falcon", "ginger", "hammer", "jacket", "kettle",
    "ladder", "magnet", "needle", "orchid", "parrot", "puzzle", "quartz", "ribbon", "saddle",
    "tablet", "tunnel", "velvet", "walnut", "yogurt", "zipper", "meadow", "lantern", "compass",
    "blanket", "cabinet", "dolphin", "feather", "glacier", "harvest", "journal", "kitchen",
    "lobster", "mustard", "noodle", "octopus", "pepper", "rainbow", "sparrow",
)  # fmt: skip


@dataclass(frozen=True)
class WordedItem:
    """One image: its file, its attributes and the word written in it (None: no word)."""

    id: str
    image: Path
    attributes: ShapeAttributes
    word: str | None


def _draw_word(image: object, word: str, size: int) -> None:
    from PIL import ImageDraw, ImageFont

    draw = ImageDraw.Draw(image)  # type: ignore[arg-type]
    font = ImageFont.load_default(size=max(10, size // 7))
    band = (0, int(size * 0.78), size, size)
    draw.rectangle(band, fill=(20, 20, 20))
    left, top, right, bottom = draw.textbbox((0, 0), word, font=font)
    x = (size - (right - left)) / 2 - left
    y = band[1] + (band[3] - band[1] - (bottom - top)) / 2 - top
    draw.text((x, y), word, fill=(250, 250, 250), font=font)


def worded_images(
    out_dir: str | Path,
    n: int,
    seed: int,
    *,
    size: int = 128,
    p_word: float = 0.5,
    split_seed: int = DEFAULT_SPLIT_SEED,
) -> list[WordedItem]:
    """Render ``n`` images under ``out_dir`` (``images/`` + ``worded.jsonl``); some carry words.

    Args:
        out_dir: Directory (created; existing files are overwritten).
        n: Number of images, >= 1. seed: Set seed, >= 0.
        size: Image side in pixels (>= 96 so words stay legible).
        p_word: Probability that an image carries a word.

    Returns:
        The items, in order.
    """
    require_pillow()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInputError(f"n must be an integer >= 1, got {n!r}")
    if not 0.0 <= p_word <= 1.0:
        raise InvalidInputError(f"p_word must be in [0, 1], got {p_word!r}")
    if size < 96:
        raise InvalidInputError(f"size must be >= 96 pixels for legible words, got {size}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_WORD_PURPOSE,)))
    words = [WORDS[i] for i in order.permutation(len(WORDS))]
    items: list[WordedItem] = []
    for i in range(n):
        plan = plan_item(seed, i, size=size, fps=8, video=False, split_seed=split_seed)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i, _WORD_PURPOSE)))
        word = (
            words[len([x for x in items if x.word]) % len(words)] if rng.random() < p_word else None
        )
        image = render_frame(background_array(plan.background, size), plan.scene)
        if word is not None:
            _draw_word(image, word, size)
        path = out / "images" / f"worded-{i:06d}.png"
        image.save(path, format="PNG")
        items.append(WordedItem(f"worded-{i:06d}", path, plan.attributes, word))
    lines = [
        json.dumps(
            {
                "id": it.id,
                "image": it.image.relative_to(out).as_posix(),
                "attributes": it.attributes.as_dict(),
                "word": it.word,
            }
        )
        for it in items
    ]
    (out / WORDED_MANIFEST).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return items
