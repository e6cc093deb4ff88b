"""Experiment runners: a real store, the shipped offline models, held-out LUMA-Shapes data.

Each runner builds a fresh store from the TEST split of a corpus (its (shape, colour)
combinations are held out of training), queries it, and scores the answers with group-aware
relevance (:func:`~luma_rag.datasets.relevant` on
:func:`~luma_rag.datasets.parse_query_attributes` of the query's caption): "a red circle"
is answered by any single red circle in the gallery.

Safe@1 is measured, not assumed (DESIGN.md, "Calibration is measured"): every query runs
twice, once with the store's calibrated ρ and once with ρ = 0 (the vacuous "margin > 0"
certificate), and for each the precision of top-1 among flagged queries is reported against
coverage (share flagged).

Usage::

    python -m luma_rag.datasets.shapes --out /tmp/shapes --n 1200 --seed 7
    python -m luma_rag.eval.experiments --data /tmp/shapes --out /tmp/eval
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from luma_rag._json import to_jsonable
from luma_rag.datasets.attributes import relevant
from luma_rag.datasets.captions import parse_query_attributes
from luma_rag.datasets.manifest import ShapeItem, load_manifest
from luma_rag.encoders.base import Encoder
from luma_rag.engine import Luma
from luma_rag.errors import ConfigError, InvalidInputError
from luma_rag.eval.metrics import coverage_risk, latency_summary, mrr, ndcg_at_k, recall_at_k
from luma_rag.results import QueryResult

__all__ = ["ingest_items", "main", "run_audio", "run_baseline", "run_video"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
#: One query: runs it against the store with a given ρ (None: the store's calibrated one).
QueryFn = Callable[[Luma, float | None], QueryResult]


@dataclass
class _Runs:
    """Per-query outcomes of one ρ setting."""

    rel: list[np.ndarray] = field(default_factory=list)
    safe1: list[bool] = field(default_factory=list)
    rho: list[float] = field(default_factory=list)
    eps: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)
    search_ms: list[float] = field(default_factory=list)


def _test_items(data_dir: PathLike, need: Literal["image", "audio", "video"]) -> list[ShapeItem]:
    items = [it for it in load_manifest(Path(data_dir)) if it.split == "test"]
    if not items:
        raise InvalidInputError(f"{data_dir} has no test-split items; generate a larger corpus")
    if need == "audio" and any(it.audio is None for it in items):
        raise InvalidInputError(
            f"{data_dir} has no audio; generate it with `python -m luma_rag.datasets.shapes "
            "--audio ...`"
        )
    if need == "video" and any(it.video is None for it in items):
        raise InvalidInputError(
            f"{data_dir} has no video; generate it with `python -m luma_rag.datasets.shapes "
            "--video ...`"
        )
    return items


def _open_fresh(
    store_dir: PathLike, encoder: Encoder | str = "luma-tiny", audio_encoder: Encoder | None = None
) -> Luma:
    """A new store with the shipped offline encoders; refuses a store that holds items."""
    luma = Luma.open(store_dir, encoder=encoder, audio_encoder=audio_encoder)
    if len(luma):
        luma.close()
        raise InvalidInputError(
            f"{store_dir} already holds {len(luma)} items; pass an empty or new directory"
        )
    return luma


def _run_queries(
    luma: Luma,
    queries: Sequence[tuple[QueryFn, dict[str, Any]]],
    gallery: dict[str, dict[str, Any]],
    rhos: dict[str, float | None],
) -> dict[str, _Runs]:
    """Run every query under every ρ setting; record relevance, Safe@1 and latency."""
    runs = {name: _Runs() for name in rhos}
    for fn, attrs in queries:
        for name, rho in rhos.items():
            t0 = time.perf_counter()
            res = fn(luma, rho)
            wall = (time.perf_counter() - t0) * 1000.0
            r = runs[name]
            r.rel.append(np.array([relevant(attrs, gallery[h.id]) for h in res.hits], dtype=bool))
            r.safe1.append(bool(res.telemetry.safe1))
            r.rho.append(res.telemetry.rho)
            r.eps.append(res.telemetry.epsilon)
            r.wall_ms.append(wall)
            r.search_ms.append(res.telemetry.latency_ms)
    return runs


def _score(
    runs: dict[str, _Runs],
    queries: Sequence[tuple[QueryFn, dict[str, Any]]],
    gallery: dict[str, dict[str, Any]],
    k: int,
) -> dict[str, Any]:
    """Ranking metrics (from the first ρ setting: ρ does not change rankings) + Safe@1."""
    first = next(iter(runs.values()))
    n_rel = [sum(relevant(a, g) for g in gallery.values()) for _, a in queries]
    top1 = np.array([bool(r[:1].any()) for r in first.rel], dtype=bool)
    out: dict[str, Any] = {
        "n_queries": len(queries),
        "n_gallery": len(gallery),
        "k": k,
        f"recall@{k}": recall_at_k(first.rel, k),
        f"mrr@{k}": mrr([r[:k] for r in first.rel]),
        f"ndcg@{k}": ndcg_at_k(first.rel, k, n_relevant=n_rel),
        "top1_accuracy": float(top1.mean()),
        "mean_relevant_per_query": float(np.mean(n_rel)),
        "safe1": {},
    }
    for name, r in runs.items():
        if any(len(a) != len(b) or (a != b).any() for a, b in zip(r.rel, first.rel, strict=True)):
            logger.warning("rankings differ between rho settings (%s)", name)
        cov = coverage_risk(np.array(r.safe1, dtype=bool), top1)
        cov["rho"] = float(np.mean(r.rho))
        cov["epsilon_q_mean"] = float(np.mean(r.eps))
        out["safe1"][name] = cov
    out["latency_ms"] = {
        "end_to_end": latency_summary(first.wall_ms),
        "search": latency_summary(first.search_ms),
    }
    return out


def _text_query(text: str, k: int) -> QueryFn:
    return lambda luma, rho: luma.query(text, k=k, rho=rho)


def _audio_query(path: PathLike, k: int) -> QueryFn:
    return lambda luma, rho: luma.query(audio=path, k=k, rho=rho)


def ingest_items(luma: Luma, items: Sequence[ShapeItem], batch: int = 64) -> None:
    """Ingest LUMA-Shapes items' images with their captions, ids and split, in batches."""
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        luma.ingest_images(
            [it.image_path for it in chunk],
            captions=[it.caption for it in chunk],
            metadatas=[{"split": it.split} for it in chunk],
            ids=[it.id for it in chunk],
        )


def run_baseline(store_dir: PathLike, data_dir: PathLike, k: int = 10) -> dict[str, Any]:
    """Text → image on the test split: Recall@k, MRR@k, nDCG@k, Safe@1 (ρ calibrated / 0).

    Args:
        store_dir: an empty or new directory for the store.
        data_dir: a LUMA-Shapes corpus (``python -m luma_rag.datasets.shapes``).
        k: cut-off of the ranking metrics and of each query.

    Returns:
        A JSON-able dict: ranking metrics, ``safe1.{calibrated,rho0}`` (coverage, precision,
        risk, n, n_flagged, rho), ``latency_ms.{end_to_end,search}`` (p50/p95/p99) of the
        calibrated run, ``seconds`` spent ingesting and querying.
    """
    items = _test_items(data_dir, "image")
    t0 = time.perf_counter()
    with _open_fresh(store_dir) as luma:
        ingest_items(luma, items)
        t1 = time.perf_counter()
        gallery = {it.id: it.attributes.as_dict() for it in items}
        queries = [
            (_text_query(it.captions[0], k), parse_query_attributes(it.captions[0])) for it in items
        ]
        runs = _run_queries(luma, queries, gallery, {"calibrated": None, "rho0": 0.0})
        t2 = time.perf_counter()
        out = _score(runs, queries, gallery, k)
        out["rho_store"] = dict(luma.rho)
    out["experiment"] = "text->image"
    out["seconds"] = {"ingest": t1 - t0, "queries": t2 - t1}
    return out


def run_audio(
    store_dir: PathLike,
    data_dir: PathLike,
    k: int = 10,
    *,
    fit_bridge: bool = True,
    clap_model: str | Path = "luma-tiny-clap",
) -> dict[str, Any]:
    """Spoken caption → image through the CLAP→CLIP bridge, on the test split.

    Three ρ settings are compared: the store's (``luma.rho["audio"]``, else
    ``SafetyConfig.rho``), 0, and ``val_calibrated``: the 0.9-quantile of
    ‖T·CLAP(audio) − CLIP(caption)‖ over the corpus's val-split items (held out of the
    bridge fit and of the test gallery).

    Args:
        store_dir: an empty or new directory for the store.
        data_dir: a LUMA-Shapes corpus generated with ``--audio``.
        k: cut-off.
        fit_bridge: also feed the bridge (CLAP-audio, CLIP-text) pairs of the corpus's
            train-split items and refresh it; False leaves only the store's warm start
            from caption text pairs.
        clap_model: The CLAP: a registry name or a checkpoint directory (a candidate).

    Returns:
        As :func:`run_baseline`, plus ``bridge`` (pairs added, version, ε) and
        ``rho_audio_val``.
    """
    from luma_rag.calibration import radius_from_pairs
    from luma_rag.encoders.clap.backend import ClapEncoder
    from luma_rag.encoders.registry import get_encoder

    test = _test_items(data_dir, "audio")
    items = load_manifest(Path(data_dir))
    t0 = time.perf_counter()
    clip, clap = get_encoder("luma-tiny"), ClapEncoder(clap_model)
    with _open_fresh(store_dir, clip, clap) as luma:
        ingest_items(luma, test)
        bridge = luma.bridge
        if bridge is None:  # an audio encoder gives the store a bridge
            raise ConfigError("this experiment needs a store with a CLAP->CLIP bridge")
        train = _with_audio(items, "train") if fit_bridge else []
        if train:
            luma.add_bridge_pairs(
                clap.encode_audio([p for _, p in train]),
                clip.encode_text([it.caption for it, _ in train]),
            )
            bridge.refresh()  # solve T with the audio pairs now, not at the next cadence
        val = _with_audio(items, "val")
        rho_val = (
            radius_from_pairs(
                bridge.project(clap.encode_audio([p for _, p in val])),
                clip.encode_text([it.caption for it, _ in val]),
            )
            if val
            else math.nan
        )
        t1 = time.perf_counter()
        gallery = {it.id: it.attributes.as_dict() for it in test}
        queries = [
            (_audio_query(p, k), parse_query_attributes(it.caption))
            for it, p in _with_audio(test, "test")
        ]
        rhos: dict[str, float | None] = {"store_default": None, "rho0": 0.0}
        if math.isfinite(rho_val):
            rhos["val_calibrated"] = rho_val
        runs = _run_queries(luma, queries, gallery, rhos)
        t2 = time.perf_counter()
        out = _score(runs, queries, gallery, k)
        out["rho_store"] = dict(luma.rho)
        out["bridge"] = {
            "pairs_added": len(train),
            "pairs_seen": bridge.pairs_seen,
            "version": bridge.version,
            "epsilon": bridge.epsilon,
        }
    out["experiment"] = "audio->image (bridge)"
    out["rho_audio_val"] = rho_val
    out["n_val_pairs"] = len(val)
    out["seconds"] = {"ingest_and_bridge": t1 - t0, "queries": t2 - t1}
    return out


def _with_audio(items: Sequence[ShapeItem], split: str) -> list[tuple[ShapeItem, Path]]:
    return [(it, it.audio_path) for it in items if it.split == split and it.audio_path is not None]


def run_video(store_dir: PathLike, data_dir: PathLike, k: int = 10) -> dict[str, Any]:
    """Text → video on the test split; the query is the primary caption (it names the motion).

    Args:
        store_dir: an empty or new directory for the store.
        data_dir: a LUMA-Shapes corpus generated with ``--video``.
        k: cut-off.

    Returns:
        As :func:`run_baseline`.
    """
    items = _test_items(data_dir, "video")
    t0 = time.perf_counter()
    with _open_fresh(store_dir) as luma:
        for it in items:
            if it.video_path is None:  # _test_items keeps items with a clip only
                raise InvalidInputError(f"item {it.id} has no video clip")
            luma.ingest(video=it.video_path, caption=it.caption, id=it.id)
        t1 = time.perf_counter()
        gallery = {it.id: it.attributes.as_dict() for it in items}
        queries = [(_text_query(it.caption, k), parse_query_attributes(it.caption)) for it in items]
        runs = _run_queries(luma, queries, gallery, {"calibrated": None, "rho0": 0.0})
        t2 = time.perf_counter()
        out = _score(runs, queries, gallery, k)
        out["rho_store"] = dict(luma.rho)
    out["experiment"] = "text->video"
    out["seconds"] = {"ingest": t1 - t0, "queries": t2 - t1}
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m luma_rag.eval.experiments",
        description="Run LUMA-RAG retrieval experiments on LUMA-Shapes corpora.",
    )
    p.add_argument("--data", type=Path, help="corpus for the text->image baseline")
    p.add_argument("--audio-data", type=Path, help="corpus generated with --audio")
    p.add_argument("--video-data", type=Path, help="corpus generated with --video")
    p.add_argument("--out", type=Path, required=True, help="directory for metrics.json")
    p.add_argument("--k", type=int, default=10, help="cut-off (default 10)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: runs the experiments whose corpora are given, prints and writes JSON."""
    args = _parser().parse_args(argv)
    if not (args.data or args.audio_data or args.video_data):
        _parser().error("give at least one of --data, --audio-data, --video-data")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    runners: list[tuple[str, Path | None, Callable[[PathLike, PathLike, int], dict[str, Any]]]] = [
        ("baseline", args.data, run_baseline),
        ("audio", args.audio_data, run_audio),
        ("video", args.video_data, run_video),
    ]
    for name, data, fn in runners:
        if data is None:
            continue
        with tempfile.TemporaryDirectory(prefix=f"luma-eval-{name}-") as tmp:
            results[name] = fn(Path(tmp) / "store", data, args.k)
    text = json.dumps(to_jsonable(results), indent=2)
    (args.out / "metrics.json").write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
