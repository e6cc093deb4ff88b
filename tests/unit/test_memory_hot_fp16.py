"""The hot tier's fp16 vectors: the bound its exact scan reports stays sound, hits are rescored
exactly by the memory, and the tier holds 2 bytes per dimension, tombstones counted."""

from __future__ import annotations

import numpy as np
import pytest

from luma_rag._rwlock import RWLock
from luma_rag.memory import HotTierConfig, TieredMemory, WarmTierConfig
from luma_rag.memory.hot import HotTier
from luma_rag.memory.hot_scan import fp16_slack
from tests.conftest import clustered_unit_vectors

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("dim", [8, 64, 512])
def test_fp16_scores_stay_within_the_slack(dim):
    rng = np.random.default_rng(dim)
    x = rng.standard_normal((2000, dim)).astype(np.float32)
    x[:500] *= np.exp(rng.uniform(-12, 0, (500, dim))).astype(np.float32)  # tiny coordinates
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    hot = HotTier(dim, HotTierConfig(exact_below=10_000))
    hot.add(np.arange(2000), x)
    stored = hot._vectors_view().astype(np.float64)  # FAISS's own fp16 encoding
    q = x[rng.integers(0, 2000, 50)] + 0.05 * rng.standard_normal((50, dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    true = q.astype(np.float64) @ x.astype(np.float64).T
    assert np.abs(true - q.astype(np.float64) @ stored.T).max() <= fp16_slack(dim)
    for i, query in enumerate(q[:10]):  # the scores FAISS computes from them, too
        hits = hot.search(query, 50, None)
        assert np.abs(hits.scores - true[i, hits.keys]).max() <= fp16_slack(dim)


@pytest.mark.parametrize("masked", [False, True])
def test_the_exact_scan_bound_covers_near_ties(masked):
    dim = 128
    base = clustered_unit_vectors(300, dim, seed=41, clusters=3)
    rng = np.random.default_rng(42)
    near = base[:50] + 1e-4 * rng.standard_normal((50, dim)).astype(np.float32)  # fp16-close
    x = np.concatenate([base, near / np.linalg.norm(near, axis=1, keepdims=True)])
    hot = HotTier(dim, HotTierConfig(exact_below=10_000))
    hot.add(np.arange(len(x)), x)
    allowed = rng.random(len(x)) < 0.5 if masked else None
    ok = allowed if allowed is not None else np.ones(len(x), bool)
    for query in x[:40]:
        hits = hot.search(query, 5, allowed)
        left = ok.copy()
        left[hits.keys] = False
        assert float((x[left] @ query).max()) <= hits.outside_bound
        assert hits.vectors is None  # the memory rescores from the raw vectors


def test_the_memory_returns_exact_scores_for_hot_hits():
    x = clustered_unit_vectors(600, 64, seed=43)
    mem = TieredMemory(
        64,
        400,
        fetch=lambda k: x[k],
        lock=RWLock(),
        hot=HotTierConfig(background_rebuild=False, exact_below=0),
        warm=WarmTierConfig(min_train=256, background=False),
    )
    mem.add(np.arange(600), x, mem.novelty(x), 0.0)
    for query in x[::60]:
        c = mem.search(query, 20, None, k=10)
        assert (c.tiers == 0).any()
        np.testing.assert_array_equal(c.vectors, x[c.keys])
        np.testing.assert_allclose(c.scores, x[c.keys] @ query, atol=1e-6)


def test_hot_bytes_count_two_bytes_per_dimension_and_the_tombstones():
    dim = 512
    x = clustered_unit_vectors(3000, dim, seed=44)
    hot = HotTier(dim, HotTierConfig(exact_below=0, tombstone_fraction=0.9))
    hot.add(np.arange(3000), x)
    per_node = hot.nbytes() / 3000
    assert 2 * dim < per_node < 2 * dim + 400  # fp16 vectors + links + bookkeeping
    hot.remove(np.arange(0, 3000, 2))  # tombstones keep their RAM until a rebuild
    assert hot.nbytes() / len(hot) > 1.9 * per_node
