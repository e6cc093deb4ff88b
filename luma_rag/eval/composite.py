"""Composite queries on LUMA-Shapes attribute edits: "this image, but <colour>".

For each pair (see :mod:`luma_rag.datasets.edits`) the gallery holds the source and the target
of every pair in the set (2n images); a query is the source image plus a colour modifier, and it
is right when the top hit is the pair's own target. Methods:

* ``image`` — the source alone (finds itself: the floor), ``text`` — the modifier alone;
* ``image+text`` — ``normalize(e(img) + w·e(T(new)))``;
* ``image-old+new`` — ``normalize(e(img) − w·e(T(old)) + w·e(T(new)))`` (the user names both).

The template ``T`` ("{color}" or "a {color} shape") and the weight ``w`` of each composite are
chosen on a validation set (its own seed), then reported once on the test set with 95 % Wilson
intervals, with Safe@1 coverage and precision from the combined radius.

``python -m luma_rag.eval.composite --n 200 --seed 5303 --val-seed 5101 [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from luma_rag.composite import Part, composite_query
from luma_rag.datasets.edits import EditPair, colour_edit_pairs
from luma_rag.engine import Luma

__all__ = ["evaluate_edits", "main", "run_method", "wilson_interval"]

logger = logging.getLogger(__name__)

TEMPLATES: Final = ("{color}", "a {color} shape")
WEIGHTS: Final = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
PartsFn = Callable[[int], list[Part]]


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % (by default) Wilson score interval of a binomial proportion; (nan, nan) for n = 0."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class _Embedded:
    """The set's images and modifier texts, embedded once (the parts are then vectors)."""

    def __init__(self, luma: Luma, pairs: Sequence[EditPair]) -> None:
        enc = luma.encoder
        if enc is None:
            raise RuntimeError("the evaluation store needs an encoder")
        self.pairs = list(pairs)
        self.images = enc.encode_image([p.source for p in pairs])
        words = sorted({p.new_color for p in pairs} | {p.attributes.color for p in pairs})
        self.text = {
            (t, c): v
            for t in TEMPLATES
            for c, v in zip(words, enc.encode_text([t.format(color=c) for c in words]), strict=True)
        }
        self.rho_image = luma.rho.get("image", 0.0)
        self.rho_text = luma.rho.get("text", 0.0)

    def image(self, i: int, weight: float = 1.0) -> Part:
        return Part(vector=self.images[i], weight=weight, radius=self.rho_image)

    def word(self, template: str, color: str, weight: float) -> Part:
        return Part(vector=self.text[(template, color)], weight=weight, radius=self.rho_text)

    def methods(self, template: str, w: float) -> dict[str, PartsFn]:
        pairs = self.pairs
        return {
            "image+text": lambda i: [
                self.image(i),
                self.word(template, pairs[i].new_color, w),
            ],
            "image-old+new": lambda i: [
                self.image(i),
                self.word(template, pairs[i].attributes.color, -w),
                self.word(template, pairs[i].new_color, w),
            ],
        }


def _gallery(root: Path, pairs: Sequence[EditPair], encoder: str) -> Luma:
    luma = Luma.open(root, encoder=encoder)
    paths, ids, metas = [], [], []
    for p in pairs:
        attrs = p.attributes.as_dict()
        paths += [p.source, p.target]
        ids += [f"{p.id}-src", f"{p.id}-tgt"]
        metas += [{**attrs, "role": "source"}, {**attrs, "color": p.new_color, "role": "target"}]
    luma.ingest_images(paths, metadatas=metas, ids=ids)
    return luma


def run_method(luma: Luma, pairs: Sequence[EditPair], parts: PartsFn) -> dict[str, Any]:
    """Top-1 (exact target), colour-and-shape top-1, Recall@5 and Safe@1 of one method."""
    exact, attr, r5, safe, safe_right = 0, 0, 0, 0, 0
    for i, p in enumerate(pairs):
        res = composite_query(luma, parts(i), k=5)
        target = f"{p.id}-tgt"
        top = res.hits[0]
        right = top.id == target
        exact += right
        attr += top.metadata.get("color") == p.new_color and (
            top.metadata.get("shape") == p.attributes.shape
        )
        r5 += target in res.ids
        safe += res.telemetry.safe1
        safe_right += res.telemetry.safe1 and right
    n = len(pairs)
    lo, hi = wilson_interval(exact, n)
    return {
        "n": n,
        "top1": exact / n,
        "top1_ci95": [lo, hi],
        "color_shape_top1": attr / n,
        "recall_at_5": r5 / n,
        "safe1_coverage": safe / n,
        "safe1_precision": safe_right / safe if safe else None,
    }


def _subset(fn: PartsFn, keep: Sequence[int]) -> PartsFn:
    return lambda j: fn(keep[j])


def _select(emb: _Embedded, luma: Luma) -> dict[str, dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for template in TEMPLATES:
        for w in WEIGHTS:
            for name, fn in emb.methods(template, w).items():
                score = run_method(luma, emb.pairs, fn)["top1"]
                if name not in best or score > best[name]["val_top1"]:
                    best[name] = {"template": template, "weight": w, "val_top1": score}
    return best


def evaluate_edits(
    n: int = 200,
    seed: int = 5303,
    val_seed: int = 5101,
    *,
    work: str | Path | None = None,
    encoder: str = "luma-tiny",
) -> dict[str, Any]:
    """Choose each composite's template and weight on ``val_seed``; report on ``seed``.

    Returns:
        ``{"config": ..., "selected": {method: {template, weight, val_top1}},
        "test": {method: run_method(...)}, "test_held_out": same on pairs whose target
        (shape, colour) was never trained on}``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(work) if work is not None else Path(tmp)
        val_pairs = colour_edit_pairs(root / "val", n, val_seed)
        test_pairs = colour_edit_pairs(root / "test", n, seed)
        with _gallery(root / "val-store", val_pairs, encoder) as luma:
            selected = _select(_Embedded(luma, val_pairs), luma)
        results: dict[str, Any] = {}
        held: dict[str, Any] = {}
        with _gallery(root / "test-store", test_pairs, encoder) as luma:
            emb = _Embedded(luma, test_pairs)
            keep = [i for i, p in enumerate(test_pairs) if p.target_split != "train"]
            sub = [test_pairs[i] for i in keep]
            methods: dict[str, PartsFn] = {
                "image": lambda i: [emb.image(i)],
                "text": lambda i: [emb.word("a {color} shape", test_pairs[i].new_color, 1.0)],
            }
            for name, sel in selected.items():
                methods[name] = emb.methods(sel["template"], sel["weight"])[name]
            for name, fn in methods.items():
                results[name] = run_method(luma, test_pairs, fn)
                held[name] = run_method(luma, sub, _subset(fn, keep)) if sub else None
            rho = {"image": emb.rho_image, "text": emb.rho_text}
    return {
        "config": {"n": n, "seed": seed, "val_seed": val_seed, "encoder": encoder, "rho": rho},
        "selected": selected,
        "test": results,
        "test_held_out": held,
    }


def _table(results: dict[str, Any]) -> str:
    rows = ["| method | top-1 (95 % CI) | colour+shape top-1 | R@5 | Safe@1 cov / prec |"]
    rows.append("|---|---|---|---|---|")
    for name, r in results.items():
        if r is None:
            continue
        lo, hi = r["top1_ci95"]
        prec = "—" if r["safe1_precision"] is None else f"{r['safe1_precision']:.2f}"
        rows.append(
            f"| {name} | {r['top1']:.3f} ({lo:.3f}–{hi:.3f}), n={r['n']} | "
            f"{r['color_shape_top1']:.3f} | {r['recall_at_5']:.3f} | "
            f"{r['safe1_coverage']:.2f} / {prec} |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the attribute-edit evaluation and print its tables (JSON with ``--out``)."""
    p = argparse.ArgumentParser(prog="python -m luma_rag.eval.composite", description=__doc__)
    p.add_argument("--n", type=int, default=200, help="pairs per set (default 200)")
    p.add_argument("--seed", type=int, default=5303, help="held-out test seed (default 5303)")
    p.add_argument("--val-seed", type=int, default=5101, help="selection seed (default 5101)")
    p.add_argument("--out", type=Path, help="write metrics.json here")
    args = p.parse_args(argv)
    res = evaluate_edits(args.n, args.seed, args.val_seed)
    print("selected on validation:", json.dumps(res["selected"]))
    print(_table(res["test"]))
    print("\ntargets of held-out (shape, colour) combinations:")
    print(_table(res["test_held_out"]))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "composite.json").write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
