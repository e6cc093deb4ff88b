"""Merging the tiers' hits into one exactly rescored, bounded candidate list.

The hot tier hands over its stored vectors (in RAM); the warm tier hands over code-ranked keys
with a bound for every prefix (``TierHits.outside_after``). The warm candidates are reranked
from the raw vectors in doubling prefixes, stopping once the next one is unlikely to reach the
k-th exact score (``WarmTierConfig.refine_sigmas``); whatever is not reranked, and whatever the
final truncation drops, stays under ``outside_bound``, so the certificate and the completeness
test keep their guarantees on a short list.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from luma_rag.memory.base import TierHits

__all__ = [
    "KEEP_MIN",
    "Candidates",
    "Scorer",
    "exact_top",
    "floor_raiser",
    "kth_floor",
    "member",
    "merge_tiers",
    "ranked_candidates",
    "row_scores",
    "warm_hits",
]

KEEP_MIN = 32  # candidates kept for the certificate at least (2·k when larger)


@dataclass(frozen=True)
class Candidates:
    """Merged, exactly rescored candidates of one query, best first.

    Attributes:
        keys: int64 (m,). scores: float32 (m,) exact cosine. tiers: int8 (m,) 0 hot / 1 warm.
        zeta: float32 (m,) quantization error of the item's code (0 when stored exactly).
        outside_bound: upper bound on the exact score of any allowed item not in ``keys``
            (+inf when not certifiable, -inf when nothing was left out).
        vectors: float32 (m, d) the raw vectors the scores were computed from.
    """

    keys: np.ndarray
    scores: np.ndarray
    tiers: np.ndarray
    zeta: np.ndarray
    outside_bound: float
    vectors: np.ndarray


def ranked_candidates(
    keys: np.ndarray,
    exact: np.ndarray,
    tiers: np.ndarray,
    zeta: np.ndarray,
    vectors: np.ndarray,
    outside_bound: float,
    keep: int | None = None,
) -> Candidates:
    """Sort by exact score (equal scores by key) and keep the best ``keep``.

    The best exact score among the dropped ones joins ``outside_bound``.

    Args:
        keys: int64 (m,). exact: float32 (m,). tiers: int8 (m,). zeta: float32 (m,).
        vectors: float32 (m, d). outside_bound: the bound on anything not in ``keys``.
        keep: most candidates to return (None: all).
    """
    order = np.lexsort((keys, -exact))
    if keep is not None and keep < len(order):
        outside_bound = max(outside_bound, float(exact[order[keep]]))
        order = order[:keep]
    return Candidates(
        keys[order], exact[order], tiers[order], zeta[order], outside_bound, vectors[order]
    )


Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (keys (m,), query (d,)) -> (m,) f32


def row_scores(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """float32 (m,) inner products of (m, d) rows with a (d,) query, each row on its own: a
    row's score does not depend on which other rows it is read with (a matrix product's may),
    so every path that scores an item gives it the same float32 score."""
    return np.einsum("ij,j->i", vectors, query, optimize=False).astype(np.float32, copy=False)


def _rerank_prefix(
    query: np.ndarray,
    hits: TierHits,
    score: Scorer,
    known: np.ndarray,
    k: int,
    first: int,
    sigmas: float | None,
) -> tuple[np.ndarray, float]:
    """Rerank a prefix of a code-ranked tier list: (exact float32 (c,), bound).

    Doubling prefixes from ``first``; stops when the next code score, corrected by the mean +
    ``sigmas`` standard deviations of (exact − code) over the reranked prefix, is below the
    k-th exact score of ``known`` ∪ the reranked prefix. ``bound`` covers every allowed item
    of the tier not in the prefix (``hits.outside_after[c]``).
    """
    m = len(hits.keys)
    if hits.outside_after is None or sigmas is None:
        first = m
    c = min(m, max(1, first))
    parts = [score(hits.keys[:c], query)]
    best = np.concatenate([known, parts[0]])
    err = parts[0] - hits.scores[:c]
    s1, s2 = float(err.sum()), float(err @ err)
    while c < m:
        if len(best) > k:
            best = np.partition(best, len(best) - k)[len(best) - k :]
        kth = float(best.min()) if len(best) >= k else float("-inf")
        mean = s1 / c
        spread = math.sqrt(max(s2 / c - mean * mean, 0.0))
        if float(hits.scores[c]) + mean + float(sigmas or 0.0) * spread < kth:
            break
        nxt = min(m, 2 * c)
        part = score(hits.keys[c:nxt], query)
        parts.append(part)
        err = part - hits.scores[c:nxt]
        s1, s2 = s1 + float(err.sum()), s2 + float(err @ err)
        best = np.concatenate([best, part])
        c = nxt
    bound = hits.outside_bound if c >= m or hits.outside_after is None else hits.outside_after[c]
    return (parts[0] if len(parts) == 1 else np.concatenate(parts)), float(bound)


def kth_floor(hot: TierHits, k: int) -> float:
    """A lower bound on the k-th best exact score of any candidate set holding ``hot``'s hits.

    Every exact score is at least its fp16 score − slack; :func:`merge_tiers` rescores at
    least the ``k`` hot hits with the highest such lower bounds and keeps the best ``>= k`` of
    everything it rescored, so the final k-th exact score is at least the k-th largest
    (score − slack): an item scoring below it cannot be in the top k. ``-inf`` when the tier
    returned fewer than ``k`` hits or gives no slack (then nothing is skipped).
    """
    if hot.score_slack is None:
        return float("-inf")
    return _kth_largest(hot.scores.astype(np.float64) - hot.score_slack, k)


def _kth_largest(values: np.ndarray, k: int) -> float:
    """The ``k``-th largest of ``values`` (``-inf`` when there are fewer than ``k`` or k < 1)."""
    if k < 1 or len(values) < k:
        return float("-inf")
    return float(np.partition(values, len(values) - k)[len(values) - k])


def member(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """bool (len(a),): whether each of the int64 keys ``a`` is among the keys ``b``.

    A sort of ``b`` and a binary search of ``a`` (``np.isin`` costs ~15x more on the few
    hundred keys of one query, most of it fixed overhead).
    """
    if not len(a) or not len(b):
        return np.zeros(len(a), dtype=bool)
    sb = np.sort(b)
    at = np.searchsorted(sb, a)
    np.minimum(at, len(sb) - 1, out=at)
    return np.asarray(sb[at] == a)


def floor_raiser(
    query: np.ndarray,
    hot: TierHits,
    k: int,
    score: Scorer,
    found: list[tuple[np.ndarray, np.ndarray]],
) -> Callable[[np.ndarray], float]:
    """A ``raise_floor`` for the warm probe (:func:`~luma_rag.memory.ivf_search.probe`).

    It scores exactly the first ``max(2·k, KEEP_MIN)`` of the warm keys it is handed (keys
    the hot tier returned aside), appends them with their scores to ``found`` — the
    caller passes those to :func:`merge_tiers` as ``pre``, so they stay candidates — and
    returns the k-th best of (their exact scores ∪ the hot hits' lower bounds): a lower bound
    on the k-th exact score of the merged candidates, as :func:`kth_floor` is.
    """
    lo = (
        hot.scores.astype(np.float64) - hot.score_slack
        if hot.score_slack is not None
        else np.zeros(0)
    )

    def raise_floor(keys: np.ndarray) -> float:
        take = keys[: max(2 * k, KEEP_MIN)]
        take = take[~member(take, hot.keys)]  # a key mid-move counts once (its hot entry)
        if not len(take):
            return float("-inf")
        exact = score(take, query)
        found.append((take, exact))
        return _kth_largest(np.concatenate([lo, exact.astype(np.float64)]), k)

    return raise_floor


Pre = tuple[np.ndarray, np.ndarray, np.ndarray]  # warm keys, exact scores, ζ (see merge_tiers)


def warm_hits(
    query: np.ndarray,
    hot: TierHits,
    k: int,
    score: Scorer,
    search: Callable[[float, Callable[[np.ndarray], float]], TierHits],
    zeta_of: Callable[[np.ndarray], np.ndarray],
) -> tuple[TierHits, Pre | None]:
    """The warm tier's hits for ``query``, given the hot tier's: (hits, ``pre`` for
    :func:`merge_tiers`).

    ``search(floor, raise_floor)`` probes the warm tier: lists that cannot reach the floor
    (:func:`kth_floor` of the hot hits) are skipped, and the probe may raise it with exactly
    scored items of its best list (:func:`floor_raiser`), which come back as ``pre``.
    """
    found: list[tuple[np.ndarray, np.ndarray]] = []
    warm = search(kth_floor(hot, k), floor_raiser(query, hot, k, score, found))
    if not found:
        return warm, None
    keys, exact = found[0]
    return warm, (keys, exact, zeta_of(keys))


def merge_tiers(
    query: np.ndarray,
    hot: TierHits,
    warm: TierHits,
    *,
    fetch: Callable[[np.ndarray], np.ndarray],
    score: Scorer,
    k: int,
    fetch_k: int,
    sigmas: float | None,
    pre: Pre | None = None,
) -> Candidates:
    """Exactly rescore the hot hits and a prefix of the warm hits; merge; keep the best.

    Hot hits that carry ``score_slack`` (scores within that distance of the exact ones, e.g.
    fp16) are rescored only when they could still be kept: one whose score + slack is below
    the ``keep``-th best of (reranked warm scores ∪ hot scores − slack) cannot be, and its
    score + slack joins ``outside_bound``. Every exact score comes from ``score`` (row by row,
    so an item scores the same whichever rows it is read with); only the kept candidates'
    vectors are gathered.

    Args:
        query: float32 (d,) unit. hot / warm: the tiers' hits (hot ones carry vectors or
            are rescored from the raw vectors). fetch: keys -> raw vectors (m, d). score:
            keys, query -> exact float32 scores from the raw vectors. k: hits the caller
            will show. fetch_k: candidates each tier was asked for (the first warm prefix
            reranked). sigmas: ``WarmTierConfig.refine_sigmas``.
        pre: warm items already scored exactly (int64 keys, float32 exact scores, float32
            ζ), e.g. by :func:`floor_raiser`: always candidates, whatever prefix is reranked.

    Returns:
        At most ``min(2·fetch_k, max(2·k, KEEP_MIN))`` candidates, best first.
    """
    keep = min(2 * fetch_k, max(2 * k, KEEP_MIN))
    slack = hot.score_slack
    pre_exact = np.zeros(0, np.float32)  # pre items the warm list lacks (the rest: reranked)
    if pre is not None and len(pre[0]):
        pre_exact = pre[1][~member(pre[0], warm.keys)]
    if hot.vectors is None and slack is not None and len(hot.keys):
        lo = hot.scores.astype(np.float64) - slack  # exact >= lo, exact <= scores + slack
        known = np.concatenate([lo.astype(np.float32), pre_exact])
        ws, warm_bound = _rerank_prefix(query, warm, score, known, k, fetch_k, sigmas)
        warm_keys, warm_zeta, ws = _with_pre(warm, ws, pre)
        twice = member(hot.keys, warm_keys)  # mid-move: count each key once
        in_both = bool(twice.any())
        pool = np.concatenate([ws.astype(np.float64), lo[~twice]])
        cut = _kth_largest(pool, keep) if len(pool) > keep else -np.inf
        up = hot.scores.astype(np.float64) + slack
        sure = up >= cut  # the others cannot be among the best ``keep``
        pruned = float(up[~sure].max()) if not sure.all() else -np.inf
        hot_keys, hot_zeta = hot.keys[sure], hot.zeta[sure]
        hs = score(hot_keys, query)  # per row, as rerank() scores them
        hv = None
        hot_bound = max(hot.outside_bound, pruned)
    else:
        hot_keys, hot_zeta, hv = hot.keys, hot.zeta, hot.vectors
        hs = score(hot.keys, query) if hv is None else (hv @ query).astype(np.float32)
        known = np.concatenate([hs, pre_exact])
        ws, warm_bound = _rerank_prefix(query, warm, score, known, k, fetch_k, sigmas)
        warm_keys, warm_zeta, ws = _with_pre(warm, ws, pre)
        hot_bound = hot.outside_bound
        in_both = True  # not looked up: check below
    n_hot = len(hs)
    if in_both and n_hot and len(ws):  # a key in both tiers (mid-move): its hot entry only
        dup = member(warm_keys, hot_keys)
        if dup.any():
            warm_keys, warm_zeta, ws = warm_keys[~dup], warm_zeta[~dup], ws[~dup]
    keys = np.concatenate([hot_keys, warm_keys])
    exact = np.concatenate([hs, ws])
    outside = max(hot_bound, warm_bound)
    order = np.lexsort((keys, -exact))
    if keep < len(order):
        outside = max(outside, float(exact[order[keep]]))
        order = order[:keep]
    chosen = keys[order]
    from_hot = order < n_hot
    if hv is None:
        vectors = fetch(chosen)
    else:
        vectors = np.empty((len(order), len(query)), dtype=np.float32)
        vectors[from_hot] = hv[order[from_hot]]
        vectors[~from_hot] = fetch(chosen[~from_hot])
    zeta = np.concatenate([hot_zeta, warm_zeta])[order]
    tiers = (~from_hot).astype(np.int8)  # 0 hot / 1 warm
    return Candidates(chosen, exact[order], tiers, zeta, outside, vectors)


def _with_pre(
    warm: TierHits, ws: np.ndarray, pre: Pre | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, ζ, exact scores) of the reranked warm prefix plus the ``pre`` items not in it."""
    c = len(ws)
    keys, zeta = warm.keys[:c], warm.zeta[:c]
    if pre is None or not len(pre[0]):
        return keys, zeta, ws
    extra = ~member(pre[0], keys)
    return (
        np.concatenate([keys, pre[0][extra]]),
        np.concatenate([zeta, pre[2][extra]]),
        np.concatenate([ws, pre[1][extra]]),
    )


def exact_top(
    query: np.ndarray,
    keys: np.ndarray,
    fetch_k: int,
    fetch: Callable[[np.ndarray], np.ndarray],
    tier_of: Callable[[np.ndarray], np.ndarray],
) -> Candidates:
    """The exact top ``fetch_k`` of ``keys``, and the best score left out as the outside bound.

    Raw vectors are scanned in chunks of 65 536 (≈ 20 ms for 100k × 512 on one core).

    Args:
        query: float32 (d,) unit. keys: int64 (n,) live keys. fetch_k: candidates to keep.
        fetch: keys -> float32 (m, d) raw vectors. tier_of: keys -> int8 tier labels.
    """
    scores = np.empty(len(keys), dtype=np.float32)
    for start in range(0, len(keys), 65_536):
        part = keys[start : start + 65_536]
        scores[start : start + len(part)] = fetch(part) @ query
    take = min(fetch_k, len(keys))
    top = np.argpartition(-scores, take - 1)[:take] if take < len(keys) else np.arange(take)
    top = top[np.argsort(-scores[top], kind="stable")]
    rest = np.ones(len(keys), dtype=bool)
    rest[top] = False
    outside = float(scores[rest].max()) if rest.any() else float("-inf")
    chosen = keys[top]
    zeta = np.zeros(take, dtype=np.float32)
    return Candidates(chosen, scores[top], tier_of(chosen), zeta, outside, fetch(chosen))
