"""Candidate generation at scale: the direct-to-warm ingest path, deep fast-scan candidates and
the truncated exact rerank must keep the completeness bound sound.

The property test brute-forces every query: no live, allowed item missing from the candidates
may score (exactly) above the ``outside_bound`` the memory reported.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from luma_rag._rwlock import RWLock
from luma_rag.memory import HotTierConfig, SpillConfig, TieredMemory, WarmTierConfig
from luma_rag.memory.candidates import row_scores
from luma_rag.memory.hot import HotTier
from luma_rag.memory.spill import spill_order, spill_scores
from tests.conftest import clustered_unit_vectors

pytestmark = pytest.mark.timeout(300)

ROUND = 1e-5  # float32 rounding between FAISS's scores and numpy's


def _memory(
    x: np.ndarray, budget: int, warm: WarmTierConfig, exact_below: int = 64
) -> TieredMemory:
    return TieredMemory(
        x.shape[1],
        budget,
        fetch=lambda k: x[k],
        lock=RWLock(),
        hot=HotTierConfig(background_rebuild=False, exact_below=exact_below),
        warm=warm,
    )


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**16),
    budget=st.sampled_from([50, 120, 400]),
    batch=st.sampled_from([37, 300, 900]),
    warm_kind=st.sampled_from(["flat", "pq8", "pq4"]),
    refine_depth=st.sampled_from([1, 16, 64]),
    fetch_k=st.sampled_from([1, 5, 20]),
    masked=st.booleans(),
    sigmas=st.sampled_from([0.0, 3.0, None]),  # 0: the warm rerank stops at its first prefix
    k=st.sampled_from([1, 3, 20]),
)
def test_candidates_never_hide_an_item_above_the_bound(
    seed, budget, batch, warm_kind, refine_depth, fetch_k, masked, sigmas, k
):
    n, dim = 1500, 32
    x = clustered_unit_vectors(n, dim, seed=seed, clusters=12)
    warm = WarmTierConfig(
        min_train=4096 if warm_kind == "flat" else 256,
        background=False,
        nbits=8 if warm_kind == "pq8" else 4,
        nprobe_fraction=0.05,  # few lists probed: the unprobed-list bound is exercised
        min_nprobe=1,
        refine_depth=refine_depth,
        refine_sigmas=sigmas,
    )
    # The hot tier scans exactly (a finite bound; HNSW misses are +inf, which hides nothing):
    # every finite bound, including what the truncated rerank drops, is then checked.
    mem = _memory(x, budget, warm, exact_below=10_000)
    for start in range(0, n, batch):
        keys = np.arange(start, min(start + batch, n))
        mem.add(keys, x[keys], mem.novelty(x[keys]), float(start))
    rng = np.random.default_rng(seed)
    removed = rng.choice(n, n // 10, replace=False)
    mem.remove(removed)
    live = np.ones(n, bool)
    live[removed] = False
    allowed = rng.random(n) < 0.3 if masked else None
    ok = live & allowed if allowed is not None else live
    assert len(mem.hot) <= budget and len(mem.hot) + len(mem.warm) == live.sum()
    q = x[rng.integers(0, n, 8)] + 0.3 * rng.standard_normal((8, dim)) / np.sqrt(dim)
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    for query in q:
        c = mem.search(query, fetch_k, allowed, k=k)
        true = x @ query
        assert ok[c.keys].all(), "a removed or disallowed key was returned"
        assert len(np.unique(c.keys)) == len(c.keys) <= 2 * fetch_k
        assert np.allclose(c.scores, true[c.keys], atol=1e-6)  # exact scores, best first
        assert (np.diff(c.scores) <= 0).all()
        left_out = ok.copy()
        left_out[c.keys] = False
        if left_out.any():
            assert float(true[left_out].max()) <= c.outside_bound + ROUND


def test_a_batch_beyond_the_budget_builds_no_graph_nodes_for_what_spills():
    x = clustered_unit_vectors(3000, 32, seed=3)
    mem = _memory(x, 200, WarmTierConfig(min_train=256, background=False))
    keys = np.arange(3000)
    moved = mem.add(keys, x, mem.novelty(x), 0.0)
    assert len(mem.hot) <= 200 and len(mem.hot) + len(mem.warm) == 3000
    assert mem.hot.tombstones == 0  # no item was inserted into the graph and then removed
    assert set(moved.tolist()) == set(mem.warm.keys().tolist())
    assert (mem.tier_of(moved) == 1).all()


def test_direct_to_warm_chooses_what_insert_then_spill_would():
    x = clustered_unit_vectors(700, 16, seed=4)
    cfg = SpillConfig()
    mem = _memory(x, 300, WarmTierConfig(min_train=256, background=False))
    first = np.arange(400)
    mem.add(first, x[first], mem.novelty(x[first]), 0.0)
    hot_before = mem.hot.keys()
    second = np.arange(400, 700)
    nov = mem.novelty(x[second])
    # The reference: every hot item and the new ones scored together, lowest spill first.
    union = np.concatenate([hot_before, second])
    hits, last = mem.usage(hot_before)
    scores = spill_scores(
        cfg,
        10.0,
        np.concatenate([last, np.full(len(second), 10.0)]),
        np.concatenate([hits, np.zeros(len(second), np.int32)]),
        np.concatenate([mem._novelty[hot_before], nov]),
    )
    count = len(union) - 300 + int(cfg.slack * 300)
    expected = set(union[spill_order(scores, count)].tolist())
    moved = mem.add(second, x[second], nov, 10.0)
    assert set(moved.tolist()) == expected
    assert set(mem.hot.keys().tolist()) == set(union.tolist()) - expected


@pytest.mark.parametrize("keep", [1, 5, 40])
def test_truncated_rerank_bounds_what_it_drops(keep):
    x = clustered_unit_vectors(300, 16, seed=5)
    mem = _memory(x, 1000, WarmTierConfig(min_train=256, background=False))
    rng = np.random.default_rng(keep)
    keys = rng.choice(300, 60, replace=False)
    q = x[0]
    c = mem.rerank(q, keys, np.zeros(60, np.int8), np.zeros(60, np.float32), -np.inf, keep=keep)
    assert len(c.keys) == keep and set(c.keys.tolist()) <= set(keys.tolist())
    assert np.allclose(c.scores, x[c.keys] @ q, atol=1e-6) and (np.diff(c.scores) <= 0).all()
    dropped = np.setdiff1d(keys, c.keys)
    best_dropped = float(row_scores(x[dropped], q).max())  # scored as the memory scores rows
    assert best_dropped <= c.outside_bound  # the best dropped score joins it
    assert c.outside_bound <= float(c.scores[-1])  # ... and nothing better was dropped


def test_staged_hot_insert_equals_an_inline_one_and_falls_back_when_the_graph_moved():
    x = clustered_unit_vectors(600, 16, seed=6)
    a = HotTier(16, HotTierConfig(exact_below=0))
    b = HotTier(16, HotTierConfig(exact_below=0))
    first, second = np.arange(300), np.arange(300, 600)
    a.add(first, x[first])
    b.add(first, x[first])
    staged = b.stage(second, x[second])
    assert len(b) == 300  # nothing visible before the commit
    b.commit(staged)
    a.add(second, x[second])
    for q in x[::50]:
        ha, hb = a.search(q, 10, None), b.search(q, 10, None)
        assert ha.keys.tolist() == hb.keys.tolist()
        assert np.array_equal(ha.scores, hb.scores)  # same fp16 vectors, same graph
    c = HotTier(16, HotTierConfig(exact_below=0))
    c.add(first, x[first])
    staged = c.stage(second[:100], x[second[:100]])
    c.add(second[100:], x[second[100:]])  # the graph changed after staging
    assert not c.commit(staged, inline=False)  # refused: nothing inserted, the caller restages
    assert sorted(c.keys().tolist()) == list(range(300)) + list(range(400, 600))
    assert c.commit(staged)  # -> inserted inline, not lost and not duplicated
    assert sorted(c.keys().tolist()) == list(range(600)) and c.tombstones == 0
    assert c.commit(c.stage(np.arange(600, 600), x[:0]), inline=False)  # nothing to insert


def _every_list_probed(
    x: np.ndarray, hot: int, nbits: int, depth: int, sigmas: float | None, chunk: int = 300
) -> TieredMemory:
    """A memory over ``x`` (hot budget ``hot``, exact hot scan) whose trained warm tier probes
    every list and reranks ``depth`` code-ranked candidates; added in ``chunk``-sized batches."""
    warm = WarmTierConfig(
        min_train=256,
        background=False,
        nbits=nbits,
        nprobe_fraction=1.0,
        min_nprobe=1,
        refine_depth=depth,
        refine_sigmas=sigmas,
    )
    mem = _memory(x, hot, warm, exact_below=10_000)
    for start in range(0, len(x), chunk):
        keys = np.arange(start, min(start + chunk, len(x)))
        mem.add(keys, x[keys], mem.novelty(x[keys]), float(start))
    assert mem.warm.trained
    return mem


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    seed=st.integers(0, 2**16),
    n_hot=st.sampled_from([1, 8, 64]),
    n_warm=st.sampled_from([0, 5, 200]),
    k=st.sampled_from([1, 10]),
    fetch_k=st.sampled_from([10, 64]),
    dup=st.booleans(),
)
def test_skipping_hot_rescores_never_drops_a_kept_candidate(seed, n_hot, n_warm, k, fetch_k, dup):
    """Hot hits whose fp16 score + slack cannot reach the kept set are not rescored: the kept
    candidates (keys, exact scores, order) are those of rescoring every hot hit, and whatever
    is left out stays under ``outside_bound``. Near-ties are forced (shared clusters)."""
    from luma_rag.memory.base import TierHits
    from luma_rag.memory.candidates import merge_tiers
    from luma_rag.memory.hot_scan import fp16_slack

    dim = 64
    x = clustered_unit_vectors(n_hot + n_warm, dim, seed=seed, clusters=3)
    rng = np.random.default_rng(seed)
    q = x[rng.integers(0, len(x))]
    hot_keys = np.arange(n_hot, dtype=np.int64)
    fp16 = x[hot_keys].astype(np.float16).astype(np.float32) @ q
    order = np.argsort(-fp16, kind="stable")
    warm_keys = np.arange(n_hot, n_hot + n_warm, dtype=np.int64)
    if dup and n_warm:  # a key mid-move is in both tiers
        warm_keys[0] = hot_keys[0]
    ws = x[warm_keys] @ q
    w_order = np.argsort(-ws, kind="stable")
    warm = TierHits(warm_keys[w_order], ws[w_order], np.zeros(n_warm, np.float32), -np.inf)

    def merged(slack):
        hot = TierHits(
            hot_keys[order], fp16[order], np.zeros(n_hot, np.float32), -np.inf, None, None, slack
        )
        return merge_tiers(
            q,
            hot,
            warm,
            fetch=lambda ks: x[ks],
            score=lambda ks, qq: row_scores(x[ks], qq),
            k=k,
            fetch_k=fetch_k,
            sigmas=None,
        )

    full, fast = merged(None), merged(2.0 * fp16_slack(dim))
    assert fast.keys.tolist() == full.keys.tolist()
    assert fast.scores.tolist() == full.scores.tolist()
    assert np.array_equal(fast.vectors, full.vectors) and fast.tiers.tolist() == full.tiers.tolist()
    left = np.setdiff1d(np.union1d(hot_keys, warm_keys), fast.keys)
    if left.size:
        assert float((x[left] @ q).max()) <= fast.outside_bound + ROUND


@settings(max_examples=16, deadline=None, derandomize=True, database=None)
@given(
    seed=st.integers(0, 2**16),
    nbits=st.sampled_from([4, 8]),
    masked=st.booleans(),
    k=st.sampled_from([1, 5, 20]),
    clusters=st.sampled_from([12, 80]),  # 80: lists mix clusters, centroids sit far from items
)
def test_skipping_warm_lists_below_the_hot_floor_never_drops_a_top_k_item(
    seed, nbits, masked, k, clusters
):
    """Warm lists whose bound cannot reach the hot tier's k-th score (minus its slack) are not
    scanned. With every other approximation off (hot scanned exactly, every list probed, every
    code-ranked candidate reranked) the top k must be the exact top k, and some lists must
    really have been skipped (else the shortcut would not be exercised)."""
    import luma_rag.memory.ivf_search as ivf_search

    n, dim = 1200, 32
    x = clustered_unit_vectors(n, dim, seed=seed, clusters=clusters)
    mem = _every_list_probed(x, 300, nbits, n, None)
    rng = np.random.default_rng(seed)
    allowed = rng.random(n) < 0.5 if masked else None
    ok = allowed if allowed is not None else np.ones(n, bool)
    skipped: list[int] = []
    real = ivf_search.probe

    def counting(state, query, kk, sel, zeta_max, floor=float("-inf"), *raising):
        ub = state.centroids @ query + state.list_radius
        skipped.append(int((ub < floor).sum()))
        return real(state, query, kk, sel, zeta_max, floor, *raising)

    q = x[rng.integers(0, n, 12)] + 0.2 * rng.standard_normal((12, dim)) / np.sqrt(dim)
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("luma_rag.memory.warm.probe", counting)
        for query in q:
            c = mem.search(query, k, allowed, k=k)
            true = np.where(ok, x @ query, -np.inf)
            want = np.sort(true)[::-1][:k]
            assert np.allclose(c.scores[:k], want, atol=1e-6), "a top-k item was dropped"
    if clusters == 12:  # separated clusters: most lists fall below the floor
        assert sum(skipped) > 0, "no list was ever skipped: the test exercises nothing"


@settings(max_examples=24, deadline=None, derandomize=True, database=None)
@given(
    seed=st.integers(0, 2**16),
    masked=st.booleans(),
    k=st.sampled_from([1, 5, 20]),
    depth=st.sampled_from([8, 40, 1500]),
    sigmas=st.sampled_from([0.0, None]),
    clusters=st.sampled_from([4, 40]),  # 4: a cluster spans many lists, its items several
    nbits=st.sampled_from([4, 8]),
)
def test_a_floor_raised_by_the_best_warm_list_stays_below_the_kth_exact_score(
    seed, masked, k, depth, sigmas, clusters, nbits
):
    """The warm probe scores items of its best list exactly and skips the lists whose bound
    is below the k-th of those scores and the hot hits' (``floor_raiser``). Those
    items stay candidates, so the floor is a lower bound on the merged k-th exact score at any
    refine depth; with every other approximation off the top k is the exact top k; and lists
    must really have been skipped by it (the hot tier is too small to set a floor itself)."""
    import luma_rag.memory.candidates as cand

    n, dim = 1500, 32
    x = clustered_unit_vectors(n, dim, seed=seed, clusters=clusters, spread=0.35)
    mem = _every_list_probed(x, 30, nbits, depth, sigmas, chunk=500)
    rng = np.random.default_rng(seed)
    allowed = rng.random(n) < 0.5 if masked else None
    ok = allowed if allowed is not None else np.ones(n, bool)
    floors: list[float] = []
    real = cand.floor_raiser

    def recording(*args, **kwargs):
        inner = real(*args, **kwargs)

        def raise_floor(keys):
            floors.append(inner(keys))
            return floors[-1]

        return raise_floor

    skipped = 0
    q = x[rng.integers(0, n, 10)] + 0.2 * rng.standard_normal((10, dim)) / np.sqrt(dim)
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cand, "floor_raiser", recording)
        for query in q:
            floors.clear()
            c = mem.search(query, k, allowed, k=k)
            true = np.where(ok, x @ query, -np.inf)
            if floors and len(c.scores) >= k:
                assert float(c.scores[k - 1]) >= max(floors), "the floor overtook the k-th"
            if floors:
                s = mem.warm._state
                skipped += int((s.centroids @ query + s.list_radius < max(floors) - 1e-3).sum())
            if depth == n and sigmas is None:
                want = np.sort(true)[::-1][:k]
                assert np.allclose(c.scores[:k], want, atol=1e-6), "a top-k item was dropped"
            left_out = ok.copy()
            left_out[c.keys] = False
            if left_out.any():
                assert float(true[left_out].max()) <= c.outside_bound + ROUND
    if clusters == 40 and not masked:  # separated clusters (a filter turns the raise off)
        assert skipped > 0, "the raised floor never skipped a list: the test exercises nothing"


def test_the_floor_is_raised_only_while_raising_pays_off():
    """``RaiseGain``: a raise that skips no list is soon tried on one query in RAISE_RETRY
    only; one that keeps skipping lists stays on, and a store whose raises start paying off
    again turns it back on."""
    from luma_rag.memory.ivf_search import RAISE_RETRY, RaiseGain

    g = RaiseGain()
    assert all(g.due() for _ in range(5))  # optimistic start
    for _ in range(40):
        g.record(0, 80)
    tries = sum(g.due() for _ in range(10 * RAISE_RETRY))
    assert tries == 10  # one in RAISE_RETRY: the retries that notice a change
    for _ in range(40):
        g.record(70, 80)
    assert all(g.due() for _ in range(2 * RAISE_RETRY))
