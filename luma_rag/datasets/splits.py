"""Train / val / test splits of LUMA-Shapes by held-out (shape, colour) combinations.

The rule (:func:`held_out_combos`): draw a permutation ``p`` of the colours from
``split_seed``; shape number ``i`` (in :data:`~luma_rag.datasets.vocab.SHAPES` order) is held
out for **test** in colour ``p[i]`` and for **val** in colour ``p[i + 1]``. So

* each shape has exactly one test colour and one different val colour, and each colour is held
  out with at most one shape per split: every shape and every colour is still seen in train,
  only the *combination* is new;
* with 8 shapes and 10 colours, 8 of the 80 combinations are test-only and 8 val-only, so about
  10 % of items land in each of val and test, 80 % in train;
* the held-out set depends on ``split_seed`` only, not on the corpus seed, so corpora generated
  with different seeds (one to train on, one to evaluate on) agree on what is held out.

An item's split is the split of its (shape, colour); two-shape items repeat one shape in one
colour, so they have a single combination too.
"""

from __future__ import annotations

import functools
from typing import Final, Literal

import numpy as np

from luma_rag.datasets.vocab import COLORS, SHAPES
from luma_rag.errors import InvalidInputError

__all__ = ["DEFAULT_SPLIT_SEED", "SPLITS", "Split", "held_out_combos", "split_for"]

Split = Literal["train", "val", "test"]
SPLITS: Final[tuple[Split, ...]] = ("train", "val", "test")
#: The split seed every corpus uses unless told otherwise.
DEFAULT_SPLIT_SEED: Final = 0


def held_out_combos(split_seed: int = DEFAULT_SPLIT_SEED) -> dict[str, frozenset[tuple[str, str]]]:
    """Return the (shape, colour) combinations reserved for val and for test.

    Args:
        split_seed: Seed of the colour permutation; non-negative.

    Returns:
        ``{"val": {...}, "test": {...}}``, two disjoint sets of ``(shape, color)`` pairs, one
        pair per shape in each.

    Raises:
        InvalidInputError: ``split_seed`` is negative.
    """
    val, test = _held_out(split_seed)
    return {"val": val, "test": test}


@functools.cache
def _held_out(split_seed: int) -> tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]]:
    if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
        raise InvalidInputError(f"split_seed must be an int >= 0, got {split_seed!r}")
    perm = np.random.default_rng(np.random.SeedSequence(split_seed)).permutation(len(COLORS))
    n = len(COLORS)
    test = frozenset((shape, COLORS[int(perm[i % n])]) for i, shape in enumerate(SHAPES))
    val = frozenset((shape, COLORS[int(perm[(i + 1) % n])]) for i, shape in enumerate(SHAPES))
    return val, test


def split_for(shape: str, color: str, split_seed: int = DEFAULT_SPLIT_SEED) -> Split:
    """Return the split of an item showing ``shape`` in ``color``.

    Args:
        shape: Canonical shape name.
        color: Canonical colour name.
        split_seed: Seed of the held-out set (see :func:`held_out_combos`).

    Returns:
        "test" or "val" for a held-out combination, "train" otherwise.
    """
    val, test = _held_out(split_seed)
    if (shape, color) in test:
        return "test"
    if (shape, color) in val:
        return "val"
    return "train"
