"""What training and evaluating the tiny LLaVA share: the run's bookkeeping, prompts and
batches, the (partly cached) vision tower, and the splits of the corpora.

A :class:`Run` holds the model and processor, the image-token id and count, and the vision
features cached per split (the hidden states entering the first fine-tuned vision block;
all of them when the tower is frozen), and of the train images in greyscale when the mix
shows some of them grey.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag.answer.tiny_llava import CLARIFY_MARKER, CLARIFY_REPLY, image_token_count
from luma_rag.datasets.manifest import ShapeItem, load_manifest
from luma_rag.datasets.questions import QUESTION_KINDS, make_question, make_verification
from luma_rag.encoders._images import load_image
from luma_rag.errors import ConfigError, MissingDependencyError
from luma_rag.training.llava_mix import gate_verification, verification_reply

__all__ = [
    "Run",
    "batch",
    "embed",
    "encode",
    "import_torch",
    "load_pixels",
    "load_splits",
    "make_run",
    "step_batch",
    "to_gray",
    "vision_features",
    "vision_head",
]


@dataclass
class Run:
    """What training and evaluation share: model, processor, ids, cached features."""

    model: Any
    processor: Any
    image_id: int
    n_image_tokens: int
    features: dict[str, Any]  # split -> float32 (n, 65, vision width): input of block `start`
    start: int = 0  # first vision block run at every step (the ones before it are cached)
    stop: int = 0  # vision blocks up to the feature layer
    gray: Any = None  # like features["train"], of the images in greyscale; only with grayscale > 0


def import_torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise MissingDependencyError.for_extra("torch", "llava") from e
    return torch


def _conversation(question: str, clarify: bool, answer: str | None) -> list[dict[str, Any]]:
    """A conversation as :func:`~luma_rag.answer.prompts.build_messages` shapes it."""
    instructions = f"{CLARIFY_MARKER}." if clarify else "Answer the question."
    text = f"{instructions}\n\nQuestion: {question}"
    turns: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}
    ]
    if answer is not None:
        turns.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return turns


def encode(run: Run, question: str, clarify: bool, answer: str) -> tuple[list[int], int]:
    """Token ids of prompt + answer (image token expanded) and the prompt's length."""
    proc = run.processor
    prompt = proc.apply_chat_template(
        _conversation(question, clarify, None), add_generation_prompt=True
    )
    full = proc.apply_chat_template(_conversation(question, clarify, answer))
    prompt_ids = _expand(proc.tokenizer(prompt)["input_ids"], run)
    full_ids = _expand(proc.tokenizer(full.rstrip())["input_ids"], run)
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise ConfigError("the chat template renders the prompt differently with an answer")
    return full_ids, len(prompt_ids)


def _expand(ids: list[int], run: Run) -> list[int]:
    out: list[int] = []
    for i in ids:
        out.extend([i] * run.n_image_tokens if i == run.image_id else [i])
    return out


def batch(run: Run, encoded: list[tuple[list[int], int]], torch: Any) -> dict[str, Any]:
    """Right-padded ``input_ids``, ``attention_mask`` and answer-only ``labels``."""
    width = max(len(ids) for ids, _ in encoded)
    pad = int(run.processor.tokenizer.pad_token_id)
    input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (ids, start) in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, start : len(ids)] = torch.tensor(ids[start:])
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def _vision_tail(run: Run, cached: Any) -> Any:
    """Run the vision blocks after the cache and select the feature tokens."""
    states = cached
    for layer in run.model.model.vision_tower.encoder.layers[run.start : run.stop]:
        states = layer(states, None)
        states = states[0] if isinstance(states, tuple) else states
    if run.model.config.vision_feature_select_strategy == "default":
        states = states[:, 1:]
    return states


def embed(run: Run, input_ids: Any, cached: Any) -> Any:
    """Token embeddings with the projected vision features at the image positions."""
    model = run.model
    embeds = model.get_input_embeddings()(input_ids)
    image = model.model.multi_modal_projector(_vision_tail(run, cached)).to(embeds.dtype)
    slots = (input_ids == run.image_id).unsqueeze(-1).expand_as(embeds)
    return embeds.masked_scatter(slots, image.reshape(-1))


def load_splits(data: Sequence[Path]) -> dict[str, list[ShapeItem]]:
    items = [it for d in data for it in load_manifest(d)]
    splits = {s: [it for it in items if it.split == s] for s in ("train", "val", "test")}
    for name in ("train", "test"):
        if not splits[name]:
            raise ConfigError(
                f"the {name} split of {[str(d) for d in data]} is empty; generate a larger corpus"
            )
    return splits


def vision_features(
    run: Run, items: Sequence[ShapeItem], torch: Any, batch: int = 128, *, gray: bool = False
) -> Any:
    """Vision hidden states entering block ``run.start``: float32 ``(n, 1 + patches, width)``;
    ``gray``: of the images turned to their luminance first (:func:`to_gray`)."""
    vision = run.model.config.vision_config
    if not items:
        tokens = (int(vision.image_size) // int(vision.patch_size)) ** 2 + 1
        return torch.zeros((0, tokens, int(vision.hidden_size)))
    parts = []
    for i in range(0, len(items), batch):
        pixels = load_pixels(run, items[i : i + batch])
        if gray:
            pixels = to_gray(pixels, torch.ones(len(pixels), dtype=torch.bool), torch)
        with torch.inference_mode():
            parts.append(vision_head(run, pixels))
    return torch.cat(parts)


def load_pixels(run: Run, items: Sequence[ShapeItem]) -> Any:
    """Processor pixels of ``items``: float32 ``(n, 3, H, W)``."""
    images = [load_image(it.image_path) for it in items]
    return run.processor.image_processor(images, return_tensors="pt")["pixel_values"].float()


def vision_head(run: Run, pixels: Any) -> Any:
    """The frozen vision blocks: hidden states entering block ``run.start``."""
    tower = run.model.model.vision_tower
    return tower(pixels, output_hidden_states=True).hidden_states[run.start].float()


def to_gray(pixels: Any, rows: Any, torch: Any) -> Any:
    """``pixels`` with the images at bool ``rows`` replaced by their luminance (normalised)."""
    mean, std = _image_norm(torch)
    raw = pixels * std + mean
    lum = (raw * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    gray = (lum.expand_as(raw) - mean) / std
    return torch.where(rows.view(-1, 1, 1, 1), gray, pixels)


def _image_norm(torch: Any) -> tuple[Any, Any]:
    from luma_rag.answer.tiny_llava import CLIP_MEAN, CLIP_STD

    return torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)


def make_run(model: Any, processor: Any, trained_layers: int = 0) -> Run:
    """Bookkeeping for ``model``; its last ``trained_layers`` vision blocks train (rest frozen)."""
    cfg = model.config
    n_layers = int(cfg.vision_config.num_hidden_layers)
    layer = int(cfg.vision_feature_layer)
    stop = layer + n_layers + 1 if layer < 0 else layer  # hidden_states has n_layers + 1 entries
    if not 0 < stop <= n_layers or trained_layers > stop:
        raise ConfigError(
            f"cannot fine-tune {trained_layers} vision blocks below feature layer {layer} of "
            f"{n_layers}; use vision_layers <= {stop}"
        )
    start = stop - trained_layers
    tower = model.model.vision_tower
    for name, p in tower.named_parameters():
        block = name.split("layers.")[1].split(".")[0] if "layers." in name else None
        p.requires_grad_(block is not None and start <= int(block) < stop)
    return Run(
        model=model,
        processor=processor,
        image_id=int(cfg.image_token_index),
        n_image_tokens=image_token_count(cfg.vision_config, cfg.vision_feature_select_strategy),
        features={},
        start=start,
        stop=stop,
    )


def step_batch(
    run: Run, items: list[ShapeItem], idx: list[int], rng: np.random.Generator, cfg: Any
) -> tuple[list[tuple[list[int], int]], list[bool]]:
    """Encoded questions for items ``idx``, and which of their images to show in grey.

    ``cfg`` (a :class:`~luma_rag.training.train_llava.LlavaTrainConfig`) gives the shares of
    yes/no verifications (``verify_share``, half of them true; ``verify_gate`` of them phrased
    as the verified answer path asks, :func:`~luma_rag.training.llava_mix.gate_verification`),
    CLARIFY prompts and grey images; the other questions ask a uniform kind about a referent
    naming a random subset.
    """
    encoded, gray = [], []
    for i in idx:
        attrs = items[i].attributes
        if rng.random() < cfg.verify_share:
            truthful = bool(rng.random() < 0.5)
            if cfg.verify_gate > 0 and rng.random() < cfg.verify_gate:
                v = gate_verification(attrs, rng, truthful=truthful)
            else:
                single = cfg.verify_single > 0 and bool(rng.random() < cfg.verify_single)
                v = make_verification(attrs, rng, truthful=truthful, single=single)
            encoded.append(encode(run, v.text, False, verification_reply(v, cfg.verify_reply)))
            gray.append(False)
            continue
        kind = QUESTION_KINDS[int(rng.integers(len(QUESTION_KINDS)))]
        q = make_question(attrs, kind, rng)
        clarify = bool(rng.random() < cfg.clarify_share)
        answer = CLARIFY_REPLY if clarify else q.answer
        encoded.append(encode(run, q.text, clarify, answer))
        gray.append(bool(rng.random() < cfg.grayscale) and kind != "color")
    return encoded, gray
