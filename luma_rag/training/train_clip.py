"""Train the tiny CLIP (``luma-tiny-clip``) on a LUMA-Shapes corpus, on CPU, in minutes.

Command line (the shipped checkpoint's recipe is in
``luma_rag/encoders/checkpoints/luma-tiny-clip/README.md``)::

    python -m luma_rag.datasets.shapes --out /tmp/shapes8k --n 8000 --seed 0
    python -m luma_rag.training.train_clip --data /tmp/shapes8k --out OUT --seed 0

The defaults are the shipped (v1) recipe: captions only, no heads, no anchor. The options
below (issue #12) are off by default; the README says what they measured.

Recipe: the registry's open_clip config; images through the model's evaluation transform,
cached; per item and step one caption paraphrase or (``referent_p``) question referent
(:mod:`~luma_rag.training.clip_texts`), plus (``negatives``) one NegCLIP-style hard negative
(one attribute swapped) as an extra text; shifts of a few pixels. Loss
(:mod:`~luma_rag.training.clip_losses`): symmetric InfoNCE with group-aware targets, plus
(``aux_weight``) training-only attribute heads on the image embedding, fed shapes repainted
in off-vocabulary colours (``recolor_p``), plus (with ``init``) an anchor of the full
captions' text embeddings to the initial model's (the tiny CLAP is aligned to that space).
AdamW, warmup, cosine decay; seeded, reproducible on the same machine and versions.

Writes ``OUT/open_clip_model.safetensors`` (state dict, fp16) and ``OUT/training.json``
(config, wall time, versions, sha256 and the held-out metrics of the saved weights).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag.datasets.shapes import load_manifest
from luma_rag.datasets.vocab import SHAPES
from luma_rag.encoders.open_clip_backend import OpenClipEncoder, import_open_clip
from luma_rag.encoders.registry import (
    add_model_config,
    ensure_open_clip_configs,
    get_model_config,
)
from luma_rag.errors import ConfigError
from luma_rag.training._cli import (
    add_config_flags,
    autocast,
    check_run_config,
    config_kwargs,
    run_main,
)
from luma_rag.training.clip_data import ClipBatchData, load_init, prepare, teacher_embeddings
from luma_rag.training.clip_focus import focus_weights, shape_errors
from luma_rag.training.clip_losses import attribute_heads
from luma_rag.training.clip_report import WEIGHTS_NAME, save_and_report
from luma_rag.training.clip_steps import pretrain_heads, step_loss
from luma_rag.training.compositional import evaluate_referents, linear_probe
from luma_rag.training.evaluate import evaluate_retrieval

__all__ = ["WEIGHTS_NAME", "ClipTrainConfig", "main", "train_clip"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipTrainConfig:
    """Hyper-parameters of one training run.

    Attributes:
        model: Architecture name in the encoder registry.
        model_config: An open_clip architecture JSON to register first (its file stem must be
            ``model``), to train another shape of tower than the shipped config, e.g. the
            native 96 px input; ``None`` uses the registry's configs only.
        seed: Seed of initialisation, batch order, caption choice and augmentation.
        epochs: Passes over the train split; the learning-rate schedule spans them.
        minutes: Wall-clock cap; training stops early (and says so) when it is reached.
        stop_after: Stop after this epoch (the schedule still spans ``epochs``): replays a
            run that ``minutes`` cut short, deterministically.
        batch_size: Items per step.
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay of matrices (not of gains, biases, embeddings).
        warmup_steps: Linear warmup before the cosine decay.
        max_shift: Random translation of each image, in pixels, in each direction.
        eval_every: Evaluate on the val split every this many epochs (0: never).
        threads: torch intra-op threads during training. 1 (the default) is deterministic
            and, on a small machine shared with other work, faster than 2.
        init: open_clip safetensors to start from (and the text anchor's frozen teacher).
        referents: Partial descriptions drawn per train item (question referents).
        negatives: Hard negatives per train item (one attribute swapped); one per step.
        referent_p: Chance that an item's text in a step is a referent, not a caption.
        aux_weight: Weight of the training-only attribute heads on the image embedding.
        anchor_weight: Weight of the text anchor to the ``init`` weights (full captions
            and negatives only; referents are free). Ignored without ``init``.
        recolor_p: Share of images whose (non-white) shape is repainted in a random colour
            far from all ten named ones; they train only the shape, size, position and
            count heads, so those read the outline. No held-out pair is ever drawn.
        head_views: Share of each batch shown a second time, repainted in random colours
            far from the named ones, as extra rows for the shape / size / position / count
            heads only (the contrastive rows keep their true colours). Without it the tower
            learns (shape, colour) conjunctions and reads shape off unseen combinations at
            about chance; with it shape must come from the outline (v2 recipe).
        head_pretrain: Steps before the contrastive epochs that train the image tower and the
            heads only (shape, size, position, count) on images repainted in off-vocabulary
            colours, so the tower starts from colour-invariant outlines (v2 recipe).
        achromatic_p: Share of those repaint colours (head views and head pretraining) that
            are achromatic: light grey to white or near black, never a background grey.
            Without them no shape is ever seen achromatic except in the one white
            combination the corpus has for it, and the shape held out in white (an unseen
            combination) reads as another shape (v3 recipe).
        focus: Share of each batch drawn by the shapes' train-split probe errors instead of
            their counts (:mod:`~luma_rag.training.clip_focus`), so the shapes the embedding
            confuses are each other's in-batch negatives. 0 keeps uniform batches.
        shape_weight: Factor on the shape head's cross-entropy among the attribute heads
            (head pretraining and contrastive epochs); 1 weighs every head the same.
        bind_background: Also bind the background: a background head among the attribute
            heads, and the background among the attributes a hard negative may swap (for
            items whose captions name it). Without it nothing but the captions that happen
            to name the background teaches it, and most text->image rank-1 misses are the
            right item on the wrong background (f2 recipe).
        bf16: Run forward passes under CPU bfloat16 autocast
            (:func:`~luma_rag.training._cli.autocast`); not the shipped recipe.
    """

    model: str = "luma-tiny-clip"
    model_config: str | None = None
    seed: int = 0
    epochs: int = 20
    minutes: float | None = None
    stop_after: int | None = None
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    max_shift: int = 4
    eval_every: int = 5
    threads: int = 1
    init: str | None = None
    referents: int = 0
    negatives: int = 0
    referent_p: float = 0.0
    aux_weight: float = 0.0
    anchor_weight: float = 1.0
    recolor_p: float = 0.0
    head_views: float = 0.0
    head_pretrain: int = 0
    achromatic_p: float = 0.0
    focus: float = 0.0
    shape_weight: float = 1.0
    bind_background: bool = False
    bf16: bool = False

    def __post_init__(self) -> None:
        check_run_config(
            self,
            at_least_one=("epochs", "batch_size", "threads"),
            non_negative=(
                "warmup_steps",
                "max_shift",
                "eval_every",
                "seed",
                "referents",
                "negatives",
                "aux_weight",
                "anchor_weight",
                "head_pretrain",
                "shape_weight",
            ),
        )
        if self.model_config is not None and Path(self.model_config).stem != self.model:
            raise ConfigError(
                f"model_config {self.model_config} registers the architecture "
                f"{Path(self.model_config).stem!r}; pass --model {Path(self.model_config).stem}"
            )
        if self.stop_after is not None and not 1 <= self.stop_after <= self.epochs:
            raise ConfigError(f"stop_after must be in [1, epochs], got {self.stop_after}")
        for name in ("head_views", "achromatic_p", "focus"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.recolor_p < 1.0:
            raise ConfigError(f"recolor_p must be in [0, 1), got {self.recolor_p}")
        if not 0.0 <= self.referent_p <= 1.0 or (self.referent_p > 0 and self.referents == 0):
            raise ConfigError(
                f"referent_p must be in [0, 1] and needs referents >= 1, got "
                f"{self.referent_p} with referents={self.referents}"
            )


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
    if cfg.model_config is not None:
        add_model_config(cfg.model_config)
    ensure_open_clip_configs(open_clip)
    model, _, transform = open_clip.create_model_and_transforms(cfg.model)
    tokenizer = open_clip.get_tokenizer(cfg.model)
    items = load_manifest(data)
    splits = {s: [it for it in items if it.split == s] for s in ("train", "val", "test")}
    for name, part in splits.items():
        if not part:
            raise ConfigError(f"the {name} split of {data} is empty; generate a larger corpus")
    if cfg.init is not None:
        load_init(model, Path(cfg.init), torch)
    train = prepare(splits["train"], transform, tokenizer, cfg, torch)
    if cfg.init is not None and cfg.anchor_weight > 0:
        train.teacher = teacher_embeddings(model, train.tokens, torch)
    logger.info(
        "prepared %d train items in %.1f s", len(train.items), time.perf_counter() - started
    )

    def validate() -> dict[str, Any]:
        enc = OpenClipEncoder.from_model(model, transform, tokenizer, cfg.model)
        model.eval()
        out = evaluate_retrieval(enc, splits["val"])
        out["referents_full"] = evaluate_referents(enc, splits["val"][:200])
        out["probe_shape"] = linear_probe(enc, splits["train"][:1000], splits["val"])
        return out

    history, stopped_early = _fit(model, train, cfg, validate, started, torch)
    seconds = {
        "train_wall": round(time.perf_counter() - started, 1),
        "train_cpu": round(time.process_time() - cpu_started, 1),
    }
    return save_and_report(model, cfg, out, splits, history, seconds, stopped_early)


def _fit(
    model: Any,
    train: ClipBatchData,
    cfg: ClipTrainConfig,
    validate: Callable[[], dict[str, Any]],
    started: float,
    torch: Any,
) -> tuple[list[dict[str, Any]], bool]:
    """The optimisation loop; returns the per-epoch history and whether time ran out."""
    gen = torch.Generator().manual_seed(cfg.seed)
    dim = int((get_model_config(cfg.model) or {})["embed_dim"])
    heads = attribute_heads(dim, torch, background=cfg.bind_background)
    groups = _param_groups(model, cfg.weight_decay) + _param_groups(heads, cfg.weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    history: list[dict[str, Any]] = []
    if cfg.head_pretrain > 0:
        pre = pretrain_heads(model, heads, train, cfg, gen, torch)
        seconds = round(time.perf_counter() - started, 1)
        loss = float(np.mean(pre[-100:]))
        history.append({"head_pretrain_steps": cfg.head_pretrain, "loss": loss, "seconds": seconds})
    weights = None
    if cfg.focus > 0:
        errors = shape_errors(model, train.pixels, train.codes[:, 0], torch)
        weights = focus_weights(train.codes[:, 0], errors, cfg.focus, torch)
        history.append(
            {"focus_shape_errors": dict(zip(SHAPES, errors.round(4).tolist(), strict=True))}
        )
    n = len(train.items)
    steps_per_epoch = max(1, n // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen)
        losses = []
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            if weights is not None:
                idx = torch.multinomial(weights, cfg.batch_size, generator=gen)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, total, cfg)
            with autocast(cfg.bf16, torch):
                loss = step_loss(model, heads, train, idx, cfg, gen, torch)
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
        if cfg.stop_after is not None and epoch >= cfg.stop_after:
            return history, epoch < cfg.epochs
    return history, False


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m luma_rag.training.train_clip",
        description="Train the tiny CLIP on a LUMA-Shapes corpus (CPU, minutes).",
    )
    p.add_argument("--data", required=True, type=Path, help="LUMA-Shapes corpus directory")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    add_config_flags(p, ClipTrainConfig)
    return p


def config_from(args: argparse.Namespace) -> ClipTrainConfig:
    """The config that parsed command-line flags (:func:`_parser`) ask for."""
    return ClipTrainConfig(**config_kwargs(ClipTrainConfig, args))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    return run_main(
        _parser(),
        argv,
        train=lambda args: train_clip(args.data, args.out, config_from(args)),
        describe=lambda args: {
            "data": str(args.data),
            "out": str(args.out),
            **dataclasses.asdict(config_from(args)),
        },
    )


if __name__ == "__main__":
    raise SystemExit(main())
