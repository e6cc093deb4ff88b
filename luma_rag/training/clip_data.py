"""The tiny CLIP's training data in memory, and how one step draws from it.

The train split is prepared once: images through the model's evaluation transform into one
tensor, every text of :func:`~luma_rag.training.clip_texts.build_text_pools` tokenised, each
item's attribute codes, and (when the run starts from existing weights) the frozen teacher's
text embeddings. A step then draws, per item, a caption or a referent and one hard negative,
and shifts each image by a few pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from luma_rag.datasets.shapes import ShapeItem
from luma_rag.encoders._images import load_image
from luma_rag.errors import InvalidInputError
from luma_rag.training.clip_texts import attribute_codes, build_text_pools

if TYPE_CHECKING:
    from luma_rag.training.train_clip import ClipTrainConfig

__all__ = [
    "ClipBatchData",
    "draw_texts",
    "image_norm",
    "load_init",
    "prepare",
    "shift",
    "teacher_embeddings",
]


@dataclass
class ClipBatchData:
    """The train split, preprocessed: image tensor, tokenised text pools, attribute codes."""

    items: list[ShapeItem]
    pixels: Any  # float32 tensor (n, 3, H, W), already normalised
    tokens: Any  # int tensor (n_texts, context_length): every pool text
    requirements: Any  # int64 tensor (n_texts, n_keys), -1 = free
    starts: Any  # int64 tensor (n, 3): first caption / referent / negative row per item
    counts: Any  # int64 tensor (n, 3)
    codes: Any  # int64 tensor (n, n_keys): each item's attribute codes
    teacher: Any = None  # float tensor (n_texts, d): the init model's text embeddings


def prepare(
    items: list[ShapeItem], transform: Any, tokenizer: Any, cfg: ClipTrainConfig, torch: Any
) -> ClipBatchData:
    pixels = torch.stack([transform(load_image(it.image_path)) for it in items])
    rng = np.random.default_rng([cfg.seed, 11])
    pools = build_text_pools(
        items,
        rng,
        referents=cfg.referents,
        negatives=cfg.negatives,
        swap_background=cfg.bind_background,
    )
    return ClipBatchData(
        items,
        pixels,
        tokenizer(pools.texts),
        torch.from_numpy(pools.requirements),
        torch.from_numpy(pools.starts),
        torch.from_numpy(pools.counts),
        torch.from_numpy(attribute_codes(items)),
    )


def load_init(model: Any, path: Path, torch: Any) -> None:
    """Load open_clip safetensors weights (any float dtype) into ``model``."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise InvalidInputError(f"no weights at init={path}; pass an open_clip .safetensors file")
    state = {k: v.to(torch.float32) for k, v in load_file(str(path)).items()}
    model.load_state_dict(state)


def teacher_embeddings(model: Any, tokens: Any, torch: Any, batch: int = 1024) -> Any:
    """Unit text embeddings of every pool text under the (initial) model, no gradient."""
    model.eval()
    with torch.no_grad():
        return torch.cat(
            [
                model.encode_text(tokens[i : i + batch], normalize=True)
                for i in range(0, len(tokens), batch)
            ]
        )


def draw_texts(
    split: ClipBatchData, idx: Any, cfg: ClipTrainConfig, gen: Any, torch: Any
) -> tuple[Any, Any]:
    """Pool rows of one step (a caption or referent per item, then one negative per item)
    and which of them are full captions (bool, same length)."""
    n = len(idx)
    # Draw only what the config uses, so that with every v2 option off a run draws the same
    # random stream as the v1 recipe did.
    if cfg.referent_p > 0:
        use_ref = torch.rand(n, generator=gen) < cfg.referent_p
    else:
        use_ref = torch.zeros(n, dtype=torch.bool)
    kind = use_ref.long()
    start = split.starts[idx, kind]
    count = split.counts[idx, kind]
    rows = start + (torch.rand(n, generator=gen) * count).long()
    if cfg.negatives == 0:
        return rows, ~use_ref
    neg = split.starts[idx, 2] + (torch.rand(n, generator=gen) * split.counts[idx, 2]).long()
    return torch.cat([rows, neg]), torch.cat([~use_ref, torch.ones(n, dtype=torch.bool)])


def image_norm(torch: Any) -> tuple[Any, Any]:
    """Channel mean and std of open_clip's image normalisation (the tiny CLIP's)."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    return torch.tensor(OPENAI_DATASET_MEAN), torch.tensor(OPENAI_DATASET_STD)


def shift(pixels: Any, max_shift: int, gen: Any, torch: Any) -> Any:
    """Translate each image by up to ``max_shift`` pixels (edge padding)."""
    if max_shift == 0:
        return pixels
    n, _, h, w = pixels.shape
    padded = torch.nn.functional.pad(pixels, (max_shift,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=gen).tolist()
    return torch.stack([padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(offsets)])
