"""Loss terms of the tiny CLAP: group-aware InfoNCE and the attribute heads' targets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from luma_rag.datasets.captions import parse_query_attributes
from luma_rag.datasets.vocab import (
    ATTRIBUTE_NAMES,
    BACKGROUNDS,
    COLORS,
    COUNTS,
    MOTIONS,
    POSITIONS,
    SHAPES,
    SIZES,
)

__all__ = ["VALUES", "attribute_targets", "aux_loss", "group_loss", "param_groups"]

#: Classes of each attribute head.
VALUES: Final[dict[str, tuple[object, ...]]] = {
    "shape": SHAPES,
    "color": COLORS,
    "size": SIZES,
    "position": POSITIONS,
    "count": COUNTS,
    "background": BACKGROUNDS,
    "motion": MOTIONS,
}
_IGNORE: Final = -100


def attribute_targets(captions: Sequence[str], torch: Any) -> Any:
    """int64 ``(n, attributes)`` class ids of what each caption names (``-100``: not named)."""
    rows = []
    for caption in captions:
        named = parse_query_attributes(caption)
        rows.append(
            [
                VALUES[name].index(named[name]) if name in named else _IGNORE
                for name in ATTRIBUTE_NAMES
            ]
        )
    return torch.tensor(rows, dtype=torch.long)


def group_loss(audio: Any, text: Any, scale_a: Any, scale_t: Any, group: Any, torch: Any) -> Any:
    """Symmetric InfoNCE where every pair in the same attribute group is a positive."""
    same = (group[:, None] == group[None, :]).float()
    target = same / same.sum(dim=1, keepdim=True)
    log_a2t = torch.log_softmax(scale_a * audio @ text.T, dim=1)
    log_t2a = torch.log_softmax(scale_t * text @ audio.T, dim=1)
    return -0.5 * ((target * log_a2t).sum(1).mean() + (target * log_t2a).sum(1).mean())


def aux_loss(heads: Any, embeddings: Any, targets: Any, torch: Any) -> Any:
    losses = [
        torch.nn.functional.cross_entropy(
            heads[name](embeddings), targets[:, i], ignore_index=_IGNORE
        )
        for i, name in enumerate(ATTRIBUTE_NAMES)
        if bool((targets[:, i] != _IGNORE).any())
    ]
    return torch.stack(losses).mean()


def param_groups(modules: Sequence[Any], weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for module in modules:
        for name, p in module.named_parameters():
            if p.ndim < 2 or "embeddings" in name or "logit_scale" in name or "norm" in name:
                no_decay.append(p)
            else:
                decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
