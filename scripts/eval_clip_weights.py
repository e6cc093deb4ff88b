"""Held-out figures of any tiny-CLIP weights file on LUMA-Shapes corpora (issue #12 experiments).

The same figures as ``python -m luma_rag.eval.model_kit``'s CLIP part (test split = unseen
shape/colour combinations: text→image Recall@10 and MRR with the primary captions, question
referents → top-1, a ridge shape probe fitted on the train split), for a weights file that is
not the shipped one, and for architectures other than the shipped config::

    python scripts/eval_clip_weights.py --weights OUT/open_clip_model.safetensors \\
        --data /tmp/fresh --data /tmp/clip16k [--model NAME --model-config FILE.json] --out r.json

Nothing here is imported by the library.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from luma_rag.datasets.shapes import load_manifest
from luma_rag.encoders.open_clip_backend import OpenClipEncoder
from luma_rag.encoders.registry import add_model_config
from luma_rag.training.compositional import evaluate_referents, linear_probe
from luma_rag.training.evaluate import evaluate_retrieval


def evaluate(encoder: OpenClipEncoder, data: Path, max_fit: int) -> dict[str, Any]:
    """The CLIP figures of ``encoder`` on one corpus's test split."""
    items = load_manifest(data)
    test = [it for it in items if it.split == "test"]
    fit = [it for it in items if it.split == "train"][:max_fit]
    started = time.perf_counter()
    retrieval = evaluate_retrieval(encoder, test)
    referents = evaluate_referents(encoder, test)
    probe = linear_probe(encoder, fit, test)
    return {
        "data": str(data),
        "n_test": len(test),
        "t2i_recall@10": round(retrieval["t2i_recall@10"], 4),
        "t2i_mrr": round(retrieval["t2i_mrr"], 4),
        "referent_top1": round(referents["top1"], 4),
        "referent_n": referents["n"],
        "probe_shape": round(probe["accuracy"], 4),
        "probe_wilson95": probe["wilson95"],
        "probe_n_fit": probe["n_fit"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, type=Path)
    p.add_argument("--model", default="luma-tiny-clip")
    p.add_argument("--model-config", type=Path, default=None)
    p.add_argument("--data", required=True, type=Path, action="append")
    p.add_argument("--max-fit", type=int, default=3000, help="probe fit items (train split)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    if args.model_config is not None:
        add_model_config(args.model_config)
    encoder = OpenClipEncoder(args.model, args.weights)
    report = {
        "weights": str(args.weights),
        "model": args.model,
        "corpora": [evaluate(encoder, d, args.max_fit) for d in args.data],
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
