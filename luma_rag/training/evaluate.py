"""Retrieval quality of an encoder on LUMA-Shapes, with group-aware relevance.

A text query is relevant to every item whose attributes match everything the query names
(:func:`~luma_rag.datasets.relevant` on :func:`~luma_rag.datasets.parse_query_attributes`),
so "a red circle" is answered by any red circle, not only by the item it was written for.

Metrics (all in [0, 1]):

* ``t2i_recall@k`` - share of text queries with at least one relevant image in the top k;
* ``t2i_mrr`` - mean reciprocal rank of the first relevant image (full ranking);
* ``i2i_nn_shape_color`` - share of images whose nearest other image (cosine) shows the
  same shape in the same colour.

Queries are the primary captions of the query items (or all their paraphrases); the gallery
defaults to the query items themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from luma_rag.datasets.attributes import relevant
from luma_rag.datasets.captions import parse_query_attributes
from luma_rag.datasets.shapes import ShapeItem
from luma_rag.datasets.vocab import ATTRIBUTE_NAMES
from luma_rag.encoders.base import Encoder
from luma_rag.errors import InvalidInputError

__all__ = ["evaluate_retrieval", "first_relevant_ranks", "relevance_matrix"]


def relevance_matrix(
    queries: Sequence[Mapping[str, object]], items: Sequence[ShapeItem]
) -> np.ndarray:
    """Group-aware relevance of every (query, item) pair, vectorised.

    Equal to ``relevant(q, item.attributes)`` for every pair.

    Args:
        queries: Attribute dicts, e.g. from :func:`parse_query_attributes`.
        items: Gallery items.

    Returns:
        bool ``(len(queries), len(items))``.
    """
    columns = {
        name: np.array([getattr(it.attributes, name) for it in items], dtype=object)
        for name in ATTRIBUTE_NAMES
    }
    out = np.ones((len(queries), len(items)), dtype=bool)
    for row, query in enumerate(queries):
        relevant(query, {})  # validates the query's keys and values
        for name, value in query.items():
            if value is not None:
                out[row] &= columns[name] == value
    return out


def first_relevant_ranks(scores: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """0-based rank of the best-scored relevant item of each query (``-1`` if none).

    Ties are broken by gallery order (stable sort), so results are deterministic.

    Args:
        scores: float ``(n_queries, n_items)``, higher is better.
        rel: bool ``(n_queries, n_items)``.

    Returns:
        int64 ``(n_queries,)``.
    """
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = np.take_along_axis(rel, order, axis=1)
    ranks = hits.argmax(axis=1).astype(np.int64)
    ranks[~hits.any(axis=1)] = -1
    return ranks


def evaluate_retrieval(
    encoder: Encoder,
    items: Sequence[ShapeItem],
    *,
    gallery: Sequence[ShapeItem] | None = None,
    k: int = 10,
    captions: Literal["primary", "all"] = "primary",
    batch_size: int = 128,
) -> dict[str, Any]:
    """Measure text->image and image->image retrieval of ``encoder`` on LUMA-Shapes items.

    Args:
        encoder: Any text+image :class:`~luma_rag.encoders.base.Encoder`.
        items: Query items: their captions are the text queries, their images the image
            queries.
        gallery: Items searched (default ``items``). Must contain every query item, since
            an image query skips its own item.
        k: Cut-off of the recall.
        captions: ``"primary"`` (one query per item) or ``"all"`` (every paraphrase).
        batch_size: Encoder batch size.

    Returns:
        ``{"t2i_recall@k", "t2i_mrr", "i2i_nn_shape_color", "n_text_queries",
        "n_image_queries", "n_gallery"}``.

    Raises:
        InvalidInputError: Empty items, ``k < 1``, or a query item missing from the gallery.
    """
    if not items:
        raise InvalidInputError("items is empty; pass the items to query with")
    if k < 1:
        raise InvalidInputError(f"k must be >= 1, got {k}")
    pool = list(items if gallery is None else gallery)
    index = {it.id: i for i, it in enumerate(pool)}
    missing = [it.id for it in items if it.id not in index]
    if missing:
        raise InvalidInputError(f"query items {missing[:3]} are not in the gallery")

    image_emb = encoder.encode_image([it.image_path for it in pool], batch_size=batch_size)
    texts = [c for it in items for c in (it.captions if captions == "all" else (it.caption,))]
    text_emb = encoder.encode_text(texts, batch_size=batch_size)

    rel = relevance_matrix([parse_query_attributes(t) for t in texts], pool)
    ranks = first_relevant_ranks(text_emb @ image_emb.T, rel)
    found = ranks >= 0
    recall = float(np.mean(found & (ranks < k)))
    mrr = float(np.mean(np.where(found, 1.0 / (ranks + 1), 0.0)))

    own = np.array([index[it.id] for it in items])
    sims = image_emb[own] @ image_emb.T
    sims[np.arange(len(own)), own] = -np.inf
    nn = sims.argmax(axis=1)
    same = [
        pool[j].attributes.shape == it.attributes.shape
        and pool[j].attributes.color == it.attributes.color
        for it, j in zip(items, nn, strict=True)
    ]
    return {
        f"t2i_recall@{k}": recall,
        "t2i_mrr": mrr,
        "i2i_nn_shape_color": float(np.mean(same)),
        "n_text_queries": len(texts),
        "n_image_queries": len(items),
        "n_gallery": len(pool),
    }
