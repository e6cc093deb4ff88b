"""Why does the tiny CLIP's shape probe miss on unseen shape/colour combinations? (issue #12)

Diagnosis on a held-out LUMA-Shapes corpus (fit on its train split = seen combinations,
score on its test split = unseen ones, as :func:`luma_rag.training.compositional.linear_probe`):

* the ridge shape probe on the CLIP's image embedding: confusion matrix and accuracy by size,
  colour, count and position, and which shape pairs it confuses;
* the same probe on the vision tower's other features: the pooled token before the
  projection and the final patch tokens (is shape lost in the tower or only in the embedding?);
* upper bounds: the probe on raw pixels, and a small CNN trained supervised on shape alone on
  a training corpus's train split (the same held-out combinations), scored on the same items.

Run (one thread; a few minutes)::

    python scripts/diagnose_clip_shape.py --heldout DIR --train-corpus DIR16K \\
        --weights luma_rag/encoders/checkpoints/luma-tiny-clip/open_clip_model.safetensors \\
        --out diag.json

``--tower luma-tiny-clip [--tower-config FILE]`` also trains that architecture's image tower
with a linear head the same way as the CNN (``--skip-cnn`` leaves the CNN out). Logs a summary
and writes every figure as JSON. Nothing here is imported by the library.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag.datasets.shapes import ShapeItem, load_manifest
from luma_rag.datasets.vocab import SHAPES
from luma_rag.encoders._images import load_image
from luma_rag.encoders.open_clip_backend import import_open_clip
from luma_rag.encoders.registry import ensure_open_clip_configs
from luma_rag.training.clip_data import load_init
from luma_rag.training.compositional import wilson

logger = logging.getLogger(__name__)

_BREAKDOWNS = ("size", "color", "count", "position")


def _pixels(items: Sequence[ShapeItem], transform: Any, torch: Any) -> Any:
    return torch.stack([transform(load_image(it.image_path)) for it in items])


def _features(model: Any, pixels: Any, torch: Any) -> dict[str, np.ndarray]:
    """Embedding (unit), pooled token before the projection, and the final patch tokens."""
    visual = model.visual
    out: dict[str, list[np.ndarray]] = {"embedding": [], "pooled_pre_proj": [], "patch_tokens": []}
    visual.output_tokens = True
    proj, visual.proj = visual.proj, None
    try:
        with torch.no_grad():
            for i in range(0, len(pixels), 256):
                pooled, tokens = visual(pixels[i : i + 256])
                emb = torch.nn.functional.normalize(pooled @ proj, dim=-1)
                out["embedding"].append(emb.numpy())
                out["pooled_pre_proj"].append(pooled.numpy())
                out["patch_tokens"].append(tokens.flatten(1).numpy())
    finally:
        visual.proj = proj
        visual.output_tokens = False
    return {k: np.concatenate(v) for k, v in out.items()}


def _ridge(x_fit: np.ndarray, y: np.ndarray, x_test: np.ndarray, lam: float) -> np.ndarray:
    """Ridge onto one-hot targets with a bias, primal or dual by shape; arg-max classes."""
    mu, sd = x_fit.mean(0), x_fit.std(0) + 1e-6
    a = (x_fit - mu) / sd
    b = (x_test - mu) / sd
    target = np.eye(len(SHAPES))[y]
    target = target - target.mean(0)
    if a.shape[1] <= a.shape[0]:
        w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ target)
        return np.argmax(b @ w, axis=1)
    alpha = np.linalg.solve(a @ a.T + lam * np.eye(len(a)), target)
    return np.argmax((b @ a.T) @ alpha, axis=1)


def _pick_lambda(x: np.ndarray, y: np.ndarray, grid: Sequence[float]) -> float:
    """The ridge penalty with the best 2-fold accuracy on the fit set (never the test set)."""
    rng = np.random.default_rng(0)
    half = rng.permutation(len(x)) < len(x) // 2
    scores = []
    for lam in grid:
        acc = 0.0
        for fold in (half, ~half):
            acc += float(np.mean(_ridge(x[fold], y[fold], x[~fold], lam) == y[~fold]))
        scores.append(acc)
    return float(grid[int(np.argmax(scores))])


def _rate(hits: np.ndarray) -> dict[str, Any]:
    k, n = int(hits.sum()), int(hits.size)
    lo, hi = wilson(k, n)
    return {"acc": round(k / n, 4) if n else None, "n": n, "wilson95": [round(lo, 3), round(hi, 3)]}


def _breakdown(pred: np.ndarray, items: Sequence[ShapeItem]) -> dict[str, Any]:
    truth = np.array([SHAPES.index(it.attributes.shape) for it in items])
    hits = pred == truth
    out: dict[str, Any] = {"all": _rate(hits)}
    for name in ("shape", *_BREAKDOWNS):
        values = np.array([str(getattr(it.attributes, name)) for it in items])
        out[f"by_{name}"] = {v: _rate(hits[values == v]) for v in sorted(set(values))}
    combos = np.array([f"{it.attributes.color} {it.attributes.shape}" for it in items])
    out["by_combination"] = {c: _rate(hits[combos == c]) for c in sorted(set(combos))}
    confusion = np.zeros((len(SHAPES), len(SHAPES)), dtype=int)
    np.add.at(confusion, (truth, pred), 1)
    out["confusion"] = {"rows_true_cols_pred": list(SHAPES), "matrix": confusion.tolist()}
    errors = [
        (f"{SHAPES[t]}->{SHAPES[p]}", int(confusion[t, p]))
        for t in range(len(SHAPES))
        for p in range(len(SHAPES))
        if t != p and confusion[t, p]
    ]
    out["errors_by_pair"] = dict(sorted(errors, key=lambda e: -e[1]))
    return out


def _probe(
    x_fit: np.ndarray, fit: Sequence[ShapeItem], x_test: np.ndarray, test: Sequence[ShapeItem]
) -> dict[str, Any]:
    y = np.array([SHAPES.index(it.attributes.shape) for it in fit])
    lam = _pick_lambda(x_fit, y, (1e-2, 1.0, 1e2, 1e3, 1e4))
    out = _breakdown(_ridge(x_fit, y, x_test, lam), test)
    out["lambda"] = lam
    out["dim"] = int(x_fit.shape[1])
    return out


def _cnn(torch: Any, width: int) -> Any:
    nn = torch.nn
    layers: list[Any] = []
    c_in = 3
    for c in (width, 2 * width, 4 * width):
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
        layers += [nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
        c_in = c
    return nn.Sequential(
        *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, len(SHAPES))
    )


def _tower_net(visual: Any, dim: int, torch: Any) -> Any:
    """An open_clip image tower with a linear shape head (the supervised ViT bound)."""
    return torch.nn.Sequential(visual, torch.nn.Linear(dim, len(SHAPES)))


def _train_cnn(
    pixels: Any, labels: Any, epochs: int, width: int, torch: Any, net: Any = None
) -> Any:
    from luma_rag.training.clip_data import shift

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = _cnn(torch, width) if net is None else net
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * (len(pixels) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(len(pixels), generator=gen)
        losses = []
        for b in range(len(pixels) // 128):
            idx = order[b * 128 : (b + 1) * 128]
            loss = torch.nn.functional.cross_entropy(
                net(shift(pixels[idx], 4, gen, torch)), labels[idx]
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        logger.info("cnn epoch %d loss %.4f", epoch + 1, float(np.mean(losses)))
    net.eval()
    return net


def _tower(
    args: Any,
    train: Sequence[ShapeItem],
    labels: Any,
    fit: Sequence[ShapeItem],
    test: Sequence[ShapeItem],
    torch: Any,
    open_clip: Any,
) -> dict[str, Any]:
    """Train ``args.tower``'s image tower + linear head on shape alone; head and probe figures."""
    from luma_rag.encoders.registry import add_model_config

    started = time.perf_counter()
    if args.tower_config is not None:
        add_model_config(args.tower_config)
    ensure_open_clip_configs(open_clip)
    torch.manual_seed(0)
    model, _, transform = open_clip.create_model_and_transforms(args.tower)
    dim = int(model.visual.proj.shape[1])
    net = _train_cnn(
        _pixels(train, transform, torch),
        labels,
        args.cnn_epochs,
        0,
        torch,
        net=_tower_net(model.visual, dim, torch),
    )
    px_fit, px_test = _pixels(fit, transform, torch), _pixels(test, transform, torch)
    with torch.no_grad():
        emb = {k: net[0](v).numpy() for k, v in (("fit", px_fit), ("test", px_test))}
        head = net[1](torch.from_numpy(emb["test"])).argmax(1).numpy()
    return {
        "model": args.tower,
        "epochs": args.cnn_epochs,
        "seconds": round(time.perf_counter() - started, 1),
        "head_unseen": _breakdown(head, test),
        "probe_unseen": _probe(emb["fit"], fit, emb["test"], test),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--heldout", required=True, type=Path, help="held-out corpus directory")
    p.add_argument("--train-corpus", type=Path, help="corpus whose train split trains the CNN")
    p.add_argument("--weights", required=True, type=Path, help="open_clip safetensors")
    p.add_argument("--model", default="luma-tiny-clip")
    p.add_argument("--cnn-epochs", type=int, default=6)
    p.add_argument("--cnn-width", type=int, default=16)
    p.add_argument(
        "--tower",
        default=None,
        help="also train this open_clip model's image "
        "tower supervised on shape (same split and schedule as the CNN)",
    )
    p.add_argument("--tower-config", type=Path, default=None, help="its architecture JSON")
    p.add_argument("--skip-cnn", action="store_true")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch, open_clip = import_open_clip()
    torch.set_num_threads(1)
    ensure_open_clip_configs(open_clip)
    model, _, transform = open_clip.create_model_and_transforms(args.model)
    load_init(model, args.weights, torch)
    model.eval()
    items = load_manifest(args.heldout)
    fit = [it for it in items if it.split == "train"]
    test = [it for it in items if it.split == "test"]
    px_fit, px_test = _pixels(fit, transform, torch), _pixels(test, transform, torch)
    report: dict[str, Any] = {"heldout": str(args.heldout), "n_fit": len(fit), "n_test": len(test)}
    started = time.perf_counter()
    f_fit, f_test = _features(model, px_fit, torch), _features(model, px_test, torch)
    for name in f_fit:
        report[f"probe_{name}"] = _probe(f_fit[name], fit, f_test[name], test)
        logger.info("probe %s: %s", name, report[f"probe_{name}"]["all"])
    flat = {k: v.flatten(1).numpy() for k, v in (("fit", px_fit), ("test", px_test))}
    report["probe_raw_pixels"] = _probe(flat["fit"], fit, flat["test"], test)
    logger.info("probe raw pixels: %s", report["probe_raw_pixels"]["all"])
    report["probe_seconds"] = round(time.perf_counter() - started, 1)
    if args.train_corpus is not None:
        train = [it for it in load_manifest(args.train_corpus) if it.split == "train"]
        labels = torch.tensor([SHAPES.index(it.attributes.shape) for it in train])
        if args.tower is not None:
            report["tower"] = _tower(args, train, labels, fit, test, torch, open_clip)
    if args.train_corpus is not None and not args.skip_cnn:
        started = time.perf_counter()
        net = _train_cnn(
            _pixels(train, transform, torch), labels, args.cnn_epochs, args.cnn_width, torch
        )
        with torch.no_grad():
            pred = {k: net(v).argmax(1).numpy() for k, v in (("fit", px_fit), ("test", px_test))}
        report["cnn"] = {
            "train_items": len(train),
            "epochs": args.cnn_epochs,
            "width": args.cnn_width,
            "seconds": round(time.perf_counter() - started, 1),
            "heldout_test_unseen": _breakdown(pred["test"], test),
            "heldout_train_seen": _breakdown(pred["fit"], fit)["all"],
        }
        logger.info("cnn unseen: %s", report["cnn"]["heldout_test_unseen"]["all"])
    args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
