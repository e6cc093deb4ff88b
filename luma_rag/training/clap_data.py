"""The tiny CLAP's training run in memory: splits with audio, model, heads, log-mels, targets
and (optionally) the frozen CLIP text embeddings the joint space is anchored to."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag.datasets.shapes import ShapeItem, load_manifest
from luma_rag.datasets.vocab import ATTRIBUTE_NAMES
from luma_rag.encoders.clap.tiny import TinyClapSpec, build_model, build_processor
from luma_rag.encoders.clap.tokenizer import build_tokenizer
from luma_rag.errors import ConfigError
from luma_rag.training.clap_features import log_mels
from luma_rag.training.clap_losses import VALUES, attribute_targets

__all__ = ["ClapRun", "anchor_embeddings", "load_splits", "prepare"]


def load_splits(data: Sequence[str | Path]) -> dict[str, list[ShapeItem]]:
    splits: dict[str, list[ShapeItem]] = {"train": [], "val": [], "test": []}
    for corpus in data:
        for item in load_manifest(corpus):
            if item.audio is not None:
                splits[item.split].append(item)
    for name in ("train", "test"):
        if not splits[name]:
            raise ConfigError(f"no {name} items with audio in {list(map(str, data))}")
    return splits


@dataclass
class ClapRun:
    """Everything one training run works on, prepared once."""

    train: list[ShapeItem]
    tokenizer: Any
    processor: Any
    model: Any  # transformers ClapModel
    heads: Any  # torch ModuleDict: attribute name -> Linear(projection_dim, n_values)
    feats: Any  # float16 tensor (n, frames, mels)
    audio_targets: Any  # int64 tensor (n, attributes), from the spoken captions
    group: Any  # int64 tensor (n,): items with equal attributes share a group id
    anchors: dict[str, Any] = dataclasses.field(default_factory=dict)  # caption -> CLIP text


def anchor_embeddings(
    captions: Sequence[str], name: str, dim: int, torch: Any, weights: str | None = None
) -> dict[str, Any]:
    """Frozen CLIP text embeddings of ``captions`` (the anchor of the joint space); ``weights``:
    a weights file for ``name`` instead of the registry's."""
    from luma_rag.encoders.registry import get_encoder

    encoder = get_encoder(name, weights)
    if encoder.dim != dim:
        raise ConfigError(
            f"anchor {name!r} embeds in {encoder.dim} dimensions, CLAP projects to {dim}; "
            "pick an anchor of the same width or --anchor none"
        )
    unique = sorted(set(captions))
    vectors = torch.from_numpy(np.asarray(encoder.encode_text(unique), dtype=np.float32))
    return dict(zip(unique, vectors, strict=True))


def prepare(
    train: list[ShapeItem],
    spec: TinyClapSpec,
    torch: Any,
    anchor: str | None = None,
    anchor_weights: str | None = None,
) -> ClapRun:
    tokenizer = build_tokenizer(
        [c for it in train for c in it.captions],
        vocab_size=spec.vocab_size,
        model_max_length=spec.max_text_tokens,
    )
    processor = build_processor(spec, tokenizer)
    model = build_model(spec, vocab_size=len(tokenizer))
    heads = torch.nn.ModuleDict(
        {name: torch.nn.Linear(spec.projection_dim, len(VALUES[name])) for name in ATTRIBUTE_NAMES}
    )
    groups: dict[tuple[Any, ...], int] = {}
    group = [
        groups.setdefault(tuple(it.attributes.as_dict().values()), len(groups)) for it in train
    ]
    return ClapRun(
        train=train,
        tokenizer=tokenizer,
        processor=processor,
        model=model,
        heads=heads,
        feats=log_mels(train, spec, processor.feature_extractor, torch),
        audio_targets=attribute_targets([it.caption for it in train], torch),
        group=torch.tensor(group),
        anchors=(
            anchor_embeddings(
                [c for it in train for c in it.captions],
                anchor,
                spec.projection_dim,
                torch,
                anchor_weights,
            )
            if anchor
            else {}
        ),
    )
