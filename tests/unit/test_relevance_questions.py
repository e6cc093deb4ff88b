"""The relevance floor on small stores: question-like calibration queries, the null side, and
words known by meaning (luma_rag/relevance.py, relevance_queries.py, relevance_words.py).

The embedder is a deterministic stand-in that behaves like the tiny CLIP where it matters:
synonyms embed (almost) alike, words it has no meaning for all land in one region, and the
question frame's words dilute a question's score below a full caption's.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

from luma_rag.relevance import RelevanceConfig, RelevanceModel, calibrate_relevance
from luma_rag.relevance_queries import NULL_PROBES, QUESTION_FRAMES, question_like
from luma_rag.relevance_words import GIBBERISH, WordMatcher

DIM = 64
SYNONYMS = {"crimson": "red", "scarlet": "red", "disc": "circle", "disk": "circle", "box": "square"}
MEANINGFUL = {"red", "green", "blue", "yellow", "circle", "square", "star", "left", "right"}
MEANINGFUL |= {"top", "bottom", "small", "large", "tiny", "huge", "stripy", "backdrop"}
STORE_WORDS = {"crimson", "green", "blue", "yellow", "disc", "square", "star", "left", "right"}
STORE_WORDS |= {"top", "bottom", "small", "large"}


def _vec(word: str) -> np.ndarray:
    word = SYNONYMS.get(word, word)
    rng = np.random.default_rng(zlib.crc32(word.encode()))
    if word in MEANINGFUL or word in {"a", "the", "on", "of", "what", "is", "where", "color"}:
        return rng.standard_normal(DIM)
    blank = np.random.default_rng(1).standard_normal(DIM)  # no meaning: one region
    return 4 * blank + rng.standard_normal(DIM)


def embed(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), DIM))
    for i, t in enumerate(texts):
        for w in re.findall(r"[a-z0-9]+", t.lower()):
            out[i] += _vec(w)
        out[i] += 1e-3
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _store(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    colours, shapes = ["crimson", "green", "blue", "yellow"], ["disc", "square", "star"]
    places, sizes = ["left", "right", "top", "bottom"], ["small", "large"]
    return [
        f"a {rng.choice(sizes)} {rng.choice(colours)} {rng.choice(shapes)} on the "
        f"{rng.choice(places)} against a stripy backdrop"
        for _ in range(n)
    ]


def _questions(texts: list[str], rng: np.random.Generator) -> list[str]:
    """What a user asks: one or two of the item's words, in a question."""
    out = []
    for t in texts:
        words = t.split()
        size, colour, shape, place = words[1], words[2], words[3], words[6]
        out += [
            f"What color is the {shape} on the {place}?",
            f"Where is the {size} {SYNONYMS.get(colour, colour)} {shape}?",
            f"What size is the {colour} {shape}?",
        ]
    return [out[int(i)] for i in rng.permutation(len(out))]


def _refused(model: RelevanceModel, texts: list[str], queries: list[str]) -> float:
    best = (embed(queries) @ embed(texts).T).max(axis=1)
    return float(np.mean([not model.judge(q, "text", float(s)).relevant
                          for q, s in zip(queries, best, strict=True)]))  # fmt: skip


def test_a_small_store_no_longer_refuses_on_topic_questions() -> None:
    """24 items: the caption-only floor refuses many questions (they score below captions,
    and "red" is not a word the store uses); the new floor refuses at most 5 %, and the
    off-topic questions stay refused."""
    texts = _store(24, 3)
    questions = _questions(texts, np.random.default_rng(5))
    old = calibrate_relevance(texts, embed(texts), embed, RelevanceConfig(query_like=False))
    new = calibrate_relevance(texts, embed(texts), embed)
    assert _refused(old, texts, questions) > 0.10
    assert _refused(new, texts, questions) <= 0.05
    off = ["who painted the sistine chapel?", "a bowl of cherries", "zorbl fnord", "hello"]
    assert _refused(new, texts, off) == 1.0
    assert new.null_score["text"] > 0 and new.word_floor is not None


def test_question_like_queries_use_only_the_items_words_in_a_generic_frame() -> None:
    rng = np.random.default_rng(0)
    text = "A small crimson disc on the left"
    seen = [question_like(text, rng) for _ in range(200)]
    allowed = set(re.findall(r"[a-z]+", text.lower()))
    frames = {w for f in QUESTION_FRAMES for w in re.findall(r"[a-z]+", f.lower())}
    for q in seen:
        assert q is not None
        assert set(re.findall(r"[a-z]+", q.lower())) - frames <= allowed
    assert len({q for q in seen}) > 20  # varied: subsets and frames
    assert question_like("the of a", rng) is None  # no content word


def test_unseen_words_count_by_meaning_but_not_blank_ones() -> None:
    """The word "red" embeds like the store's "crimson" and counts as known; "flarn" and "backdrop"
    embed in the no-meaning region, so "flarn" does not "mean" "backdrop"."""
    matcher = WordMatcher(STORE_WORDS | {"backdrop"}, embed, floor=0.95)
    assert matcher.known(["red", "disk", "flarn", "banana", "square"]) == [
        True, True, False, False, True,
    ]  # fmt: skip

    def spread(words: list[str]) -> np.ndarray:  # every word its own random direction
        return np.stack([np.random.default_rng(zlib.crc32(SYNONYMS.get(w, w).encode()))
                         .standard_normal(DIM) for w in words])  # fmt: skip

    loose = WordMatcher(STORE_WORDS, spread, floor=0.95)  # gibberish spread out: none blank
    assert loose.known(["red", "flarn", *GIBBERISH[:2]]) == [True, False, False, False]


def test_the_word_floor_round_trips_and_needs_the_embedder_again() -> None:
    texts = _store(30, 4)
    model = calibrate_relevance(texts, embed(texts), embed)
    assert model.judge("Where is the red disc?", "text", 0.9).coverage == 1.0
    back = RelevanceModel.from_dict(model.to_dict())
    assert back.word_floor == model.word_floor and back.matcher is None
    assert back.judge("Where is the red disc?", "text", 0.9).coverage == 0.5  # spelling only
    again = back.with_embedder(embed)
    assert again.judge("Where is the red disc?", "text", 0.9).coverage == 1.0
    assert model.to_dict()["version"] >= 2


def test_null_probes_are_not_the_evaluations_off_topic_questions() -> None:
    from luma_rag.eval.offtopic import OFF_TOPIC

    assert not {p.lower() for p in NULL_PROBES} & {q.lower() for q in OFF_TOPIC}


def test_a_stored_calibration_of_the_older_method_is_redone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from luma_rag import Luma, LumaConfig
    from luma_rag.answer.relevance_auto import store_relevance

    texts = _store(30, 6)
    with Luma.open(tmp_path / "s", LumaConfig(dim=DIM)) as luma:
        luma.add_vectors(embed(texts).astype(np.float32), texts=texts)
        old = calibrate_relevance(texts, embed(texts), embed, RelevanceConfig(query_like=False))
        stale = {k: v for k, v in old.to_dict().items() if k != "version"}
        luma.set_calibration("relevance:toy", stale)
        model = store_relevance(luma, embed, embedder="toy")
        assert model is not None and model.word_floor is not None and model.matcher is not None
        assert luma.calibration("relevance:toy")["version"] == model.to_dict()["version"]
        mine = model.override(score_floor={"text": 0.5})
        luma.set_calibration("relevance:toy", {**mine.to_dict(), "version": 1})
        kept = store_relevance(luma, embed, embedder="toy")
        assert kept is not None and kept.source == "user" and kept.score_floor["text"] == 0.5
