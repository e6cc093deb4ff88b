"""Yes/no questions phrased as the verified answer path asks them, for the tiny LLaVA's mix.

The gate's default path (:class:`~luma_rag.answer.verify_vlm.VlmVerifier`) does not ask
:data:`~luma_rag.datasets.questions.VERIFY_TEMPLATES`' claims: it cuts the referent out of
the user's question (:func:`~luma_rag.answer.verify_vlm.referent_of`: "What color are the
small stars on the left?" → "the small stars on the left", "How many red shapes are there?"
→ "red shapes") and asks ``"Does this image show {referent}? Answer yes or no."`` about each
hit. Those referents differ from the claims of
:func:`~luma_rag.datasets.questions.make_verification`: plurals without "two", bare plurals
from count questions, no count claimed. :func:`gate_verification` writes exactly those
questions, with the same describe-then-judge reply (claim in canonical words, what the image
shows of it, verdict):

>>> import numpy as np
>>> from luma_rag.datasets.attributes import ShapeAttributes
>>> attrs = ShapeAttributes("circle", "red", "small", "left", 1, "plain")
>>> v = gate_verification(attrs, np.random.default_rng(3), truthful=False)
>>> v.text.endswith("? Answer yes or no."), v.answer
(True, 'no')
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from luma_rag.answer.verify_vlm import referent_of
from luma_rag.datasets.attributes import ShapeAttributes
from luma_rag.datasets.questions import QUESTION_KINDS, VerificationQuestion, make_question
from luma_rag.datasets.vocab import COLORS, POSITIONS, SHAPES, SIZES
from luma_rag.errors import InvalidInputError

__all__ = ["GATE_PROMPT", "REPLY_STYLES", "gate_verification", "verification_reply"]

#: The verified answer path's image prompt (``VlmVerifier``'s default ``image_prompt``).
GATE_PROMPT: Final = "Does this image show {referent}? Answer yes or no."
#: How a yes/no reply is written (:func:`verification_reply`).
REPLY_STYLES: Final = ("claim-seen", "pairs")
#: The attributes a question's referent can name, in reply order.
_KEYS: Final = ("size", "color", "shape", "position")
_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "size": SIZES,
    "color": COLORS,
    "shape": SHAPES,
    "position": POSITIONS,
}


def gate_verification(
    attrs: ShapeAttributes, rng: np.random.Generator, *, truthful: bool
) -> VerificationQuestion:
    """A yes/no question as the verified path asks it about an image with ``attrs``.

    A question of a random kind is written about a random subset of the other attributes
    (:func:`~luma_rag.datasets.questions.make_question`); for a false claim one named
    attribute is first swapped to another value (at least one is named then). Its referent
    goes into :data:`GATE_PROMPT`.

    Args:
        attrs: The image's attributes.
        rng: Generator of the kind, the subset, the swap, the template and the synonyms.
        truthful: False: one named attribute differs from the image's, the answer is "no".

    Returns:
        The :class:`~luma_rag.datasets.questions.VerificationQuestion` (its ``reply`` is what
        the model is trained to write).
    """
    kind = QUESTION_KINDS[int(rng.integers(len(QUESTION_KINDS)))]
    free = [k for k in _KEYS if k != kind]
    named = [k for k, on in zip(free, rng.random(len(free)) < 0.5, strict=True) if on]
    if not truthful and not named:
        named = [free[int(rng.integers(len(free)))]]
    claimed_attrs = attrs
    if not truthful:
        key = named[int(rng.integers(len(named)))]
        others = [v for v in _VALUES[key] if v != getattr(attrs, key)]
        fields: dict[str, Any] = attrs.as_dict()
        fields[key] = others[int(rng.integers(len(others)))]
        claimed_attrs = ShapeAttributes(**fields)
    question = make_question(claimed_attrs, kind, rng, named=named)
    text = GATE_PROMPT.format(referent=referent_of(question.text))
    claimed: dict[str, Any] = {k: getattr(claimed_attrs, k) for k in named}
    seen = " ".join(str(getattr(attrs, k)) for k in _KEYS if k in named)
    return VerificationQuestion(text, "yes" if truthful else "no", claimed, seen)


def verification_reply(v: VerificationQuestion, style: str) -> str:
    """The reply a model is trained to give to ``v``.

    ``"claim-seen"`` (v2.1): the claim in canonical words, what the image shows of it, the
    verdict (``large hexagon : large star : no``, :attr:`VerificationQuestion.reply`).
    ``"pairs"``: per claimed attribute the claimed word, the seen word and whether they match,
    then the verdict (``large large yes hexagon star no : no``). Each pair's check compares
    two neighbouring words, and the verdict is "no" when any pair said no: both are local,
    where the v2.1 form asks the decoder to align the n-th claimed word with the n-th seen
    one across the reply (with both written right it judged 304 of 356 val claims right).

    Raises:
        InvalidInputError: Unknown ``style``.
    """
    if style not in REPLY_STYLES:
        raise InvalidInputError(f"unknown reply style {style!r}; use one of {REPLY_STYLES}")
    if style == "claim-seen" or not v.seen:
        return v.reply
    claimed = [str(v.claimed[k]) for k in _KEYS if k in v.claimed]
    pairs = [
        f"{c} {s} {'yes' if c == s else 'no'}" for c, s in zip(claimed, v.seen.split(), strict=True)
    ]
    return f"{' '.join(pairs)} : {v.answer}"
