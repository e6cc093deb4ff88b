"""Retrieval and certificate metrics, pure numpy.

Every ranking metric takes ``ranked_relevance``: one bool array per query, the relevance of
the items in the order the system returned them (rank 0 first). Lists may have different
lengths (a store with fewer than ``k`` items returns fewer hits); a query whose list holds
no relevant item scores 0 on every metric.

Definitions (binary relevance):

* Recall@k — share of queries with at least one relevant item in their top ``k`` (the
  "hit rate" used for CLIP-style retrieval, where many items can be relevant to one query).
* MRR — mean over queries of ``1 / (rank + 1)`` of the first relevant item (0 if none in the
  list); computed over the list given, so a list cut at ``k`` gives MRR@k.
* nDCG@k — ``DCG@k / IDCG@k`` with gain 1 for a relevant item and discount ``log2(rank + 2)``;
  IDCG puts ``min(n_relevant, k)`` relevant items first. ``n_relevant`` defaults to the
  number of relevant items in the list.
* Coverage / risk — for a certificate (Safe@1): coverage is the share of queries it flags,
  precision the share of flagged queries whose top-1 is relevant, risk ``1 - precision``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from luma_rag._checks import check_k
from luma_rag.errors import InvalidInputError

__all__ = [
    "coverage_risk",
    "latency_summary",
    "mrr",
    "ndcg_at_k",
    "ranking_summary",
    "recall_at_k",
]


def _lists(ranked_relevance: Sequence[ArrayLike]) -> list[NDArray[np.bool_]]:
    if isinstance(ranked_relevance, np.ndarray) and ranked_relevance.ndim == 1:
        raise InvalidInputError(
            "ranked_relevance must be one bool array per query (a list, or a 2-D array); "
            "wrap a single query's relevance in a list"
        )
    if len(ranked_relevance) == 0:
        raise InvalidInputError("ranked_relevance is empty; pass one bool array per query")
    out = []
    for i, r in enumerate(ranked_relevance):
        a = np.asarray(r)
        if a.ndim != 1:
            raise InvalidInputError(f"ranked_relevance[{i}] must be 1-D, got shape {a.shape}")
        if a.size and a.dtype != np.bool_:
            raise InvalidInputError(
                f"ranked_relevance[{i}] must be bool, got {a.dtype}; pass rel > 0 for graded gains"
            )
        out.append(a.astype(bool, copy=False))
    return out


def recall_at_k(ranked_relevance: Sequence[ArrayLike], k: int) -> float:
    """Share of queries with a relevant item among their first ``k`` results.

    Args:
        ranked_relevance: one bool ``(n_i,)`` array per query, in rank order.
        k: cut-off, >= 1; a list shorter than ``k`` is used whole.

    Returns:
        A float in [0, 1].
    """
    k = check_k(k)
    return float(np.mean([bool(r[:k].any()) for r in _lists(ranked_relevance)]))


def mrr(ranked_relevance: Sequence[ArrayLike]) -> float:
    """Mean reciprocal rank of the first relevant item (0 for a query without one).

    Args:
        ranked_relevance: one bool ``(n_i,)`` array per query, in rank order.

    Returns:
        A float in [0, 1].
    """
    rr = []
    for r in _lists(ranked_relevance):
        hits = np.flatnonzero(r)
        rr.append(1.0 / (hits[0] + 1) if hits.size else 0.0)
    return float(np.mean(rr))


def ndcg_at_k(
    ranked_relevance: Sequence[ArrayLike], k: int, n_relevant: Sequence[int] | None = None
) -> float:
    """Mean binary nDCG@k.

    Args:
        ranked_relevance: one bool ``(n_i,)`` array per query, in rank order.
        k: cut-off, >= 1.
        n_relevant: number of relevant items each query has in the whole collection (for
            the ideal ranking); default: the number of relevant items in its list.

    Returns:
        A float in [0, 1]; a query with no relevant item contributes 0.

    Raises:
        InvalidInputError: ``n_relevant`` of the wrong length, negative, or smaller than the
            relevant items in a list.
    """
    k = check_k(k)
    lists = _lists(ranked_relevance)
    if n_relevant is not None and len(n_relevant) != len(lists):
        raise InvalidInputError(
            f"n_relevant has {len(n_relevant)} entries for {len(lists)} queries"
        )
    discount = 1.0 / np.log2(np.arange(k) + 2.0)
    scores = []
    for i, r in enumerate(lists):
        top = r[:k]
        total = int(r.sum()) if n_relevant is None else int(n_relevant[i])
        if total < int(r.sum()):
            raise InvalidInputError(
                f"n_relevant[{i}]={total} is below the {int(r.sum())} relevant items in its list"
            )
        ideal = float(discount[: min(total, k)].sum())
        dcg = float(discount[: top.size][top].sum())
        scores.append(dcg / ideal if ideal > 0 else 0.0)
    return float(np.mean(scores))


def coverage_risk(flags: ArrayLike, correct: ArrayLike) -> dict[str, float | int]:
    """Selective-prediction view of a certificate.

    Args:
        flags: bool ``(n,)``, the certificate (e.g. ``telemetry.safe1``) per query.
        correct: bool ``(n,)``, whether the answer it vouches for (top-1) is right.

    Returns:
        ``{"coverage", "precision", "risk", "n", "n_flagged"}``: coverage = share flagged;
        precision = share of flagged that are correct (NaN when nothing is flagged);
        risk = 1 - precision.

    Raises:
        InvalidInputError: arrays not 1-D bool of one length, or empty.
    """
    f = np.asarray(flags)
    c = np.asarray(correct)
    if f.ndim != 1 or f.shape != c.shape:
        raise InvalidInputError(
            f"flags and correct must be 1-D of one length, got {f.shape} and {c.shape}"
        )
    if f.size == 0:
        raise InvalidInputError("flags is empty; pass one flag per query")
    if f.dtype != np.bool_ or c.dtype != np.bool_:
        raise InvalidInputError(f"flags and correct must be bool, got {f.dtype} and {c.dtype}")
    n_flagged = int(f.sum())
    precision = float(c[f].mean()) if n_flagged else float("nan")
    return {
        "coverage": n_flagged / f.size,
        "precision": precision,
        "risk": 1.0 - precision,
        "n": int(f.size),
        "n_flagged": n_flagged,
    }


def latency_summary(ms: ArrayLike) -> dict[str, float | int]:
    """Percentiles of latencies.

    Args:
        ms: float ``(n,)`` latencies in milliseconds, finite and >= 0.

    Returns:
        ``{"p50", "p95", "p99", "mean", "max", "n"}`` (ms; linear-interpolated percentiles).
    """
    a = np.asarray(ms, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise InvalidInputError(f"ms must be a non-empty 1-D array, got shape {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise InvalidInputError("latencies must be finite and >= 0")
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "mean": float(a.mean()),
        "max": float(a.max()),
        "n": int(a.size),
    }


def ranking_summary(
    ranked_relevance: Sequence[ArrayLike], k: int, n_relevant: Sequence[int] | None = None
) -> dict[str, float]:
    """Recall@k, MRR@k and nDCG@k of one run, keyed ``recall@k``, ``mrr@k``, ``ndcg@k``.

    Args:
        ranked_relevance: one bool ``(n_i,)`` array per query, in rank order.
        k: cut-off, >= 1.
        n_relevant: relevant items per query in the whole collection (see :func:`ndcg_at_k`).
    """
    lists = _lists(ranked_relevance)
    k = check_k(k)
    return {
        f"recall@{k}": recall_at_k(lists, k),
        f"mrr@{k}": mrr([r[:k] for r in lists]),
        f"ndcg@{k}": ndcg_at_k(lists, k, n_relevant=n_relevant),
    }
