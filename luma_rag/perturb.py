"""Meaning-preserving perturbations of texts and images, for calibrating any embedder.

Two inputs that mean the same rarely embed to the same point. The perturbations here change
the surface of an input and (for the small amounts used) not what it refers to; how far they
move an embedding is what the encoder radius ρ measures (:mod:`luma_rag.rho`), and how high a
perturbed text still scores against its own item is what the relevance floor is calibrated
from (:mod:`luma_rag.relevance`). No paraphrase model, no corpus-specific vocabulary:

* text — word dropout, swapping two neighbouring words, casing, typos (a deleted, doubled or
  swapped letter);
* image — crop, shift, brightness, JPEG re-encoding (PIL only).

All functions are deterministic given their ``numpy.random.Generator``.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Final

import numpy as np

from luma_rag.errors import InvalidInputError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["IMAGE_KINDS", "TEXT_KINDS", "perturb_image", "perturb_text"]

logger = logging.getLogger(__name__)

TEXT_KINDS: Final = ("dropout", "swap", "casing", "typo")
IMAGE_KINDS: Final = ("crop", "shift", "brightness", "jpeg")


def _typo(word: str, rng: np.random.Generator) -> str:
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 1))
    op = int(rng.integers(3))
    if op == 0:
        return word[:i] + word[i + 1 :]  # deletion
    if op == 1:
        return word[:i] + word[i] + word[i:]  # doubling
    return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]  # transposition


def perturb_text(
    text: str, rng: np.random.Generator, kind: str | None = None, strength: float = 0.2
) -> str:
    """One meaning-preserving variant of ``text``.

    Args:
        text: The input.
        rng: Random generator.
        kind: One of :data:`TEXT_KINDS`; ``None`` picks one at random.
        strength: Share of words affected by dropout / typos, in ``(0, 1)``; at least one
            word always survives dropout.

    Returns:
        The variant (may equal ``text`` for very short inputs).
    """
    words = text.split()
    kind = kind or str(rng.choice(TEXT_KINDS))
    if not words:
        return text
    if kind == "dropout":
        keep = rng.random(len(words)) >= strength
        if not keep.any():
            keep[int(rng.integers(len(words)))] = True
        return " ".join(w for w, k in zip(words, keep, strict=True) if k)
    if kind == "swap":
        if len(words) < 2:
            return text
        i = int(rng.integers(len(words) - 1))
        words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)
    if kind == "casing":
        style = int(rng.integers(3))
        return text.upper() if style == 0 else text.lower() if style == 1 else text.title()
    if kind == "typo":
        hit = rng.random(len(words)) < strength
        return " ".join(_typo(w, rng) if h else w for w, h in zip(words, hit, strict=True))
    raise InvalidInputError(f"unknown text perturbation {kind!r}; use one of {TEXT_KINDS}")


def perturb_image(
    image: Image.Image, rng: np.random.Generator, kind: str | None = None, strength: float = 0.1
) -> Image.Image:
    """One meaning-preserving variant of ``image`` (same size, RGB).

    Args:
        image: A PIL image.
        rng: Random generator.
        kind: One of :data:`IMAGE_KINDS`; ``None`` picks one at random.
        strength: Crop / shift fraction of the side, brightness change, or JPEG quality drop
            (``strength = 0.1`` → quality 70), in ``(0, 0.5]``.

    Returns:
        The variant.
    """
    from PIL import Image, ImageChops, ImageEnhance

    img = image.convert("RGB")
    w, h = img.size
    kind = kind or str(rng.choice(IMAGE_KINDS))
    if kind == "crop":
        dx, dy = int(w * strength * rng.random()), int(h * strength * rng.random())
        box = (dx, dy, max(dx + 1, w - int(w * strength * rng.random())), max(dy + 1, h - dy))
        return img.crop(box).resize((w, h), Image.Resampling.BILINEAR)
    if kind == "shift":
        ox = int(w * strength * (2 * rng.random() - 1))
        oy = int(h * strength * (2 * rng.random() - 1))
        return ImageChops.offset(img, ox, oy)
    if kind == "brightness":
        return ImageEnhance.Brightness(img).enhance(1.0 + strength * (2 * rng.random() - 1) * 2)
    if kind == "jpeg":
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=max(10, int(100 - 300 * strength)))
        buf.seek(0)
        with Image.open(buf) as out:
            return out.convert("RGB")
    raise InvalidInputError(f"unknown image perturbation {kind!r}; use one of {IMAGE_KINDS}")
