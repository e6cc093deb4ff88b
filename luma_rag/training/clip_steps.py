"""What one step of the tiny CLIP's training computes (training only; nothing is exported).

* :func:`step_loss` - group InfoNCE over a batch (captions, referents, hard negatives), plus
  the training-only attribute heads (on the batch and on repainted head-only views), plus the
  text anchor to a teacher;
* :func:`pretrain_heads` - the v2 recipe's first phase: image tower + heads only, on shapes
  repainted in off-vocabulary colours, so shape is read from the outline before colour words
  give the tower a shortcut (shape and colour conjunctions that fail on unseen combinations);
* :func:`add_head_views` - repainted copies of a share of the batch for the heads.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from luma_rag.datasets.vocab import COLOR_RGB, COLORS
from luma_rag.training._cli import autocast
from luma_rag.training.clip_data import ClipBatchData, draw_texts, image_norm, shift
from luma_rag.training.clip_losses import (
    anchor_loss,
    attribute_loss,
    group_clip_loss,
    off_vocabulary_colors,
    recolor,
    relevance,
)

if TYPE_CHECKING:
    from luma_rag.training.train_clip import ClipTrainConfig

__all__ = ["add_head_views", "pretrain_heads", "step_loss"]

logger = logging.getLogger(__name__)

_WHITE: Final = COLORS.index("white")


def step_loss(
    model: Any,
    heads: Any,
    split: ClipBatchData,
    idx: Any,
    cfg: ClipTrainConfig,
    gen: Any,
    torch: Any,
) -> Any:
    """One step's loss: group InfoNCE (+ attribute heads, + text anchor to the teacher)."""
    rows, full = draw_texts(split, idx, cfg, gen, torch)
    images = shift(split.pixels[idx], cfg.max_shift, gen, torch)
    codes = split.codes[idx]
    gray = torch.zeros(len(idx), dtype=torch.bool)
    named = torch.tensor(list(COLOR_RGB.values()), dtype=torch.float32) / 255.0
    if cfg.recolor_p > 0:
        gray = (torch.rand(len(idx), generator=gen) < cfg.recolor_p) & (codes[:, 1] != _WHITE)
        new = off_vocabulary_colors(int(gray.sum()), named, gen, torch)
        images = recolor(images, gray, named[codes[gray, 1]], new, *image_norm(torch), torch)
    n_batch = len(idx)
    if cfg.head_views > 0:
        images, codes, gray = add_head_views(images, codes, gray, cfg, named, gen, torch)
    txt_tokens = split.tokens[rows]
    img, txt, scale = model(images, txt_tokens)[:3]
    rel = relevance(split.codes[idx], split.requirements[rows])
    main = ~gray[:n_batch]
    loss = group_clip_loss(img[:n_batch][main], txt, scale, rel[main], torch)
    if cfg.aux_weight > 0:
        loss = loss + cfg.aux_weight * attribute_loss(
            heads, img, codes, gray, torch, cfg.shape_weight
        )
    if split.teacher is not None and cfg.anchor_weight > 0:
        loss = loss + cfg.anchor_weight * anchor_loss(txt[full], split.teacher[rows][full])
    return loss


def pretrain_heads(
    model: Any, heads: Any, train: ClipBatchData, cfg: ClipTrainConfig, gen: Any, torch: Any
) -> list[float]:
    """``cfg.head_pretrain`` steps of the image tower + heads on repainted shapes only."""
    named = torch.tensor(list(COLOR_RGB.values()), dtype=torch.float32) / 255.0
    params = list(model.visual.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    colored = torch.nonzero(train.codes[:, 1] != _WHITE).flatten()
    losses = []
    model.train()
    for step in range(cfg.head_pretrain):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        idx = colored[torch.randint(0, len(colored), (cfg.batch_size,), generator=gen)]
        codes = train.codes[idx]
        every = torch.ones(len(idx), dtype=torch.bool)
        images = _repainted(train.pixels[idx], codes, named, cfg, gen, torch)
        with autocast(cfg.bf16, torch):
            img = model.encode_image(images, normalize=True)
            loss = attribute_loss(heads, img, codes, every, torch, cfg.shape_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0:
            logger.info("head pretraining step %d: loss %.3f", step + 1, np.mean(losses[-100:]))
    return losses


def add_head_views(
    images: Any, codes: Any, gray: Any, cfg: ClipTrainConfig, named: Any, gen: Any, torch: Any
) -> tuple[Any, Any, Any]:
    """Append repainted copies of a share of the batch (non-white shapes) as head-only rows."""
    n = len(images)
    pick = torch.randperm(n, generator=gen)[: max(1, round(cfg.head_views * n))]
    pick = pick[codes[pick, 1] != _WHITE]
    if len(pick) == 0:
        return images, codes, gray
    views = _repainted(images[pick], codes[pick], named, cfg, gen, torch)
    every = torch.ones(len(pick), dtype=torch.bool)
    return (
        torch.cat([images, views]),
        torch.cat([codes, codes[pick]]),
        torch.cat([gray, every]),
    )


def _repainted(
    pixels: Any, codes: Any, named: Any, cfg: ClipTrainConfig, gen: Any, torch: Any
) -> Any:
    """Shifted copies of ``pixels`` (rows with non-white shapes, codes ``codes``), every
    shape repainted in a random colour far from the named ones, or (``cfg.achromatic_p``)
    in an achromatic one."""
    views = shift(pixels, cfg.max_shift, gen, torch)
    every = torch.ones(len(pixels), dtype=torch.bool)
    new = off_vocabulary_colors(len(pixels), named, gen, torch)
    if cfg.achromatic_p > 0:
        new = _with_achromatic(new, cfg.achromatic_p, gen, torch)
    return recolor(views, every, named[codes[:, 1]], new, *image_norm(torch), torch)


#: Achromatic repaint levels (0-1): clear of the backgrounds' greys (80-150, stripes +-22).
_LIGHT: Final = (0.78, 1.0)
_DARK: Final = (0.0, 0.14)


def _with_achromatic(new: Any, share: float, gen: Any, torch: Any) -> Any:
    """``new`` with a random ``share`` of its rows replaced by grey levels: light (white,
    like the named "white") three times out of four, else near black."""
    pick = torch.rand(len(new), generator=gen) < share
    k = int(pick.sum())
    if k == 0:
        return new
    light = torch.rand(k, generator=gen) < 0.75
    u = torch.rand(k, generator=gen)
    level = torch.where(
        light, _LIGHT[0] + u * (_LIGHT[1] - _LIGHT[0]), _DARK[0] + u * (_DARK[1] - _DARK[0])
    )
    out = new.clone()
    out[pick] = level[:, None].expand(k, 3)
    return out
