"""Experiment (B), memory spill: near-duplicate groups in a store whose hot tier overflows.

``n_base`` held-out (test-split) LUMA-Shapes images, each augmented into ``copies``
near-duplicates (:mod:`luma_rag.eval.augment`; the paper: 31 × 20 = 620), go into a store with
``hot_budget`` items of HNSW; the rest spill to the warm tier, which is IVF-PQ once it holds
``warm_min_train`` items (below that it is exact, and ζ = 0). Text queries (the base items'
captions) are scored two ways:

* ``attribute`` — group-aware relevance as in :mod:`luma_rag.eval.experiments`: every item
  whose attributes match what the caption names is relevant;
* ``group`` — only the query's own near-duplicate group (``copies`` items) is relevant.

Reported beside them: ζ (the warm items' PQ reconstruction error, mean / max over the tier and
as seen by the queries' candidates), hot / warm counts before and after the queries (queries
promote warm items that keep being hit), the share of hits served from the warm tier, Safe@1
precision / coverage with the calibrated text ρ and with ρ = 0, and latency per stage.

The gallery is embedded once (:func:`build_spill_corpus`) and stored with
``Luma.add_vectors`` — exactly what ``Luma.ingest_images`` does after encoding — so the same
vectors serve the PQ over-compression sweep of :mod:`luma_rag.eval.failures`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag._config import ConfigBase, check
from luma_rag.config import LumaConfig
from luma_rag.datasets.attributes import relevant
from luma_rag.datasets.captions import parse_query_attributes
from luma_rag.encoders.base import Encoder
from luma_rag.engine import Luma
from luma_rag.errors import InvalidInputError
from luma_rag.eval.augment import NearDuplicate, write_near_duplicates
from luma_rag.eval.experiments import _test_items
from luma_rag.eval.latency import stage_latency
from luma_rag.eval.metrics import coverage_risk, ranking_summary
from luma_rag.memory.warm import WarmTierConfig

__all__ = ["SpillCorpus", "SpillExperimentConfig", "build_spill_corpus", "run_spill"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
_BATCH = 64


@dataclass(frozen=True)
class SpillExperimentConfig(ConfigBase):
    """Settings of the memory-spill experiment (defaults: the paper's 31 × 20, budget 500).

    Attributes:
        n_base: held-out images augmented (the first ``n_base`` of the test split).
        copies: near-duplicates per image (copy 0 is the original).
        hot_budget: hot-tier capacity; the rest spills to warm.
        warm_min_train: warm items before IVF-PQ is trained (>= 256; exact below).
        dims_per_subquantizer: PQ ``m = dim / dims_per_subquantizer`` bytes per code.
        queries_per_base: captions of each base image used as queries (its paraphrases).
        k: cut-off of the metrics and of each query.
        seed: seed of the augmentations.
    """

    n_base: int = 31
    copies: int = 20
    hot_budget: int = 500
    warm_min_train: int = 256
    dims_per_subquantizer: int = 8
    queries_per_base: int = 3
    k: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_base", "copies", "hot_budget", "dims_per_subquantizer"):
            value = getattr(self, name)
            check(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"SpillExperimentConfig.{name} must be an int >= 1, got {value!r}",
            )
        check(
            isinstance(self.queries_per_base, int) and 1 <= self.queries_per_base <= 5,
            "SpillExperimentConfig.queries_per_base must be an int in [1, 5] (items have 3-5 "
            f"captions), got {self.queries_per_base!r}",
        )
        check(
            isinstance(self.k, int) and not isinstance(self.k, bool) and self.k >= 1,
            f"SpillExperimentConfig.k must be an int >= 1, got {self.k!r}",
        )
        check(
            isinstance(self.warm_min_train, int) and self.warm_min_train >= 256,
            "SpillExperimentConfig.warm_min_train must be an int >= 256 (PQ training needs 256 "
            f"points), got {self.warm_min_train!r}",
        )

    def luma_config(self, dim: int) -> LumaConfig:
        """The store configuration: this hot budget, a warm tier that trains inline."""
        warm = WarmTierConfig(
            min_train=self.warm_min_train,
            dims_per_subquantizer=self.dims_per_subquantizer,
            nbits=8,  # the experiment's byte counts assume 8-bit codes (bytes = dim / dps)
            background=False,
        )
        return LumaConfig(dim=dim, hot_budget=self.hot_budget, warm=warm)


@dataclass(frozen=True)
class SpillCorpus:
    """An embedded near-duplicate gallery and its text queries.

    Attributes:
        items: the gallery, grouped by base image.
        vectors: float32 ``(n_items, dim)`` image embeddings, unit rows.
        queries: query texts (captions of the base images).
        query_vectors: float32 ``(n_queries, dim)`` text embeddings.
        query_base: the base id (group) of each query.
    """

    items: list[NearDuplicate]
    vectors: np.ndarray
    queries: list[str]
    query_vectors: np.ndarray
    query_base: list[str]

    def relevance(self, query: int, hit_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(attribute-level, group-level) bool relevance of ``hit_ids`` for query ``query``."""
        attrs = parse_query_attributes(self.queries[query])
        by_id = self._by_id
        attr = np.array([relevant(attrs, by_id[h].item.attributes) for h in hit_ids], dtype=bool)
        group = np.array([by_id[h].base == self.query_base[query] for h in hit_ids], dtype=bool)
        return attr, group

    def n_relevant(self, query: int) -> tuple[int, int]:
        """(attribute-level, group-level) number of relevant items in the gallery."""
        attrs = parse_query_attributes(self.queries[query])
        n_attr = sum(relevant(attrs, d.item.attributes) for d in self.items)
        n_group = sum(d.base == self.query_base[query] for d in self.items)
        return n_attr, n_group

    @cached_property
    def _by_id(self) -> dict[str, NearDuplicate]:
        return {d.id: d for d in self.items}

    def store(self, luma: Luma) -> None:
        """Add the gallery to ``luma`` (batches of 64, as ``ingest_images`` would)."""
        for i in range(0, len(self.items), _BATCH):
            chunk = self.items[i : i + _BATCH]
            luma.add_vectors(
                self.vectors[i : i + _BATCH],
                [{"base": d.base, "copy": d.copy, "split": d.item.split} for d in chunk],
                [d.id for d in chunk],
                modality="image",
                texts=[d.item.caption for d in chunk],
                sources=[os.fspath(d.path) for d in chunk],
            )
        luma.wait_idle()


def build_spill_corpus(
    data_dir: PathLike, work_dir: PathLike, config: SpillExperimentConfig, encoder: Encoder
) -> SpillCorpus:
    """Augment the first ``n_base`` test images into ``work_dir`` and embed everything.

    Raises:
        InvalidInputError: the corpus has fewer than ``n_base`` test-split items.
    """
    test = _test_items(data_dir, "image")
    if len(test) < config.n_base:
        raise InvalidInputError(
            f"{data_dir} has {len(test)} test-split items, the spill experiment wants "
            f"n_base={config.n_base}; generate a larger corpus or lower n_base"
        )
    base = test[: config.n_base]
    items = write_near_duplicates(base, Path(work_dir), config.copies, config.seed)
    vectors = np.concatenate(
        [
            encoder.encode_image([d.path for d in items[i : i + _BATCH]])
            for i in range(0, len(items), _BATCH)
        ]
    )
    queries, query_base = [], []
    for it in base:
        for cap in it.captions[: config.queries_per_base]:
            queries.append(cap)
            query_base.append(it.id)
    return SpillCorpus(items, vectors, queries, encoder.encode_text(queries), query_base)


def _warm_zeta(luma: Luma) -> dict[str, float]:
    warm = luma.memory.warm
    keys = warm.keys()
    if keys.size == 0:
        return {"mean": 0.0, "max": 0.0}
    z = warm.zeta_of(keys)
    return {"mean": float(z.mean()), "max": float(z.max())}


def _tiers(luma: Luma) -> dict[str, Any]:
    s = luma.stats()
    return {
        "hot": s["hot"],
        "warm": s["warm"],
        "warm_trained": s["warm_trained"],
        "warm_code_bytes": s["warm_code_bytes"],
    }


def run_spill(
    store_dir: PathLike,
    corpus: SpillCorpus,
    config: SpillExperimentConfig,
    encoder: Encoder,
    *,
    latency: bool = True,
) -> dict[str, Any]:
    """Store the corpus under ``config.hot_budget``, query it, score it.

    Args:
        store_dir: an empty or new directory for the store.
        corpus: from :func:`build_spill_corpus` (same ``config``).
        config: the experiment settings.
        encoder: the CLIP-space encoder that embedded ``corpus`` (queries go through it).
        latency: also measure :func:`~luma_rag.eval.latency.stage_latency` on the store.

    Returns:
        A JSON-able dict: ``n_gallery``, ``n_queries``, ``tiers_before`` / ``tiers_after``
        (hot, warm, warm_trained, warm_code_bytes), ``zeta_warm`` (mean / max over the warm
        tier), ``zeta_query`` (mean of the queries' telemetry ζ mean / max), ``attribute`` and
        ``group`` ranking metrics, ``warm_hit_share``, ``safek_coverage`` (calibrated ρ),
        ``safe1.{calibrated,rho0}``,
        ``latency_ms`` (per stage), ``config``, ``seconds``.
    """
    k = config.k
    t0 = time.perf_counter()
    luma = Luma.open(store_dir, config.luma_config(encoder.dim), encoder=encoder)
    with luma:
        if len(luma):
            raise InvalidInputError(f"{store_dir} already holds items; pass an empty directory")
        corpus.store(luma)
        t1 = time.perf_counter()
        before, zeta_warm = _tiers(luma), _warm_zeta(luma)
        rel_attr, rel_group, n_attr, n_group = [], [], [], []
        safe_cal, safe0, safek, zeta_mean, zeta_max, warm_hits = [], [], [], [], [], []
        for qi, text in enumerate(corpus.queries):
            res = luma.query(text, k=k)
            res0 = luma.search(corpus.query_vectors[qi], k, rho=0.0)
            a, g = corpus.relevance(qi, res.ids)
            na, ng = corpus.n_relevant(qi)
            rel_attr.append(a)
            rel_group.append(g)
            n_attr.append(na)
            n_group.append(ng)
            safe_cal.append(res.telemetry.safe1)
            safe0.append(res0.telemetry.safe1)
            safek.append(res.telemetry.safek)
            zeta_mean.append(res.telemetry.zeta_mean)
            zeta_max.append(res.telemetry.zeta_max)
            warm_hits.append(sum(h.tier == "warm" for h in res.hits) / max(1, len(res.hits)))
        top1 = np.array([bool(r[:1].any()) for r in rel_attr], dtype=bool)
        out: dict[str, Any] = {
            "experiment": "memory spill (near-duplicates)",
            "n_gallery": len(corpus.items),
            "n_queries": len(corpus.queries),
            "k": k,
            "tiers_before": before,
            "zeta_warm": zeta_warm,
            "zeta_query": {"mean": float(np.mean(zeta_mean)), "max": float(np.mean(zeta_max))},
            "attribute": {
                **ranking_summary(rel_attr, k, n_attr),
                "top1_accuracy": float(top1.mean()),
            },
            "group": ranking_summary(rel_group, k, n_group),
            "warm_hit_share": float(np.mean(warm_hits)),
            # near-duplicates tie at the top: Safe@k (the top-k *set*) is the telling certificate
            "safek_coverage": float(np.mean(safek)),
            "safe1": {
                "calibrated": {
                    **coverage_risk(np.array(safe_cal, dtype=bool), top1),
                    "rho": luma.rho.get("text", 0.0),
                },
                "rho0": {**coverage_risk(np.array(safe0, dtype=bool), top1), "rho": 0.0},
            },
        }
        out["tiers_after"] = _tiers(luma)
        if latency:
            out["latency_ms"] = stage_latency(luma, corpus.queries, k)
        t2 = time.perf_counter()
    out["config"] = config.to_dict()
    out["seconds"] = {"store": t1 - t0, "queries": t2 - t1}
    logger.info("spill (hot_budget=%d): %s", config.hot_budget, out["group"])
    return out
