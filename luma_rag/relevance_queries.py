"""Queries the relevance floor is calibrated on: question-like referents and null probes.

A user does not query a store with its items' captions: they ask "What colour is the small
square?" or "the small square", a few of the words of one item's text inside a question
frame, and such queries score below the full caption (with the tiny CLIP on a 24-item store:
median 0.37–0.39 against 0.47–0.49). A floor calibrated on perturbed captions alone therefore
refuses on-topic questions on small stores (:mod:`luma_rag.relevance`). This module builds
the two calibration sets, generically from the store's own texts, and holds the notion of a
query's *content words* both checks read (:func:`content_words`, :data:`GENERIC_WORDS`):

* :func:`question_like` — a *partial referent*: one to three content words of an item's text
  (:func:`~luma_rag.relevance.content_words`'s notion, in their order), sometimes with the
  word before each (so "small red square" keeps its adjectives), inside a generic English
  question frame ("Where is the …?", "Is there …?", or bare). Nothing here knows a corpus's
  grammar: the words come from the item's own text.
* :data:`NULL_PROBES` — generic off-topic texts (general knowledge, everyday objects, nonsense;
  none of them in the evaluation's off-topic list, :mod:`luma_rag.eval.offtopic`) whose best
  scores against the store show where unrelated queries land.
"""

from __future__ import annotations

import logging
import re
from typing import Final

import numpy as np

__all__ = ["GENERIC_WORDS", "NULL_PROBES", "QUESTION_FRAMES", "content_words", "question_like"]

logger = logging.getLogger(__name__)

#: English function words and generic nouns of questions about media: they say nothing
#: about *what* is asked for, so they neither ground nor un-ground a query.
GENERIC_WORDS: Final = frozenset(
    """a an the of in on at to is are was were be been am do does did what who whom whose which
    where when why how there here this that these those it its i me my you your we our they
    them their he she his her with for by from and or not no yes as into onto about above
    below near any some all each every much many more most can could would should will shall
    may might must has have had please tell show me find give one two three four five six
    image images picture pictures photo photos shape shapes object objects figure figures thing
    things item items something anything kind sort type look looks like colour color colors
    colours size sizes position positions where count number big small located part side
    anything see seen visible""".split()  # noqa: SIM905
)

#: Generic nouns a vague but on-topic question refers with ("What color is the shape?").
_REFERRING: Final = frozenset(
    {"image", "images", "picture", "pictures", "photo", "photos", "shape", "shapes", "object"}
    | {"objects", "figure", "figures", "thing", "things", "item", "items", "one"}
)

_TOKEN: Final = re.compile(r"[a-z0-9]+")


def _stem(word: str) -> str:
    """Crude plural folding, enough for vocabulary lookups ("boxes" → "box", "discs" → "disc")."""
    if len(word) > 4 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def content_words(text: str) -> list[str]:
    """Lower-cased, plural-folded words of ``text`` that are not in :data:`GENERIC_WORDS`."""
    return [_stem(w) for w in _TOKEN.findall(text.lower()) if w not in GENERIC_WORDS]


#: Generic English question frames; ``{}`` is the referent.
QUESTION_FRAMES: Final = (
    "{}",
    "the {}",
    "What is the {}?",
    "Where is the {}?",
    "Is there a {}?",
    "What color is the {}?",
    "How many {} are there?",
    "Show me the {}.",
    "Which {} is it?",
    "Tell me about the {}.",
    "Can you find the {}?",
    "What size is the {}?",
)

#: Off-topic probe texts for the null side of the floor.
NULL_PROBES: Final = (
    "what is the square root of two?",
    "who discovered penicillin?",
    "how tall is the Eiffel tower?",
    "what is the main ingredient of guacamole?",
    "when was the printing press invented?",
    "who composed the four seasons?",
    "what language is spoken in Brazil?",
    "how long does it take to boil an egg?",
    "which ocean is the largest?",
    "what is the freezing point of mercury?",
    "how do airplanes stay in the air?",
    "who is the author of Don Quixote?",
    "what causes thunder?",
    "how many players are on a football team?",
    "what is the GDP of Canada?",
    "a retriever dog catching a frisbee",
    "a cup of hot coffee on a table",
    "a red fire truck on the street",
    "a bunch of bananas",
    "a teenager riding a skateboard",
    "a lighthouse on a rocky coast",
    "a plate of spaghetti",
    "an old man reading a newspaper",
    "a parrot on a branch",
    "a tennis racket and a ball",
    "a train crossing a bridge",
    "a field of sunflowers",
    "a toaster in the kitchen",
    "an elephant drinking water",
    "a child building a sandcastle",
    "flarn gibbet",
    "xyzzy plugh",
    "lorem dolor amet sit",
    "brillig slithy toves",
    "zorp",
    "pqrst uvw",
    "ok thanks",
    "hello there",
    "what time is it?",
    "tell me a joke",
)

_WORD: Final = re.compile(r"[A-Za-z0-9]+")


def question_like(text: str, rng: np.random.Generator) -> str | None:
    """A question-like query built from a few of ``text``'s content words.

    Args:
        text: An item's text (caption, document).
        rng: Generator of the words kept and the frame.

    Returns:
        E.g. ``"Where is the small square?"`` for "a small red square on the left"; None when
        the text has no content word.
    """
    words = _WORD.findall(text)
    content = [i for i, w in enumerate(words) if w.lower() not in GENERIC_WORDS]
    if not content:
        return None
    k = int(rng.integers(1, min(3, len(content)) + 1))
    keep = sorted(int(i) for i in rng.choice(content, size=k, replace=False))
    picked: list[int] = []
    for i in keep:
        if i > 0 and rng.random() < 0.5 and i - 1 not in picked:  # its modifier, sometimes
            picked.append(i - 1)
        if i not in picked:
            picked.append(i)
    referent = " ".join(words[i] for i in picked).lower()
    frame = QUESTION_FRAMES[int(rng.integers(len(QUESTION_FRAMES)))]
    return frame.format(referent)
