"""The memory tiers on their own: hot HNSW with tombstones, warm flat -> IVF-PQ, spill policy.

The soundness tests brute-force every query: no item a tier left out of its answer may score
above the ``outside_bound`` it reported (up to float32 rounding).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from luma_rag._rwlock import RWLock
from luma_rag.memory import (
    HotTier,
    HotTierConfig,
    SpillConfig,
    TieredMemory,
    TierHits,
    WarmTierConfig,
)
from luma_rag.memory.ivfpq import pq_m, resolved_nbits
from luma_rag.memory.spill import spill_order, spill_scores
from luma_rag.memory.warm import WarmTier

pytestmark = pytest.mark.timeout(120)

ROUND = 1e-5  # float32 rounding between FAISS's scores and numpy's


def _warm(x: np.ndarray, config: WarmTierConfig) -> WarmTier:
    lock = RWLock()
    return WarmTier(
        x.shape[1], config, fetch=lambda k: x[k], write_lock=lock.write, read_lock=lock.read
    )


def _queries(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Perturbed copies of stored vectors: near some items, equal to none."""
    rng = np.random.default_rng(seed)
    q = x[rng.integers(0, len(x), n)] + 0.3 * rng.standard_normal((n, x.shape[1])) / np.sqrt(
        x.shape[1]
    )
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def _check_outside_bound(
    search: Callable[[np.ndarray, int, np.ndarray | None], TierHits],
    x: np.ndarray,
    live: np.ndarray,
    queries: np.ndarray,
    allowed: np.ndarray | None,
    ks: tuple[int, ...] = (1, 10, 50),
) -> None:
    ok = live.copy()
    if allowed is not None:
        ok &= allowed
    for q in queries:
        true = x @ q
        for k in ks:
            hits = search(q, k, allowed)
            keys, bound = hits.keys, hits.outside_bound
            assert ok[keys].all(), "a removed or disallowed key was returned"
            assert len(np.unique(keys)) == len(keys)
            assert len(keys) == min(k, int(ok.sum())) or bound > -np.inf
            left_out = ok.copy()
            left_out[keys] = False
            if left_out.any():
                worst = float(true[left_out].max())
                assert worst <= bound + ROUND, (k, worst, bound)
            else:
                assert bound == -np.inf or bound >= float(true[ok].min()) - ROUND


# -- hot tier ------------------------------------------------------------------------------------


def test_hot_tombstones_filtered_and_rebuild_only_past_threshold(make_vectors):
    x = make_vectors(400, 16, seed=1)
    hot = HotTier(16, HotTierConfig(exact_below=0, tombstone_fraction=0.25))
    hot.add(np.arange(400), x)
    graph = hot._index
    removed = np.arange(0, 400, 4)  # 100 tombstones: exactly 25%, not past it
    hot.remove(removed)
    assert hot._index is graph, "rebuilt before tombstones passed the threshold"
    assert hot.tombstones == 100 and len(hot) == 300
    for q in x[removed[:20]]:
        res = hot.search(q, 10, None)
        assert not np.isin(res.keys, removed).any()
        assert res.outside_bound == np.inf  # HNSW misses cannot be certified
    hot.remove(np.array([1]))  # the 101st tombstone passes 25%: one rebuild, tombstones gone
    assert hot._index is not graph
    assert hot.tombstones == 0 and hot._index.ntotal == len(hot) == 299
    live = hot.keys()
    assert not np.isin(live, removed).any() and 1 not in live
    found = sum(int(hot.search(x[k], 1, None).keys[0] == k) for k in live[:50])
    assert found >= 48  # HNSW recall after the rebuild


def test_hot_single_removals_rebuild_once(make_vectors):
    x = make_vectors(200, 16, seed=2)
    hot = HotTier(16, HotTierConfig(exact_below=0, tombstone_fraction=0.25))
    hot.add(np.arange(200), x)
    graphs = {id(hot._index)}
    for key in range(51):
        hot.remove(np.array([key]))
        graphs.add(id(hot._index))
    # 50 tombstones of 200 is not past 25%; the 51st is: exactly one rebuild, not one per removal
    assert len(graphs) == 2
    assert hot.tombstones == 0 and len(hot) == 149
    hot.remove(np.array([10_000, 3]))  # unknown or already removed keys are ignored
    assert len(hot) == 149


@pytest.mark.parametrize("masked", [False, True])
def test_hot_exact_outside_bound_is_sound(make_vectors, masked):
    x = make_vectors(500, 24, seed=3)
    hot = HotTier(24, HotTierConfig(exact_below=10_000))
    hot.add(np.arange(500), x)
    hot.remove(np.arange(0, 500, 7))
    live = np.zeros(500, bool)
    live[hot.keys()] = True
    allowed = np.random.default_rng(0).random(500) < 0.3 if masked else None
    _check_outside_bound(hot.search, x, live, _queries(x, 15, 0), allowed)


def test_hot_hnsw_respects_allowed_mask(make_vectors):
    x = make_vectors(300, 16, seed=4)
    hot = HotTier(16, HotTierConfig(exact_below=0))
    hot.add(np.arange(300), x)
    allowed = np.zeros(250, dtype=bool)  # shorter than the key range: the rest is not allowed
    allowed[::3] = True
    for q in _queries(x, 10, 1):
        res = hot.search(q, 20, allowed)
        assert len(res.keys) == 20
        assert (res.keys < 250).all() and allowed[res.keys].all()
    assert len(hot.search(x[0], 5, np.zeros(300, dtype=bool)).keys) == 0


# -- warm tier -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [16, 24, 32, 48, 64])
@pytest.mark.parametrize("nbits", [4, 8])
def test_pq_m_divides_dim(dim, nbits):
    m = pq_m(dim, 8, nbits)
    assert dim % m == 0 and 1 <= m <= max(1, dim // 8) * 2
    if nbits == 4:
        assert m % 2 == 0


@pytest.mark.parametrize("n", [255, 256, 257, 300, 1000])
def test_warm_sizing_flat_then_ivfpq_never_nx_lt_k(make_vectors, n):
    x = make_vectors(n, 32, seed=n)
    warm = _warm(x, WarmTierConfig(min_train=256, background=False))
    warm.add(np.arange(n), x)
    assert len(warm) == n
    if n < 256:
        assert not warm.trained
        assert warm.code_bytes == 4 * 32
        assert (warm.zeta_of(np.arange(n)) == 0).all()
    else:
        assert warm.trained
        nbits = resolved_nbits(WarmTierConfig(), 32)
        assert nbits == 8  # the default below d = 128
        assert warm.code_bytes == pq_m(32, 4, nbits) * nbits // 8
        nlist = warm._state.centroids.shape[0]
        assert 1 <= nlist <= max(1, n // 39)
        assert 1 <= warm._state.nprobe <= nlist


@pytest.mark.parametrize("nbits", [4, 8])
def test_warm_grows_one_by_one_across_every_threshold(make_vectors, nbits):
    x = make_vectors(700, 16, seed=5)
    warm = _warm(x, WarmTierConfig(min_train=256, background=False, nbits=nbits))
    trained_at = None
    for i in range(700):  # crosses min_train, then retrain_growth (x2) of the training size
        warm.add(np.array([i]), x[i : i + 1])
        if warm.trained and trained_at is None:
            trained_at = i + 1
    assert trained_at == 256
    assert len(warm) == 700
    res = warm.search(x[5], 10, None)
    assert len(res.keys) == 10


def test_warm_zeta_is_real_and_positive_once_trained(make_vectors):
    x = make_vectors(800, 32, seed=6)
    warm = _warm(x, WarmTierConfig(min_train=512, background=False))
    warm.add(np.arange(400), x[:400])
    assert not warm.trained and warm.zeta_max() == 0.0
    warm.add(np.arange(400, 800), x[400:])
    assert warm.trained
    zeta = warm.zeta_of(np.arange(800))
    assert np.isfinite(zeta).all() and (zeta > 0).all()
    assert 1e-3 < float(zeta.mean()) < 1.0
    assert warm.zeta_max() == pytest.approx(float(zeta.max()))
    # ζ really bounds how far a code's score is from the exact score: |<q,x> - ADC| <= ζ
    for q in _queries(x, 10, 2):
        res = warm.search(q, 30, None)
        exact = x[res.keys] @ q
        assert (np.abs(exact - res.scores) <= res.zeta + ROUND).all()
        assert (res.zeta > 0).all()


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("kind", ["flat", "ivfpq8", "ivfpq4"])
def test_warm_outside_bound_is_sound(make_vectors, kind, masked):
    n = 1200
    x = make_vectors(n, 32, seed=7, clusters=24)
    config = WarmTierConfig(
        min_train=256 if kind != "flat" else 4096,
        background=False,
        nbits=4 if kind == "ivfpq4" else 8,
        nprobe_fraction=0.05,  # few lists probed: the unprobed-list bound is exercised
        min_nprobe=1,
    )
    warm = _warm(x, config)
    for start in range(0, n, 200):
        warm.add(np.arange(start, start + 200), x[start : start + 200])
    assert warm.trained == (kind != "flat")
    warm.remove(np.arange(0, n, 5))
    live = np.zeros(n, bool)
    live[warm.keys()] = True
    assert live.sum() == len(warm) == n - n // 5
    allowed = np.random.default_rng(1).random(n) < 0.25 if masked else None
    _check_outside_bound(warm.search, x, live, _queries(x, 20, 3), allowed)


def test_warm_remove_counts_each_key_once(make_vectors):
    x = make_vectors(300, 16, seed=8)
    warm = _warm(x, WarmTierConfig(min_train=256, background=False))
    warm.add(np.arange(300), x)
    warm.remove(np.array([3, 3, 4, 999_999]))
    assert len(warm) == 298 == len(warm.keys())


@pytest.mark.timeout(60)
def test_warm_background_retrain_replays_concurrent_changes(make_vectors):
    x = make_vectors(1500, 32, seed=9)
    warm = _warm(x, WarmTierConfig(min_train=512, background=True))
    lock = RWLock()
    warm._write_lock, warm._read_lock = lock.write, lock.read
    with lock.write():  # the engine mutates under its write lock; the retrainer takes it too
        warm.add(np.arange(600), x[:600])
        started = warm.retraining
        warm.add(np.arange(600, 1000), x[600:1000])
        warm.remove(np.arange(0, 1000, 10))
    warm.wait(30)
    assert started and not warm.retraining and warm._retrain_error is None
    assert warm.trained
    expected = np.setdiff1d(np.arange(1000), np.arange(0, 1000, 10))
    assert np.array_equal(warm.keys(), expected)
    got = {int(warm.search(x[k], 1, None).keys[0]) == k for k in expected[::37]}
    assert got == {True} or len(got) == 2  # IVF-PQ may miss a self-query; it must not crash
    present = np.zeros(1500, bool)
    present[expected] = True
    _check_outside_bound(warm.search, x, present, _queries(x, 5, 4), None, ks=(10,))


# -- spill policy and the tiered manager ---------------------------------------------------------


def test_spill_scores_rank_recency_frequency_novelty():
    cfg = SpillConfig()
    now = 10_000.0
    last = np.array([now, now, now - 7200.0, now])
    hits = np.array([0, 5, 0, 0])
    novelty = np.array([0.1, 0.1, 0.1, 0.9])
    s = spill_scores(cfg, now, last, hits, novelty)
    assert s[1] > s[0]  # frequency
    assert s[0] > s[2]  # recency
    assert s[3] > s[0]  # novelty
    assert spill_order(s, 2).tolist() == [2, 0]
    assert spill_order(s, 0).size == 0


def _tiered(x: np.ndarray, budget: int, warm: WarmTierConfig | None = None) -> TieredMemory:
    return TieredMemory(
        x.shape[1],
        budget,
        fetch=lambda k: x[k],
        lock=RWLock(),
        hot=HotTierConfig(background_rebuild=False),  # these tests mutate without the lock
        warm=warm or WarmTierConfig(min_train=256, background=False),
    )


def test_tiered_budget_and_exact_merge(make_vectors):
    x = make_vectors(900, 32, seed=10)
    mem = _tiered(x, 100)
    for start in range(0, 900, 150):
        keys = np.arange(start, start + 150)
        mem.add(keys, x[keys], mem.novelty(x[keys]), float(start))
        assert len(mem.hot) <= 100
    assert len(mem.hot) + len(mem.warm) == 900 and mem.warm.trained
    for q in _queries(x, 10, 5):
        c = mem.search(q, 20, None)
        assert np.allclose(c.scores, x[c.keys] @ q, atol=1e-6)
        assert (np.diff(c.scores) <= 0).all()
        assert set(np.unique(c.tiers).tolist()) <= {0, 1}
    assert mem.tier_of(np.array([0, 10**6])).tolist()[1] == -1  # unknown key: absent, no error


def test_tiered_load_rebuilds_from_unusable_snapshots(make_vectors):
    x = make_vectors(700, 32, seed=11)
    mem = _tiered(x, 100)
    mem.add(np.arange(700), x, mem.novelty(x), 0.0)
    keys = np.arange(700)
    tiers = mem.tier_of(keys)
    snaps = {"hot": mem.warm.snapshot(), "warm": mem.hot.snapshot()}  # swapped: neither fits
    fresh = _tiered(x, 100)
    fresh.load(keys, tiers, np.zeros(700), np.zeros(700), np.zeros(700), snaps)
    assert len(fresh.hot) == len(mem.hot) and len(fresh.warm) == len(mem.warm)
    assert np.array_equal(np.sort(fresh.hot.keys()), np.sort(mem.hot.keys()))
    assert np.array_equal(fresh.warm.keys(), mem.warm.keys())
    for k in (0, 350, 699):
        got, want = fresh.search(x[k], 50, None), mem.search(x[k], 50, None)
        assert int(got.keys[0]) == k
        assert np.array_equal(got.keys[:10], want.keys[:10])


@pytest.mark.parametrize("exact_below", [0, 10_000])
def test_hot_nearest_matches_brute_force(exact_below: int) -> None:
    from luma_rag.memory.hot import HotTier, HotTierConfig
    from luma_rag.memory.hot_scan import fp16_slack

    rng = np.random.default_rng(7)
    x = rng.standard_normal((400, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    tier = HotTier(16, HotTierConfig(exact_below=exact_below, ef_search=128))
    assert (tier.nearest(x[:3]) == -1.0).all()
    tier.add(np.arange(400, dtype=np.int64), x)
    tier.remove(np.arange(0, 400, 4, dtype=np.int64))  # tombstones must be ignored
    alive = np.ones(400, dtype=bool)
    alive[::4] = False
    q = x[::4] * 0.9 + 0.1 * rng.standard_normal((100, 16)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    want = (q @ x[alive].T).max(axis=1)
    got = tier.nearest(q)
    slack = fp16_slack(16)  # the tier stores fp16 vectors
    if exact_below:
        np.testing.assert_allclose(got, want, atol=slack)
    else:  # HNSW: approximate, never above the truth
        assert (got <= want + slack).all() and np.mean(np.isclose(got, want, atol=slack)) > 0.9


def test_hot_background_rebuild_replays_changes_made_meanwhile(make_vectors):
    x = make_vectors(600, 16, seed=5)
    lock = RWLock()
    hot = HotTier(16, HotTierConfig(exact_below=0, tombstone_fraction=0.25), write_lock=lock.write)
    with lock.write():
        hot.add(np.arange(400), x[:400])
        hot.remove(np.arange(0, 101))  # 101 of 400 tombstones: a background rebuild starts
        old = hot._index
        hot.add(np.arange(400, 600), x[400:])  # made while the new graph is being built
        hot.remove(np.array([450, 451]))
    hot.wait()
    assert hot._index is not old, "the rebuilt graph was not swapped in"
    want = set(range(101, 600)) - {450, 451}
    assert set(hot.keys().tolist()) == want and len(hot) == len(want)
    assert hot.tombstones == 2  # the two removals made during the rebuild, replayed
    found = sum(int(hot.search(x[k], 1, None).keys[0] == k) for k in range(101, 600, 10))
    assert found >= 48
