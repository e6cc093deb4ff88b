"""Saving the tiny LLaVA a run trained, and its report: ``save_pretrained`` in float16
(safetensors only), the held-out accuracy of the saved files, ``training.json``."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from luma_rag.datasets.manifest import ShapeItem
from luma_rag.errors import LumaError
from luma_rag.training._cli import file_digests, versions, weights_record
from luma_rag.training.llava_eval import evaluate_questions
from luma_rag.training.llava_run import Run

if TYPE_CHECKING:
    from luma_rag.training.train_llava import LlavaTrainConfig

__all__ = ["REPORT_NAME", "save_and_report"]

REPORT_NAME: Final = "training.json"


def save_and_report(
    run: Run,
    cfg: LlavaTrainConfig,
    out: Path,
    splits: dict[str, list[ShapeItem]],
    history: list[dict[str, Any]],
    seconds: dict[str, float],
    stopped_early: bool,
    steps: int,
) -> dict[str, Any]:
    """Save the run's model (fp16 ``save_pretrained``) in ``out``, evaluate the saved files on
    the test and val splits and write ``training.json``; returns the report."""
    import torch

    model = run.model.eval()
    trained = sum(int(p.numel()) for p in model.parameters() if p.requires_grad)
    total = sum(int(p.numel()) for p in model.parameters())
    model.requires_grad_(True)
    model.to(torch.float16).save_pretrained(out)  # transformers 5: safetensors only
    model.to(torch.float32)
    pickles = sorted(p.name for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pkl"))
    if pickles:
        raise LumaError(f"save_pretrained wrote pickle files {pickles}; remove them")
    eval_started = time.perf_counter()
    metrics = {
        name: evaluate_questions(out, splits[name], seed=cfg.seed, reply_style=cfg.verify_reply)
        for name in ("test", "val")
        if splits[name]
    }
    seconds["final_eval"] = round(time.perf_counter() - eval_started, 1)
    files = sorted(p for p in out.iterdir() if p.is_file() and p.suffix != ".md")
    report = {
        "model": "luma-tiny-llava",
        "spec": dataclasses.asdict(cfg.spec),
        "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "spec"},
        "data": {name: len(part) for name, part in splits.items()},
        "steps_done": steps,
        "seconds": seconds,
        "stopped_early": stopped_early,
        "parameters": {"total": total, "trained": trained, "frozen": total - trained},
        "files": file_digests(p for p in files if p.name != REPORT_NAME),
        "metrics": metrics,
        "history": history,
        "versions": versions("torch", "transformers", "tokenizers", "numpy"),
        "vision_tower": weights_record(cfg.clip_weights, cfg.spec.clip_model),
    }
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
