"""Questions about one LUMA-Shapes item, their one-word answers, and how to read answers back.

A question asks one attribute of an item (its *kind*) about a target described by some of
its other attributes (the *referent*):

>>> import numpy as np
>>> from luma_rag.datasets.attributes import ShapeAttributes
>>> attrs = ShapeAttributes("circle", "red", "small", "left", 1, "plain")
>>> q = make_question(attrs, "color", np.random.default_rng(2), named=("size", "shape"))
>>> q.text, q.retrieval_text, q.answer
('What color is the little circle?', 'a little circle', 'red')

The answer is always one canonical word (``"red"``, ``"circle"``, ``"left"``, ``"two"``,
``"small"``); :func:`parse_answer` maps a model's answer (canonical word or synonym) back to the
attribute value. ``retrieval_text`` is the referent as a caption-like phrase (what a retriever
is asked), and ``named`` the attributes it names, for group-aware relevance
(:func:`~luma_rag.datasets.attributes.relevant`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from luma_rag.datasets.attributes import ShapeAttributes
from luma_rag.datasets.vocab import (
    COLOR_WORDS,
    COLORS,
    MOTIONS,
    POSITION_PHRASES,
    POSITIONS,
    SHAPE_WORDS,
    SHAPES,
    SIZE_WORDS,
    SIZES,
)
from luma_rag.errors import InvalidInputError

__all__ = [
    "ANSWER_WORDS",
    "QUESTION_KINDS",
    "QUESTION_TEMPLATES",
    "VERIFY_TEMPLATES",
    "Question",
    "QuestionKind",
    "VerificationQuestion",
    "make_question",
    "make_verification",
    "parse_answer",
    "question_words",
    "verification_words",
]

QuestionKind = Literal["shape", "color", "position", "count", "size"]
#: The attributes a question can ask about.
QUESTION_KINDS: Final[tuple[QuestionKind, ...]] = ("shape", "color", "position", "count", "size")

#: Templates per kind. ``{ref}``: the referent ("small red circle on the left"),
#: ``{be}``: "is" / "are" agreeing with it. Count questions use the plural referent.
QUESTION_TEMPLATES: Final[dict[str, tuple[str, ...]]] = {
    "shape": (
        "What shape is the {ref}?",
        "Which shape {be} the {ref}?",
        "What kind of shape {be} the {ref}?",
        "What is the shape of the {ref}?",
    ),
    "color": (
        "What color {be} the {ref}?",
        "What colour {be} the {ref}?",
        "Which color {be} the {ref}?",
        "What is the color of the {ref}?",
    ),
    "position": (
        "Where {be} the {ref}?",
        "Where {be} the {ref} located?",
        "In which part of the image {be} the {ref}?",
        "Where in the picture {be} the {ref}?",
    ),
    "count": (
        "How many {ref} are there?",
        "How many {ref} are in the image?",
        "How many {ref} can you see?",
        "Count the {ref}.",
    ),
    "size": (
        "What size {be} the {ref}?",
        "{Be} the {ref} small or large?",
        "How big {be} the {ref}?",
        "What is the size of the {ref}?",
    ),
}

#: Canonical answer words per kind, in a fixed order.
ANSWER_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "shape": SHAPES,
    "color": COLORS,
    "position": POSITIONS,
    "count": ("one", "two"),
    "size": SIZES,
}

_COUNT_WORDS: Final = {"one": 1, "1": 1, "single": 1, "two": 2, "2": 2, "pair": 2, "both": 2}
_POSITION_WORDS: Final = {"middle": "center", "centre": "center", "up": "top", "down": "bottom"}
#: Nouns for a referent that does not name its shape.
_GENERIC_NOUNS: Final = (("shape", "shapes"), ("object", "objects"), ("figure", "figures"))
#: Attributes a referent may name (count is carried by the noun's number).
_REFERENT_KEYS: Final = ("size", "color", "shape", "position")


@dataclass(frozen=True)
class Question:
    """One question about one item.

    Attributes:
        kind: The attribute asked about.
        text: The question ("What color is the small circle on the left?").
        answer: The canonical one-word answer ("red"; counts are "one" / "two").
        retrieval_text: The referent as a phrase to retrieve the item with ("a small circle
            on the left").
        named: The attributes the referent names, canonical values (``count`` included when
            the noun's number states it).
    """

    kind: QuestionKind
    text: str
    answer: str
    retrieval_text: str
    named: dict[str, Any]


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def answer_of(attrs: ShapeAttributes, kind: str) -> str:
    """The canonical answer word of ``kind`` for ``attrs`` (counts as "one" / "two")."""
    if kind == "count":
        return "one" if attrs.count == 1 else "two"
    if kind not in QUESTION_KINDS:
        raise InvalidInputError(f"unknown question kind {kind!r}; use one of {QUESTION_KINDS}")
    return str(getattr(attrs, kind))


def _referent(
    attrs: ShapeAttributes, named: Sequence[str], rng: np.random.Generator, plural: bool
) -> tuple[str, str]:
    """``(noun phrase without determiner, position phrase)`` naming ``named``."""
    words = []
    if "size" in named:
        words.append(_pick(rng, SIZE_WORDS[attrs.size]))
    if "color" in named:
        words.append(_pick(rng, COLOR_WORDS[attrs.color]))
    nouns = SHAPE_WORDS[attrs.shape] if "shape" in named else _GENERIC_NOUNS
    singular, plural_form = nouns[int(rng.integers(len(nouns)))]
    words.append(plural_form if plural else singular)
    place = _pick(rng, POSITION_PHRASES[attrs.position]) if "position" in named else ""
    return " ".join(words), place


def make_question(
    attrs: ShapeAttributes,
    kind: str,
    rng: np.random.Generator,
    *,
    named: Sequence[str] | None = None,
) -> Question:
    """Write one question of ``kind`` about an item with ``attrs``.

    Args:
        attrs: The target item's attributes.
        kind: One of :data:`QUESTION_KINDS`.
        rng: Generator of the template, the synonyms and (when ``named`` is None) the
            referent's attributes.
        named: Attributes the referent names, from ``size``, ``color``, ``shape``,
            ``position`` (the asked one is dropped). None: a random subset.

    Returns:
        The :class:`Question`.

    Raises:
        InvalidInputError: Unknown kind or referent attribute.
    """
    if kind not in QUESTION_KINDS:
        raise InvalidInputError(f"unknown question kind {kind!r}; use one of {QUESTION_KINDS}")
    free = [k for k in _REFERENT_KEYS if k != kind]
    if named is None:
        keep = rng.random(len(free)) < 0.5
        chosen = [k for k, on in zip(free, keep, strict=True) if on]
    else:
        unknown = set(named) - set(_REFERENT_KEYS)
        if unknown:
            raise InvalidInputError(f"a referent names {list(_REFERENT_KEYS)}, not {unknown}")
        chosen = [k for k in free if k in named]
    plural = kind == "count" or attrs.count == 2
    noun, place = _referent(attrs, chosen, rng, plural)
    ref = f"{noun} {place}".strip()
    be = "are" if plural else "is"
    template = _pick(rng, QUESTION_TEMPLATES[kind])
    text = template.format(ref=ref, be=be, Be=be.capitalize())
    text = text[0].upper() + text[1:]
    values: dict[str, Any] = {k: getattr(attrs, k) for k in chosen}
    if kind == "count":
        retrieval = ref
    else:
        values["count"] = attrs.count
        det = "two" if plural else ("an" if noun[0] in "aeiou" else "a")
        retrieval = f"{det} {ref}"
    return Question(kind, text, answer_of(attrs, kind), retrieval, values)


#: Yes/no templates; ``{ref}`` is a referent with its determiner ("a small red circle on the
#: left", "two green stars").
VERIFY_TEMPLATES: Final = (
    "Does this image show {ref}?",
    "Is there {ref} in the image?",
    "Is this {ref}?",
    "Can you see {ref}?",
    "Does this image show {ref}? Answer yes or no.",
)


@dataclass(frozen=True)
class VerificationQuestion:
    """A yes/no question claiming some attributes of the image.

    Attributes:
        text: The question ("Does this image show a small red circle on the left?").
        answer: "yes" when every claimed attribute is the item's, else "no".
        claimed: The attributes the question claims, canonical values (``count`` included).
        seen: What the image shows of the claimed attributes, canonical words in referent
            order ("small blue square left").
    """

    text: str
    answer: str
    claimed: dict[str, Any]
    seen: str = ""

    @property
    def reply(self) -> str:
        """The reply a model is trained to give: the claim in canonical words, what the image
        shows of it, then the verdict ("large hexagon : large star : no").

        Writing first and judging after is what lets a tiny model learn the check. Judging
        at once stays at chance (held-out 0.500 in three training runs); writing what it sees
        first lifts the verdict to 0.64, but the claim's synonyms ("cobalt", "disk") still
        have to be matched against canonical words; writing the claim canonically too turns
        the verdict into "is every seen word among the claimed ones", a copy check.
        """
        if not self.seen:
            return self.answer
        claim = " ".join(str(self.claimed[k]) for k in _REFERENT_KEYS if k in self.claimed)
        return f"{claim} : {self.seen} : {self.answer}"


def make_verification(
    attrs: ShapeAttributes, rng: np.random.Generator, *, truthful: bool, single: bool = False
) -> VerificationQuestion:
    """Write a yes/no question naming a random non-empty subset of size, colour, shape and
    position (and the count, through the noun's number).

    Args:
        attrs: The item's attributes.
        rng: Generator of the subset, the swap, the template and the synonyms.
        truthful: False: one named attribute is swapped to another value, so the answer is
            "no".
        single: Name exactly one attribute (an easier claim, for a training curriculum).

    Returns:
        The :class:`VerificationQuestion`.
    """
    keep = rng.random(len(_REFERENT_KEYS)) < 0.5
    named = [k for k, on in zip(_REFERENT_KEYS, keep, strict=True) if on]
    if single or not named:
        named = [_REFERENT_KEYS[int(rng.integers(len(_REFERENT_KEYS)))]]
    claimed_attrs = attrs
    if not truthful:
        key = named[int(rng.integers(len(named)))]
        values: dict[str, Sequence[str]] = {
            "size": SIZES,
            "color": COLORS,
            "shape": SHAPES,
            "position": POSITIONS,
        }
        others = [v for v in values[key] if v != getattr(attrs, key)]
        claimed_attrs = _replace(attrs, key, others[int(rng.integers(len(others)))])
    plural = attrs.count == 2
    noun, place = _referent(claimed_attrs, named, rng, plural)
    det = "two" if plural else ("an" if noun[0] in "aeiou" else "a")
    if rng.random() < 0.3:  # "the small circle", as a referent cut from a question reads
        det = "the two" if plural else "the"
    ref = f"{det} {noun} {place}".strip()
    text = _pick(rng, VERIFY_TEMPLATES).format(ref=ref)
    claimed: dict[str, Any] = {k: getattr(claimed_attrs, k) for k in named}
    claimed["count"] = attrs.count
    seen = " ".join(str(getattr(attrs, k)) for k in _REFERENT_KEYS if k in named)
    return VerificationQuestion(text, "yes" if truthful else "no", claimed, seen)


def _replace(attrs: ShapeAttributes, key: str, value: str) -> ShapeAttributes:
    fields: dict[str, Any] = attrs.as_dict()
    fields[key] = value
    return ShapeAttributes(**fields)


def parse_answer(text: str, kind: str) -> Any:
    """The attribute value a free-text answer names, or None when it names none or several.

    Args:
        text: A model's answer ("Red.", "two", "on the left").
        kind: The question's kind.

    Returns:
        The canonical value (``count`` as an int), or None.
    """
    if kind not in QUESTION_KINDS:
        raise InvalidInputError(f"unknown question kind {kind!r}; use one of {QUESTION_KINDS}")
    words = re.findall(r"[a-z0-9]+", text.lower())
    table: dict[str, Any]
    if kind == "count":
        table = _COUNT_WORDS
    elif kind == "color":
        table = {w: c for c, ws in COLOR_WORDS.items() for w in ws}
    elif kind == "size":
        table = {w: s for s, ws in SIZE_WORDS.items() for w in ws}
    elif kind == "position":
        table = {**{p: p for p in POSITIONS}, **_POSITION_WORDS}
    else:
        table = {w: s for s, pairs in SHAPE_WORDS.items() for pair in pairs for w in pair}
    found = {table[w] for w in words if w in table}
    return next(iter(found)) if len(found) == 1 else None


def verification_words() -> list[str]:
    """Words of the yes/no verification questions and answers that :func:`question_words`
    lacks, sorted (a tokenizer for a model trained with verification adds them)."""
    words = {w for t in (*VERIFY_TEMPLATES, "yes no") for w in re.findall(r"[a-z]+", t.lower())}
    return sorted(words - {"ref"} - set(question_words()))


def question_words() -> list[str]:
    """Every word a question or an answer can contain, lower-cased, sorted (for tokenizers)."""
    texts: list[str] = [t for ts in QUESTION_TEMPLATES.values() for t in ts]
    texts += [w for ws in COLOR_WORDS.values() for w in ws]
    texts += [w for ws in SIZE_WORDS.values() for w in ws]
    texts += [w for pairs in SHAPE_WORDS.values() for pair in pairs for w in pair]
    texts += [p for ps in POSITION_PHRASES.values() for p in ps]
    texts += [w for pair in _GENERIC_NOUNS for w in pair]
    texts += [w for ws in ANSWER_WORDS.values() for w in ws]
    texts += [*MOTIONS, "a", "an", "the", "is", "are", "two", *_COUNT_WORDS, *_POSITION_WORDS]
    words = {w for t in texts for w in re.findall(r"[a-z0-9]+", t.lower())}
    words.discard("ref")
    words.discard("be")
    return sorted(words)
