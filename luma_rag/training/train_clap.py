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

from luma_rag.datasets.captions import parse_query_attributes
from luma_rag.datasets.shapes import ShapeItem, load_manifest
from luma_rag.datasets.speech import (
    PITCH_RANGE,
    RATE_RANGE,
    VARIANTS,
    VOICES,
    SpeechParams,
    synthesize,
)
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
from luma_rag.encoders.clap.audio import load_audio
from luma_rag.encoders.clap.backend import ClapEncoder
from luma_rag.encoders.clap.tiny import TinyClapSpec, build_model, build_processor
from luma_rag.encoders.clap.tokenizer import build_tokenizer
from luma_rag.errors import ConfigError, InvalidInputError, LumaError, MissingDependencyError
from luma_rag.training._cli import (
    add_config_flags,
    check_run_config,
    config_kwargs,
    file_digests,
    run_main,
    versions,
)
from luma_rag.training.evaluate import first_relevant_ranks, relevance_matrix

__all__ = ["REPORT_NAME", "ClapTrainConfig", "evaluate_clap", "main", "train_clap"]

logger = logging.getLogger(__name__)

REPORT_NAME: Final = "training.json"
_VALUES: Final[dict[str, tuple[object, ...]]] = {
    "shape": SHAPES,
    "color": COLORS,
    "size": SIZES,
    "position": POSITIONS,
    "count": COUNTS,
    "background": BACKGROUNDS,
    "motion": MOTIONS,
}
_IGNORE: Final = -100
#: Largest dB difference tolerated between the training features and ClapFeatureExtractor's.
_FEATURE_TOLERANCE_DB: Final = 0.05


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
        anchor_weight: Weight of the anchor terms.
        anchor_scale: Fixed logit scale of the anchor InfoNCE.
    """

    seed: int = 0
    steps: int = 5000
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
    anchor_weight: float = 1.0
    anchor_scale: float = 20.0

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


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------


def _repeat_pad(wave: np.ndarray, n: int) -> np.ndarray:
    """Cut to ``n`` samples, or repeat then zero-pad to ``n`` (ClapFeatureExtractor's repeatpad)."""
    if wave.size >= n:
        return wave[:n]
    tiled = np.tile(wave, n // wave.size)
    return np.pad(tiled, (0, n - tiled.size))


class _LogMel:
    """``ClapFeatureExtractor``'s log-mel (``rand_trunc``: Slaney filters, power, dB) in torch."""

    def __init__(self, extractor: Any, torch: Any) -> None:
        self.torch = torch
        self.n_fft, self.hop = int(extractor.fft_window_size), int(extractor.hop_length)
        self.window = torch.hann_window(self.n_fft, periodic=True, dtype=torch.float64)
        self.filters = torch.from_numpy(np.asarray(extractor.mel_filters_slaney, np.float64))

    def __call__(self, waves: np.ndarray) -> Any:
        """``(b, n)`` float waves -> float32 ``(b, frames, mels)`` dB."""
        torch = self.torch
        x = torch.from_numpy(np.asarray(waves, dtype=np.float64))
        spec = torch.stft(
            x,
            self.n_fft,
            self.hop,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = spec.real**2 + spec.imag**2  # (b, freq, frames)
        mel = torch.einsum("bft,fm->btm", power, self.filters).clamp_min(1e-10)
        return (10.0 * torch.log10(mel)).float()


def _features(items: Sequence[ShapeItem], spec: TinyClapSpec, extractor: Any, torch: Any) -> Any:
    """float16 ``(n, frames, mels)`` log-mels of the items' clips, checked against the extractor."""
    logmel = _LogMel(extractor, torch)
    n = spec.max_length_s * spec.sampling_rate
    out = []
    for start in range(0, len(items), 256):
        waves = [
            _repeat_pad(load_audio(_audio(it), spec.sampling_rate).astype(np.float64), n)
            for it in items[start : start + 256]
        ]
        mels = logmel(np.stack(waves))
        if start == 0:
            reference = extractor(waves[:4], sampling_rate=spec.sampling_rate)["input_features"]
            gap = float(np.max(np.abs(np.asarray(reference)[:, 0] - mels[:4].numpy())))
            if gap > _FEATURE_TOLERANCE_DB:
                raise LumaError(f"training log-mels differ from ClapFeatureExtractor's by {gap} dB")
        out.append(mels.half())
    return torch.cat(out)


def _audio(item: ShapeItem) -> Path:
    if item.audio_path is None:
        raise InvalidInputError(f"{item.id} has no audio; generate the corpus with --audio")
    return item.audio_path


def _mask(feats: Any, cfg: ClapTrainConfig, gen: Any, torch: Any) -> Any:
    """SpecAugment: replace random time and mel bands by each spectrogram's mean."""
    b, frames, mels = feats.shape
    out = feats.clone()
    fill = out.mean(dim=(1, 2), keepdim=True).expand(b, frames, mels)
    keep = torch.ones(b, frames, mels, dtype=torch.bool)
    for _ in range(cfg.time_masks):
        width = torch.randint(0, frames // 12 + 1, (b,), generator=gen)
        start = (torch.rand(b, generator=gen) * (frames - width)).long()
        t = torch.arange(frames)[None, :]
        keep &= ~((t >= start[:, None]) & (t < (start + width)[:, None]))[:, :, None]
    for _ in range(cfg.freq_masks):
        width = torch.randint(0, mels // 8 + 1, (b,), generator=gen)
        start = (torch.rand(b, generator=gen) * (mels - width)).long()
        f = torch.arange(mels)[None, :]
        keep &= ~((f >= start[:, None]) & (f < (start + width)[:, None]))[:, None, :]
    return torch.where(keep, out, fill)


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------


def _targets(captions: Sequence[str], torch: Any) -> Any:
    """int64 ``(n, attributes)`` class ids of what each caption names (``-100``: not named)."""
    rows = []
    for caption in captions:
        named = parse_query_attributes(caption)
        rows.append(
            [
                _VALUES[name].index(named[name]) if name in named else _IGNORE
                for name in ATTRIBUTE_NAMES
            ]
        )
    return torch.tensor(rows, dtype=torch.long)


def _group_loss(audio: Any, text: Any, scale_a: Any, scale_t: Any, group: Any, torch: Any) -> Any:
    """Symmetric InfoNCE where every pair in the same attribute group is a positive."""
    same = (group[:, None] == group[None, :]).float()
    target = same / same.sum(dim=1, keepdim=True)
    log_a2t = torch.log_softmax(scale_a * audio @ text.T, dim=1)
    log_t2a = torch.log_softmax(scale_t * text @ audio.T, dim=1)
    return -0.5 * ((target * log_a2t).sum(1).mean() + (target * log_t2a).sum(1).mean())


def _aux_loss(heads: Any, embeddings: Any, targets: Any, torch: Any) -> Any:
    losses = [
        torch.nn.functional.cross_entropy(
            heads[name](embeddings), targets[:, i], ignore_index=_IGNORE
        )
        for i, name in enumerate(ATTRIBUTE_NAMES)
        if bool((targets[:, i] != _IGNORE).any())
    ]
    return torch.stack(losses).mean()


def _param_groups(modules: Sequence[Any], weight_decay: float) -> list[dict[str, Any]]:
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


def _load_splits(data: Sequence[str | Path]) -> dict[str, list[ShapeItem]]:
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
class _Run:
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


def _anchors(captions: Sequence[str], name: str, dim: int, torch: Any) -> dict[str, Any]:
    """Frozen CLIP text embeddings of ``captions`` (the anchor of the joint space)."""
    from luma_rag.encoders.registry import get_encoder

    encoder = get_encoder(name)
    if encoder.dim != dim:
        raise ConfigError(
            f"anchor {name!r} embeds in {encoder.dim} dimensions, CLAP projects to {dim}; "
            "pick an anchor of the same width or --anchor none"
        )
    unique = sorted(set(captions))
    vectors = torch.from_numpy(np.asarray(encoder.encode_text(unique), dtype=np.float32))
    return dict(zip(unique, vectors, strict=True))


def _prepare(
    train: list[ShapeItem], spec: TinyClapSpec, torch: Any, anchor: str | None = None
) -> _Run:
    tokenizer = build_tokenizer(
        [c for it in train for c in it.captions],
        vocab_size=spec.vocab_size,
        model_max_length=spec.max_text_tokens,
    )
    processor = build_processor(spec, tokenizer)
    model = build_model(spec, vocab_size=len(tokenizer))
    heads = torch.nn.ModuleDict(
        {name: torch.nn.Linear(spec.projection_dim, len(_VALUES[name])) for name in ATTRIBUTE_NAMES}
    )
    groups: dict[tuple[Any, ...], int] = {}
    group = [
        groups.setdefault(tuple(it.attributes.as_dict().values()), len(groups)) for it in train
    ]
    return _Run(
        train=train,
        tokenizer=tokenizer,
        processor=processor,
        model=model,
        heads=heads,
        feats=_features(train, spec, processor.feature_extractor, torch),
        audio_targets=_targets([it.caption for it in train], torch),
        group=torch.tensor(group),
        anchors=(
            _anchors([c for it in train for c in it.captions], anchor, spec.projection_dim, torch)
            if anchor
            else {}
        ),
    )


def _captions(run: _Run, idx: Any, cfg: ClapTrainConfig, gen: Any, torch: Any) -> list[str]:
    """The caption each clip is paired with: its own (``primary_p``) or a random paraphrase."""
    primary = torch.rand(len(idx), generator=gen) < cfg.primary_p
    draws = torch.rand(len(idx), generator=gen).tolist()
    return [
        run.train[i].caption if p else run.train[i].captions[int(u * len(run.train[i].captions))]
        for i, p, u in zip(idx.tolist(), primary.tolist(), draws, strict=True)
    ]


def _loss(run: _Run, idx: Any, cfg: ClapTrainConfig, gen: Any, torch: Any) -> Any:
    """Group-aware InfoNCE plus the auxiliary attribute loss of one batch of train indices."""
    model, normalize = run.model, torch.nn.functional.normalize
    captions = _captions(run, idx, cfg, gen, torch)
    tokens = run.tokenizer(captions, padding=True, return_tensors="pt")
    inputs = _mask(run.feats[idx].float(), cfg, gen, torch)[:, None]
    audio = model.audio_projection(model.audio_model(input_features=inputs).pooler_output)
    text = model.text_projection(
        model.text_model(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).pooler_output
    )
    scales = model.logit_scale_a.exp(), model.logit_scale_t.exp()
    audio_n, text_n, group = normalize(audio, dim=-1), normalize(text, dim=-1), run.group[idx]
    loss = _group_loss(audio_n, text_n, *scales, group, torch)
    if run.anchors and cfg.anchor_weight > 0:
        spoken = torch.stack([run.anchors[run.train[i].caption] for i in idx.tolist()])
        written = torch.stack([run.anchors[c] for c in captions])
        scale = torch.tensor(cfg.anchor_scale)
        loss = loss + cfg.anchor_weight * (
            _group_loss(audio_n, spoken, scale, scale, group, torch)
            + _group_loss(text_n, written, scale, scale, group, torch)
        )
    if cfg.aux_weight > 0:
        aux = _aux_loss(run.heads, audio, run.audio_targets[idx], torch)
        aux = aux + _aux_loss(run.heads, text, _targets(captions, torch), torch)
        loss = loss + cfg.aux_weight * aux
    return loss


def _fit(run: _Run, cfg: ClapTrainConfig, torch: Any) -> tuple[list[dict[str, Any]], int, float]:
    """Run the optimiser; returns ``(history, steps done, seconds)``."""
    model, n = run.model, len(run.train)
    params = [*model.parameters(), *run.heads.parameters()]
    gen = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(_param_groups([model, run.heads], cfg.weight_decay), lr=cfg.lr)
    history: list[dict[str, Any]] = []
    order, cursor, losses = torch.randperm(n, generator=gen), 0, []
    step, progress, started = 0, 0.0, time.perf_counter()
    model.train()
    while progress < 1.0:
        if cursor + cfg.batch_size > n:
            order, cursor = torch.randperm(n, generator=gen), 0
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
    splits = _load_splits(dirs)
    run = _prepare(splits["train"], spec, torch, cfg.anchor)
    logger.info("prepared %d train clips in %.1f s", len(run.train), time.perf_counter() - started)
    history, steps, seconds = _fit(run, cfg, torch)
    return _save_and_report(
        run, cfg, spec, Path(out), splits, history, seconds, steps < cfg.steps, started
    )


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


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
    audio = encoder.encode_audio([_audio(it) for it in items])
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


# --------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------


def _save_and_report(
    run: _Run,
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
