"""Held-out retrieval metrics of a tiny CLAP: audio<->text, re-spoken audio->audio."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from luma_rag.datasets.captions import parse_query_attributes
from luma_rag.datasets.shapes import ShapeItem
from luma_rag.datasets.speech import (
    PITCH_RANGE,
    RATE_RANGE,
    VARIANTS,
    VOICES,
    SpeechParams,
    synthesize,
)
from luma_rag.encoders.clap.backend import ClapEncoder
from luma_rag.errors import InvalidInputError
from luma_rag.training.clap_features import audio_path
from luma_rag.training.evaluate import first_relevant_ranks, relevance_matrix

__all__ = ["evaluate_clap"]


def _respeak(
    items: Sequence[ShapeItem], seed: int
) -> tuple[list[tuple[np.ndarray, int]], list[str]]:
    """Speak a paraphrase of each item's caption with another voice, rate and pitch."""
    clips, texts = [], []
    for index, item in enumerate(items):
        rng = np.random.default_rng([seed, index])
        voices = [v + x for v in VOICES for x in VARIANTS]
        if item.speech is not None and item.speech.voice in voices:
            voices.remove(item.speech.voice)
        params = SpeechParams(
            voice=voices[int(rng.integers(len(voices)))],
            rate=int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1)),
            pitch=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
        )
        text = item.captions[1] if len(item.captions) > 1 else item.caption
        clips.append((synthesize(text, params).astype(np.float64) / 32768.0, 16_000))
        texts.append(text)
    return clips, texts


def _recalls(prefix: str, ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    found = ranks >= 0
    out = {f"{prefix}_recall@{k}": float(np.mean(found & (ranks < k))) for k in ks}
    out[f"{prefix}_mrr"] = float(np.mean(np.where(found, 1.0 / (ranks + 1), 0.0)))
    return out


def evaluate_clap(
    encoder: ClapEncoder, items: Sequence[ShapeItem], *, seed: int = 0, respoken: bool = True
) -> dict[str, Any]:
    """Measure audio<->text and audio->audio retrieval on LUMA-Shapes items with audio.

    Relevance is group-aware: a result is relevant when its item has every attribute the
    query's caption names (:func:`~luma_rag.training.evaluate.relevance_matrix`). Recall@k
    is the share of queries with at least one relevant result in the top k.

    * ``a2t_*``: each item's spoken caption against every caption of every item;
    * ``t2a_*``: each caption against every item's clip;
    * ``a2a_*`` (``respoken``): a paraphrase of each caption, spoken by espeak-ng with another
      voice, against the items' own clips; ``a2a_nn`` is the share whose nearest clip is
      relevant;
    * ``a2a_nn_shape_color``: share of clips whose nearest other clip has the same shape and
      colour (as ``i2i_nn_shape_color`` for images).

    Args:
        encoder: The CLAP encoder to measure.
        items: Items with audio (queries and gallery).
        seed: Seed of the re-spoken voices.
        respoken: Compute the ``a2a_*`` metrics (needs espeak-ng).

    Returns:
        Metrics in [0, 1] and the query / gallery counts.

    Raises:
        InvalidInputError: Fewer than two items.
    """
    if len(items) < 2:
        raise InvalidInputError("evaluate_clap needs at least two items")
    audio = encoder.encode_audio([audio_path(it) for it in items])
    owners = [it for it in items for _ in it.captions]
    captions = [c for it in items for c in it.captions]
    text = encoder.encode_text(captions)
    spoken = relevance_matrix([parse_query_attributes(it.caption) for it in items], owners)
    written = relevance_matrix([parse_query_attributes(c) for c in captions], list(items))
    out: dict[str, Any] = {
        **_recalls("a2t", first_relevant_ranks(audio @ text.T, spoken), (1, 5, 10)),
        **_recalls("t2a", first_relevant_ranks(text @ audio.T, written), (1, 10)),
    }
    if respoken:
        clips, texts = _respeak(items, seed)
        ranks = first_relevant_ranks(
            encoder.encode_audio(clips) @ audio.T,
            relevance_matrix([parse_query_attributes(t) for t in texts], list(items)),
        )
        out["a2a_nn"] = float(np.mean(ranks == 0))
        out.update(_recalls("a2a", ranks, (10,)))
    sims = audio @ audio.T
    np.fill_diagonal(sims, -np.inf)
    nn = sims.argmax(axis=1)
    out["a2a_nn_shape_color"] = float(
        np.mean(
            [
                (items[j].attributes.shape, items[j].attributes.color)
                == (it.attributes.shape, it.attributes.color)
                for it, j in zip(items, nn, strict=True)
            ]
        )
    )
    out.update({"n_audio": len(items), "n_captions": len(captions)})
    return out
