"""Words a store knows by meaning: an unseen word counts as known when it embeds next to one
of the store's own words.

The grounding check of :mod:`luma_rag.relevance` counts the question's content words found in
the store's vocabulary. On a small store the vocabulary misses the synonyms of its own
things: a 24-item LUMA-Shapes store whose captions say "ivory" does not know "white", and
"What is the size of the white object?" was refused as off-topic (on-topic NOT_IN_MEMORY 12
of 120 questions, most of them so). :class:`WordMatcher` embeds each unseen word alone with
the store's query embedder and accepts it when its cosine to the nearest vocabulary word
reaches ``floor``. :func:`word_floor` calibrates that floor from the **null side**: the
content words of the off-topic probes (:data:`~luma_rag.relevance_queries.NULL_PROBES`) that
the store does not know and the embedder can read (not blank, below); the floor is their
conformal upper ``1 − α`` quantile (their largest when there are too few for ``α``), so an
unrelated word passes with probability at most about ``α``; with no readable probe word
there is no floor (spelling only). It also reports how many held-out on-topic words (words
of half of the store's texts that the other half's vocabulary lacks) it recovers.

**Words the embedder cannot read.** A small embedder maps every word it has no meaning for
to one region: with the tiny CLIP, "zzzz", "apple", "cup" and the store's own "backdrop" are
0.93–0.99 apart from each other, so "zzzz" would "mean" "backdrop". A word is *blank* when
it is as close to one of a few gibberish strings (:data:`GIBBERISH`) as those strings are to
each other (their least pairwise cosine); blank words never count by meaning, on either side
(an unseen blank word is unknown; a blank vocabulary word is known by spelling only). An
embedder that spreads gibberish out (least pairwise cosine <= 0, random-like vectors) has no
such region and no word is blank.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import numpy as np

__all__ = ["GIBBERISH", "WordMatcher", "word_floor"]

logger = logging.getLogger(__name__)

#: Strings no embedder has a meaning for: where it puts words it cannot read.
GIBBERISH: Final = ("qzxv", "xkjq", "vbwzq", "jjxq", "pkqz")


def _unit(embed: Callable[[list[str]], Any], words: Sequence[str]) -> np.ndarray:
    if not words:
        return np.zeros((0, 0))
    v = np.asarray(embed(list(words)), dtype=np.float64)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class _Space:
    """Unit embeddings of a vocabulary's readable words, and the blank test."""

    def __init__(self, embed: Callable[[list[str]], Any], vocabulary: Iterable[str]) -> None:
        self.embed = embed
        self.blank = _unit(embed, GIBBERISH)
        pair = self.blank @ self.blank.T
        beta = float(pair[~np.eye(len(GIBBERISH), dtype=bool)].min())
        self.beta = beta if beta > 0 else math.inf  # gibberish spread out: no blank region
        words = sorted(set(vocabulary))
        vecs = _unit(embed, words) if words else np.zeros((0, self.blank.shape[1]))
        keep = ~self._blank(vecs) if words else np.zeros(0, dtype=bool)
        self.vocab = vecs[keep]

    def _blank(self, vecs: np.ndarray) -> np.ndarray:
        return np.asarray((vecs @ self.blank.T).max(axis=1) >= self.beta)

    def nearest(self, words: Sequence[str]) -> np.ndarray:
        """Cosine of each word to its nearest readable vocabulary word; -1 for a blank word
        (or an empty vocabulary), float64 ``(len(words),)``."""
        if not words:
            return np.zeros(0)
        vecs = _unit(self.embed, words)
        if self.vocab.size == 0:
            return np.full(len(words), -1.0)
        near = (vecs @ self.vocab.T).max(axis=1)
        return np.where(self._blank(vecs), -1.0, near)


def word_floor(
    vocab_half: Iterable[str],
    held_out: Iterable[str],
    vocabulary: Iterable[str],
    probe_words: Iterable[str],
    embed: Callable[[list[str]], Any],
    alpha: float,
) -> tuple[float | None, float | None]:
    """The similarity floor of :class:`WordMatcher`, and the share of held-out words it accepts.

    Args:
        vocab_half: Words of one half of the store's texts.
        held_out: Words of the other half that ``vocab_half`` lacks (on-topic, unseen).
        vocabulary: All the store's words.
        probe_words: Content words of off-topic probes.
        embed: The query text embedder, ``list[str] -> (m, d)``.
        alpha: Target share of unrelated words accepted.

    Returns:
        ``(floor, recovered)``; ``(None, None)`` when no probe word is both unknown to the
        store and readable by the embedder.
    """
    known = set(vocabulary)
    null_words = sorted({w for w in probe_words if w not in known})
    if not null_words:
        return None, None
    null = _Space(embed, known).nearest(null_words)
    null = null[null > -1.0]  # blank probe words say nothing about readable ones
    if null.size == 0:
        logger.info("no readable off-topic probe word: unseen words count by spelling only")
        return None, None
    rank = math.ceil((1 - alpha) * (null.size + 1))
    floor = float(np.sort(null)[min(rank, null.size) - 1])
    half = sorted(set(vocab_half))
    unseen = sorted(set(held_out) - set(half))
    recovered = None
    if unseen and half:
        recovered = float(np.mean(_Space(embed, half).nearest(unseen) >= floor))
    logger.info(
        "word floor %.3f from %d probe words; %s of %d held-out on-topic words recovered",
        floor,
        len(null_words),
        "n/a" if recovered is None else f"{recovered:.0%}",
        len(unseen),
    )
    return floor, recovered


class WordMatcher:
    """Whether words are known to a store, by spelling or by meaning (module docstring).

    Args:
        vocabulary: The store's content words.
        embed: The query text embedder, ``list[str] -> (m, d)``.
        floor: Least cosine to the nearest vocabulary word for an unseen word to count.
    """

    def __init__(
        self, vocabulary: Iterable[str], embed: Callable[[list[str]], Any], floor: float
    ) -> None:
        self.vocabulary = sorted(set(vocabulary))
        self.embed = embed
        self.floor = float(floor)
        self._space: _Space | None = None
        self._seen: dict[str, bool] = {}

    def known(self, words: Sequence[str]) -> list[bool]:
        """Per word: in the vocabulary, or embedded within ``floor`` of a readable word that
        is (and not blank itself)."""
        vocab = set(self.vocabulary)
        todo = sorted({w for w in words if w not in vocab and w not in self._seen})
        if todo:
            if self._space is None:
                self._space = _Space(self.embed, self.vocabulary)
            near = self._space.nearest(todo)
            self._seen.update(zip(todo, (bool(s >= self.floor) for s in near), strict=True))
        return [w in vocab or self._seen[w] for w in words]
