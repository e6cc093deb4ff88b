"""Captions for LUMA-Shapes items and the inverse parser from text back to attributes.

Captions are written from a few templates and the synonym lists of :mod:`.vocab`:

>>> import numpy as np
>>> from luma_rag.datasets.attributes import ShapeAttributes
from luma_rag.datasets.draws import draw_attributes
>>> attrs = ShapeAttributes("circle", "red", "small", "left", 1, "plain")
>>> caps = make_captions(attrs, np.random.default_rng(0), k=3, mention_background=False)
>>> all(parse_query_attributes(c) == parse_query_attributes(caps[0]) for c in caps)
True

Every caption of an item names the same content: shape, colour, size, position and count
always, motion whenever the item has one, and the background either in all of the item's
captions or in none. So :func:`parse_query_attributes` returns the same dict for each
paraphrase, and that dict agrees with the item's attributes.
"""

from __future__ import annotations

import re
from typing import Any, Final

import numpy as np

from luma_rag.datasets.attributes import ShapeAttributes
from luma_rag.datasets.draws import draw_attributes
from luma_rag.datasets.vocab import (
    ATTRIBUTE_NAMES,
    BACKGROUND_PHRASES,
    COLOR_WORDS,
    MOTION_VERBS,
    POSITION_PHRASES,
    SHAPE_WORDS,
    SIZE_WORDS,
)
from luma_rag.errors import InvalidInputError

__all__ = ["TEMPLATES", "make_captions", "parse_query_attributes"]

#: Caption templates. ``{det}`` is the determiner ("a", "one", "two", "a pair of"),
#: ``{be}`` agrees with it, ``{tail}`` holds the motion and background phrases.
TEMPLATES: Final = (
    "{det} {size} {color} {shape} {pos}{tail}",
    "a photo of {det} {size} {color} {shape} {pos}{tail}",
    "an image of {det} {size} {color} {shape} {pos}{tail}",
    "a picture showing {det} {size} {shape} in {color} {pos}{tail}",
    "{pos}, {det} {size} {color} {shape}{tail}",
    "there {be} {det} {size} {color} {shape} {pos}{tail}",
    "a rendering of {det} {color} {shape}, {size}, {pos}{tail}",
    "{det} {size} {shape} colored {color}, {pos}{tail}",
)

_MOTION_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "left": ("left", "to the left", "leftwards"),
    "right": ("right", "to the right", "rightwards"),
    "up": ("up", "upwards", "upward"),
    "down": ("down", "downwards", "downward"),
}


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _caption(
    template: str,
    attrs: ShapeAttributes,
    rng: np.random.Generator,
    mention_background: bool,
) -> str:
    # Draw every slot unconditionally so the stream does not depend on the attributes used.
    plural = attrs.count == 2
    det = _pick(rng, ("two", "two", "two", "a pair of") if plural else ("a", "a", "a", "one"))
    shape_word = _pick(rng, tuple(w[1] if plural else w[0] for w in SHAPE_WORDS[attrs.shape]))
    color = _pick(rng, COLOR_WORDS[attrs.color])
    size = _pick(rng, SIZE_WORDS[attrs.size])
    pos = _pick(rng, POSITION_PHRASES[attrs.position])
    verb = _pick(rng, MOTION_VERBS)
    direction = _pick(rng, _MOTION_WORDS[attrs.motion or "left"])
    background = _pick(rng, BACKGROUND_PHRASES[attrs.background])
    tail = ""
    if attrs.motion is not None:
        tail += f" {verb} {direction}"
    if mention_background:
        tail += f" {background}"
    text = template.format(
        det="\x00",
        be="are" if plural else "is",
        size=size,
        color=color,
        shape=shape_word,
        pos=pos,
        tail=tail,
    )
    # The determiner "a" becomes "an" before a vowel; every word that can follow it is
    # a size or colour word, for which the first letter decides.
    after = text.split("\x00", 1)[1].lstrip()
    if det == "a" and after[:1] in "aeiou":
        det = "an"
    return text.replace("\x00", det)


def make_captions(
    attrs: ShapeAttributes,
    rng: np.random.Generator,
    *,
    k: int,
    mention_background: bool,
) -> list[str]:
    """Write ``k`` distinct paraphrases of the same content, each from a different template.

    Args:
        attrs: What the item shows.
        rng: Generator the template and synonym choices are drawn from.
        k: Number of captions, 1 to ``len(TEMPLATES)``.
        mention_background: Whether every caption names the background.

    Returns:
        ``k`` lowercase captions; the first is the item's primary caption.

    Raises:
        InvalidInputError: ``k`` is out of range.
    """
    if not 1 <= k <= len(TEMPLATES):
        raise InvalidInputError(f"k must be in [1, {len(TEMPLATES)}], got {k}")
    order = rng.permutation(len(TEMPLATES))[:k]
    return [_caption(TEMPLATES[int(i)], attrs, rng, mention_background) for i in order]


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

_MOTION_RE: Final = re.compile(
    r" (?:" + "|".join(MOTION_VERBS) + r"|going|travell?ing)"
    r"(?: to the| towards the| toward the| to| towards| toward)?"
    r" (left|right|up|down)(?:wards?)? "
)
_MOTION_STANDALONE: Final[dict[str, str]] = {
    "leftward": "left",
    "leftwards": "left",
    "rightward": "right",
    "rightwards": "right",
    "upward": "up",
    "upwards": "up",
    "rising": "up",
    "ascending": "up",
    "downward": "down",
    "downwards": "down",
    "falling": "down",
    "sinking": "down",
    "descending": "down",
}
_BACKGROUND_KEYS: Final[dict[str, str]] = {
    "plain": "plain",
    "flat": "plain",
    "uniform": "plain",
    "solid": "plain",
    "noise": "noise",
    "noisy": "noise",
    "grainy": "noise",
    "speckled": "noise",
    "stripes": "stripes",
    "striped": "stripes",
    "stripy": "stripes",
}
_POSITION_KEYS: Final[dict[str, str]] = {
    "left": "left",
    "right": "right",
    "top": "top",
    "upper": "top",
    "bottom": "bottom",
    "lower": "bottom",
    "center": "center",
    "centre": "center",
    "middle": "center",
}
_PLURAL_WORDS: Final = ("two", "pair", "couple", "both")
_SINGULAR_WORDS: Final = ("a", "an", "one", "single", "lone")


def _shape_phrases() -> list[tuple[str, str, bool]]:
    phrases = [("plus", "cross", False)]
    for shape, pairs in SHAPE_WORDS.items():
        for singular, plural in pairs:
            phrases += [(singular, shape, False), (plural, shape, True)]
    # Longest first, so "plus signs" is consumed before "plus sign" and "plus".
    return sorted(phrases, key=lambda p: (-len(p[0]), p[0]))


_SHAPE_PHRASES: Final = _shape_phrases()


def _flip(words: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {word: value for value, ws in words.items() for word in ws}


_COLOR_KEYS: Final = _flip(COLOR_WORDS)
_SIZE_KEYS: Final = _flip(SIZE_WORDS)


def _consume(text: str, phrase: str) -> tuple[bool, str]:
    needle = f" {phrase} "
    if needle not in text:
        return False, text
    return True, text.replace(needle, "  ")


def _single(found: set[str]) -> str | None:
    return next(iter(found)) if len(found) == 1 else None


def parse_query_attributes(text: str) -> dict[str, Any]:
    """Map a caption or free-text query back to the attributes it names.

    Synonyms map to canonical values ("tiny crimson disc" -> small, red, circle). A key is
    present only when the text names it unambiguously: two different colours, say, leave
    ``color`` out. ``count`` is 2 for "two", "pair", "couple" or "both"; 1 for a singular
    shape noun with "a", "an", "one", "single" or "lone"; otherwise absent. Motion needs a
    direction after a verb ("moving left", "drifting to the right") or a standalone word
    ("upwards", "falling"), so "moving right on the left" is motion right, position left.

    Args:
        text: Caption or query, any case and punctuation.

    Returns:
        Dict with a subset of the keys ``shape``, ``color``, ``size``, ``position``,
        ``count``, ``background``, ``motion`` (in that order), canonical values.
    """
    rest = " " + " ".join(re.findall(r"[a-z]+", text.lower())) + " "
    found: dict[str, set[str]] = {name: set() for name in ATTRIBUTE_NAMES}

    for match in _MOTION_RE.finditer(rest):
        found["motion"].add(match.group(1))
    rest = _MOTION_RE.sub("  ", rest)

    plural_noun = singular_noun = False
    for phrase, shape, is_plural in _SHAPE_PHRASES:
        hit, rest = _consume(rest, phrase)
        if hit:
            found["shape"].add(shape)
            plural_noun |= is_plural
            singular_noun |= not is_plural

    words = rest.split()
    for word in words:
        for name, keys in (
            ("motion", _MOTION_STANDALONE),
            ("background", _BACKGROUND_KEYS),
            ("color", _COLOR_KEYS),
            ("size", _SIZE_KEYS),
            ("position", _POSITION_KEYS),
        ):
            if word in keys:
                found[name].add(keys[word])

    out: dict[str, Any] = {}
    for name in ATTRIBUTE_NAMES:
        if name == "count":
            if any(w in _PLURAL_WORDS for w in words):
                out["count"] = 2
            elif singular_noun and not plural_noun and any(w in _SINGULAR_WORDS for w in words):
                out["count"] = 1
            continue
        value = _single(found[name])
        if value is not None:
            out[name] = value
    return out


def paraphrase_groups(n: int, seed: int = 0, k: int = 4) -> list[list[str]]:
    """``n`` groups of ``k`` paraphrases, each group describing one random LUMA-Shapes item.

    Used to calibrate the text encoder radius ρ and to warm-start the CLAP→CLIP bridge with
    caption pairs, without rendering anything.
    """
    rng = np.random.default_rng(seed)
    groups = []
    for _ in range(n):
        attrs = draw_attributes(rng, video=bool(rng.random() < 0.3))
        groups.append(make_captions(attrs, rng, k=k, mention_background=bool(rng.random() < 0.5)))
    return groups
