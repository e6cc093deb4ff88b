"""The warm index's centroids are held once: ``IndexState.centroids`` is a read-only view of the
coarse quantizer's own storage that keeps the index alive (``ivfpq.centroids_of``)."""

from __future__ import annotations

import gc
from contextlib import nullcontext

import numpy as np
import pytest

from luma_rag.memory.ivfpq import WarmTierConfig, centroids_of, trained_state
from luma_rag.memory.warm import WarmTier
from tests.conftest import clustered_unit_vectors

pytestmark = pytest.mark.timeout(300)


def test_centroids_are_the_quantizers_own_storage_and_outlive_the_last_index_reference() -> None:
    import faiss

    x = clustered_unit_vectors(3000, 64, seed=4)
    state = trained_state(64, WarmTierConfig(nbits=4), x)
    quantizer = faiss.downcast_index(faiss.extract_index_ivf(state.index).quantizer)
    want = quantizer.reconstruct_n(0, quantizer.ntotal)
    c = state.centroids
    assert c.dtype == np.float32 and c.shape == want.shape and np.array_equal(c, want)
    assert c.ctypes.data == int(quantizer.get_xb())  # no second copy
    with pytest.raises(ValueError):
        c[0, 0] = 1.0  # read-only
    del state, quantizer
    gc.collect()
    junk = [np.random.default_rng(i).standard_normal(len(want.ravel())) for i in range(8)]
    assert np.array_equal(c, want) and len(junk) == 8  # the view kept its index alive
    again = centroids_of(faiss.deserialize_index(faiss.serialize_index(c.base._owner)))
    assert np.array_equal(again, want)


def _tier(x: np.ndarray) -> WarmTier:
    return WarmTier(
        x.shape[1],
        WarmTierConfig(min_train=256, background=False),
        fetch=lambda k: x[k],
        write_lock=nullcontext,
        read_lock=nullcontext,
    )


def test_a_restored_tier_views_its_index_centroids_and_refuses_a_snapshot_that_disagrees() -> None:
    x = clustered_unit_vectors(1500, 32, seed=5)
    tier = _tier(x)
    tier.add(np.arange(1500, dtype=np.int64), x)
    assert tier.trained
    arrays, header = tier.snapshot()
    back = _tier(x)
    back.restore(arrays, header)
    c = back._state.centroids
    assert not c.flags.writeable and np.array_equal(c, tier._state.centroids)
    q = x[7]
    a, b = tier.search(q, 10, None), back.search(q, 10, None)
    assert np.array_equal(a.keys, b.keys) and np.array_equal(a.scores, b.scores)
    bad = dict(arrays, centroids=np.asarray(arrays["centroids"]) + np.float32(1e-3))
    with pytest.raises(ValueError, match="centroids"):
        _tier(x).restore(bad, header)
