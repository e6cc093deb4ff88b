"""Issue #12's held-out report of the shipped tiny models: every target, measured, PASS or MISS.

On a LUMA-Shapes corpus generated with a seed no test or training run uses (the checkpoints'
READMEs use ``--n 3000 --seed 7331``), its test split (shape/colour combinations never
trained on):

* tiny CLIP: text→image Recall@10 and MRR with the primary captions; question referents
  naming every attribute but the asked one → top-1 (per kind); a linear shape probe fitted on
  seen combinations and scored on unseen ones;
* tiny LLaVA: accuracy per question kind and of yes/no verification, and how many questions
  plain greedy decoding would answer with nothing;
* audio → image through the CLAP → CLIP bridge (optional, needs a corpus made with
  ``--audio``; ``make eval`` uses ``data/eval-audio``).

Command line::

    python -m luma_rag.datasets.shapes --out data/eval-kit --n 3000 --seed 7331
    python -m luma_rag.eval.model_kit --data data/eval-kit [--audio-data data/eval-audio]

Every figure comes with its sample size; proportions with a 95 % Wilson interval.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from luma_rag.datasets.shapes import ShapeItem, load_manifest
from luma_rag.errors import InvalidInputError

__all__ = ["TARGETS", "evaluate_kit", "main"]

logger = logging.getLogger(__name__)

#: (report key path, comparison, target) of every issue #12 target measured here.
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("clip.t2i_recall@10", ">=", 0.99),
    ("clip.t2i_mrr", ">=", 0.90),
    ("clip.referent_top1", ">=", 0.80),
    ("clip.probe_shape", ">=", 0.90),
    ("llava.accuracy_shape", ">=", 0.90),
    ("llava.accuracy_color", ">=", 0.90),
    ("llava.accuracy_position", ">=", 0.90),
    ("llava.accuracy_count", ">=", 0.90),
    ("llava.accuracy_size", ">=", 0.90),
    ("llava.accuracy_verify_verdict", ">=", 0.95),
    ("llava.n_empty_first_token", "<=", 0.0),
    ("audio.recall@10", ">=", 0.63),
)


def _split(items: Sequence[ShapeItem], name: str) -> list[ShapeItem]:
    out = [it for it in items if it.split == name]
    if not out:
        raise InvalidInputError(f"the corpus has no {name} split; generate a larger one")
    return out


def evaluate_clip(items: Sequence[ShapeItem]) -> dict[str, Any]:
    """The tiny CLIP's held-out figures (test split; probe fitted on the train split)."""
    from luma_rag.encoders.registry import get_encoder
    from luma_rag.training.compositional import evaluate_referents, linear_probe
    from luma_rag.training.evaluate import evaluate_retrieval

    encoder = get_encoder("luma-tiny")
    test, train = _split(items, "test"), _split(items, "train")
    retrieval = evaluate_retrieval(encoder, test)
    referents = evaluate_referents(encoder, test)
    probe = linear_probe(encoder, train, test)
    return {
        "t2i_recall@10": retrieval["t2i_recall@10"],
        "t2i_mrr": retrieval["t2i_mrr"],
        "n_text_queries": retrieval["n_text_queries"],
        "referent_top1": referents["top1"],
        "referent": referents,
        "probe_shape": probe["accuracy"],
        "probe": probe,
    }


def evaluate_llava(items: Sequence[ShapeItem]) -> dict[str, Any]:
    """The tiny LLaVA's held-out accuracy per kind (test split), through ``from_pretrained``."""
    from luma_rag.encoders.registry import PACKAGE_DIR
    from luma_rag.training.llava_eval import evaluate_questions

    return evaluate_questions(
        PACKAGE_DIR / "checkpoints" / "luma-tiny-llava", _split(items, "test")
    )


def evaluate_audio(data: Path) -> dict[str, Any]:
    """Spoken caption → image Recall@10 through the bridge (:func:`run_audio`)."""
    from luma_rag.eval.experiments import run_audio

    with tempfile.TemporaryDirectory(prefix="luma-kit-audio-") as tmp:
        out = run_audio(Path(tmp) / "store", data, 10)
    return {k: out[k] for k in ("recall@10", "n_queries", "n_gallery") if k in out}


def _lookup(report: dict[str, Any], path: str) -> float | None:
    node: Any = report
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return float(node) if isinstance(node, int | float) else None


def verdicts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per :data:`TARGETS` entry: measured value, target, PASS / MISS / not run."""
    rows = []
    for path, op, target in TARGETS:
        value = _lookup(report, path)
        if value is None:
            status = "not run"
        elif (op == ">=" and value >= target) or (op == "<=" and value <= target):
            status = "PASS"
        else:
            status = "MISS"
        rows.append({"metric": path, "value": value, "target": f"{op} {target}", "status": status})
    return rows


def evaluate_kit(data: Path, audio_data: Path | None = None) -> dict[str, Any]:
    """Measure every model of the kit on ``data`` (and audio on ``audio_data``)."""
    items = load_manifest(data)
    report: dict[str, Any] = {"data": str(data), "n_items": len(items)}
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    report["clip"] = evaluate_clip(items)
    seconds["clip"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    report["llava"] = evaluate_llava(items)
    seconds["llava"] = round(time.perf_counter() - t0, 1)
    if audio_data is not None:
        t0 = time.perf_counter()
        report["audio"] = evaluate_audio(audio_data)
        seconds["audio"] = round(time.perf_counter() - t0, 1)
    report["seconds"] = seconds
    report["targets"] = verdicts(report)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints the targets table and writes ``--out`` (JSON)."""
    p = argparse.ArgumentParser(prog="python -m luma_rag.eval.model_kit", description=__doc__)
    p.add_argument("--data", required=True, type=Path, help="held-out LUMA-Shapes corpus")
    p.add_argument("--audio-data", type=Path, default=None, help="corpus made with --audio")
    p.add_argument("--out", type=Path, default=None, help="write the report here (JSON)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    report = evaluate_kit(args.data, args.audio_data)
    for row in report["targets"]:
        value = "-" if row["value"] is None else f"{row['value']:.3f}"
        print(f"{row['metric']:<28} {value:>7}  target {row['target']:<8} {row['status']}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
