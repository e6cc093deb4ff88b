"""ρ for any embedder (luma_rag.rho) and the relevance test (luma_rag.relevance), offline.

The embedders are small deterministic stand-ins: a bag-of-words hashing embedder (words →
fixed random vectors, so dropping or misspelling a word moves the embedding) and a pixel
embedder for images.
"""

from __future__ import annotations

import time
import zlib

import numpy as np
import pytest
from PIL import Image

from luma_rag.errors import InvalidInputError
from luma_rag.perturb import IMAGE_KINDS, TEXT_KINDS, perturb_image, perturb_text
from luma_rag.relevance import RelevanceModel, calibrate_relevance, content_words
from luma_rag.rho import RhoConfig, RhoEstimate, as_embed_fn, calibrate_rho

DIM = 48


def _bow(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), DIM))
    for i, t in enumerate(texts):
        for w in t.lower().split():
            out[i] += np.random.default_rng(zlib.crc32(w.encode())).standard_normal(DIM)
        out[i] += 1e-3  # never a zero vector
    return out / np.linalg.norm(out, axis=1, keepdims=True)


class LangChainLike:
    """Duck-typed LangChain ``Embeddings``."""

    model = "bow"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return _bow(texts).tolist()


class LlamaIndexLike:
    """Duck-typed LlamaIndex ``BaseEmbedding``."""

    model_name = "bow"

    def get_text_embedding_batch(self, texts: list[str]) -> list[list[float]]:
        return _bow(texts).tolist()


COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circle", "square", "triangle", "star", "hexagon", "diamond"]
PLACES = ["left", "right", "top", "bottom", "center"]


def _corpus(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        f"a {rng.choice(COLOURS)} {rng.choice(SHAPES)} on the {rng.choice(PLACES)}"
        for _ in range(n)
    ]


@pytest.mark.parametrize("kind", TEXT_KINDS)
def test_text_perturbations_keep_most_words(kind: str) -> None:
    rng = np.random.default_rng(0)
    text = "a small crimson disc near the top left corner"
    out = perturb_text(text, rng, kind)
    assert out and set(out.lower().split()) != set() and len(out.split()) >= 4
    with pytest.raises(InvalidInputError):
        perturb_text(text, rng, "paraphrase")


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_image_perturbations_keep_size(kind: str) -> None:
    img = Image.new("RGB", (32, 32), (200, 40, 40))
    out = perturb_image(img, np.random.default_rng(1), kind)
    assert out.size == (32, 32) and out.mode == "RGB"


@pytest.mark.parametrize("embedder", [LangChainLike(), LlamaIndexLike(), _bow])
def test_rho_for_foreign_embedders(embedder: object) -> None:
    texts = _corpus(60, 1)
    seen: list[tuple[int, int]] = []
    est = calibrate_rho(
        embedder, texts, config=RhoConfig(max_items=40), progress=lambda d, t: seen.append((d, t))
    )
    assert 0.05 < est.rho < 2.0  # word dropout moves a bag of words
    assert est.n_items == 40 and est.n_pairs == 40 * 3 and not est.truncated
    assert seen[-1] == (40, 40)
    assert RhoEstimate.from_dict(est.to_dict()) == est
    assert est.source == "calibrated" and est.modality == "text"


def test_rho_is_zero_for_an_embedder_that_ignores_the_surface() -> None:
    est = calibrate_rho(lambda xs: np.ones((len(xs), 4)), _corpus(20, 2))
    assert est.rho == 0.0


def test_rho_time_budget_truncates() -> None:
    def slow(xs: list[str]) -> np.ndarray:
        time.sleep(0.05)
        return _bow(xs)

    est = calibrate_rho(slow, _corpus(100, 3), config=RhoConfig(batch=5, time_budget_s=0.01))
    assert est.truncated and est.n_items == 5


def test_rho_for_images() -> None:
    rng = np.random.default_rng(4)
    images = [Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)) for _ in range(8)]

    def pixels(xs: list[Image.Image]) -> np.ndarray:
        return np.stack([np.asarray(x.convert("RGB"), dtype=np.float64).ravel() for x in xs])

    class Enc:
        def encode_image(self, xs: list[Image.Image]) -> np.ndarray:
            return pixels(xs)

    est = calibrate_rho(Enc(), images, modality="image", config=RhoConfig(variants=2))
    assert est.rho > 0 and est.modality == "image"


def test_bad_embedders_raise_typed_errors() -> None:
    with pytest.raises(InvalidInputError):
        as_embed_fn(object())
    with pytest.raises(InvalidInputError):
        calibrate_rho(lambda xs: np.zeros((len(xs), 3)), ["a b c"])
    with pytest.raises(InvalidInputError):
        calibrate_rho(_bow, [])


OFF_TOPIC = [
    "who won the 1998 world cup",
    "what is the boiling point of water",
    "recipe for sourdough bread",
    "a dog playing in the park",
    "blorp snarf wibble",
]


def test_relevance_separates_on_and_off_topic() -> None:
    texts = _corpus(300, 5)
    model = calibrate_relevance(texts, _bow(texts), _bow)
    assert "text" in model.score_floor and model.lexical_floor is not None
    assert {"red", "circle", "left"} <= model.vocabulary
    on = _corpus(200, 7)
    on_scores = (_bow(on) @ _bow(texts).T).max(axis=1)
    wrong = [
        not model.judge(t, "text", float(s)).relevant for t, s in zip(on, on_scores, strict=True)
    ]
    assert np.mean(wrong) <= 0.05
    off_scores = (_bow(OFF_TOPIC) @ _bow(texts).T).max(axis=1)
    for text, score in zip(OFF_TOPIC, off_scores, strict=True):
        verdict = model.judge(text, "text", float(score))
        assert not verdict.relevant and "nothing in memory answers this" in verdict.reason


def test_relevance_floor_override_and_round_trip() -> None:
    texts = _corpus(50, 8)
    model = calibrate_relevance(texts, _bow(texts), _bow)
    strict = model.override(score_floor={"text": 0.99, "image": 0.5})
    assert strict.source == "user"
    assert not strict.judge("a red circle", "text", 0.9).relevant
    assert not strict.judge(None, "image", 0.4).relevant
    assert strict.judge(None, "image", 0.6).relevant
    assert not model.judge("a red circle", "text", None).relevant  # no hit at all
    assert RelevanceModel.from_dict(strict.to_dict()) == strict
    assert RelevanceModel().judge("anything", "text", 0.1).relevant  # nothing calibrated
    with pytest.raises(InvalidInputError):
        calibrate_relevance(texts[:5], _bow(texts[:5]), _bow)
    with pytest.raises(InvalidInputError):
        RelevanceModel.from_dict({"vocabulary": []})


def test_content_words_ignore_generic_words() -> None:
    assert content_words("What colour is the small shape on the LEFT?") == ["left"]
    assert content_words("two boxes and discs") == ["box", "disc"]
