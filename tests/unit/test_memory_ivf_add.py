"""Prepared codes added to the warm index (:func:`~luma_rag.memory.ivf_add.add_codes`) give it
the very bytes FAISS's own ``add_with_ids`` gives it, for 4-bit fast-scan and 8-bit codes."""

from __future__ import annotations

import numpy as np
import pytest

from luma_rag.memory.ivf_add import add_codes
from luma_rag.memory.ivfpq import WarmTierConfig, encode_into, prepare, trained_state

pytestmark = pytest.mark.timeout(300)


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize(("dim", "nbits"), [(128, 4), (32, 8)])
def test_prepared_codes_build_the_same_index_as_add_with_ids(dim: int, nbits: int) -> None:
    import faiss

    rng = np.random.default_rng(7)
    x = _unit(rng, 6000, dim)
    config = WarmTierConfig(nbits=nbits)
    plain, ours = trained_state(dim, config, x[:2000]), trained_state(dim, config, x[:2000])
    # uneven batches, so lists fill partial blocks and grow across several calls
    for start, size in ((2000, 1), (2001, 37), (2038, 700), (2738, 1262)):
        batch = np.ascontiguousarray(x[start : start + size])
        keys = np.arange(start, start + size, dtype=np.int64) * 5 + 3
        plain.index.add_with_ids(batch, keys)
        zeta = encode_into(ours, keys, batch, prepare(ours, batch))
        assert zeta.shape == (size,) and np.all(zeta > 0)
    assert ours.index.ntotal == plain.index.ntotal == 2000
    assert np.array_equal(faiss.serialize_index(ours.index), faiss.serialize_index(plain.index))
    queries = x[4000:4100]
    for state in (plain, ours):
        state.ivf().nprobe = 8
    d_plain, i_plain = plain.index.search(queries, 20)
    d_ours, i_ours = ours.index.search(queries, 20)
    assert np.array_equal(i_ours, i_plain) and np.array_equal(d_ours, d_plain)
    gone = np.arange(2001, 2400, dtype=np.int64) * 5 + 3
    for state in (plain, ours):
        state.index.remove_ids(faiss.IDSelectorBatch(gone))
    assert np.array_equal(faiss.serialize_index(ours.index), faiss.serialize_index(plain.index))


def test_codes_that_do_not_fit_the_index_are_refused_and_nothing_changes() -> None:
    rng = np.random.default_rng(8)
    x = _unit(rng, 3000, 64)
    state = trained_state(64, WarmTierConfig(nbits=4), x[:2000])
    ready = prepare(state, x[2000:2100])
    assert ready is not None
    keys = np.arange(100, dtype=np.int64)
    assert not add_codes(state.index, keys[:50], ready.lists, ready.codes)  # counts differ
    assert not add_codes(state.index, keys, ready.lists, ready.codes[:, :3])  # code too short
    bad = ready.lists.copy()
    bad[0] = state.ivf().nlist  # no such list
    assert not add_codes(state.index, keys, bad, ready.codes)
    assert state.index.ntotal == 0
    assert add_codes(state.index, keys, ready.lists, ready.codes)
    assert state.index.ntotal == 100
