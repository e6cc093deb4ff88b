"""Does an encoder bind attributes to objects? Referent retrieval and a linear shape probe.

* :func:`evaluate_referents` - the questions' partial referents ("a little circle on the
  left", "two violet shapes") as text queries against a gallery of images; top-1 is right
  when the first image matches every attribute the referent names (group-aware, as the
  answer gate judges it). ``full`` referents name every attribute but the one asked (the
  gate evaluation's targeted questions), ``random`` ones a random subset.
* :func:`linear_probe` - a ridge-regression classifier of one attribute on frozen image
  embeddings, fitted on seen shape/colour combinations and scored on unseen ones: chance
  (1/8 for shape) means the embedding carries shape only through its usual colour.

Each figure comes with its count and a Wilson 95 % interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from luma_rag.datasets.questions import QUESTION_KINDS, make_question
from luma_rag.datasets.shapes import ShapeItem
from luma_rag.encoders.base import Encoder
from luma_rag.errors import InvalidInputError
from luma_rag.training.evaluate import relevance_matrix

__all__ = ["evaluate_referents", "linear_probe", "ridge_predict", "wilson"]

_FULL: tuple[str, ...] = ("size", "color", "shape", "position")


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (``(0, 1)`` when ``n == 0``)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(hits: np.ndarray) -> dict[str, Any]:
    k, n = int(hits.sum()), int(hits.size)
    lo, hi = wilson(k, n)
    return {"top1": k / n if n else None, "n": n, "wilson95": [round(lo, 4), round(hi, 4)]}


def evaluate_referents(
    encoder: Encoder,
    items: Sequence[ShapeItem],
    *,
    referent: Literal["full", "random"] = "full",
    seed: int = 0,
    batch_size: int = 128,
) -> dict[str, Any]:
    """Top-1 of question referents against the images of ``items``.

    Args:
        encoder: Text+image encoder.
        items: Targets and gallery at once; one question per item and kind.
        referent: ``"full"`` (every attribute but the asked one) or ``"random"``.
        seed: Seed of templates, synonyms and (for ``random``) the named subsets.
        batch_size: Encoder batch size.

    Returns:
        ``{"top1", "n", "wilson95", "by_kind": {kind: {...}}, "n_gallery"}``.

    Raises:
        InvalidInputError: Empty ``items``.
    """
    if not items:
        raise InvalidInputError("items is empty; pass the gallery of target items")
    rng = np.random.default_rng([seed, 13])
    named = _FULL if referent == "full" else None
    questions = [
        (kind, make_question(it.attributes, kind, rng, named=named))
        for it in items
        for kind in QUESTION_KINDS
    ]
    images = encoder.encode_image([it.image_path for it in items], batch_size=batch_size)
    texts = encoder.encode_text([q.retrieval_text for _, q in questions], batch_size=batch_size)
    top = np.argmax(texts @ images.T, axis=1)
    rel = relevance_matrix([q.named for _, q in questions], items)
    hits = rel[np.arange(len(questions)), top]
    kinds = np.array([kind for kind, _ in questions])
    out = _rate(hits)
    out["by_kind"] = {kind: _rate(hits[kinds == kind]) for kind in QUESTION_KINDS}
    out["n_gallery"] = len(items)
    return out


def ridge_predict(
    x_fit: np.ndarray, y: np.ndarray, n_classes: int, x_test: np.ndarray, ridge: float = 1e-2
) -> np.ndarray:
    """Classes a ridge read-out predicts: regression onto one-hot targets with a bias, arg-max.

    Args:
        x_fit: ``(n, d)`` features to fit on. y: int ``(n,)`` class per row, < ``n_classes``.
        n_classes: number of classes. x_test: ``(m, d)`` features to predict. ridge: L2 penalty.

    Returns:
        int64 ``(m,)`` predicted class per test row (closed form, deterministic; float64).
    """
    x = np.hstack([np.asarray(x_fit, np.float64), np.ones((len(x_fit), 1))])
    target = np.eye(n_classes)[y]
    w = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ target)
    xt = np.hstack([np.asarray(x_test, np.float64), np.ones((len(x_test), 1))])
    return np.argmax(xt @ w, axis=1)


def linear_probe(
    encoder: Encoder,
    fit_items: Sequence[ShapeItem],
    test_items: Sequence[ShapeItem],
    *,
    attribute: str = "shape",
    ridge: float = 1e-2,
    batch_size: int = 128,
) -> dict[str, Any]:
    """Accuracy of a linear read-out of ``attribute`` from frozen image embeddings.

    The probe is ridge regression onto one-hot targets (with a bias), the prediction the
    arg-max: closed form, deterministic.

    Args:
        encoder: Image encoder.
        fit_items: Items the probe is fitted on (seen combinations).
        test_items: Items it is scored on (unseen combinations).
        attribute: Attribute name of :class:`~luma_rag.datasets.attributes.ShapeAttributes`.
        ridge: L2 penalty.
        batch_size: Encoder batch size.

    Returns:
        ``{"accuracy", "n", "wilson95", "n_fit", "chance"}``.

    Raises:
        InvalidInputError: Empty item lists.
    """
    if not fit_items or not test_items:
        raise InvalidInputError("linear_probe needs items to fit on and items to score")
    x_fit = encoder.encode_image([it.image_path for it in fit_items], batch_size=batch_size)
    x_test = encoder.encode_image([it.image_path for it in test_items], batch_size=batch_size)
    labels = sorted({getattr(it.attributes, attribute) for it in fit_items}, key=str)
    y = np.array([labels.index(getattr(it.attributes, attribute)) for it in fit_items])
    pred = [labels[int(i)] for i in ridge_predict(x_fit, y, len(labels), x_test, ridge)]
    hits = np.array(
        [p == getattr(it.attributes, attribute) for p, it in zip(pred, test_items, strict=True)]
    )
    out = _rate(hits)
    return {
        "accuracy": out["top1"],
        "n": out["n"],
        "wilson95": out["wilson95"],
        "n_fit": len(fit_items),
        "chance": 1.0 / len(labels),
    }
