"""Relevance: is the best evidence relevant at all? A calibrated test per store and modality.

Safe@k says the ranking is stable; it says nothing about whether the top item has anything to
do with the question ("who won the 1998 world cup?" over a store of shapes is stably ranked).
The gate therefore asks this test first, and when it fails the outcome is NOT_IN_MEMORY:
"nothing in memory answers this", logged as a knowledge gap, never an ANSWER or a WIDEN.

Two checks, both calibrated on the store's own data (:func:`calibrate_relevance`):

* **score floor** (every modality): the best hit's score must reach the floor. It is the
  lower of two conformal lower ``α``-quantiles — the ``⌊α(n+1)⌋``-th smallest of ``n``, so
  a new query exchangeable with them falls below it with probability at most ``α``
  (``1/(n+1)`` when ``n`` is too small for ``α``: the smallest score is used): (a) the
  store's own items queried by perturbed versions of their own text
  (:mod:`luma_rag.perturb`: word dropout, swaps, casing, typos), scored against that item;
  (b) **question-like** queries — one to three of an item's own words inside a generic
  question frame (:func:`~luma_rag.relevance_queries.question_like`, at least
  ``min_queries`` of them, several per item on a small store) — scored by their best hit in
  the store, as the gate reads a question. Real questions score below full captions, so (a)
  alone refused on-topic questions on small stores (24 items: size questions 5 of 24).
  Then the **null side**: off-topic probe texts
  (:data:`~luma_rag.relevance_queries.NULL_PROBES`) are scored the same way; when even the
  highest of them is below that floor, the floor moves to the middle of the gap (every probe
  refused, fewer on-topic questions at the edge); when they overlap the floor stays where
  on-topic questions need it, and the grounding check below is what refuses the rest;
* **grounding** (text queries over stores whose items carry text): the share of the query's
  content words (stop words and generic words such as "image", "shape", "thing" aside) found
  in the store's vocabulary must reach a floor, calibrated the same way on held-out texts
  (vocabulary from one half of the items, coverage of the other half's perturbed texts) and
  capped at ``max_lexical_floor``. It is what catches questions a weak embedder maps next to
  everything (a tiny CLIP embeds "who won the 1998 world cup?" as close to the shapes as
  their own captions).

Both floors can be overridden (:meth:`RelevanceModel.override`). A store with no calibration
reports ``source: "unset"`` and lets everything through, saying so.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final, Literal

import numpy as np

from luma_rag._config import ConfigBase, check
from luma_rag.errors import InvalidInputError
from luma_rag.perturb import perturb_text
from luma_rag.relevance_queries import (
    _REFERRING,
    _TOKEN,
    GENERIC_WORDS,
    NULL_PROBES,
    content_words,
    question_like,
)
from luma_rag.relevance_words import WordMatcher, word_floor

#: Version of :func:`calibrate_relevance`'s method; a persisted model of another version is
#: recalibrated on first use (:func:`luma_rag.answer.relevance_auto.store_relevance`).
#: 2: question-like queries and the null side (session 8).
RELEVANCE_VERSION: Final = 2

__all__ = [
    "GENERIC_WORDS",
    "RELEVANCE_VERSION",
    "RelevanceConfig",
    "RelevanceModel",
    "RelevanceVerdict",
    "calibrate_relevance",
    "content_words",
]

logger = logging.getLogger(__name__)


def _coverage(
    text: str, vocabulary: frozenset[str] | set[str], matcher: WordMatcher | None = None
) -> float:
    words = content_words(text)
    if not words:
        return 0.0
    known = matcher.known(words) if matcher is not None else [w in vocabulary for w in words]
    return float(np.mean(known))


def _embed(embed_text: Callable[[list[str]], Any], texts: list[str]) -> np.ndarray:
    """Unit rows of ``embed_text(texts)``, float64 ``(len(texts), d)``."""
    q = np.asarray(embed_text(texts), dtype=np.float64)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _conformal_floor(values: np.ndarray, alpha: float) -> float:
    """The ``⌊α(n+1)⌋``-th smallest value; the smallest when ``n + 1 < 1/α``.

    A new exchangeable value falls below it with probability ``<= max(α, 1/(n+1))``;
    ``-inf`` for no values.
    """
    if values.size == 0:
        return float("-inf")
    rank = max(1, math.floor(alpha * (values.size + 1)))
    return float(np.sort(values)[rank - 1])


@dataclass(frozen=True)
class RelevanceConfig(ConfigBase):
    """Settings of :func:`calibrate_relevance`.

    Attributes:
        alpha: Target share of matched (on-topic) queries the score floor rejects, in
            ``(0, 0.5)``; the grounding floor uses the same α.
        max_items: Items sampled for calibration, ``>= 10``.
        max_lexical_floor: Cap of the grounding floor, in ``[0, 1]``: a rich vocabulary must
            not reject a paraphrase that uses one new word.
        strength: Word-dropout / typo strength of the matched queries, in ``(0, 0.5]``.
        seed: Seed of the sample and the perturbations.
        query_like: Also calibrate the score floor on question-like partial referents
            and on off-topic probes (module docstring); False: perturbed texts only (the
            floor before session 8).
        min_queries: Least number of question-like queries (several per item on a small
            store), ``>= 1``.
    """

    alpha: float = 0.02
    max_items: int = 400
    max_lexical_floor: float = 0.5
    strength: float = 0.3
    seed: int = 0
    query_like: bool = True
    min_queries: int = 200

    def __post_init__(self) -> None:
        check(0 < self.alpha < 0.5, f"RelevanceConfig.alpha must be in (0, 0.5), got {self.alpha}")
        check(self.max_items >= 10, f"RelevanceConfig.max_items must be >= 10: {self.max_items}")
        check(
            0 <= self.max_lexical_floor <= 1,
            f"RelevanceConfig.max_lexical_floor must be in [0, 1], got {self.max_lexical_floor}",
        )
        check(
            0 < self.strength <= 0.5,
            f"RelevanceConfig.strength must be in (0, 0.5]: {self.strength}",
        )
        check(
            isinstance(self.min_queries, int) and self.min_queries >= 1,
            f"RelevanceConfig.min_queries must be an int >= 1: {self.min_queries!r}",
        )


@dataclass(frozen=True)
class RelevanceVerdict:
    """Whether a query's best evidence is relevant, and the numbers behind it.

    Attributes:
        relevant: The evidence may be used (ANSWER / WIDEN / CLARIFY are still possible).
        reason: One sentence for the user / logs.
        top_score: Best hit's score (None: no hit). score_floor: the floor used (None: none).
        coverage: Share of the query's content words the store knows (None: not checked).
        lexical_floor: Grounding floor used (None: not checked).
        source: ``"calibrated"``, ``"user"`` or ``"unset"``.
    """

    relevant: bool
    reason: str
    top_score: float | None = None
    score_floor: float | None = None
    coverage: float | None = None
    lexical_floor: float | None = None
    source: str = "unset"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


@dataclass(frozen=True)
class RelevanceModel:
    """Calibrated relevance floors of one store (per query modality) and its vocabulary.

    Attributes:
        score_floor: Per query modality, the least top score of relevant evidence.
        vocabulary: Content words of the store's item texts (empty: no grounding check).
        lexical_floor: Least share of a text query's content words in the vocabulary
            (None: no grounding check).
        n_pairs: Matched pairs the floors were calibrated on. alpha: their target α.
        source: ``"calibrated"`` or ``"user"`` (after :meth:`override`).
        null_score: Per query modality, the highest best-score of the off-topic probes
            (empty: not measured).
        word_floor: Least cosine of an unseen word to its nearest vocabulary word for it to
            count as known (:mod:`luma_rag.relevance_words`; None: spelling only).
        matcher: The :class:`~luma_rag.relevance_words.WordMatcher` reading ``word_floor``
            with the query embedder (not persisted: :meth:`with_embedder` attaches it).
    """

    score_floor: dict[str, float] = field(default_factory=dict)
    vocabulary: frozenset[str] = frozenset()
    lexical_floor: float | None = None
    n_pairs: int = 0
    alpha: float = 0.0
    source: Literal["calibrated", "user"] = "calibrated"
    null_score: dict[str, float] = field(default_factory=dict)
    word_floor: float | None = None
    matcher: WordMatcher | None = field(default=None, compare=False, repr=False)

    def judge(self, text: str | None, modality: str, top_score: float | None) -> RelevanceVerdict:
        """Judge one query: its text (None for media queries), modality and best score."""
        floor = self.score_floor.get(modality)
        common: dict[str, Any] = {
            "top_score": top_score,
            "score_floor": floor,
            "source": self.source,
        }
        if top_score is None:
            return RelevanceVerdict(False, "nothing in memory answers this: no hit", **common)
        if floor is not None and top_score < floor:
            return RelevanceVerdict(
                False,
                f"nothing in memory answers this: the best match scores {top_score:.3f}, "
                f"below the store's relevance floor {floor:.3f} for {modality} queries",
                **common,
            )
        if text is not None and self.lexical_floor is not None and self.vocabulary:
            words = content_words(text)
            if not words and not _REFERRING & set(_TOKEN.findall(text.lower())):
                return RelevanceVerdict(
                    False,
                    "nothing in memory answers this: the question names nothing to look for",
                    coverage=0.0,
                    lexical_floor=self.lexical_floor,
                    **common,
                )
            if words:
                cov = _coverage(text, self.vocabulary, self.matcher)
                if cov < self.lexical_floor:
                    known = self.matcher.known(words) if self.matcher else [False] * len(words)
                    unknown = [
                        w for w, k in zip(words, known, strict=True)
                        if w not in self.vocabulary and not k
                    ][:4]  # fmt: skip
                    return RelevanceVerdict(
                        False,
                        f"nothing in memory answers this: the memory holds nothing about "
                        f"{', '.join(repr(w) for w in unknown)} ({cov:.0%} of the question's "
                        f"words are known to it)",
                        coverage=cov,
                        lexical_floor=self.lexical_floor,
                        **common,
                    )
                return RelevanceVerdict(
                    True, "relevant", coverage=cov, lexical_floor=self.lexical_floor, **common
                )
        return RelevanceVerdict(True, "relevant", **common)

    def override(
        self, *, score_floor: dict[str, float] | None = None, lexical_floor: float | None = None
    ) -> RelevanceModel:
        """The same model with user-chosen floors (``source="user"``)."""
        floors = {**self.score_floor, **(score_floor or {})}
        lex = self.lexical_floor if lexical_floor is None else float(lexical_floor)
        return replace(self, score_floor=floors, lexical_floor=lex, source="user")

    def with_embedder(self, embed_text: Callable[[list[str]], Any]) -> RelevanceModel:
        """The same model reading unseen words by meaning with ``embed_text`` (when it has a
        ``word_floor`` and a vocabulary; else unchanged)."""
        if self.word_floor is None or not self.vocabulary:
            return self
        return replace(self, matcher=WordMatcher(self.vocabulary, embed_text, self.word_floor))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (for ``Luma.set_calibration("relevance", ...)``), with the
        calibration's ``version`` (:data:`RELEVANCE_VERSION`); the matcher is not saved."""
        out = asdict(replace(self, matcher=None))
        out.pop("matcher")
        out["vocabulary"] = sorted(self.vocabulary)
        out["version"] = RELEVANCE_VERSION
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RelevanceModel:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                score_floor={str(k): float(v) for k, v in data["score_floor"].items()},
                vocabulary=frozenset(data.get("vocabulary", ())),
                lexical_floor=data.get("lexical_floor"),
                n_pairs=int(data.get("n_pairs", 0)),
                alpha=float(data.get("alpha", 0.0)),
                source=data.get("source", "calibrated"),
                null_score={str(k): float(v) for k, v in data.get("null_score", {}).items()},
                word_floor=data.get("word_floor"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InvalidInputError(f"not a RelevanceModel dict: {e}") from e


def calibrate_relevance(
    texts: Sequence[str | None],
    item_vectors: Any,
    embed_text: Callable[[list[str]], Any],
    config: RelevanceConfig | None = None,
) -> RelevanceModel:
    """Calibrate the text relevance floors of a store from its own items.

    Args:
        texts: Each item's text (caption, document); ``None`` / empty for items without one.
        item_vectors: The items' stored unit vectors, float ``(n, d)``, same order.
        embed_text: Text embedder of the queries, ``list[str] -> (m, d)``.
        config: Settings (default :class:`RelevanceConfig`).

    Returns:
        A :class:`RelevanceModel` with a ``"text"`` score floor and, when enough items carry
        text, the vocabulary and grounding floor.

    Raises:
        InvalidInputError: shapes disagree, or fewer than 10 items carry text.
    """
    cfg = config or RelevanceConfig()
    vecs = np.asarray(item_vectors, dtype=np.float64)
    if vecs.ndim != 2 or vecs.shape[0] != len(texts):
        raise InvalidInputError(
            f"item_vectors must be (n, d) with one row per text; got {vecs.shape} for {len(texts)}"
        )
    with_text = [i for i, t in enumerate(texts) if t and t.strip()]
    if len(with_text) < 10:
        raise InvalidInputError(
            f"relevance calibration needs at least 10 items with text, the store has "
            f"{len(with_text)}; set floors by hand with RelevanceModel().override(...)"
        )
    rng = np.random.default_rng(cfg.seed)
    pick = rng.permutation(with_text)[: cfg.max_items]
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    queries = [perturb_text(str(texts[i]), rng, strength=cfg.strength) for i in pick]
    matched = np.einsum("ij,ij->i", _embed(embed_text, queries), vecs[pick])  # against own item
    floor, null = _conformal_floor(matched, cfg.alpha), math.inf
    if cfg.query_like:
        reps = max(1, math.ceil(cfg.min_queries / len(pick)))
        asked = [question_like(str(texts[i]), rng) for i in pick for _ in range(reps)]
        asked_ok = [a for a in asked if a]
        if asked_ok:  # the best score anywhere in the store, as the gate reads it
            best = (_embed(embed_text, asked_ok) @ vecs.T).max(axis=1)
            floor = min(floor, _conformal_floor(best, cfg.alpha))
        probes = (_embed(embed_text, list(NULL_PROBES)) @ vecs.T).max(axis=1)
        null = float(probes.max())
        if null < floor:  # separated on the calibration sets: the middle of the gap
            floor = (null + floor) / 2.0
    floors = {"text": floor} if math.isfinite(floor) else {}
    half = len(pick) // 2
    vocab_half = {w for i in pick[:half] for w in content_words(str(texts[i]))}
    vocabulary = frozenset(w for i in with_text for w in content_words(str(texts[i])))
    variants = [perturb_text(str(texts[i]), rng, strength=cfg.strength) for i in pick[half:]]
    words_floor, half_matcher = None, None
    if cfg.query_like:
        unseen = {w for v in variants for w in content_words(v)} - vocab_half
        probe_words = {w for p in NULL_PROBES for w in content_words(p)}
        words_floor, _ = word_floor(
            vocab_half, unseen, vocabulary, probe_words, embed_text, cfg.alpha
        )
        if words_floor is not None and vocab_half:
            half_matcher = WordMatcher(vocab_half, embed_text, words_floor)
    held_out = np.array([_coverage(v, vocab_half, half_matcher) for v in variants])
    lexical = min(cfg.max_lexical_floor, _conformal_floor(held_out, cfg.alpha))
    model = RelevanceModel(
        score_floor=floors,
        vocabulary=vocabulary,
        lexical_floor=lexical if math.isfinite(lexical) else None,
        n_pairs=len(pick),
        alpha=cfg.alpha,
        null_score={"text": null} if math.isfinite(null) else {},
        word_floor=words_floor,
    ).with_embedder(embed_text)
    logger.info(
        "relevance calibrated on %d items: text floor %s (highest null probe %s), grounding "
        "floor %s, %d words",
        len(pick),
        floors.get("text"),
        model.null_score.get("text"),
        model.lexical_floor,
        len(vocabulary),
    )
    return model
