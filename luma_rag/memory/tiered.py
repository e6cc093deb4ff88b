"""The two-tier memory: hot HNSW under a budget, warm IVF-PQ below it, exact rerank on top.

New items enter the hot tier. When it passes its budget the lowest-scoring items (see
:mod:`luma_rag.memory.spill`) move to the warm tier; warm items that keep being hit are
promoted back. A query probes both tiers, merges the candidates and rescores them by exact
cosine against the raw vectors, so the scores it returns are exact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from luma_rag._rwlock import RWLock
from luma_rag.memory import candidates as cand
from luma_rag.memory.base import Tier
from luma_rag.memory.candidates import Candidates, Scorer, merge_tiers, ranked_candidates
from luma_rag.memory.hot import HotTier, HotTierConfig
from luma_rag.memory.spill import Migration, SpillConfig, spill_order, spill_scores
from luma_rag.memory.warm import WarmTier, WarmTierConfig

__all__ = ["Candidates", "Migration", "TieredMemory"]

logger = logging.getLogger(__name__)

HOT, WARM, ABSENT = 0, 1, -1
TIER_NAMES: dict[int, Literal["hot", "warm"]] = {HOT: "hot", WARM: "warm"}


class TieredMemory:
    """Hot + warm tiers and the per-item usage the spill policy reads.

    Mutating methods must be called under ``lock.write()``; :meth:`search` under ``lock.read()``;
    :meth:`migrate` and :meth:`novelty` take the lock themselves, one bounded hold at a time.
    """

    def __init__(
        self,
        dim: int,
        hot_budget: int,
        *,
        fetch: Callable[[np.ndarray], np.ndarray],
        lock: RWLock,
        score: Scorer | None = None,
        hot: HotTierConfig | None = None,
        warm: WarmTierConfig | None = None,
        spill: SpillConfig | None = None,
    ) -> None:
        self.dim = dim
        self.hot_budget = hot_budget
        self._lock = lock
        self.spill_config = spill or SpillConfig()
        self._fetch = fetch
        self._score: Scorer = score or (lambda keys, q: cand.row_scores(fetch(keys), q))
        self.hot = HotTier(dim, hot, write_lock=lock.write)
        self.warm = WarmTier(dim, warm, fetch=fetch, write_lock=lock.write, read_lock=lock.read)
        self._tier = np.full(0, ABSENT, dtype=np.int8)
        self._hits = np.zeros(0, dtype=np.int32)
        self._last = np.zeros(0, dtype=np.float64)
        self._novelty = np.zeros(0, dtype=np.float32)

    # -- per-key state ---------------------------------------------------------------------------
    def _grow(self, hi: int) -> None:
        n = len(self._tier)
        if hi <= n:
            return
        cap = max(hi, 2 * n, 1024)
        self._tier = np.concatenate([self._tier, np.full(cap - n, ABSENT, np.int8)])
        self._hits = np.concatenate([self._hits, np.zeros(cap - n, np.int32)])
        self._last = np.concatenate([self._last, np.zeros(cap - n, np.float64)])
        self._novelty = np.concatenate([self._novelty, np.zeros(cap - n, np.float32)])

    def tier_of(self, keys: np.ndarray) -> np.ndarray:
        """int8 tier of each key (-1 when absent, e.g. committed but not yet inserted)."""
        keys = np.asarray(keys, dtype=np.int64)
        out = np.full(len(keys), ABSENT, dtype=np.int8)
        ok = keys < len(self._tier)
        out[ok] = self._tier[keys[ok]]
        return out

    def usage(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(hits, last_access) of ``keys``."""
        keys = np.asarray(keys, dtype=np.int64)
        return self._hits[keys].copy(), self._last[keys].copy()

    def novelty(self, vectors: np.ndarray) -> np.ndarray:
        """1 − cosine to the nearest hot item, per (n, d) unit vector: float32 (n,).

        Takes the read lock per block of 64 vectors (call it without the lock): a long read
        hold would make a waiting writer (the lock prefers writers) stall every query.
        """
        out = np.empty(len(vectors), dtype=np.float32)
        for start in range(0, len(vectors), 64):
            with self._lock.read():
                out[start : start + 64] = self.hot.nearest(vectors[start : start + 64])
        return np.clip(1.0 - out, 0.0, 1.0).astype(np.float32)

    # -- mutation ---------------------------------------------------------------------------------
    def load(
        self,
        keys: np.ndarray,
        tiers: np.ndarray,
        hits: np.ndarray,
        last_access: np.ndarray,
        novelty: np.ndarray,
        snapshots: dict[str, tuple[dict[str, np.ndarray], dict[str, Any]] | None],
        warm_train_keys: np.ndarray | None = None,
    ) -> list[str]:
        """Rebuild from the durable record, reusing index snapshots where they are valid.

        Each tier is restored from its snapshot (when given), then reconciled with the record:
        keys the snapshot has but the record does not are removed, keys the record assigns to
        the tier but the snapshot lacks are added from the raw vectors. A warm tier without a
        usable snapshot is retrained deterministically from ``warm_train_keys`` (the keys its
        last index was trained on) when they are known.

        Returns:
            Notes on rebuilds that may change results (empty when none can).
        """
        keys = np.asarray(keys, dtype=np.int64)
        self._grow(int(keys.max()) + 1 if keys.size else 0)
        self._tier[keys] = tiers
        self._hits[keys] = hits
        self._last[keys] = last_access
        self._novelty[keys] = novelty
        notes: list[str] = []
        tiers_: tuple[tuple[Tier, int], ...] = ((self.hot, HOT), (self.warm, WARM))
        for tier, code in tiers_:
            snap = snapshots.get(tier.name)
            want = keys[tiers == code]
            if snap is not None:
                try:
                    tier.restore(*snap)
                except Exception as e:  # a snapshot that does not fit is rebuilt, not trusted
                    logger.warning(
                        "%s tier snapshot unusable (%s); rebuilding from raw vectors", tier.name, e
                    )
                    tier = self._fresh(tier)  # reconcile into the fresh tier, not the broken one
                    snap = None
            if snap is None and want.size:
                if tier is self.warm and warm_train_keys is not None and warm_train_keys.size:
                    self.warm.rebuild(want, warm_train_keys)
                    continue
                notes.append(self._rebuild_note(tier, len(want)))
            have = tier.keys()
            extra = np.setdiff1d(have, want)
            missing = np.setdiff1d(want, have)
            if extra.size:
                tier.remove(extra)
            for start in range(0, len(missing), 8192):
                chunk = missing[start : start + 8192]
                tier.add(chunk, self._fetch(chunk))
        return [n for n in notes if n]

    def _rebuild_note(self, tier: Tier, n: int) -> str:
        """What a rebuild without a snapshot may change ('' when results stay identical)."""
        if tier is self.hot and n > self.hot.config.exact_below:
            return "hot HNSW graph rebuilt from raw vectors: recall may differ slightly"
        if tier is self.warm and n >= self.warm.config.min_train:
            return "warm index retrained on the current items: recall may differ until reopened"
        return ""

    def _fresh(self, tier: Tier) -> Tier:
        """Replace ``tier`` with an empty one of the same kind and settings; return it."""
        if tier is self.hot:
            self.hot = HotTier(self.dim, self.hot.config, write_lock=self.hot._write_lock)
            return self.hot
        w = self.warm
        self.warm = WarmTier(
            self.dim, w.config, fetch=w._fetch, write_lock=w._write_lock, read_lock=w._read_lock
        )
        return self.warm

    def add(
        self, keys: np.ndarray, vectors: np.ndarray, novelty: np.ndarray, now: float
    ) -> np.ndarray:
        """Insert new items; returns the keys that ended in the warm tier as a consequence.

        As "insert into hot, then :meth:`spill`", without graph nodes for new items that would
        spill at once: the policy ranks hot and new items together, and the new ones it picks go
        straight to warm. All under the caller's write lock (:meth:`add_deferred` +
        :meth:`migrate` split it into short holds).
        """
        plan, (hot_keys, hot_vectors) = self.add_deferred(keys, vectors, novelty, now)
        self.migrate(plan)
        self.hot.add(hot_keys, hot_vectors)
        return plan.keys

    def add_deferred(
        self, keys: np.ndarray, vectors: np.ndarray, novelty: np.ndarray, now: float
    ) -> tuple[Migration, tuple[np.ndarray, np.ndarray]]:
        """:meth:`add`'s decisions only: no graph insert, no warm encoding (cheap; write lock).

        Returns:
            (the moves to warm, for :meth:`migrate`; (int64 (h,) keys, float32 (h, d) vectors)
            the caller must insert into the hot tier, e.g. with ``hot.stage`` outside the write
            lock and ``hot.commit`` under it).
        """
        keys = np.asarray(keys, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._grow(int(keys.max()) + 1)
        self._tier[keys] = HOT
        self._hits[keys] = 0
        self._last[keys] = now
        self._novelty[keys] = novelty
        chosen = self._spill_choice(np.concatenate([self.hot.keys(), keys]), now)
        if chosen.size == 0:
            return Migration.empty(self.dim), (keys, vectors)
        to_warm = np.isin(keys, chosen)
        self._tier[keys[to_warm]] = WARM  # label only: each key enters the index in migrate()
        plan = Migration(chosen[~np.isin(chosen, keys)], keys[to_warm], vectors[to_warm])
        logger.debug("add: %d new items straight to warm, %d to spill", to_warm.sum(), len(plan))
        return plan, (keys[~to_warm], vectors[~to_warm])

    def migrate(self, plan: Migration) -> None:
        """Carry out ``plan`` in chunks of ``SpillConfig.chunk`` items, one write hold each.

        A spilled key leaves the hot tier in the same hold that puts it in the warm tier, so a
        query finds it in one of them at every moment. Keys removed meanwhile are skipped. Call
        it without the write lock to let queries run between chunks (with it: one long hold);
        each chunk's list assignment and ζ are computed before its hold (``WarmTier.prepare``).
        """
        size = self.spill_config.chunk
        for start in range(0, len(plan.new_keys), size):
            ks, vs = plan.new_keys[start : start + size], plan.new_vectors[start : start + size]
            vs = np.ascontiguousarray(vs, dtype=np.float32)
            ready = self.warm.prepare(vs)
            with self._lock.write():
                ok = self._tier[ks] == WARM
                self.warm.add(*((ks, vs, ready) if ok.all() else (ks[ok], vs[ok])))
        for start in range(0, len(plan.spilled), size):
            ks = plan.spilled[start : start + size]
            vs = self._fetch(ks)  # the raw vectors (hot keeps fp16); rows outlive deletes
            ready = self.warm.prepare(vs)
            with self._lock.write():
                ok = self._tier[ks] == HOT
                self.warm.add(*((ks, vs, ready) if ok.all() else (ks[ok], vs[ok])))
                self.hot.remove(ks[ok])
                self._tier[ks[ok]] = WARM

    def _spill_choice(self, candidates: np.ndarray, now: float) -> np.ndarray:
        """The keys among hot ``candidates`` the spill policy moves to warm (empty: in budget)."""
        over = len(candidates) - self.hot_budget
        if over <= 0:
            return np.zeros(0, dtype=np.int64)
        count = over + int(self.spill_config.slack * self.hot_budget)
        scores = spill_scores(
            self.spill_config,
            now,
            self._last[candidates],
            self._hits[candidates],
            self._novelty[candidates],
        )
        return candidates[spill_order(scores, min(count, len(candidates)))]

    def remove(self, keys: np.ndarray) -> None:
        """Remove keys from whichever tier holds them (duplicates and unknown keys ignored)."""
        keys = np.unique(np.asarray(keys, dtype=np.int64))
        keys = keys[keys < len(self._tier)]
        tiers = self._tier[keys]
        self.hot.remove(keys[tiers == HOT])
        self.warm.remove(keys[tiers == WARM])
        self._tier[keys] = ABSENT

    def spill(self, now: float) -> np.ndarray:
        """Move the lowest-scoring hot items to warm until the hot tier is within budget."""
        plan = self.spill_plan(now)
        self.migrate(plan)
        return plan.spilled

    def spill_plan(self, now: float) -> Migration:
        """The hot items :meth:`spill` would move (for :meth:`migrate`)."""
        out = self._spill_choice(self.hot.keys(), now)
        none = Migration.empty(self.dim)
        return Migration(out, none.new_keys, none.new_vectors)

    def record_hits(self, keys: np.ndarray, now: float) -> np.ndarray:
        """Count a hit for ``keys``; return the warm ones that have earned promotion.

        Safe under the read lock: it only writes per-key counters (races lose a count at most).
        """
        keys = np.asarray(keys, dtype=np.int64)
        self._hits[keys] += 1
        self._last[keys] = now
        due = (self._tier[keys] == WARM) & (self._hits[keys] >= self.spill_config.promote_hits)
        return keys[due]

    def promote(self, keys: np.ndarray, now: float) -> tuple[np.ndarray, Migration]:
        """Move warm ``keys`` to hot: (promoted, the spill it calls for, for :meth:`migrate`)."""
        keys = np.asarray(keys, dtype=np.int64)
        keys = keys[self._tier[keys] == WARM]
        if keys.size == 0:
            return keys, Migration.empty(self.dim)
        vectors = self._fetch(keys)
        self.warm.remove(keys)
        self.hot.add(keys, vectors)
        self._tier[keys] = HOT
        self._last[keys] = now
        return keys, self.spill_plan(now)

    # -- search ----------------------------------------------------------------------------
    def search(
        self,
        query: np.ndarray,
        fetch_k: int,
        allowed: np.ndarray | None,
        k: int | None = None,
    ) -> Candidates:
        """Probe hot (up to ``fetch_k`` hits, at most its efSearch: the beam sets the cost),
        warm for its refine depth (``candidates.warm_hits``: lists below the k-th score's
        floor are skipped); merge and rescore exactly (``candidates.merge_tiers``): at most
        ``min(2·fetch_k, max(2·k, 32))`` candidates, the rest under ``outside_bound``.

        Args:
            query: float32 (d,) unit. fetch_k: candidates per tier. allowed: bool mask over
                keys or None. k: hits the caller will show (default ``fetch_k``).
        """
        k = fetch_k if k is None else max(1, min(k, fetch_k))
        hot = self.hot.search(query, max(k, min(fetch_k, self.hot.config.ef_search)), allowed)
        warm, pre = cand.warm_hits(
            query,
            hot,
            k,
            self._score,
            lambda f, r: self.warm.search(query, self.warm.depth(fetch_k), allowed, f, r),
            self.warm.zeta_of,
        )
        return merge_tiers(
            query,
            hot,
            warm,
            fetch=self._fetch,
            score=self._score,
            k=k,
            fetch_k=fetch_k,
            sigmas=self.warm.config.refine_sigmas,
            pre=pre,
        )

    def exact(self, query: np.ndarray, keys: np.ndarray) -> Candidates:
        """Score every one of ``keys`` exactly: a complete candidate set (nothing left out)."""
        keys = np.asarray(keys, dtype=np.int64)
        zeta = np.zeros(len(keys), np.float32)
        return self.rerank(query, keys, self.tier_of(keys), zeta, float("-inf"))

    def exact_top(self, query: np.ndarray, keys: np.ndarray, fetch_k: int) -> Candidates:
        """The exact top ``fetch_k >= 1`` of the live int64 ``keys`` (deleted ones skipped), with
        an exact outside bound: the completeness fallback (:func:`candidates.exact_top`) for a
        query the gate would ANSWER from a set an ANN tier did not prove complete."""
        keys = np.asarray(keys, dtype=np.int64)
        live = keys[self.tier_of(keys) >= 0]
        return cand.exact_top(query, live, fetch_k, self._fetch, self.tier_of)

    def rerank(
        self,
        query: np.ndarray,
        keys: np.ndarray,
        tiers: np.ndarray,
        zeta: np.ndarray,
        outside_bound: float,
        keep: int | None = None,
    ) -> Candidates:
        """The one exact-rerank path: cosine against the raw vectors (read in key order), best
        first (equal scores by key). With ``keep``, only the best ``keep`` are returned and the
        best dropped score joins ``outside_bound``, so everything not returned stays bounded.

        Args:
            query: float32 (d,) unit. keys: int64 (m,). tiers: int8 (m,). zeta: float32 (m,).
            outside_bound: the bound on anything not in ``keys``.
            keep: most candidates to return (None: all).
        """
        keys = np.asarray(keys, dtype=np.int64)
        by_key = np.argsort(keys, kind="stable")
        keys, tiers, zeta = keys[by_key], tiers[by_key], zeta[by_key]
        vectors = self._fetch(keys)
        exact = self._score(keys, query)  # row by row, as the tier search scores them
        return ranked_candidates(keys, exact, tiers, zeta, vectors, outside_bound, keep)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for background work of both tiers (graph rebuild, IVF-PQ retrain)."""
        self.hot.wait(timeout)
        self.warm.wait(timeout)

    def stats(self) -> dict[str, Any]:
        """Counts and RAM of each tier."""
        return {
            "hot": len(self.hot),
            "warm": len(self.warm),
            "hot_budget": self.hot_budget,
            "hot_tombstones": self.hot.tombstones,
            "hot_bytes": self.hot.nbytes(),
            "warm_bytes": self.warm.nbytes(),
            "warm_trained": self.warm.trained,
            "warm_code_bytes": self.warm.code_bytes,
            "warm_retraining": self.warm.retraining,
        }
