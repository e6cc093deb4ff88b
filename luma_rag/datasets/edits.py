"""LUMA-Shapes attribute edits: an image and the same scene in another colour.

Pair ``i`` of a set with seed ``s`` is item ``i`` of the LUMA-Shapes corpus with seed ``s``
(same plan: shape, size, position, count, background, rotation, jitter) rendered twice: as
drawn (the *source*) and with its colour replaced by a different one drawn from
``SeedSequence(s, spawn_key=(i, 7))`` (the *target*), keeping the source's small colour jitter.
So "this image, but red" has exactly one right answer in a gallery of sources and targets.

Example:
    >>> pairs = colour_edit_pairs("data/edits", n=200, seed=5303)
    >>> pairs[0].source, pairs[0].target, pairs[0].new_color
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from luma_rag.datasets.attributes import ShapeAttributes
from luma_rag.datasets.render import background_array, render_frame
from luma_rag.datasets.sampling import plan_item
from luma_rag.datasets.splits import DEFAULT_SPLIT_SEED, Split, split_for
from luma_rag.datasets.vocab import COLOR_RGB, COLORS
from luma_rag.errors import InvalidInputError

__all__ = ["EDITS_MANIFEST", "EditPair", "colour_edit_pairs"]

logger = logging.getLogger(__name__)

EDITS_MANIFEST: Final = "edits.jsonl"
_EDIT_PURPOSE: Final = 7  # spawn key of the new-colour draw (the corpus uses 0-4)


@dataclass(frozen=True)
class EditPair:
    """One attribute edit.

    Attributes:
        id: ``"edit-000012"``; the source's gallery id is ``id + "-src"``, the target's
            ``id + "-tgt"``.
        source: PNG of the scene as drawn. target: PNG of the same scene in ``new_color``.
        attributes: The source's attributes (``color`` is the old colour).
        new_color: The target's colour (never the old one).
        target_split: Split of the target's (shape, new colour) combination: "test" / "val"
            when the tiny CLIP never saw that combination in training.
    """

    id: str
    source: Path
    target: Path
    attributes: ShapeAttributes
    new_color: str
    target_split: Split


def _new_color(seed: int, index: int, old: str) -> str:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, _EDIT_PURPOSE)))
    others = [c for c in COLORS if c != old]
    return others[int(rng.integers(len(others)))]


def colour_edit_pairs(
    out_dir: str | Path,
    n: int,
    seed: int,
    *,
    size: int = 64,
    split_seed: int = DEFAULT_SPLIT_SEED,
) -> list[EditPair]:
    """Render ``n`` colour-edit pairs under ``out_dir`` (``images/`` + ``edits.jsonl``).

    Args:
        out_dir: Directory (created; existing pair files are overwritten).
        n: Number of pairs, >= 1.
        seed: Set seed, >= 0 (use one no training run or test uses for held-out figures).
        size: Image side in pixels.
        split_seed: Seed of the held-out (shape, colour) combinations.

    Returns:
        The pairs, in order.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInputError(f"n must be an integer >= 1, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInputError(f"seed must be an integer >= 0, got {seed!r}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    pairs: list[EditPair] = []
    lines: list[str] = []
    for i in range(n):
        plan = plan_item(seed, i, size=size, fps=8, video=False, split_seed=split_seed)
        old = plan.attributes.color
        new = _new_color(seed, i, old)
        jitter = np.subtract(plan.scene.rgb, COLOR_RGB[old])
        rgb = np.clip(np.add(COLOR_RGB[new], jitter), 0, 255).astype(int)
        edited = dataclasses.replace(plan.scene, rgb=(int(rgb[0]), int(rgb[1]), int(rgb[2])))
        bg = background_array(plan.background, size)
        pid = f"edit-{i:06d}"
        src, tgt = out / "images" / f"{pid}-src.png", out / "images" / f"{pid}-tgt.png"
        render_frame(bg, plan.scene).save(src, format="PNG")
        render_frame(bg, edited).save(tgt, format="PNG")
        split = split_for(plan.attributes.shape, new, split_seed)
        pairs.append(EditPair(pid, src, tgt, plan.attributes, new, split))
        lines.append(
            json.dumps(
                {
                    "id": pid,
                    "source": src.relative_to(out).as_posix(),
                    "target": tgt.relative_to(out).as_posix(),
                    "attributes": plan.attributes.as_dict(),
                    "new_color": new,
                    "target_split": split,
                }
            )
        )
    (out / EDITS_MANIFEST).write_text("\n".join(lines) + "\n", encoding="utf-8")
    logger.info("wrote %d colour-edit pairs to %s", n, out)
    return pairs
