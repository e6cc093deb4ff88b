"""Telemetry over time (the paper's Table VI): ε as caption pairs stream into the bridge.

A store of held-out (test-split) images is opened with the CLIP and CLAP towers, which
warm-starts the CLAP→CLIP bridge (stage 0). Then, stage by stage, ``refresh_every`` caption
pairs (a caption through the CLAP text tower, the same caption through the CLIP text tower)
from the corpus's train and val items are fed to the bridge — one refresh per stage — and
after each stage the test captions are queried *through the bridge* (CLAP text → T → CLIP
space), so the query carries ε_q = the last refresh's ε. Per stage: pairs seen, bridge
version, ε, how far the queries' projections actually moved (``query_shift``), the queries'
mean margin γ, Safe@1 rate with ρ = 0 (only ε in the bound) and with the store's calibrated
audio ρ (the bridge residual), top-1 accuracy and Recall@k.

``swap_fraction`` > 0 is the caption-swap failure of §XV: that share of each batch has its CLIP
targets shuffled among themselves, so the bridge learns from mismatched pairs.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag._config import ConfigBase, check
from luma_rag.bridge import BridgeConfig
from luma_rag.config import LumaConfig
from luma_rag.datasets.attributes import relevant
from luma_rag.datasets.captions import parse_query_attributes
from luma_rag.datasets.manifest import load_manifest
from luma_rag.encoders.base import Encoder
from luma_rag.engine import Luma
from luma_rag.errors import ConfigError, InvalidInputError
from luma_rag.eval.experiments import _test_items, ingest_items
from luma_rag.eval.metrics import recall_at_k

__all__ = ["DriftConfig", "caption_stream", "run_drift", "swap_targets"]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class DriftConfig(ConfigBase):
    """Settings of the telemetry-over-time run.

    Attributes:
        refresh_every: pairs per stage; the bridge refreshes once per stage (paper: 512).
        stages: number of stages after the warm start.
        swap_fraction: share of each batch whose targets are shuffled (caption swap), [0, 1].
        n_queries: test captions queried through the bridge after each stage.
        k: hits per query.
        seed: order of the caption stream and of the swaps.
    """

    refresh_every: int = 512
    stages: int = 8
    swap_fraction: float = 0.0
    n_queries: int = 64
    k: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("refresh_every", "stages", "n_queries", "k"):
            value = getattr(self, name)
            check(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"DriftConfig.{name} must be an int >= 1, got {value!r}",
            )
        check(
            isinstance(self.swap_fraction, int | float) and 0.0 <= self.swap_fraction <= 1.0,
            f"DriftConfig.swap_fraction must be in [0, 1], got {self.swap_fraction!r}",
        )


def caption_stream(data_dir: PathLike, n: int, seed: int = 0) -> list[str]:
    """``n`` captions (all paraphrases) of the train and val items, shuffled; cycles if short.

    Raises:
        InvalidInputError: the corpus has no train or val items.
    """
    pool = [c for it in load_manifest(Path(data_dir)) if it.split != "test" for c in it.captions]
    if not pool:
        raise InvalidInputError(f"{data_dir} has no train/val captions to feed the bridge")
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < n:
        out.extend(pool[i] for i in rng.permutation(len(pool)))
    if n > len(pool):
        logger.info("caption stream: %d pairs from %d distinct captions (cycled)", n, len(pool))
    return out[:n]


def swap_targets(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``y`` (n, d) with ``round(fraction·n)`` rows moved one place along a random
    cycle among themselves: each chosen source row gets another caption's target."""
    y = np.array(y, copy=True)
    m = round(fraction * len(y))
    if m >= 2:
        idx = rng.choice(len(y), size=m, replace=False)
        y[idx] = y[np.roll(idx, 1)]
    return y


def _observed_drift(
    x: np.ndarray, t_prev: np.ndarray | None, t_new: np.ndarray | None
) -> dict[str, float]:
    """How far the queries' projections actually moved: ‖x (T_new − T_prev)‖ per unit row x.

    ε = ‖T_new − T_prev‖₂ bounds this over *every* direction of CLAP space; this is the
    movement along the directions the queries occupy (ε ≥ the max here).
    """
    if t_prev is None or t_new is None:
        return {"mean": float("nan"), "max": float("nan")}
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = np.linalg.norm(u @ (t_new - t_prev), axis=1)
    return {"mean": float(d.mean()), "max": float(d.max())}


def _query_stage(
    luma: Luma, x: np.ndarray, attrs: list[dict[str, Any]], gallery: dict[str, Any], k: int
) -> dict[str, Any]:
    rho_audio = luma.rho.get("audio", 0.0)
    margins, safe0, safe_cal, rel = [], [], [], []
    for q, a in zip(x, attrs, strict=True):
        res = luma.search(q, k, rho=0.0, bridged=True)
        res_cal = luma.search(q, k, rho=rho_audio, bridged=True)
        margins.append(res.telemetry.margin_top2)
        safe0.append(res.telemetry.safe1)
        safe_cal.append(res_cal.telemetry.safe1)
        rel.append(np.array([relevant(a, gallery[h]) for h in res.ids], dtype=bool))
    m = np.array(margins, dtype=np.float64)
    return {
        "margin_mean": float(np.nanmean(m)),
        "margin_std": float(np.nanstd(m)),
        "safe1_rate_rho0": float(np.mean(safe0)),
        "safe1_rate_calibrated": float(np.mean(safe_cal)),
        "top1_accuracy": float(np.mean([bool(r[:1].any()) for r in rel])),
        f"recall@{k}": recall_at_k(rel, k),
    }


def run_drift(
    store_dir: PathLike,
    data_dir: PathLike,
    config: DriftConfig,
    clip: Encoder,
    clap: Encoder,
) -> dict[str, Any]:
    """Stream caption pairs into a store's bridge in stages; record ε and query telemetry.

    Args:
        store_dir: an empty or new directory for the store.
        data_dir: a LUMA-Shapes corpus (its test images are the gallery, its train/val
            captions the stream).
        config: stages, cadence, caption swap.
        clip / clap: the CLIP-space and CLAP encoders.

    Returns:
        A JSON-able dict: ``stages`` (one row per stage: stage, pairs_seen, version, epsilon,
        and the query telemetry of :func:`_query_stage`), ``epsilon_mean`` / ``epsilon_max``
        over the streamed refreshes, ``history`` (the bridge's), ``rho_audio``, ``config``.
    """
    test = _test_items(data_dir, "image")
    k, rng = config.k, np.random.default_rng(config.seed + 1)
    cfg = LumaConfig(
        dim=clip.dim,
        bridge=BridgeConfig(
            source_dim=clap.dim, target_dim=clip.dim, refresh_every=config.refresh_every
        ),
    )
    t0 = time.perf_counter()
    with Luma.open(store_dir, cfg, encoder=clip, audio_encoder=clap) as luma:
        if len(luma):
            raise InvalidInputError(f"{store_dir} already holds items; pass an empty directory")
        bridge = luma.bridge
        if bridge is None:  # an audio encoder gives the store a bridge
            raise ConfigError("this experiment needs a store with a CLAP->CLIP bridge")
        ingest_items(luma, test)
        gallery = {it.id: it.attributes.as_dict() for it in test}
        queries = [it.captions[0] for it in test[: config.n_queries]]
        x_q = clap.encode_text(queries)
        attrs = [parse_query_attributes(q) for q in queries]
        rows = [
            {
                "stage": 0,
                "pairs_seen": bridge.pairs_seen,
                "version": bridge.version,
                "epsilon": bridge.epsilon,
                "query_shift_mean": float("nan"),
                "query_shift_max": float("nan"),
                **_query_stage(luma, x_q, attrs, gallery, k),
            }
        ]
        stream = caption_stream(data_dir, config.stages * config.refresh_every, config.seed)
        streamed: list[float] = []
        observed: list[float] = []
        for s in range(config.stages):
            batch = stream[s * config.refresh_every : (s + 1) * config.refresh_every]
            y = swap_targets(clip.encode_text(batch), config.swap_fraction, rng)
            t_prev = bridge.transform
            eps = luma.add_bridge_pairs(clap.encode_text(batch), y)
            streamed.extend(eps)
            moved = _observed_drift(x_q, t_prev, bridge.transform)
            observed.append(moved["max"])
            rows.append(
                {
                    "stage": s + 1,
                    "pairs_seen": bridge.pairs_seen,
                    "version": bridge.version,
                    "epsilon": bridge.epsilon,
                    "query_shift_mean": moved["mean"],
                    "query_shift_max": moved["max"],
                    **_query_stage(luma, x_q, attrs, gallery, k),
                }
            )
        history = bridge.history
        rho_audio = luma.rho.get("audio")
    out = {
        "experiment": "telemetry over time (bridge)",
        "stages": rows,
        "epsilon_mean": float(np.mean(streamed)) if streamed else float("nan"),
        "epsilon_max": float(np.max(streamed)) if streamed else float("nan"),
        "epsilon_last": float(streamed[-1]) if streamed else float("nan"),
        "query_shift_max_mean": float(np.mean(observed)) if observed else float("nan"),
        "history": history,
        "rho_audio": rho_audio,
        "n_queries": len(queries),
        "n_gallery": len(test),
        "config": config.to_dict(),
        "seconds": time.perf_counter() - t0,
    }
    logger.info("drift (swap=%.2f): eps mean %.4f", config.swap_fraction, out["epsilon_mean"])
    return out
