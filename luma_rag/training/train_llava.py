"""Train the tiny LLaVA (``luma-tiny-llava``) on LUMA-Shapes questions, on CPU, in minutes.

Command line (the shipped recipe: ``luma_rag/encoders/checkpoints/luma-tiny-llava/README.md``)::

    python -m luma_rag.datasets.shapes --out /tmp/clip_shapes8k --n 8000 --seed 0
    python -m luma_rag.training.train_llava --data /tmp/clip_shapes8k --out OUT --seed 0

Recipe: the model is :func:`luma_rag.answer.tiny_llava.build_model` (vision tower = the shipped
tiny CLIP's image tower; projector and a small Llama trained from scratch). By default the
tower is frozen (it keeps computing the tiny CLIP's features) and its output is computed once
per image, through the processor the checkpoint ships, and cached. ``vision_layers`` > 0
fine-tunes the tower's last blocks too, at ``vision_lr_scale`` x the learning rate (the frozen
blocks before them are still cached); on the shipped recipe that made held-out colour answers
worse without helping shape (see the checkpoint's README).

Each step draws a batch of train-split items and one question per item
(:func:`luma_rag.datasets.questions.make_question`: what shape / colour / size, where, how
many, about a referent naming a random subset of the other attributes); a few prompts carry
the CLARIFY instructions and are trained to reply ``CLARIFY_REPLY``. The loss is next-token
cross-entropy on the answer and the end-of-sequence token only. AdamW, warmup then cosine
decay. Everything random comes from generators seeded by ``--seed``.

Held-out accuracy is measured on the test split (unseen shape/colour combinations) of the
saved float16 files loaded back with ``from_pretrained``, through the full model (pixels in):
an answer counts when the greedy answer is exactly the canonical word (teacher-forced argmax of
every answer token and of the end token, which is what greedy decoding would produce).

Writes ``OUT/`` (``save_pretrained`` of the model and processor, safetensors only) and
``OUT/training.json`` (config, data sizes, seconds, digests, metrics, versions, vision tower).
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
from typing import Any

import numpy as np

from luma_rag.answer.tiny_llava import (
    TinyLlavaSpec,
    build_model,
    build_processor,
    build_tokenizer,
)
from luma_rag.datasets.manifest import ShapeItem
from luma_rag.datasets.questions import question_words, verification_words
from luma_rag.errors import ConfigError, InvalidInputError
from luma_rag.training._cli import (
    add_config_flags,
    autocast,
    check_run_config,
    config_kwargs,
    run_main,
)
from luma_rag.training.llava_eval import cached_accuracy, evaluate_questions
from luma_rag.training.llava_mix import REPLY_STYLES
from luma_rag.training.llava_report import REPORT_NAME, save_and_report
from luma_rag.training.llava_run import (
    Run,
    batch,
    embed,
    import_torch,
    load_splits,
    make_run,
    step_batch,
    vision_features,
)

__all__ = ["REPORT_NAME", "LlavaTrainConfig", "evaluate_questions", "main", "train_llava"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LlavaTrainConfig:
    """Hyper-parameters of one training run.

    Attributes:
        seed: Seed of initialisation, batch order and question choice.
        steps: Optimisation steps.
        minutes: Wall-clock cap; training stops early (and says so) when it is reached.
        batch_size: Questions per step (one per drawn item).
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay of matrices.
        warmup_steps: Linear warmup before the cosine decay.
        clarify_share: Share of prompts that carry the CLARIFY instructions.
        eval_every: Measure val accuracy every this many steps (0: never).
        val_items: Val items asked (every question kind) at each ``eval_every``; 0: all. The
            final evaluation always covers the whole val and test splits.
        threads: torch intra-op threads (1 is deterministic and fastest on a shared machine).
        vision_layers: Last vision-tower blocks fine-tuned (0: frozen tower).
        vision_lr_scale: Learning rate of those blocks relative to ``lr``.
        grayscale: Probability that the image of a question that is not about colour is
            shown in greyscale (luminance), so that shape, size, position and count must be
            read from form rather than colour. 0: never. The vision features of the grey
            images are cached beside the colour ones.
        verify_share: Share of questions that are yes/no verifications ("Does this image
            show a small red circle?"), half of them true; > 0 adds their words to the
            tokenizer. 0 (the default): none; the shipped v3b and v4 use 0.4.
        verify_single: Share of those verifications that name exactly one attribute ("Is
            this red?"): a curriculum that lets the model find the match-or-not signal
            before it has to check every named attribute.
        verify_gate: Share of the verifications phrased as the verified answer path asks
            them: "Does this image show {referent}? Answer yes or no." with the referent cut
            from a question (:mod:`luma_rag.training.llava_mix`); the rest (and the single
            ones among them) use the verification templates.
        verify_reply: How yes/no replies are written: ``"claim-seen"`` (v2.1) or
            ``"pairs"`` (:func:`~luma_rag.training.llava_mix.verification_reply`).
        clip_weights: open_clip weights of the vision tower; None: the registry's
            (shipped) tiny CLIP.
        bf16: Run forward passes under CPU bfloat16 autocast
            (:func:`~luma_rag.training._cli.autocast`); not the shipped recipe.
        spec: Architecture of the trained parts.
    """

    seed: int = 0
    steps: int = 1500
    minutes: float | None = None
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    clarify_share: float = 0.05
    eval_every: int = 250
    val_items: int = 200
    threads: int = 1
    vision_layers: int = 0
    vision_lr_scale: float = 0.5
    grayscale: float = 0.0
    verify_share: float = 0.0
    verify_single: float = 0.0
    verify_gate: float = 0.0
    verify_reply: str = "claim-seen"
    clip_weights: str | None = None
    bf16: bool = False
    spec: TinyLlavaSpec = dataclasses.field(default_factory=TinyLlavaSpec)

    def __post_init__(self) -> None:
        check_run_config(
            self,
            at_least_one=("steps", "batch_size", "threads"),
            non_negative=("warmup_steps", "eval_every", "val_items", "seed", "vision_layers"),
        )
        if not self.vision_lr_scale > 0:
            raise ConfigError(f"vision_lr_scale must be > 0, got {self.vision_lr_scale}")
        if not 0.0 <= self.grayscale <= 1.0:
            raise ConfigError(f"grayscale must be in [0, 1], got {self.grayscale}")
        if not 0.0 <= self.verify_share < 1.0:
            raise ConfigError(f"verify_share must be in [0, 1), got {self.verify_share}")
        if not 0.0 <= self.verify_single <= 1.0:
            raise ConfigError(f"verify_single must be in [0, 1], got {self.verify_single}")
        if self.verify_reply not in REPLY_STYLES:
            raise ConfigError(
                f"verify_reply must be one of {REPLY_STYLES}, got {self.verify_reply!r}"
            )
        if not 0.0 <= self.verify_gate <= 1.0:
            raise ConfigError(f"verify_gate must be in [0, 1], got {self.verify_gate}")
        if not 0.0 <= self.clarify_share < 1.0:
            raise ConfigError(f"clarify_share must be in [0, 1), got {self.clarify_share}")


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _lr_at(step: int, cfg: LlavaTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _optimizer(model: Any, cfg: LlavaTrainConfig, torch: Any) -> Any:
    """AdamW; groups ``(decay?, vision?)``, each with its ``lr_scale``."""
    groups: dict[tuple[bool, bool], list[Any]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = (p.ndim >= 2 and "embed" not in name, "vision_tower" in name)
            groups.setdefault(key, []).append(p)
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "weight_decay": cfg.weight_decay if decay else 0.0,
                "lr_scale": cfg.vision_lr_scale if vision else 1.0,
            }
            for (decay, vision), params in sorted(groups.items())
        ],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )


def _fit(
    run: Run, splits: dict[str, list[ShapeItem]], cfg: LlavaTrainConfig, torch: Any
) -> tuple[list[dict[str, Any]], bool, int]:
    """The optimisation loop; returns the history, whether time ran out, and steps done."""
    started = time.perf_counter()
    model, feats, items = run.model, run.features["train"], splits["train"]
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 1])
    optimizer = _optimizer(model, cfg, torch)
    history: list[dict[str, Any]] = []
    order: list[int] = []
    losses: list[float] = []
    for step in range(cfg.steps):
        if len(order) < cfg.batch_size:
            order += torch.randperm(len(items), generator=gen).tolist()
        idx, order = order[: cfg.batch_size], order[cfg.batch_size :]
        encoded, gray = step_batch(run, items, idx, rng, cfg)
        tokens = batch(run, encoded, torch)
        cached = feats[idx]
        if run.gray is not None and any(gray):
            cached = torch.where(torch.tensor(gray).view(-1, 1, 1), run.gray[idx], cached)
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, cfg) * group["lr_scale"]
        model.train()
        with autocast(cfg.bf16, torch):
            embeds = embed(run, tokens["input_ids"], cached)
            loss = model(
                inputs_embeds=embeds,
                attention_mask=tokens["attention_mask"],
                labels=tokens["labels"],
            ).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.item()))
        done = step + 1
        last = done == cfg.steps
        out_of_time = cfg.minutes is not None and time.perf_counter() - started > 60 * cfg.minutes
        if (cfg.eval_every and done % cfg.eval_every == 0) or last or out_of_time:
            record: dict[str, Any] = {
                "step": done,
                "loss": float(np.mean(losses)),
                "seconds": round(time.perf_counter() - started, 1),
            }
            losses = []
            if cfg.eval_every and splits["val"] and not last and not out_of_time:
                record["val"] = cached_accuracy(
                    run, splits["val"], "val", cfg.val_items, cfg.seed, cfg.verify_reply
                )
            history.append(record)
            logger.info("step %s", json.dumps(record))
        if out_of_time:
            return history, not last, done
    return history, False, cfg.steps


def train_llava(
    data: Sequence[str | Path], out: str | Path, cfg: LlavaTrainConfig
) -> dict[str, Any]:
    """Build, train, save and evaluate a tiny LLaVA.

    Sets torch's thread count to ``cfg.threads`` for the run and restores it after.

    Args:
        data: LUMA-Shapes corpus directories (their train splits are trained on, val
            monitored, test - held-out shape/colour combinations - reported).
        out: Output directory (created): ``save_pretrained`` files and ``training.json``.
        cfg: Hyper-parameters.

    Returns:
        The report written to ``training.json``.

    Raises:
        InvalidInputError: No corpus at a ``data`` path.
        ConfigError: A needed split is empty.
        MissingDependencyError: torch, transformers or tokenizers is missing.
        ModelNotAvailableError: The tiny CLIP's weights are missing.
    """
    if not data:
        raise InvalidInputError("pass at least one LUMA-Shapes corpus directory")
    torch = import_torch()
    previous = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _train([Path(d) for d in data], Path(out), cfg, torch)
    finally:
        torch.set_num_threads(previous)


def _train(data: list[Path], out: Path, cfg: LlavaTrainConfig, torch: Any) -> dict[str, Any]:
    started, cpu_started = time.perf_counter(), time.process_time()
    splits = load_splits(data)
    torch.manual_seed(cfg.seed)
    words = question_words() + (verification_words() if cfg.verify_share > 0 else [])
    tokenizer = build_tokenizer(words)
    model = build_model(cfg.spec, tokenizer, clip_weights=cfg.clip_weights)
    processor = build_processor(cfg.spec, tokenizer, model.config.vision_config)
    out.mkdir(parents=True, exist_ok=True)
    processor.save_pretrained(out)  # preprocess with the processor exactly as it is shipped
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(out, local_files_only=True)
    run = make_run(model, processor, cfg.vision_layers)
    run.features = {s: vision_features(run, part, torch) for s, part in splits.items()}
    if cfg.grayscale > 0:
        run.gray = vision_features(run, splits["train"], torch, gray=True)
    prepared = time.perf_counter() - started
    n_items = sum(len(part) for part in splits.values())
    logger.info("cached vision features of %d items in %.1f s", n_items, prepared)
    history, stopped_early, steps = _fit(run, splits, cfg, torch)
    seconds = {
        "prepare_wall": round(prepared, 1),
        "train_wall": round(time.perf_counter() - started, 1),
        "train_cpu": round(time.process_time() - cpu_started, 1),
    }
    return save_and_report(run, cfg, out, splits, history, seconds, stopped_early, steps)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m luma_rag.training.train_llava",
        description="Train the tiny LLaVA on LUMA-Shapes questions (CPU, minutes).",
    )
    p.add_argument("--data", required=True, nargs="+", type=Path, help="LUMA-Shapes corpus dirs")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    add_config_flags(p, LlavaTrainConfig)
    add_config_flags(p, TinyLlavaSpec)
    return p


def config_from(args: argparse.Namespace) -> LlavaTrainConfig:
    """The config (spec included) that parsed command-line flags (:func:`_parser`) ask for."""
    spec = TinyLlavaSpec(**config_kwargs(TinyLlavaSpec, args))
    return LlavaTrainConfig(**config_kwargs(LlavaTrainConfig, args), spec=spec)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    return run_main(
        _parser(),
        argv,
        train=lambda args: train_llava(args.data, args.out, config_from(args)),
        describe=lambda args: {
            "data": [str(d) for d in args.data],
            "out": str(args.out),
            **dataclasses.asdict(config_from(args)),
        },
    )


if __name__ == "__main__":
    raise SystemExit(main())
