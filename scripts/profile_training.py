"""Where a training step's time goes: data, forward, backward, optimiser, periodic evaluation.

Times ``--steps`` steps of one trainer's shipped recipe on a corpus (the trainers' own step
functions, with timers around their data helpers) and prints one JSON line per trainer::

    python scripts/profile_training.py clip --data /tmp/shapes2k --steps 200
    python scripts/profile_training.py clap --data /tmp/shapes2k --steps 200
    python scripts/profile_training.py llava --data /tmp/shapes2k --steps 200 [--bf16]

``data`` is everything a step computes before the model runs (drawing texts, tokenising,
augmenting, collating), ``forward`` the model and the loss, ``backward`` ``loss.backward()``,
``optim`` clipping, ``optimizer.step()`` and clamps. ``eval_s`` is one periodic evaluation
and ``eval_per_step`` its cost spread over the steps between two of them. ``--bf16`` runs
forward (and so backward) under ``torch.autocast("cpu", dtype=torch.bfloat16)``.
The first ``--skip`` steps (warm-up) are not counted. Figures are seconds per step.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag.training._cli import autocast


class Timers:
    """Seconds per named phase, summed over the counted steps."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.counting = False

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            if self.counting:
                self.total[name] += time.perf_counter() - t

    def wrap(self, module: Any, attr: str, name: str = "data") -> None:
        """Time every call of ``module.attr`` as phase ``name`` (nested calls counted once)."""
        fn = getattr(module, attr)
        timers = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            if getattr(timers, "_inside", False):
                return fn(*args, **kwargs)
            timers._inside = True  # type: ignore[attr-defined]
            try:
                with timers.phase(name):
                    return fn(*args, **kwargs)
            finally:
                timers._inside = False  # type: ignore[attr-defined]

        setattr(module, attr, timed)


def _loop(
    timers: Timers,
    steps: int,
    skip: int,
    loss_fn: Callable[[int], Any],
    optim_fn: Callable[[Any], None],
    torch: Any,
    bf16: bool,
) -> list[float]:
    losses = []
    for step in range(steps + skip):
        timers.counting = step >= skip
        with timers.phase("step"):
            with timers.phase("forward+data"), autocast(bf16, torch):
                loss = loss_fn(step)
            with timers.phase("backward"):
                loss.backward()
            with timers.phase("optim"):
                optim_fn(loss)
        losses.append(float(loss.detach()))
    return losses


def _report(name: str, timers: Timers, steps: int, extra: dict[str, Any]) -> dict[str, Any]:
    t = {k: v / steps for k, v in timers.total.items()}
    data = t.get("data", 0.0)
    out = {
        "trainer": name,
        "steps": steps,
        "step": round(t["step"], 4),
        "data": round(data, 4),
        "forward": round(t["forward+data"] - data, 4),
        "backward": round(t["backward"], 4),
        "optim": round(t["optim"], 4),
        **extra,
    }
    return out


def _recipe(trainer: Any, name: str, args: argparse.Namespace) -> argparse.Namespace:
    """The trainer's flags parsed for the kit's shipped recipe ``name`` (one source of it)."""
    from luma_rag.training.kit import RECIPES

    return trainer._parser().parse_args(["--data", str(args.data), "--out", "-", *RECIPES[name]])


def profile_clip(args: argparse.Namespace, torch: Any) -> dict[str, Any]:
    from luma_rag.datasets.shapes import load_manifest
    from luma_rag.encoders.open_clip_backend import OpenClipEncoder, import_open_clip
    from luma_rag.encoders.registry import ensure_open_clip_configs
    from luma_rag.training import clip_data, clip_steps, train_clip
    from luma_rag.training.clip_losses import attribute_heads
    from luma_rag.training.compositional import evaluate_referents, linear_probe
    from luma_rag.training.evaluate import evaluate_retrieval
    from luma_rag.training.train_clip import ClipTrainConfig, _param_groups

    _, open_clip = import_open_clip()
    cfg = train_clip.config_from(_recipe(train_clip, "clip", args))
    torch.manual_seed(cfg.seed)
    ensure_open_clip_configs(open_clip)
    model, _, transform = open_clip.create_model_and_transforms(cfg.model)
    tokenizer = open_clip.get_tokenizer(cfg.model)
    items = load_manifest(args.data)
    splits = {s: [it for it in items if it.split == s] for s in ("train", "val", "test")}
    t0 = time.perf_counter()
    train = clip_data.prepare(splits["train"], transform, tokenizer, cfg, torch)
    prepare_s = time.perf_counter() - t0
    heads = attribute_heads(128, torch)
    optimizer = torch.optim.AdamW(
        _param_groups(model, cfg.weight_decay) + _param_groups(heads, cfg.weight_decay), lr=cfg.lr
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    timers = Timers()
    for attr in ("draw_texts", "shift", "add_head_views", "recolor", "off_vocabulary_colors"):
        timers.wrap(clip_steps, attr)
    n = len(train.items)
    model.train()

    def loss_fn(step: int) -> Any:
        idx = torch.randperm(n, generator=gen)[: cfg.batch_size]
        return clip_steps.step_loss(model, heads, train, idx, cfg, gen, torch)

    def optim_after(loss: Any) -> None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))

    losses = _loop(timers, args.steps, args.skip, loss_fn, optim_after, torch, args.bf16)
    # head pretraining steps (image tower + heads on repainted shapes)
    pre_cfg = ClipTrainConfig(**{**cfg.__dict__, "head_pretrain": args.steps // 4})
    t = time.perf_counter()
    clip_steps.pretrain_heads(model, heads, train, pre_cfg, gen, torch)
    pretrain_step = (time.perf_counter() - t) / pre_cfg.head_pretrain
    t = time.perf_counter()
    enc = OpenClipEncoder.from_model(model, transform, tokenizer, cfg.model)
    model.eval()
    evaluate_retrieval(enc, splits["val"])
    evaluate_referents(enc, splits["val"][:200])
    linear_probe(enc, splits["train"][:1000], splits["val"])
    eval_s = time.perf_counter() - t
    steps_per_epoch = 12794 // cfg.batch_size  # the shipped 16k corpus's train split
    return _report(
        "clip",
        timers,
        args.steps,
        {
            "pretrain_step": round(pretrain_step, 4),
            "prepare_s": round(prepare_s, 1),
            "prepare_items": n,
            "eval_s": round(eval_s, 1),
            "eval_items": len(splits["val"]),
            "eval_per_step": round(eval_s / (cfg.eval_every * steps_per_epoch), 4),
            "first_losses": [round(x, 6) for x in losses[:5]],
        },
    )


def profile_clap(args: argparse.Namespace, torch: Any) -> dict[str, Any]:
    from luma_rag.encoders.clap.tiny import TinyClapSpec
    from luma_rag.training import clap_data, train_clap
    from luma_rag.training.clap_losses import param_groups

    cfg = train_clap.ClapTrainConfig()
    spec = TinyClapSpec()
    torch.manual_seed(cfg.seed)
    splits = clap_data.load_splits([args.data])
    t0 = time.perf_counter()
    run = clap_data.prepare(splits["train"], spec, torch, cfg.anchor)
    prepare_s = time.perf_counter() - t0
    timers = Timers()
    timers.wrap(train_clap, "_captions")
    timers.wrap(train_clap, "spec_augment")
    timers.wrap(train_clap, "attribute_targets")
    tok = run.tokenizer
    run.tokenizer = lambda *a, **k: _timed(timers, tok, *a, **k)
    params = [*run.model.parameters(), *run.heads.parameters()]
    optimizer = torch.optim.AdamW(param_groups([run.model, run.heads], cfg.weight_decay), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(run.train), generator=gen)
    run.model.train()

    def loss_fn(step: int) -> Any:
        b = step % (len(run.train) // cfg.batch_size)
        idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        return train_clap._loss(run, idx, cfg, gen, torch)

    def optim_fn(loss: Any) -> None:
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            run.model.logit_scale_a.clamp_(0, math.log(100))
            run.model.logit_scale_t.clamp_(0, math.log(100))

    losses = _loop(timers, args.steps, args.skip, loss_fn, optim_fn, torch, args.bf16)
    return _report(
        "clap",
        timers,
        args.steps,
        {
            "prepare_s": round(prepare_s, 1),
            "prepare_items": len(run.train),
            "eval_per_step": 0.0,
            "first_losses": [round(x, 6) for x in losses[:5]],
        },
    )


def _timed(timers: Timers, fn: Any, *a: Any, **k: Any) -> Any:
    with timers.phase("data"):
        return fn(*a, **k)


def profile_llava(args: argparse.Namespace, torch: Any) -> dict[str, Any]:
    import tempfile

    from transformers import AutoProcessor

    from luma_rag.answer.tiny_llava import build_model, build_processor, build_tokenizer
    from luma_rag.datasets.questions import question_words, verification_words
    from luma_rag.training import llava_run, train_llava
    from luma_rag.training.llava_eval import cached_accuracy
    from luma_rag.training.train_llava import _optimizer

    cfg = train_llava.config_from(_recipe(train_llava, "llava", args))
    splits = llava_run.load_splits([Path(args.data)])
    torch.manual_seed(cfg.seed)
    tokenizer = build_tokenizer(question_words() + verification_words())
    model = build_model(cfg.spec, tokenizer, clip_weights=args.clip_weights)
    processor = build_processor(cfg.spec, tokenizer, model.config.vision_config)
    with tempfile.TemporaryDirectory() as tmp:
        processor.save_pretrained(tmp)
        processor = AutoProcessor.from_pretrained(tmp, local_files_only=True)
    run = llava_run.make_run(model, processor, 0)
    t0 = time.perf_counter()
    run.features = {s: llava_run.vision_features(run, p, torch) for s, p in splits.items()}
    prepare_s = time.perf_counter() - t0
    feats, items = run.features["train"], splits["train"]
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 1])
    optimizer = _optimizer(model, cfg, torch)
    timers = Timers()
    order: list[int] = []

    def loss_fn(step: int) -> Any:
        nonlocal order
        with timers.phase("data"):
            if len(order) < cfg.batch_size:
                order += torch.randperm(len(items), generator=gen).tolist()
            idx, order = order[: cfg.batch_size], order[cfg.batch_size :]
            encoded, _ = llava_run.step_batch(run, items, idx, rng, cfg)
            tokens = llava_run.batch(run, encoded, torch)
            cached = feats[idx]
        model.train()
        embeds = llava_run.embed(run, tokens["input_ids"], cached)
        return model(
            inputs_embeds=embeds, attention_mask=tokens["attention_mask"], labels=tokens["labels"]
        ).loss

    def optim_fn(loss: Any) -> None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    losses = _loop(timers, args.steps, args.skip, loss_fn, optim_fn, torch, args.bf16)
    t = time.perf_counter()
    cached_accuracy(run, splits["val"], "val", cfg.val_items, cfg.seed, cfg.verify_reply)
    eval_s = time.perf_counter() - t
    return _report(
        "llava",
        timers,
        args.steps,
        {
            "prepare_s": round(prepare_s, 1),
            "prepare_items": sum(len(p) for p in splits.values()),
            "eval_s": round(eval_s, 1),
            "eval_per_step": round(eval_s / cfg.eval_every, 4),
            "first_losses": [round(x, 6) for x in losses[:5]],
        },
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trainer", choices=("clip", "clap", "llava"))
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--skip", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--clip-weights", default=None, help="LLaVA vision tower (default: shipped)")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    fn = {"clip": profile_clip, "clap": profile_clap, "llava": profile_llava}[args.trainer]
    out = fn(args, torch)
    out.update({"threads": args.threads, "bf16": args.bf16})
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
