"""Hot tier: FAISS HNSW over fp16 vectors (``IndexHNSWSQ``, inner product) under a budget.

HNSW cannot delete, so removed items become tombstones that a bitmap ID selector filters
out at search time; the graph is rebuilt only once tombstones pass a fraction of the tier.
When the tier is small it is scanned exactly instead, which makes its misses certifiable.
Vectors are kept as fp16 (:mod:`luma_rag.memory.hot_scan`): ~1.3 KB per node at d = 512
instead of ~2.3 KB; the memory rescores hot candidates exactly from the raw vectors.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np

from luma_rag._config import ConfigBase, check
from luma_rag.memory.base import TierHits, bitmap_from_mask, empty_hits, live_positions
from luma_rag.memory.hot_scan import fp16_slack, scan_top, vectors_view

__all__ = ["HotTier", "HotTierConfig", "Staged"]

logger = logging.getLogger(__name__)

# nearest() (the spill policy's novelty, a heuristic, not certified): scan exactly up to this many
# nodes (each call widens the fp16 rows to float32 for one BLAS product), else the graph. The
# store calls it 64 vectors at a time, so each call pays the widening: at d = 512 the scan cost
# 14 / 33 / 130 µs per vector at 512 / 1024 / 4096 nodes, the graph 18 / 25 / 44 µs.
_NEAREST_EXACT_BELOW = 512
_NEAREST_EF = 16
_SWAP_REPLAY_MAX, _SWAP_TRIES = 64, 1000  # rebuild swap: most keys replayed under the lock


@dataclass(frozen=True)
class HotTierConfig(ConfigBase):
    """HNSW settings of the hot tier.

    Attributes:
        M: graph degree. ef_construction / ef_search: HNSW beam widths (the memory asks the
            tier for ``max(k, min(rerank_depth, ef_search))`` hits, so ``ef_search`` also caps
            how many hot candidates a query rescores).
        exact_below: scan exactly (certifiable) while the tier holds at most this many items.
        tombstone_fraction: rebuild the graph when this share of its nodes are tombstones.
        background_rebuild: rebuild in a background thread and swap the new graph in under the
            engine's write lock (queries keep using the old graph meanwhile). Needs the lock,
            so a tier built without one rebuilds inline.
    """

    M: int = 32
    ef_construction: int = 40
    ef_search: int = 32
    exact_below: int = 2048
    tombstone_fraction: float = 0.3
    background_rebuild: bool = True

    def __post_init__(self) -> None:
        check(4 <= self.M <= 256, f"HotTierConfig.M must be in [4, 256], got {self.M}")
        check(self.ef_construction >= self.M, "HotTierConfig.ef_construction must be >= M")
        check(self.ef_search >= 1, "HotTierConfig.ef_search must be >= 1")
        check(self.exact_below >= 0, "HotTierConfig.exact_below must be >= 0")
        check(
            0.0 < self.tombstone_fraction < 1.0,
            "HotTierConfig.tombstone_fraction must be in (0, 1)",
        )


@dataclass(frozen=True)
class Staged:
    """A graph copy with new nodes inserted (:meth:`HotTier.stage`), not yet swapped in."""

    base: Any
    base_total: int
    graph: Any
    keys: np.ndarray
    vectors: np.ndarray


def _replay(tier: HotTier, log: list[tuple[str, np.ndarray, np.ndarray | None]]) -> None:
    """Apply logged adds / removes to a tier being rebuilt."""
    for op, ks, vs in log:
        if op == "add" and vs is not None:
            tier.add(ks, vs)
        else:
            tier.remove(ks)


class HotTier:
    """HNSW over unit vectors with tombstones. Not thread-safe: the engine's lock guards it."""

    name = "hot"

    def __init__(
        self,
        dim: int,
        config: HotTierConfig | None = None,
        *,
        write_lock: Callable[[], AbstractContextManager[None]] | None = None,
    ) -> None:
        self.dim = dim
        self.config = config or HotTierConfig()
        self._write_lock = write_lock
        self._log: list[tuple[str, np.ndarray, np.ndarray | None]] | None = None
        self._thread: threading.Thread | None = None
        self._reset()

    def _reset(self) -> None:
        import faiss

        fp16, ip = faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        index = faiss.IndexHNSWSQ(self.dim, fp16, self.config.M, ip)
        index.hnsw.efConstruction = self.config.ef_construction
        index.hnsw.efSearch = self.config.ef_search
        self._index = index
        self._pos_keys = np.zeros(0, dtype=np.int64)  # position -> key
        self._alive = np.zeros(0, dtype=bool)  # position -> not a tombstone
        self._live = 0  # live (non-tombstone) nodes; key -> position: live_positions()
        self._xb: np.ndarray | None = None
        self._params: dict[int, tuple[Any, np.ndarray | None]] = {}  # unfiltered, per efSearch

    def __len__(self) -> int:
        return self._live

    @property
    def tombstones(self) -> int:
        """Removed items still in the graph."""
        return int(self._index.ntotal) - self._live

    def keys(self) -> np.ndarray:
        """int64 keys currently live in the tier."""
        return self._pos_keys[self._alive].copy()

    def _vectors_view(self) -> np.ndarray:
        """A no-copy (ntotal, d) float16 view of the graph's vectors."""
        if self._xb is None or self._xb.shape[0] != self._index.ntotal:
            self._xb = vectors_view(self._index, self.dim)
        return self._xb

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Add (n,) int64 keys with (n, d) float32 unit vectors (keys must be new)."""
        keys = np.asarray(keys, dtype=np.int64)
        if keys.size == 0:
            return
        start = int(self._index.ntotal)
        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self._register(keys, vectors, start)

    def stage(self, keys: np.ndarray, vectors: np.ndarray) -> Staged | None:
        """Insert (n,) new keys into a *copy* of the graph; :meth:`commit` swaps it in.

        The expensive part of an insert (the graph search per new node) then runs without the
        write lock: the live graph is only read (copied) meanwhile, so queries go on. Call from
        the store's single writer, with no other hot mutation between stage and commit.
        """
        import faiss

        keys = np.asarray(keys, dtype=np.int64)
        if keys.size == 0:
            return None
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        base = self._index
        copy = faiss.clone_index(base)
        copy.add(vectors)
        return Staged(base, int(base.ntotal), copy, keys, vectors)

    def commit(self, staged: Staged | None, *, inline: bool = True) -> bool:
        """Swap in a :meth:`stage` d graph (under the write lock); returns whether the keys are in.
        When the graph changed since (a background rebuild swapped in meanwhile) they are inserted
        inline, or with ``inline=False`` not at all (the caller stages again, outside the lock)."""
        if staged is None:
            return True
        if self._index is not staged.base or int(self._index.ntotal) != staged.base_total:
            if inline:
                self.add(staged.keys, staged.vectors)
            return inline
        self._index = staged.graph
        self._register(staged.keys, staged.vectors, staged.base_total)
        return True

    def _register(self, keys: np.ndarray, vectors: np.ndarray, start: int) -> None:
        """Bookkeeping of keys now at graph positions ``start..``; logged for a rebuild."""
        self._xb, self._params = None, {}
        self._pos_keys = np.concatenate([self._pos_keys, keys])
        self._alive = np.concatenate([self._alive, np.ones(len(keys), dtype=bool)])
        self._live += len(keys)
        if self._log is not None:
            self._log.append(("add", keys.copy(), np.array(vectors, dtype=np.float32)))

    def remove(self, keys: np.ndarray) -> None:
        """Tombstone ``keys``; rebuild the graph when tombstones pass the configured share."""
        keys = np.asarray(keys, dtype=np.int64)
        self._params = {}
        pos = live_positions(self._pos_keys, self._alive, keys)
        pos = np.unique(pos[pos >= 0])  # a repeated key is removed once
        self._alive[pos] = False
        self._live -= len(pos)
        if self._log is not None:
            self._log.append(("remove", keys.copy(), None))
        total = int(self._index.ntotal)
        if total and self.tombstones > self.config.tombstone_fraction * total:
            self._rebuild()

    def rebuild(self) -> None:
        """Rebuild the graph without tombstones (in the background when configured so)."""
        self._rebuild()

    def _rebuild(self) -> None:
        if self._thread is not None:
            return  # one rebuild at a time; the running one swaps in a clean graph
        keys = self._pos_keys[self._alive]
        vectors = self._vectors_view()[self._alive].astype(np.float32)  # re-encodes exactly
        logger.debug("hot tier: rebuild, %d items, %d tombstones", len(keys), self.tombstones)
        if self._write_lock is None or not self.config.background_rebuild:
            self._reset()
            self.add(keys, vectors)
            return
        self._log = []
        self._thread = threading.Thread(
            target=self._rebuild_bg,
            args=(keys, vectors, self._write_lock),
            daemon=True,
            name="luma-hot-rebuild",
        )
        self._thread.start()

    def _rebuild_bg(
        self,
        keys: np.ndarray,
        vectors: np.ndarray,
        write_lock: Callable[[], AbstractContextManager[None]],
    ) -> None:
        import faiss

        faiss.omp_set_num_threads(1)  # this thread only: leave the cores to the queries
        try:
            fresh = HotTier(self.dim, self.config)
            fresh.add(keys, vectors)
            done = 0
            for attempt in range(_SWAP_TRIES):  # replay outside the lock; swap once little is left
                last = attempt == _SWAP_TRIES - 1
                pending = (self._log or [])[done:]
                if pending and not last:
                    _replay(fresh, pending)
                    done += len(pending)
                    continue
                with write_lock():  # only the last changes (usually none) and the swap stall
                    rest = (self._log or [])[done:]
                    if sum(len(ks) for _, ks, _ in rest) > _SWAP_REPLAY_MAX and not last:
                        continue  # a batch arrived meanwhile: replay it outside the lock first
                    _replay(fresh, rest)
                    self._index, self._pos_keys = fresh._index, fresh._pos_keys
                    self._alive, self._live = fresh._alive, fresh._live
                    self._xb = self._log = None
                    self._params = {}
                    return
        except Exception:  # the old graph keeps serving; tombstones stay filtered
            logger.exception("hot tier: background rebuild failed; keeping the current graph")
            self._log = None
        finally:
            self._thread = None

    def wait(self, timeout: float | None = None) -> None:
        """Block until a background rebuild (if any) has finished."""
        t = self._thread
        if t is not None:
            t.join(timeout)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None) -> TierHits:
        """Top ``k`` live (and allowed) items for a (d,) unit query, by their fp16 scores.

        Exact scan while the tier has at most ``exact_below`` items (then ``outside_bound``
        is the best score left out plus the fp16 allowance); HNSW otherwise (``outside_bound``
        = +inf: HNSW misses cannot be certified).
        """
        n = int(self._index.ntotal)
        if n == 0 or self._live == 0:
            return empty_hits()
        mask = self._alive
        if allowed is not None:
            inside = self._pos_keys < len(allowed)
            mask = mask & inside & allowed[np.minimum(self._pos_keys, len(allowed) - 1)]
            n_ok = int(mask.sum())
        else:
            n_ok = self._live
        if n_ok == 0:
            return empty_hits()
        if self._live <= self.config.exact_below:
            return scan_top(self._index, self._pos_keys, mask, query, k)
        import faiss

        ef = max(self.config.ef_search, k)
        if allowed is None:  # no filter: the parameters (and packed live mask) are kept
            params = self._params.get(ef)
            if params is None:
                params = self._params[ef] = self._search_params(ef, n_ok < n, None)
        else:
            params = self._search_params(ef, n_ok < n, mask)
        kk = min(k, n_ok)
        scores, pos = np.empty(kk, np.float32), np.empty(kk, np.int64)
        sw = faiss.swig_ptr  # the C++ call: the Python wrapper re-checks and re-allocates
        q = np.ascontiguousarray(query, dtype=np.float32)
        self._index.search_c(1, sw(q), kk, sw(scores), sw(pos), params[0])
        ok = pos >= 0
        found = pos[ok]
        return TierHits(
            keys=self._pos_keys[found],
            scores=scores[ok],
            zeta=np.zeros(len(found), dtype=np.float32),
            outside_bound=float("inf") if n_ok > len(found) else float("-inf"),
            score_slack=2.0 * fp16_slack(self.dim),  # fp16 vs raw, both products rounded
        )

    def _search_params(
        self, ef: int, select: bool, mask: np.ndarray | None
    ) -> tuple[Any, np.ndarray | None]:
        """HNSW search parameters, with an ID selector over ``mask`` (None: the live mask)
        when ``select``; returned with the bitmap the selector points into (keep it alive)."""
        import faiss

        if not select:
            return faiss.SearchParametersHNSW(efSearch=ef), None
        bitmap = bitmap_from_mask(self._alive if mask is None else mask)
        sel = faiss.IDSelectorBitmap(len(self._alive), faiss.swig_ptr(bitmap))
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
        return params, bitmap

    def nearest(self, vectors: np.ndarray) -> np.ndarray:
        """Best score of each (n, d) unit vector against the live items (one batched call).

        Returns float32 (n,); -1 where the tier is empty.
        """
        n = int(self._index.ntotal)
        if n == 0 or self._live == 0:
            return np.full(len(vectors), -1.0, dtype=np.float32)
        if n <= _NEAREST_EXACT_BELOW:  # one BLAS product beats HNSW here
            xb, dead = self._vectors_view().astype(np.float32), ~self._alive
            out = np.empty(len(vectors), dtype=np.float32)
            for start in range(0, len(vectors), 1024):  # (1024, n) score blocks at most
                block = np.ascontiguousarray(vectors[start : start + 1024], np.float32) @ xb.T
                block[:, dead] = -np.inf
                out[start : start + len(block)] = block.max(axis=1)
            return out
        import faiss

        bitmap = bitmap_from_mask(self._alive)
        sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap))
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=_NEAREST_EF)
        scores, pos = self._index.search(
            np.ascontiguousarray(vectors, np.float32), 1, params=params
        )
        return np.where(pos[:, 0] >= 0, scores[:, 0], -1.0).astype(np.float32)

    def train(self) -> bool:
        """HNSW needs no training."""
        return False

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Serialized graph, position->key map and tombstones."""
        import faiss

        arrays = {
            "index": faiss.serialize_index(self._index),
            "pos_keys": self._pos_keys,
            "alive": self._alive.astype(np.uint8),
        }
        return arrays, {"kind": "hnsw", "dim": self.dim, "ntotal": int(self._index.ntotal)}

    def restore(self, arrays: dict[str, np.ndarray], header: dict[str, Any]) -> None:
        """Load a verified snapshot (see :mod:`luma_rag.store.snapshot`)."""
        import faiss

        index = faiss.deserialize_index(arrays["index"])
        if index.d != self.dim or index.ntotal != len(arrays["pos_keys"]):
            raise ValueError("hot snapshot does not match its key map")
        if not isinstance(faiss.downcast_index(index.storage), faiss.IndexScalarQuantizer):
            raise ValueError("hot snapshot stores float32 vectors (older store): rebuilt as fp16")
        index.hnsw.efSearch = self.config.ef_search
        self._index = index
        self._xb = None
        self._pos_keys = arrays["pos_keys"].astype(np.int64)
        self._alive = arrays["alive"].astype(bool)
        self._params = {}
        self._live = int(self._alive.sum())

    def nbytes(self) -> int:
        """fp16 vectors + graph links + bookkeeping held in RAM (tombstones included)."""
        g = self._index.hnsw
        links = int(g.neighbors.size()) * 4 + int(g.offsets.size()) * 8 + int(g.levels.size()) * 4
        books = self._pos_keys.nbytes + self._alive.nbytes + int(self._index.ntotal + 7) // 8
        books += sum(k.nbytes + (0 if v is None else v.nbytes) for _, k, v in self._log or [])
        return int(self._index.ntotal) * self.dim * 2 + links + books
