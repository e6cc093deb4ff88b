"""Train the tiny CLAP (``luma-tiny-clap``) on spoken LUMA-Shapes captions, on CPU, in minutes.

Command line (the shipped checkpoint's recipe is in
``luma_rag/encoders/checkpoints/luma-tiny-clap/README.md``)::

    python -m luma_rag.datasets.shapes --out /tmp/clap_a --n 4000 --seed 11 --audio
    python -m luma_rag.training.train_clap --data /tmp/clap_a --out OUT --seed 0 [--minutes M]

Recipe: the architecture is :class:`~luma_rag.encoders.clap.tiny.TinyClapSpec` (a
transformers ``ClapModel``) and the tokenizer a byte-level BPE trained on the corpus captions
(:func:`~luma_rag.encoders.clap.tokenizer.build_tokenizer`). Pairs are (spoken primary caption,
one caption paraphrase) of each train item. Log-mel features are computed once with
``torch.stft`` and checked against ``ClapFeatureExtractor`` on the first clips (the processor
computes them frame by frame in numpy: too slow to call every step). Each step masks a few time
and mel bands of the spectrograms. The loss is CLAP's symmetric InfoNCE with *group-aware*
targets (items with identical attributes are positives of each other), plus an auxiliary
cross-entropy from both towers' projected embeddings to the attributes their caption names,
through heads shared by the two towers (not saved). AdamW with gradient clipping,
warmup then cosine decay over ``--steps`` (or over ``--minutes`` when that runs out first).
Everything random comes from generators seeded by ``--seed``: without ``--minutes`` a run on
the same machine, thread count and library versions reproduces its weights.

The held-out metrics (:func:`evaluate_clap`) are measured on the test split (unseen
shape/colour combinations) through :class:`~luma_rag.encoders.clap.ClapEncoder` on the saved
files, so they are the numbers of the checkpoint as shipped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from luma_rag.datasets.shapes import ShapeItem
from luma_rag.encoders.clap.backend import ClapEncoder
from luma_rag.encoders.clap.tiny import TinyClapSpec
from luma_rag.errors import ConfigError, LumaError, MissingDependencyError
from luma_rag.training._cli import (
    add_config_flags,
    autocast,
    check_run_config,
    config_kwargs,
    file_digests,
    run_main,
    versions,
    weights_record,
)
from luma_rag.training.clap_data import ClapRun, load_splits, prepare
from luma_rag.training.clap_eval import evaluate_clap
from luma_rag.training.clap_features import spec_augment
from luma_rag.training.clap_losses import (
    attribute_targets,
    aux_loss,
    group_loss,
    param_groups,
)

__all__ = ["REPORT_NAME", "ClapTrainConfig", "evaluate_clap", "main", "train_clap"]

logger = logging.getLogger(__name__)

REPORT_NAME: Final = "training.json"


@dataclass(frozen=True)
class ClapTrainConfig:
    """Hyper-parameters of one training run.

    Attributes:
        seed: Seed of initialisation, batch order, caption choice, masking and evaluation voices.
        steps: Optimiser steps; the learning-rate schedule spans them.
        minutes: Wall-clock budget of the training loop. When set, the cosine schedule follows
            whichever of steps and wall clock runs out first, so the learning rate still decays
            to zero when the budget ends the run early (``stopped_early`` in the report); the
            step count then depends on the machine's speed.
        batch_size: Pairs per step.
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay of matrices (not of norms, biases, embeddings).
        warmup_steps: Linear warmup before the cosine decay.
        aux_weight: Weight of the attribute cross-entropy beside the contrastive loss.
        primary_p: Probability of pairing a clip with the caption it speaks rather than
            with a random paraphrase.
        time_masks: Time bands masked per spectrogram per step (SpecAugment).
        freq_masks: Mel bands masked per spectrogram per step.
        eval_items: Test items evaluated (the first ones of the test split).
        threads: torch intra-op threads.
        anchor: Name of a CLIP encoder (registry) whose text embeddings anchor the joint space:
            both towers are also pulled, with group-aware InfoNCE, towards the frozen CLIP text
            embedding of their caption. ``None`` trains CLAP on its own.
        anchor_weights: The anchor's weights file (open_clip safetensors), such as the CLIP
            the same kit just trained; ``None``: the registry's (shipped) weights of ``anchor``.
        anchor_weight: Weight of the anchor terms.
        anchor_scale: Fixed logit scale of the anchor InfoNCE.
        bf16: Run the towers' forward passes under CPU bfloat16 autocast
            (:func:`~luma_rag.training._cli.autocast`); not the shipped recipe.
    """

    seed: int = 0
    steps: int = 3500
    minutes: float | None = None
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_steps: int = 50
    aux_weight: float = 0.5
    primary_p: float = 0.5
    time_masks: int = 2
    freq_masks: int = 1
    eval_items: int = 400
    threads: int = 1
    anchor: str | None = "luma-tiny"
    anchor_weights: str | None = None
    anchor_weight: float = 1.0
    anchor_scale: float = 20.0
    bf16: bool = False

    def __post_init__(self) -> None:
        check_run_config(
            self,
            at_least_one=("steps", "batch_size", "threads", "eval_items"),
            non_negative=("warmup_steps", "seed", "time_masks", "freq_masks", "aux_weight"),
        )
        if self.anchor_weight < 0 or not self.anchor_scale > 0:
            raise ConfigError("need anchor_weight >= 0 and anchor_scale > 0")
        if not 0.0 <= self.primary_p <= 1.0:
            raise ConfigError(f"primary_p must be in [0, 1], got {self.primary_p}")


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise MissingDependencyError.for_extra("torch", "models") from e
    return torch


def _progress(step: int, elapsed: float, cfg: ClapTrainConfig) -> float:
    """Share of the run done: by steps, or by wall clock when ``minutes`` runs out first."""
    done = step / cfg.steps
    if cfg.minutes is not None:
        done = max(done, elapsed / (60.0 * cfg.minutes))
    return done


def _lr_at(step: int, progress: float, cfg: ClapTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    start = cfg.warmup_steps / cfg.steps
    decay = (progress - start) / max(1e-9, 1.0 - start)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, decay))))


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _captions(run: ClapRun, idx: Any, cfg: ClapTrainConfig, gen: Any, torch: Any) -> list[str]:
    """The caption each clip is paired with: its own (``primary_p``) or a random paraphrase."""
    primary = torch.rand(len(idx), generator=gen) < cfg.primary_p
    draws = torch.rand(len(idx), generator=gen).tolist()
    return [
        run.train[i].caption if p else run.train[i].captions[int(u * len(run.train[i].captions))]
        for i, p, u in zip(idx.tolist(), primary.tolist(), draws, strict=True)
    ]


def _loss(run: ClapRun, idx: Any, cfg: ClapTrainConfig, gen: Any, torch: Any) -> Any:
    """Group-aware InfoNCE plus the auxiliary attribute loss of one batch of train indices."""
    model, normalize = run.model, torch.nn.functional.normalize
    captions = _captions(run, idx, cfg, gen, torch)
    tokens = run.tokenizer(captions, padding=True, return_tensors="pt")
    inputs = spec_augment(run.feats[idx].float(), cfg, gen, torch)[:, None]
    audio = model.audio_projection(model.audio_model(input_features=inputs).pooler_output)
    text = model.text_projection(
        model.text_model(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).pooler_output
    )
    scales = model.logit_scale_a.exp(), model.logit_scale_t.exp()
    audio_n, text_n, group = normalize(audio, dim=-1), normalize(text, dim=-1), run.group[idx]
    loss = group_loss(audio_n, text_n, *scales, group, torch)
    if run.anchors and cfg.anchor_weight > 0:
        spoken = torch.stack([run.anchors[run.train[i].caption] for i in idx.tolist()])
        written = torch.stack([run.anchors[c] for c in captions])
        scale = torch.tensor(cfg.anchor_scale)
        loss = loss + cfg.anchor_weight * (
            group_loss(audio_n, spoken, scale, scale, group, torch)
            + group_loss(text_n, written, scale, scale, group, torch)
        )
    if cfg.aux_weight > 0:
        aux = aux_loss(run.heads, audio, run.audio_targets[idx], torch)
        aux = aux + aux_loss(run.heads, text, attribute_targets(captions, torch), torch)
        loss = loss + cfg.aux_weight * aux
    return loss


def _fit(run: ClapRun, cfg: ClapTrainConfig, torch: Any) -> tuple[list[dict[str, Any]], int, float]:
    """Run the optimiser; returns ``(history, steps done, seconds)``."""
    model, n = run.model, len(run.train)
    params = [*model.parameters(), *run.heads.parameters()]
    gen = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(param_groups([model, run.heads], cfg.weight_decay), lr=cfg.lr)
    history: list[dict[str, Any]] = []
    order, cursor, losses = torch.randperm(n, generator=gen), 0, []
    step, progress, started = 0, 0.0, time.perf_counter()
    model.train()
    while progress < 1.0:
        if cursor + cfg.batch_size > n:
            order, cursor = torch.randperm(n, generator=gen), 0
        with autocast(cfg.bf16, torch):
            loss = _loss(run, order[cursor : cursor + cfg.batch_size], cfg, gen, torch)
        cursor += cfg.batch_size
        for param_group in optimizer.param_groups:
            param_group["lr"] = _lr_at(step, progress, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale_a.clamp_(0, math.log(100))
            model.logit_scale_t.clamp_(0, math.log(100))
        losses.append(float(loss.detach()))
        step += 1
        progress = _progress(step, time.perf_counter() - started, cfg)
        if step % 25 == 0 or progress >= 1.0:
            record = {
                "step": step,
                "loss": round(float(np.mean(losses[-25:])), 4),
                "lr": round(optimizer.param_groups[0]["lr"], 6),
                "seconds": round(time.perf_counter() - started, 1),
            }
            history.append(record)
            logger.info("train %s", json.dumps(record))
    model.eval()
    return history, step, time.perf_counter() - started


def train_clap(
    data: str | Path | Sequence[str | Path],
    out: str | Path,
    cfg: ClapTrainConfig,
    spec: TinyClapSpec | None = None,
) -> dict[str, Any]:
    """Train, save and evaluate a tiny CLAP.

    Args:
        data: One or more LUMA-Shapes corpus directories generated with audio. Their train
            splits are trained on; their test splits (held-out shape/colour combinations)
            are reported.
        out: Output directory (created): ``config.json``, ``model.safetensors``, the
            processor files and ``training.json``.
        cfg: Hyper-parameters.
        spec: Architecture (default: the shipped ``luma-tiny-clap``'s).

    Returns:
        The report written to ``training.json``.

    Raises:
        ConfigError: No train or test items with audio.
        MissingDependencyError: torch, transformers or tokenizers is missing.
    """
    torch = _torch()
    spec = spec or TinyClapSpec()
    dirs = [data] if isinstance(data, str | Path) else list(data)
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    splits = load_splits(dirs)
    run = prepare(splits["train"], spec, torch, cfg.anchor, cfg.anchor_weights)
    logger.info("prepared %d train clips in %.1f s", len(run.train), time.perf_counter() - started)
    history, steps, seconds = _fit(run, cfg, torch)
    return _save_and_report(
        run, cfg, spec, Path(out), splits, history, seconds, steps < cfg.steps, started
    )


# --------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------


def _save_and_report(
    run: ClapRun,
    cfg: ClapTrainConfig,
    spec: TinyClapSpec,
    out: Path,
    splits: dict[str, list[ShapeItem]],
    history: list[dict[str, Any]],
    train_seconds: float,
    stopped_early: bool,
    started: float,
) -> dict[str, Any]:

    out.mkdir(parents=True, exist_ok=True)
    model = run.model
    model.save_pretrained(out)  # transformers 5 writes safetensors only
    run.processor.save_pretrained(out)
    pickles = sorted(p.name for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pkl"))
    if pickles:
        raise LumaError(f"save_pretrained wrote pickle files {pickles}; remove them")
    encoder = ClapEncoder(out)  # the files as shipped, through the library's loader
    test = evaluate_clap(encoder, splits["test"][: cfg.eval_items], seed=cfg.seed)
    files = sorted(p for p in out.iterdir() if p.is_file() and p.name != REPORT_NAME)
    report = {
        "model": "luma-tiny-clap",
        "spec": spec.to_dict(),
        "config": dataclasses.asdict(cfg),
        "data": {name: len(part) for name, part in splits.items()},
        "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "stopped_early": stopped_early,
        "steps_done": history[-1]["step"] if history else 0,
        "parameters": sum(int(p.numel()) for p in model.parameters()),
        "files": file_digests(p for p in files if p.name != REPORT_NAME),
        "metrics": {"test": test},
        "history": history,
        "versions": versions("torch", "transformers", "tokenizers", "numpy"),
        "anchor": weights_record(cfg.anchor_weights, cfg.anchor) if cfg.anchor else None,
    }
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m luma_rag.training.train_clap",
        description="Train the tiny CLAP on spoken LUMA-Shapes captions (CPU, minutes).",
    )
    p.add_argument(
        "--data", required=True, type=Path, nargs="+", help="corpus director(ies) with audio"
    )
    p.add_argument("--out", required=True, type=Path, help="output directory")
    add_config_flags(p, ClapTrainConfig)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    spec = TinyClapSpec()

    def config(args: argparse.Namespace) -> ClapTrainConfig:
        return ClapTrainConfig(**config_kwargs(ClapTrainConfig, args))

    return run_main(
        _parser(),
        argv,
        train=lambda args: train_clap(args.data, args.out, config(args), spec),
        describe=lambda args: {
            "data": [str(d) for d in args.data],
            "out": str(args.out),
            "config": dataclasses.asdict(config(args)),
            "spec": spec.to_dict(),
        },
    )


if __name__ == "__main__":
    raise SystemExit(main())
