"""The texts a compositional tiny CLIP trains on, and which images each of them describes.

Per train item, three pools of texts (all drawn once, from a generator seeded by the run):

* **captions** - the item's own paraphrases (full descriptions);
* **referents** - partial descriptions as questions name their target ("a little circle",
  "two green shapes on the left"): :func:`~luma_rag.datasets.questions.make_question`'s
  ``retrieval_text`` with a random subset of size / colour / shape / position named;
* **hard negatives** (NegCLIP-style) - a full caption of the same item with exactly one of
  shape, colour, size, position or count swapped to another value, so the only way to rank
  the item's own caption above it is to see that attribute.

Every text carries its *requirement*: for each attribute in :data:`REQUIREMENT_KEYS` the
code of the value it names, or ``-1`` when it names none. An image is relevant to a text
when it matches every named value (the group-aware relevance of
:func:`~luma_rag.datasets.relevant`), so a swapped caption that happens to describe another
image in the batch is that image's positive, not a false negative.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np

from luma_rag.datasets.attributes import ShapeAttributes
from luma_rag.datasets.captions import make_captions, parse_query_attributes
from luma_rag.datasets.questions import QUESTION_KINDS, make_question
from luma_rag.datasets.shapes import ShapeItem
from luma_rag.datasets.vocab import BACKGROUNDS, COLORS, COUNTS, POSITIONS, SHAPES, SIZES

__all__ = [
    "ATTRIBUTE_VALUES",
    "REQUIREMENT_KEYS",
    "TextPools",
    "attribute_codes",
    "build_text_pools",
    "requirement",
    "swap_one",
]

#: Attributes a requirement row holds, in column order.
REQUIREMENT_KEYS: Final = ("shape", "color", "size", "position", "count", "background")
#: Canonical values of each requirement column; a code is the index in its tuple.
ATTRIBUTE_VALUES: Final[dict[str, tuple[Any, ...]]] = {
    "shape": SHAPES,
    "color": COLORS,
    "size": SIZES,
    "position": POSITIONS,
    "count": COUNTS,
    "background": BACKGROUNDS,
}
#: Attributes a hard negative may swap.
SWAPPABLE: Final = ("shape", "color", "size", "position", "count")


@dataclasses.dataclass(frozen=True)
class TextPools:
    """All texts of a split, flat, with per-item ranges.

    Attributes:
        texts: Every text, item by item: captions, then referents, then negatives.
        requirements: int64 ``(len(texts), len(REQUIREMENT_KEYS))``, ``-1`` = free.
        is_negative: bool ``(len(texts),)``: the text is a swapped caption.
        starts: int64 ``(n_items, 3)``: first row of each item's captions, referents,
            negatives.
        counts: int64 ``(n_items, 3)``: how many of each.
    """

    texts: list[str]
    requirements: np.ndarray
    is_negative: np.ndarray
    starts: np.ndarray
    counts: np.ndarray


def requirement(named: Mapping[str, Any]) -> list[int]:
    """Codes of the attributes ``named`` names (``-1`` for the others)."""
    return [
        ATTRIBUTE_VALUES[key].index(named[key]) if named.get(key) is not None else -1
        for key in REQUIREMENT_KEYS
    ]


def attribute_codes(items: Sequence[ShapeItem]) -> np.ndarray:
    """int64 ``(n, len(REQUIREMENT_KEYS))``: each item's attribute codes."""
    return np.array([requirement(it.attributes.as_dict()) for it in items], dtype=np.int64).reshape(
        len(items), len(REQUIREMENT_KEYS)
    )


def swap_one(
    attrs: ShapeAttributes, rng: np.random.Generator, keys: Sequence[str] = SWAPPABLE
) -> ShapeAttributes:
    """The same attributes with one of ``keys`` changed to another valid value.

    Two-shape items are always small, so swapping count to 2 also makes the size small and
    swapping the size of a pair to large is not drawn (a count swap is drawn instead).
    """
    key = keys[int(rng.integers(len(keys)))]
    if key == "size" and attrs.count == 2:
        key = "count"
    current = getattr(attrs, key)
    others = [v for v in ATTRIBUTE_VALUES[key] if v != current]
    value = others[int(rng.integers(len(others)))]
    changes: dict[str, Any] = {key: value}
    if key == "count" and value == 2:
        changes["size"] = "small"
    return dataclasses.replace(attrs, **changes)


def build_text_pools(
    items: Sequence[ShapeItem],
    rng: np.random.Generator,
    *,
    referents: int,
    negatives: int,
    swap_background: bool = False,
) -> TextPools:
    """Draw every item's referents and hard negatives and collect all texts with requirements.

    Args:
        items: The split's items (their captions are used as they are).
        rng: Generator of referent subsets, templates, synonyms and swaps.
        referents: Referents per item (``>= 0``).
        negatives: Hard negatives per item (``>= 0``).
        swap_background: A negative of an item whose primary caption names the background
            may swap the background too (one of :data:`SWAPPABLE` or the background).

    Returns:
        The :class:`TextPools`.
    """
    texts: list[str] = []
    reqs: list[list[int]] = []
    neg: list[bool] = []
    starts, counts = [], []
    for it in items:
        row_starts, row_counts = [], []
        a = it.attributes
        captions = list(it.captions)
        row_starts.append(len(texts))
        texts += captions
        reqs += [requirement(parse_query_attributes(c)) for c in captions]
        row_starts.append(len(texts))
        for _ in range(referents):
            kind = QUESTION_KINDS[int(rng.integers(len(QUESTION_KINDS)))]
            q = make_question(a, kind, rng)
            texts.append(q.retrieval_text)
            reqs.append(requirement(q.named))
        row_starts.append(len(texts))
        names_background = "background" in parse_query_attributes(it.caption)
        keys = (*SWAPPABLE, "background") if swap_background and names_background else SWAPPABLE
        for _ in range(negatives):
            swapped = swap_one(a, rng, keys)
            caption = make_captions(swapped, rng, k=1, mention_background=names_background)[0]
            texts.append(caption)
            reqs.append(requirement(parse_query_attributes(caption)))
        row_counts = [len(captions), referents, negatives]
        neg += [False] * (len(captions) + referents) + [True] * negatives
        starts.append(row_starts)
        counts.append(row_counts)
    return TextPools(
        texts,
        np.array(reqs, dtype=np.int64).reshape(len(texts), len(REQUIREMENT_KEYS)),
        np.array(neg, dtype=bool),
        np.array(starts, dtype=np.int64).reshape(len(items), 3),
        np.array(counts, dtype=np.int64).reshape(len(items), 3),
    )
