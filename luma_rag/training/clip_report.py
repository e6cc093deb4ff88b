"""Saving the tiny CLIP a run trained, and its report: fp16 safetensors, the held-out
metrics of the file as saved (loaded back through open_clip), ``training.json``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from luma_rag.datasets.shapes import ShapeItem
from luma_rag.encoders.open_clip_backend import OpenClipEncoder
from luma_rag.encoders.registry import get_model_config
from luma_rag.training._cli import file_digests, versions
from luma_rag.training.compositional import evaluate_referents, linear_probe
from luma_rag.training.evaluate import evaluate_retrieval

if TYPE_CHECKING:
    from luma_rag.training.train_clip import ClipTrainConfig

__all__ = ["REPORT_NAME", "WEIGHTS_NAME", "save_and_report"]

WEIGHTS_NAME: Final = "open_clip_model.safetensors"
REPORT_NAME: Final = "training.json"


def save_and_report(
    model: Any,
    cfg: ClipTrainConfig,
    out: Path,
    splits: dict[str, list[ShapeItem]],
    history: list[dict[str, Any]],
    seconds: dict[str, float],
    stopped_early: bool,
) -> dict[str, Any]:
    """Save ``model`` as fp16 safetensors in ``out``, evaluate the saved file on the test
    split and write ``training.json``; returns the report."""
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    weights = out / WEIGHTS_NAME
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    # One metadata key: safetensors writes a metadata dict in hash-map order, so with two keys
    # identical runs wrote one of two files (two sha256). The model is named in training.json.
    save_file(state, str(weights), metadata={"format": "pt"})
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
        "weights": {"file": WEIGHTS_NAME} | file_digests([weights])[WEIGHTS_NAME],
        "metrics": {
            "test": test,
            "test_all_captions": evaluate_retrieval(encoder, splits["test"], captions="all"),
            "test_vs_all_splits": evaluate_retrieval(
                encoder, splits["test"], gallery=[it for part in splits.values() for it in part]
            ),
            "test_referents_full": evaluate_referents(encoder, splits["test"]),
            "test_referents_random": evaluate_referents(encoder, splits["test"], referent="random"),
            "test_probe_shape": linear_probe(encoder, splits["train"], splits["test"]),
        },
        "history": history,
        "versions": versions("torch", "open_clip", "numpy"),
    }
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
