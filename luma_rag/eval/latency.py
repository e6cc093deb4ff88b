"""Latency per query stage, measured around the engine (which is not instrumented per stage).

Stages, each timed with ``time.perf_counter`` over the same queries:

* ``encode`` — the text tower on one query (``encoder.encode_text([text])``);
* ``search`` — ``Luma.search`` on the encoded vector: both tiers probed, exact rerank from the
  raw vectors, metadata read, certificate (the engine's own ``Telemetry.latency_ms``);
* ``certify`` — the certificate alone (:func:`~luma_rag.safety.certify` +
  :func:`~luma_rag.safety.refine_with_geometry`), replayed on the query's top
  ``rerank_depth`` exact candidates, i.e. the list the engine certifies;
* ``end_to_end`` — ``Luma.query(text)``: encode + search + certificate, as a user sees it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from luma_rag.engine import Luma
from luma_rag.errors import ConfigError, InvalidInputError
from luma_rag.eval.metrics import latency_summary

__all__ = ["STAGES", "stage_latency"]

logger = logging.getLogger(__name__)

#: The stages reported, in pipeline order.
STAGES = ("encode", "search", "certify", "end_to_end")


def stage_latency(luma: Luma, texts: Sequence[str], k: int = 10) -> dict[str, Any]:
    """p50 / p95 / p99 latency (ms) of each stage over ``texts``.

    Args:
        luma: an open store with an encoder attached.
        texts: the text queries (at least one).
        k: hits per query.

    Returns:
        ``{stage: latency_summary}`` for each of :data:`STAGES`, plus ``n_items``.

    Raises:
        InvalidInputError: no texts. ConfigError: the store has no encoder.
    """
    from luma_rag.safety import certify, perturbation_bound, refine_with_geometry

    if isinstance(texts, str) or not texts:
        raise InvalidInputError("stage_latency needs a non-empty list of query texts")
    encoder = luma.encoder
    if encoder is None:
        raise ConfigError("stage_latency needs a store opened with an encoder")
    rho = luma.rho.get("text", luma.config.safety.rho)
    mult = luma.config.safety.multiplier
    depth = max(k, luma.config.rerank_depth)
    ms: dict[str, list[float]] = {s: [] for s in STAGES}
    for text in texts:
        t0 = time.perf_counter()
        vec = encoder.encode_text([text])[0]
        ms["encode"].append((time.perf_counter() - t0) * 1000.0)
        ms["search"].append(luma.search(vec, k, rho=rho).telemetry.latency_ms)
        wide = luma.search(vec, depth, rho=rho)
        scores = np.array([h.score for h in wide.hits], dtype=np.float64)
        vectors = np.stack([row["vector"] for row in luma.get(wide.ids)])
        t0 = time.perf_counter()
        tau = perturbation_bound(rho, np.zeros(len(scores)), mult)
        cert = certify(scores, tau, k)
        if len(scores) > 1:
            refine_with_geometry(cert, scores, vectors, rho, np.zeros(len(scores)), mult)
        ms["certify"].append((time.perf_counter() - t0) * 1000.0)
        t0 = time.perf_counter()
        luma.query(text, k=k)
        ms["end_to_end"].append((time.perf_counter() - t0) * 1000.0)
    out: dict[str, Any] = {s: latency_summary(v) for s, v in ms.items()}
    out["n_items"] = len(luma)
    return out
