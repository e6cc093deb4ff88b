"""Spills carried out in chunks (:meth:`TieredMemory.migrate`): one short write hold per chunk,
every moving item findable at every moment between them, and a key briefly in both tiers
counted once by the merge."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from luma_rag._rwlock import RWLock
from luma_rag.memory import HotTierConfig, SpillConfig, TieredMemory, WarmTierConfig
from tests.conftest import clustered_unit_vectors

pytestmark = pytest.mark.timeout(300)


class _ObservedLock(RWLock):
    """An RWLock that counts outermost write holds and calls ``after`` once each is released."""

    def __init__(self) -> None:
        super().__init__()
        self.holds = 0
        self.after: Callable[[], None] = lambda: None

    @contextmanager
    def write(self) -> Iterator[None]:
        outer = self._writer != threading.get_ident()
        with super().write():
            yield
        if outer:
            self.holds += 1
            self.after()


def _memory(x: np.ndarray, budget: int, lock: RWLock, chunk: int) -> TieredMemory:
    return TieredMemory(
        x.shape[1],
        budget,
        fetch=lambda k: x[k],
        lock=lock,
        hot=HotTierConfig(background_rebuild=False, exact_below=10_000),
        warm=WarmTierConfig(min_train=256, background=False),
        spill=SpillConfig(chunk=chunk),
    )


def test_a_spill_moves_in_chunks_and_every_item_stays_findable_between_them():
    x = clustered_unit_vectors(1000, 16, seed=21)
    lock = _ObservedLock()
    mem = _memory(x, 300, lock, chunk=40)
    first = np.arange(300)
    mem.add(first, x[first], mem.novelty(x[first]), 0.0)
    new = np.arange(300, 700)
    with lock.write():
        plan, (hot_keys, hot_vectors) = mem.add_deferred(new, x[new], mem.novelty(x[new]), 7200.0)
        mem.hot.add(hot_keys, hot_vectors)
    assert len(plan.spilled) > 40 and len(plan.new_keys) > 40  # both kinds span several chunks
    warm_sizes = [len(mem.warm)]

    def check() -> None:  # runs with the lock released, between two chunks
        hot, warm = set(mem.hot.keys().tolist()), set(mem.warm.keys().tolist())
        assert not hot & warm
        assert set(plan.spilled.tolist()) <= hot | warm, "a spilling item was in neither tier"
        for key in plan.spilled[::17]:
            found = mem.search(x[key], 5, None, k=1).keys
            assert found[0] == key, "a spilling item could not be found by its own vector"
        warm_sizes.append(len(mem.warm))

    lock.holds, lock.after = 0, check
    mem.migrate(plan)
    chunks = -(-len(plan.new_keys) // 40) + -(-len(plan.spilled) // 40)
    assert lock.holds == chunks
    assert np.diff(warm_sizes).max() <= 40  # each hold moved one chunk at most
    assert set(plan.keys.tolist()) == set(mem.warm.keys().tolist())
    assert len(mem.hot) + len(mem.warm) == 700 and len(mem.hot) <= 300


def test_a_key_removed_after_the_spill_was_planned_is_not_moved():
    x = clustered_unit_vectors(700, 16, seed=22)
    mem = _memory(x, 300, RWLock(), chunk=25)
    first = np.arange(300)
    mem.add(first, x[first], mem.novelty(x[first]), 0.0)
    new = np.arange(300, 700)
    plan, (hot_keys, hot_vectors) = mem.add_deferred(new, x[new], mem.novelty(x[new]), 7200.0)
    mem.hot.add(hot_keys, hot_vectors)
    gone = np.concatenate([plan.spilled[:3], plan.new_keys[:3]])
    mem.remove(gone)
    mem.migrate(plan)
    assert not set(gone.tolist()) & set(mem.warm.keys().tolist())
    assert not set(gone.tolist()) & set(mem.hot.keys().tolist())
    assert (mem.tier_of(gone) == -1).all()
    assert len(mem.hot) + len(mem.warm) == 700 - len(gone)


def test_an_item_in_both_tiers_for_a_moment_is_one_candidate():
    x = clustered_unit_vectors(800, 16, seed=23)
    mem = _memory(x, 300, RWLock(), chunk=256)
    keys = np.arange(800)
    mem.add(keys, x, mem.novelty(x), 0.0)
    both = mem.hot.keys()[:5]
    mem.warm.add(both, x[both])  # what a move between tiers could show a reader
    for key in both:
        c = mem.search(x[key], 20, None, k=10)
        assert len(np.unique(c.keys)) == len(c.keys)
        assert c.keys[0] == key and (c.keys == key).sum() == 1
        assert np.allclose(c.scores, x[c.keys] @ x[key], atol=1e-6)


def test_work_prepared_outside_the_hold_encodes_as_inline_and_stale_work_is_redone():
    """``WarmTier.prepare`` (list, ζ, residual norm, computed before a write hold) gives the
    tier exactly what an inline add computes; work prepared for another batch (or another
    tier's generation, trained alike here) is not used."""
    from luma_rag.memory.warm import WarmTier

    x = clustered_unit_vectors(1200, 32, seed=9)
    cfg = WarmTierConfig(min_train=256, background=False)

    def tier() -> WarmTier:
        lock = RWLock()
        t = WarmTier(32, cfg, fetch=lambda k: x[k], write_lock=lock.write, read_lock=lock.read)
        t.add(np.arange(600), x[:600])  # trains (inline)
        return t

    inline, ahead, stale = tier(), tier(), tier()
    assert inline.trained
    keys = np.arange(600, 1200)
    batch = np.ascontiguousarray(x[600:])
    inline.add(keys, batch)
    ahead.add(keys, batch, ahead.prepare(batch))
    other = inline.prepare(batch)  # inline's generation, not stale's
    wrong = stale.prepare(np.ascontiguousarray(x[:600]))  # another batch
    stale.add(keys[:300], batch[:300], other)
    stale.add(keys[300:], batch[300:], wrong)
    for t in (ahead, stale):
        assert np.array_equal(t.zeta_of(keys), inline.zeta_of(keys))
        assert np.array_equal(t._state.list_radius, inline._state.list_radius)
    for q in x[::100]:
        a, b = inline.search(q, 20, None), ahead.search(q, 20, None)
        assert a.keys.tolist() == b.keys.tolist() and np.array_equal(
            a.outside_after, b.outside_after
        )
