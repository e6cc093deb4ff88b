"""Failure injection (the paper's §XV): break one thing, watch the telemetry that should see it.

* caption swap → ε: :func:`luma_rag.eval.drift.run_drift` with ``swap_fraction`` > 0, compared
  with the clean stream by :func:`caption_swap_row`;
* PQ over-compression → ζ: :func:`pq_overcompression` stores one embedded gallery under
  warm tiers with fewer and fewer PQ bytes per vector;
* outlier embeddings → margins: :func:`outlier_injection` adds corrupted embeddings (gallery
  vectors plus noise, optionally blended) that compete with the real items, and compares the
  margin γ, its spread, Safe@1 and top-1 accuracy with the clean store.

Each returns what it observed; nothing here asserts a direction. Stores live in a work
directory given by the caller and are built with ``Luma.add_vectors`` from precomputed
embeddings (no encoder needed), with the text ρ passed in explicitly.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag.config import LumaConfig
from luma_rag.datasets.attributes import relevant
from luma_rag.datasets.captions import parse_query_attributes
from luma_rag.encoders.base import Encoder
from luma_rag.engine import Luma
from luma_rag.errors import InvalidInputError
from luma_rag.eval.experiments import _test_items
from luma_rag.eval.metrics import coverage_risk, recall_at_k
from luma_rag.eval.spill import SpillCorpus
from luma_rag.memory.warm import WarmTierConfig

__all__ = [
    "GalleryVectors",
    "caption_swap_row",
    "embed_test_gallery",
    "outlier_injection",
    "pq_overcompression",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class GalleryVectors:
    """Embedded test-split images and their caption queries.

    Attributes:
        ids: gallery ids. vectors: float32 ``(n, dim)``. attrs: attributes per item.
        queries: caption per query. query_vectors: float32 ``(m, dim)``.
    """

    ids: list[str]
    vectors: np.ndarray
    attrs: list[dict[str, Any]]
    queries: list[str]
    query_vectors: np.ndarray

    @cached_property
    def query_attrs(self) -> list[dict[str, Any]]:
        """Attributes each query names."""
        return [parse_query_attributes(q) for q in self.queries]


def embed_test_gallery(data_dir: PathLike, encoder: Encoder) -> GalleryVectors:
    """Embed a corpus's test images and their primary captions (the baseline's queries)."""
    items = _test_items(data_dir, "image")
    vectors = np.concatenate(
        [
            encoder.encode_image([it.image_path for it in items[i : i + 64]])
            for i in range(0, len(items), 64)
        ]
    )
    queries = [it.caption for it in items]
    return GalleryVectors(
        [it.id for it in items],
        vectors,
        [it.attributes.as_dict() for it in items],
        queries,
        encoder.encode_text(queries),
    )


def caption_swap_row(clean: dict[str, Any], swapped: dict[str, Any]) -> dict[str, Any]:
    """Compare two :func:`~luma_rag.eval.drift.run_drift` results (clean vs caption swap)."""

    def last(run: dict[str, Any], key: str) -> float:
        return float(run["stages"][-1][key])

    return {
        "injection": f"caption swap ({swapped['config']['swap_fraction']:.0%} of pairs)",
        "watch": "ε (bridge drift)",
        "baseline": {
            "epsilon_mean": clean["epsilon_mean"],
            "query_shift_max_mean": clean["query_shift_max_mean"],
            "top1_accuracy": last(clean, "top1_accuracy"),
        },
        "injected": {
            "epsilon_mean": swapped["epsilon_mean"],
            "query_shift_max_mean": swapped["query_shift_max_mean"],
            "top1_accuracy": last(swapped, "top1_accuracy"),
        },
    }


def pq_overcompression(
    work_dir: PathLike,
    corpus: SpillCorpus,
    dims_per_subquantizer: Sequence[int],
    *,
    hot_budget: int,
    rho: float,
    k: int = 10,
) -> list[dict[str, Any]]:
    """Store ``corpus`` under warm tiers with fewer PQ bytes per vector; record ζ and recall.

    Args:
        work_dir: a directory for the stores (one sub-directory each).
        corpus: an embedded near-duplicate gallery
            (:func:`~luma_rag.eval.spill.build_spill_corpus`).
        dims_per_subquantizer: settings to sweep; bytes per code = dim / value.
        hot_budget: small, so that most of the gallery is PQ-coded in the warm tier.
        rho: text ρ used for the queries' certificate.
        k: hits per query.

    Returns:
        One row per setting: ``dims_per_subquantizer``, ``code_bytes``, ``warm``,
        ``warm_trained``, ``zeta_mean`` / ``zeta_max`` (warm tier), ``query_zeta_mean``,
        ``group_recall@k``, ``safek_coverage``, ``safe1`` (coverage / precision).

    Raises:
        InvalidInputError: an empty sweep.
    """
    if not dims_per_subquantizer:
        raise InvalidInputError("pq_overcompression needs at least one dims_per_subquantizer")
    dim = corpus.vectors.shape[1]
    rows = []
    for dps in dims_per_subquantizer:
        warm = WarmTierConfig(  # 8-bit codes: bytes per code = dim / dps, as documented
            min_train=256, dims_per_subquantizer=dps, nbits=8, background=False
        )
        cfg = LumaConfig(dim=dim, hot_budget=hot_budget, warm=warm)
        with Luma.open(Path(work_dir) / f"pq-{dps}", cfg) as luma:
            corpus.store(luma)
            stats = luma.stats()
            wt = luma.memory.warm
            z = wt.zeta_of(wt.keys())
            rel, safe1, safek, top1, qz = [], [], [], [], []
            for qi, q in enumerate(corpus.query_vectors):
                res = luma.search(q, k, rho=rho)
                a, g = corpus.relevance(qi, res.ids)
                rel.append(g)
                top1.append(bool(a[:1].any()))
                safe1.append(res.telemetry.safe1)
                safek.append(res.telemetry.safek)
                qz.append(res.telemetry.zeta_mean)
        rows.append(
            {
                "dims_per_subquantizer": dps,
                "code_bytes": stats["warm_code_bytes"],
                "warm": stats["warm"],
                "warm_trained": stats["warm_trained"],
                "zeta_mean": float(z.mean()) if z.size else 0.0,
                "zeta_max": float(z.max()) if z.size else 0.0,
                "query_zeta_mean": float(np.mean(qz)),
                f"group_recall@{k}": recall_at_k(rel, k),
                "safek_coverage": float(np.mean(safek)),
                "safe1": coverage_risk(np.array(safe1, bool), np.array(top1, bool)),
            }
        )
        logger.info("pq sweep: %s", rows[-1])
    return rows


def _margin_run(luma: Luma, g: GalleryVectors, rho: float, k: int) -> dict[str, Any]:
    margins, safe1, top1, outlier_top1 = [], [], [], []
    attrs = dict(zip(g.ids, g.attrs, strict=True))
    for q, qa in zip(g.query_vectors, g.query_attrs, strict=True):
        res = luma.search(q, k, rho=rho)
        margins.append(res.telemetry.margin_top2)
        safe1.append(res.telemetry.safe1)
        first = res.ids[0] if res.ids else None
        outlier_top1.append(first is not None and first not in attrs)
        top1.append(first in attrs and relevant(qa, attrs[first]))
    m = np.array(margins, dtype=np.float64)
    mean = float(np.nanmean(m))
    return {
        "margin_mean": mean,
        "margin_std": float(np.nanstd(m)),
        "margin_cv": float(np.nanstd(m) / mean) if mean > 0 else float("nan"),
        "margin_p10": float(np.nanpercentile(m, 10)),
        "margin_p90": float(np.nanpercentile(m, 90)),
        "top1_accuracy": float(np.mean(top1)),
        "outlier_top1_share": float(np.mean(outlier_top1)),
        "safe1": coverage_risk(np.array(safe1, bool), np.array(top1, bool)),
    }


def outlier_injection(
    work_dir: PathLike,
    gallery: GalleryVectors,
    *,
    fraction: float,
    rho: float,
    k: int = 10,
    blend: int = 1,
    noise: float = 0.3,
    seed: int = 0,
) -> dict[str, Any]:
    """Add ``fraction · n`` outlier vectors to the gallery; compare margins with the clean one.

    An outlier is ``normalize(mean of `blend` random gallery vectors + a noise vector of norm
    `noise`)``: with ``blend=1`` a corrupted copy of a real item (a bad decode, a broken
    encoder call), with more a "hub" between several. It is never relevant.

    Returns:
        ``{"baseline": ..., "injected": ..., "n_outliers": int, "fraction": float}``, each run
        with margin mean / std / cv / p10 / p90, top-1 accuracy, the share of queries whose
        top-1 is an outlier, and Safe@1 coverage / precision.

    Raises:
        InvalidInputError: ``fraction`` not in (0, 1], or ``blend`` < 2.
    """
    if not 0.0 < fraction <= 1.0:
        raise InvalidInputError(f"fraction must be in (0, 1], got {fraction!r}")
    if blend < 1:
        raise InvalidInputError(f"blend must be >= 1, got {blend!r}")
    rng = np.random.default_rng(seed)
    n, dim = gallery.vectors.shape
    n_out = max(1, round(fraction * n))
    picks = np.stack([rng.choice(n, size=blend, replace=False) for _ in range(n_out)])
    hubs = gallery.vectors[picks].mean(axis=1)
    jitter = rng.standard_normal(hubs.shape)
    hubs += jitter * (noise / np.linalg.norm(jitter, axis=1, keepdims=True))
    hubs /= np.linalg.norm(hubs, axis=1, keepdims=True)
    out: dict[str, Any] = {"n_outliers": n_out, "fraction": fraction}
    for name, extra in (("baseline", None), ("injected", hubs)):
        with Luma.open(Path(work_dir) / f"outliers-{name}", LumaConfig(dim=dim)) as luma:
            luma.add_vectors(gallery.vectors, ids=gallery.ids, modality="image")
            if extra is not None:
                luma.add_vectors(extra, ids=[f"outlier-{i}" for i in range(len(extra))])
            out[name] = _margin_run(luma, gallery, rho, k)
    return out
