"""Train the tiny CLIP (``luma-tiny-clip``) on a LUMA-Shapes corpus, on CPU, in minutes.

Command line (the shipped checkpoint's recipe is in
``luma_rag/encoders/checkpoints/luma-tiny-clip/README.md``)::

    python -m luma_rag.datasets.shapes --out /tmp/shapes8k --n 8000 --seed 0
    python -m luma_rag.training.train_clip --data /tmp/shapes8k --out OUT --seed 0

Recipe: the architecture is the registry's JSON config, built by open_clip; images go
through the model's own evaluation transform once and are cached as a tensor; each step
draws one caption paraphrase per item and shifts each image by a few pixels (no flips or
colour jitter: position and colour are what captions name). The loss is CLIP's symmetric
InfoNCE with *group-aware* targets: items with identical attributes are positives of each
other instead of false negatives. AdamW, warmup then cosine decay. Everything random is
drawn from generators seeded by ``--seed``, so a run on the same machine, thread count and
library versions reproduces its weights.

Writes ``OUT/open_clip_model.safetensors`` (state dict, fp16) and ``OUT/training.json``
(config, wall time, versions, sha256 and the held-out metrics of the saved weights).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from luma_rag.datasets.captions import parse_query_attributes
from luma_rag.datasets.shapes import ShapeItem, load_manifest
from luma_rag.encoders._images import load_image
from luma_rag.encoders.open_clip_backend import OpenClipEncoder, import_open_clip
from luma_rag.encoders.registry import ensure_open_clip_configs, get_model_config
from luma_rag.errors import ConfigError
from luma_rag.training._cli import (
    add_config_flags,
    check_run_config,
    config_kwargs,
    run_main,
    versions,
)
from luma_rag.training.evaluate import evaluate_retrieval

__all__ = ["WEIGHTS_NAME", "ClipTrainConfig", "main", "train_clip"]

logger = logging.getLogger(__name__)

WEIGHTS_NAME: Final = "open_clip_model.safetensors"
REPORT_NAME: Final = "training.json"


@dataclass(frozen=True)
class ClipTrainConfig:
    """Hyper-parameters of one training run.

    Attributes:
        model: Architecture name in the encoder registry.
        seed: Seed of initialisation, batch order, caption choice and augmentation.
        epochs: Passes over the train split; the learning-rate schedule spans them.
        minutes: Wall-clock cap; training stops early (and says so) when it is reached.
        batch_size: Items per step.
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay of matrices (not of gains, biases, embeddings).
        warmup_steps: Linear warmup before the cosine decay.
        max_shift: Random translation of each image, in pixels, in each direction.
        eval_every: Evaluate on the val split every this many epochs (0: never).
        threads: torch intra-op threads during training. 1 (the default) is deterministic
            and, on a small machine shared with other work, faster than 2.
    """

    model: str = "luma-tiny-clip"
    seed: int = 0
    epochs: int = 20
    minutes: float | None = None
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    max_shift: int = 4
    eval_every: int = 5
    threads: int = 1

    def __post_init__(self) -> None:
        check_run_config(
            self,
            at_least_one=("epochs", "batch_size", "threads"),
            non_negative=("warmup_steps", "max_shift", "eval_every", "seed"),
        )


@dataclass
class _Split:
    """One split, preprocessed: image tensor, tokenised captions, group ids."""

    items: list[ShapeItem]
    pixels: Any  # float32 tensor (n, 3, H, W), already normalised
    tokens: Any  # int tensor (n_captions, context_length)
    caption_start: Any  # int tensor (n,): first caption row of each item
    caption_count: Any  # int tensor (n,)
    core: Any  # int tensor (n,): id of (shape, colour, size, position, count)
    background: Any  # int tensor (n,): id of the background
    names_background: Any  # bool tensor (n,): the item's captions name its background


def _prepare(items: list[ShapeItem], transform: Any, tokenizer: Any, torch: Any) -> _Split:
    pixels = torch.stack([transform(load_image(it.image_path)) for it in items])
    captions = [c for it in items for c in it.captions]
    counts = torch.tensor([len(it.captions) for it in items])
    starts = torch.cumsum(counts, 0) - counts
    cores: dict[tuple[Any, ...], int] = {}
    backgrounds: dict[str, int] = {}
    core, background, names = [], [], []
    for it in items:
        a = it.attributes
        core.append(cores.setdefault((a.shape, a.color, a.size, a.position, a.count), len(cores)))
        background.append(backgrounds.setdefault(a.background, len(backgrounds)))
        names.append("background" in parse_query_attributes(it.caption))
    return _Split(
        items,
        pixels,
        tokenizer(captions),
        starts,
        counts,
        torch.tensor(core),
        torch.tensor(background),
        torch.tensor(names),
    )


def _relevance(split: _Split, idx: Any) -> Any:
    """``rel[i, j]``: image ``idx[i]`` matches everything caption ``idx[j]`` names."""
    core, bg, names = split.core[idx], split.background[idx], split.names_background[idx]
    same_bg = (bg[:, None] == bg[None, :]) | ~names[None, :]
    return (core[:, None] == core[None, :]) & same_bg


def _shift(pixels: Any, max_shift: int, gen: Any, torch: Any) -> Any:
    """Translate each image by up to ``max_shift`` pixels (edge padding)."""
    if max_shift == 0:
        return pixels
    n, _, h, w = pixels.shape
    padded = torch.nn.functional.pad(pixels, (max_shift,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=gen).tolist()
    return torch.stack([padded[i, :, y : y + h, x : x + w] for i, (y, x) in enumerate(offsets)])


def _group_clip_loss(img: Any, txt: Any, scale: Any, rel: Any, torch: Any) -> Any:
    """Symmetric InfoNCE where every relevant (image, caption) pair is a positive.

    ``rel`` is bool ``(n, n)`` with a true diagonal; each row (image -> captions) and each
    column (caption -> images) becomes a uniform target over its positives.
    """
    logits = scale * img @ txt.T
    rel = rel.float()
    i2t = rel / rel.sum(dim=1, keepdim=True)
    t2i = (rel / rel.sum(dim=0, keepdim=True)).T
    log_i2t = torch.log_softmax(logits, dim=1)
    log_t2i = torch.log_softmax(logits.T, dim=1)
    return -0.5 * ((i2t * log_i2t).sum(1).mean() + (t2i * log_t2i).sum(1).mean())


def _param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim < 2 or "embedding" in name or "logit_scale" in name or name.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _lr_at(step: int, total: int, cfg: ClipTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_clip(data: str | Path, out: str | Path, cfg: ClipTrainConfig) -> dict[str, Any]:
    """Train, save and evaluate a tiny CLIP.

    Sets torch's thread count to ``cfg.threads`` for the run and restores it after.

    Args:
        data: LUMA-Shapes corpus directory (its train split is trained on, val split
            monitored, test split - held-out shape/colour combinations - reported).
        out: Output directory (created): weights and ``training.json``.
        cfg: Hyper-parameters.

    Returns:
        The report written to ``training.json``.

    Raises:
        InvalidInputError: No corpus at ``data``.
        ConfigError: A split of the corpus is empty.
        MissingDependencyError: torch or open_clip is missing.
    """
    torch, open_clip = import_open_clip()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _train(torch, open_clip, Path(data), Path(out), cfg)
    finally:
        torch.set_num_threads(previous_threads)


def _train(
    torch: Any, open_clip: Any, data: Path, out: Path, cfg: ClipTrainConfig
) -> dict[str, Any]:
    started, cpu_started = time.perf_counter(), time.process_time()
    torch.manual_seed(cfg.seed)
    ensure_open_clip_configs(open_clip)
    model, _, transform = open_clip.create_model_and_transforms(cfg.model)
    tokenizer = open_clip.get_tokenizer(cfg.model)
    items = load_manifest(data)
    splits = {s: [it for it in items if it.split == s] for s in ("train", "val", "test")}
    for name, part in splits.items():
        if not part:
            raise ConfigError(f"the {name} split of {data} is empty; generate a larger corpus")
    train = _prepare(splits["train"], transform, tokenizer, torch)
    logger.info(
        "prepared %d train items in %.1f s", len(train.items), time.perf_counter() - started
    )

    def validate() -> dict[str, Any]:
        enc = OpenClipEncoder.from_model(model, transform, tokenizer, cfg.model)
        return evaluate_retrieval(enc, splits["val"])

    history, stopped_early = _fit(model, train, cfg, validate, started, torch)
    seconds = {
        "train_wall": round(time.perf_counter() - started, 1),
        "train_cpu": round(time.process_time() - cpu_started, 1),
    }
    return _save_and_report(model, cfg, out, splits, history, seconds, stopped_early)


def _fit(
    model: Any,
    train: _Split,
    cfg: ClipTrainConfig,
    validate: Callable[[], dict[str, Any]],
    started: float,
    torch: Any,
) -> tuple[list[dict[str, Any]], bool]:
    """The optimisation loop; returns the per-epoch history and whether time ran out."""
    gen = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    n = len(train.items)
    steps_per_epoch = max(1, n // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    history: list[dict[str, Any]] = []
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen)
        losses = []
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            pick = (torch.rand(len(idx), generator=gen) * train.caption_count[idx]).long()
            tokens = train.tokens[train.caption_start[idx] + pick]
            images = _shift(train.pixels[idx], cfg.max_shift, gen, torch)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, total, cfg)
            img, txt, scale = model(images, tokens)[:3]
            loss = _group_clip_loss(img, txt, scale, _relevance(train, idx), torch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(loss.item())
            step += 1
        record: dict[str, Any] = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            "seconds": round(time.perf_counter() - started, 1),
        }
        if cfg.eval_every and epoch % cfg.eval_every == 0 and epoch < cfg.epochs:
            record["val"] = validate()
        history.append(record)
        logger.info("epoch %s", json.dumps(record))
        if cfg.minutes is not None and time.perf_counter() - started > 60 * cfg.minutes:
            return history, epoch < cfg.epochs
    return history, False


def _save_and_report(
    model: Any,
    cfg: ClipTrainConfig,
    out: Path,
    splits: dict[str, list[ShapeItem]],
    history: list[dict[str, Any]],
    seconds: dict[str, float],
    stopped_early: bool,
) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    weights = out / WEIGHTS_NAME
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights), metadata={"format": "pt", "model": cfg.model})
    # Evaluate the file as shipped (fp16 weights, loaded back through open_clip).
    encoder = OpenClipEncoder(cfg.model, weights)
    test = evaluate_retrieval(encoder, splits["test"])
    report = {
        "model": cfg.model,
        "model_config": get_model_config(cfg.model),
        "config": dataclasses.asdict(cfg),
        "data": {name: len(part) for name, part in splits.items()},
        "seconds": seconds,
        "stopped_early": stopped_early,
        "parameters": sum(int(p.numel()) for p in model.parameters()),
        "weights": {
            "file": WEIGHTS_NAME,
            "bytes": weights.stat().st_size,
            "sha256": _sha256(weights),
        },
        "metrics": {
            "test": test,
            "test_all_captions": evaluate_retrieval(encoder, splits["test"], captions="all"),
            "test_vs_all_splits": evaluate_retrieval(
                encoder, splits["test"], gallery=[it for part in splits.values() for it in part]
            ),
        },
        "history": history,
        "versions": versions("torch", "open_clip", "numpy"),
    }
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m luma_rag.training.train_clip",
        description="Train the tiny CLIP on a LUMA-Shapes corpus (CPU, minutes).",
    )
    p.add_argument("--data", required=True, type=Path, help="LUMA-Shapes corpus directory")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    add_config_flags(p, ClipTrainConfig)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""

    def config(args: argparse.Namespace) -> ClipTrainConfig:
        return ClipTrainConfig(**config_kwargs(ClipTrainConfig, args))

    return run_main(
        _parser(),
        argv,
        train=lambda args: train_clip(args.data, args.out, config(args)),
        describe=lambda args: {
            "data": str(args.data),
            "out": str(args.out),
            **dataclasses.asdict(config(args)),
        },
    )


if __name__ == "__main__":
    raise SystemExit(main())
