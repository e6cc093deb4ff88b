"""The embedded backend (:class:`~luma_rag.store.base.StoreBackend`): one local directory.

Files: ``config.json``, ``records.sqlite`` (records, metadata, settings, knowledge gaps),
``vectors.f32`` (raw vectors), ``hot.snapshot`` / ``warm.snapshot`` and ``bridge.safetensors``
(bound to the store's id and generation: :mod:`~luma_rag.store.recovery`), ``bridge.pairs``
(:mod:`~luma_rag.store.bridge_log`). Writes: append vectors (fsync) -> commit records (WAL) ->
tiers; acknowledged = durable. One writer per directory (an OS file lock); readers take none and
see the last committed state. In a process, ``lock`` (readers-writer) guards the in-memory
state, and ``_ingest`` serialises writers (key allocation and append/commit are one sequence).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag._rwlock import RWLock
from luma_rag.bridge import ProcrustesBridge
from luma_rag.config import LumaConfig
from luma_rag.errors import (
    ConfigError,
    InvalidInputError,
    NotFoundError,
    StoreClosedError,
    StoreReadOnlyError,
)
from luma_rag.filters import compile_filter
from luma_rag.memory.tiered import Candidates, Migration, TieredMemory
from luma_rag.store.bridge_log import BridgeLog
from luma_rag.store.drift import ItemVersions
from luma_rag.store.lock import WriterLock
from luma_rag.store.records import ItemDetails, NewRecord, RecordStore
from luma_rag.store.recovery import recover, write_derived
from luma_rag.store.vectors import VectorFile, row_crc

__all__ = ["LocalStore"]

logger = logging.getLogger(__name__)


class LocalStore:
    """Records, raw vectors, the two-tier memory and the bridge state of one directory."""

    def __init__(
        self,
        path: Path,
        config: LumaConfig,
        *,
        store_id: str | None = None,
        read_only: bool = False,
    ) -> None:
        """Open (or create) the files under ``path`` and recover; see the module docstring.

        Raises:
            StoreLockedError: another writer holds the store (writers only).
            StoreCorruptedError: files fail their checks and cannot be recovered.
        """
        self.path = path
        self.config = config
        self.read_only = read_only
        self.lock = RWLock()
        self._ingest = threading.Lock()
        self._closed = False
        self._writer = None if read_only else WriterLock(path)
        self._bridge: ProcrustesBridge | None = None
        self._bridge_log: BridgeLog | None = None
        self._promote: set[int] = set()
        self._promote_lock = threading.Lock()  # readers add to _promote concurrently
        opened: list[Any] = []
        try:
            self._records = RecordStore(path / "records.sqlite", read_only=read_only)
            opened.append(self._records)
            self._vectors = VectorFile(path / "vectors.f32", config.dim, read_only=read_only)
            opened.append(self._vectors)
            self.memory = TieredMemory(
                config.dim,
                config.hot_budget,
                fetch=self._vectors.get,
                score=self._vectors.scores,
                lock=self.lock,
                hot=config.hot,
                warm=config.warm,
                spill=config.spill,
            )
            state = recover(
                path,
                self._records,
                self._vectors,
                self.memory,
                self.lock,
                store_id=store_id,
                read_only=read_only,
            )
            self.store_id = state.store_id
            self.notes = state.notes
            self._next_key = state.next_key
            self._ids = state.ids
            self._versions = ItemVersions(state.bridge_versions)
            if not read_only:
                self._persist_tiers(state.moved)
            # No wait for background work recovery may have started: queries use the old index.
            if config.bridge is not None:  # bound snapshot + the pairs logged after it
                self._bridge_log = BridgeLog(
                    path, config.bridge, self.store_id, self._records, read_only=read_only
                )
                self._bridge = self._bridge_log.bridge
        except BaseException:
            for f in opened:
                f.close()
            if self._writer is not None:
                self._writer.release()
            raise

    def reopen(self) -> LocalStore:
        """A fresh view of the same directory (for a reader: the latest committed state)."""
        return LocalStore(self.path, self.config, store_id=self.store_id, read_only=self.read_only)

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def bridge(self) -> ProcrustesBridge | None:
        """The bridge (None when the config has none)."""
        return self._bridge

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    def check_open(self) -> None:
        """Raise StoreClosedError once closed."""
        if self._closed:
            raise StoreClosedError(f"the store at {self.path} is closed; reopen it with Luma.open")

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the read lock; raise StoreClosedError if the store closed meanwhile."""
        with self.lock.read():
            self.check_open()
            yield

    def maintain(self, what: str) -> None:
        """Start a warm retrain (``"retrain"``) or graph rebuild (``"rebuild"``) in background, or
        ``"compact"`` deleted rows' disk blocks now (:meth:`VectorFile.compact`)."""
        self._check_writable()
        if what == "compact":
            with self._ingest:  # no write meanwhile; a running retrain reads the rows it began with
                self.wait_idle()
                gen, live = self._records.get_kv("generation"), list(self._ids.values())
                self._vectors.compact(np.array(live, np.int64), self._next_key, int(gen or 0))
            return
        with self.lock.write():
            if what == "retrain":
                self.memory.warm.train(force=True)
            elif what == "rebuild":
                self.memory.hot.rebuild()
            else:
                raise InvalidInputError(f"maintain takes retrain, rebuild or compact; {what!r}?")

    def wait_idle(self, timeout: float | None = None) -> None:
        """Wait for background work (hot graph rebuild, warm-tier retrain) to finish."""
        self.memory.wait(timeout)

    def close(self) -> None:
        """Finish background work, write bound index snapshots, close files. Idempotent."""
        if self._closed:
            return
        with self._ingest:  # no write, hence no new background retrain, can start now
            self.wait_idle()
            with self.lock.write():
                if self._closed:
                    return
                self._closed = True
                try:
                    if not self.read_only:
                        write_derived(self.path, self._records, self.memory, self.store_id)
                        if self._bridge_log is not None:
                            self._bridge_log.close()
                finally:
                    self._records.close()
                    self._vectors.close()
                    if self._writer is not None:
                        self._writer.release()

    def _check_writable(self) -> None:
        self.check_open()
        if self.read_only:
            msg = "open it with Luma.open(path) (one writer at a time) to change it"
            raise StoreReadOnlyError(f"the store at {self.path} is open read-only; {msg}")

    # -- writes ----------------------------------------------------------------------------------
    def add(
        self,
        vectors: np.ndarray,
        ids: list[str],
        metadata: list[dict[str, Any]],
        texts: list[str | None],
        sources: list[str | None],
        modality: str,
        bridge_version: int,
    ) -> None:
        """Append, commit, then insert into the tiers (see the module docstring)."""
        n = len(vectors)
        with self._ingest:
            self._check_writable()
            now = time.time()
            keys = np.arange(self._next_key, self._next_key + n, dtype=np.int64)
            novelty = self.memory.novelty(vectors)  # read lock per block, not one long hold
            replaced = [self._ids[i] for i in ids if i in self._ids]
            records = [
                NewRecord(int(k), i, c, 0, modality, m, now, bridge_version, float(nv), t, src)
                for k, i, c, m, nv, t, src in zip(
                    keys, ids, row_crc(vectors), metadata, novelty, texts, sources, strict=True
                )
            ]
            self._vectors.append(vectors, self._next_key)
            if replaced:  # an upsert: readers see the old items or the new ones, never neither,
                with self.lock.write():  # so records, key map and tiers change at once
                    self._records.commit(records, replaced, self._next_key + n)
                    self._next_key += n
                    self._enter(ids, keys, replaced, bridge_version)
                    plan, hot_items = self.memory.add_deferred(keys, vectors, novelty, now)
                    self.memory.migrate(Migration(keys[:0], plan.new_keys, plan.new_vectors))
                    self.memory.hot.add(*hot_items)
                moved, plan = plan.keys, Migration(plan.spilled, keys[:0], plan.new_vectors[:0])
            else:  # graph inserts run on a copy outside the write lock (queries go on); only
                # the swap takes it, and _ingest keeps every other writer out meanwhile
                self._records.commit(records, [], self._next_key + n)
                self._next_key += n
                with self.lock.write():
                    self._enter(ids, keys, [], bridge_version)
                    plan, hot_items = self.memory.add_deferred(keys, vectors, novelty, now)
                moved = plan.keys
                for retry in (False, True):  # a graph rebuild swapped in meanwhile: restage once
                    staged = self.memory.hot.stage(*hot_items)
                    with self.lock.write():
                        if self.memory.hot.commit(staged, inline=retry):
                            break
            self.memory.migrate(plan)  # hot -> warm in chunks, one short write hold each
            self._persist_tiers(np.concatenate([moved, self._apply_promotions(now)]))

    def _enter(self, ids: list[str], keys: np.ndarray, old: list[int], version: int) -> None:
        """Key map in (bridge ``version``), the ``old`` keys out of the tiers (write lock held)."""
        self._versions.set(keys, version)
        if old:
            self.memory.remove(np.array(old, dtype=np.int64))
        for i, k in zip(ids, keys.tolist(), strict=True):
            self._ids[i] = k

    def _persist_tiers(self, keys: np.ndarray) -> None:
        tiers = self.memory.tier_of(keys)
        for sel, code in ((keys[tiers == c], c) for c in (0, 1)):
            if sel.size:
                self._records.set_tiers(sel, code)

    def _apply_promotions(self, now: float) -> np.ndarray:
        """Promote queued warm items (64 per write hold), migrate the spills: changed keys."""
        with self._promote_lock:  # readers queue concurrently
            queued, self._promote = np.fromiter(self._promote, np.int64), set()
        changed = [queued[:0]]
        for start in range(0, len(queued), 64):
            with self.lock.write():
                promoted, spill = self.memory.promote(queued[start : start + 64], now)
            self.memory.migrate(spill)
            changed += [promoted, spill.keys]
        return np.concatenate(changed)

    def delete(self, ids: list[str]) -> None:
        """Delete items by id. All ids must exist (else NotFoundError and nothing is deleted)."""
        with self._ingest:
            self._check_writable()
            unknown = [i for i in ids if not isinstance(i, str) or i not in self._ids]
            if unknown:
                raise NotFoundError(f"unknown id(s) {unknown[:5]!r}; nothing was deleted")
            ids = list(dict.fromkeys(ids))  # a repeated id is deleted once
            keys = [self._ids[i] for i in ids]
            with self.lock.write():  # readers never see a record gone but its vector still there
                self._records.commit([], keys, self._next_key)
                for i in ids:
                    self._ids.pop(i, None)
                self.memory.remove(np.array(keys, dtype=np.int64))

    def add_bridge_pairs(self, x_source: np.ndarray, y_target: np.ndarray) -> list[float]:
        """Feed (CLAP, CLIP) pairs to the bridge and log them; returns ε of any refreshes."""
        if self._bridge_log is None:
            raise ConfigError(
                "this store has no bridge; create it with LumaConfig(bridge=BridgeConfig(...))"
            )
        with self._ingest:
            self._check_writable()
            eps = self._bridge_log.add_pairs(x_source, y_target)  # appended, not rewritten
        return eps

    # -- the query pipeline's reads (under reading()) -------------------------------------------
    def candidates(
        self, query: np.ndarray, k: int, filters: Mapping[str, Any] | None
    ) -> Candidates:
        """Both tiers (or, for a small filtered set, every match) rescored exactly."""
        fetch_k = max(k, self.config.rerank_depth)
        compiled = compile_filter(filters, self._records.meta_keys()) if filters else None
        if compiled is None:
            if k >= len(self._ids):  # everything asked for: one exact, complete scan
                return self.memory.exact(query, np.fromiter(self._ids.values(), np.int64))
            return self.memory.search(query, fetch_k, None, k=k)
        keys = self._records.select_keys(compiled.sql, compiled.params)
        keys = keys[self.memory.tier_of(keys) >= 0]
        if keys.size <= self.config.exact_filter_below:
            return self.memory.exact(query, keys)
        allowed = np.zeros(self._next_key, dtype=bool)
        allowed[keys] = True
        return self.memory.search(query, fetch_k, allowed, k=k)

    def rescan(self, query: np.ndarray, k: int, filters: Mapping[str, Any] | None) -> Candidates:
        """Exact top candidates over every allowed live item (``TieredMemory.exact_top``)."""
        c = compile_filter(filters, self._records.meta_keys()) if filters else None
        keys = self._records.select_keys(c.sql, c.params) if c else np.arange(self._next_key)
        return self.memory.exact_top(query, keys, max(k, self.config.rerank_depth))

    def item_drift(self, keys: np.ndarray) -> np.ndarray:
        """ε_i per candidate: bridge drift since the item was projected (0 if it was not)."""
        return self._versions.drift(self._bridge, keys)

    def worst_drift(self) -> float:
        """Drift since the oldest bridge version any stored item was projected with."""
        return self._versions.worst(self._bridge)

    def details(self, keys: Sequence[int]) -> dict[int, ItemDetails]:
        """What a hit shows of each key."""
        return self._records.details(keys)

    def record_hits(self, keys: np.ndarray, now: float) -> None:
        """Count hits; queue warm items that earned promotion (applied by the next write)."""
        due = self.memory.record_hits(keys, now)
        if due.size:  # under the read lock; the writer drains this set (_apply_promotions)
            with self._promote_lock:
                self._promote.update(due.tolist())

    # -- other reads -----------------------------------------------------------------------------
    def get(self, ids: Sequence[Any]) -> list[dict[str, Any]]:
        """Stored items by id (unknown ids skipped), each with its (dim,) float32 vector."""
        with self.reading():
            keys = [self._ids[i] for i in ids if isinstance(i, str) and i in self._ids]
            details = self._records.details(keys)
            vecs = self._vectors.get(np.array(keys, dtype=np.int64))
        rows = zip(keys, vecs, strict=True)
        return [{**details[k]._asdict(), "vector": v} for k, v in rows if k in details]

    def ids(self, filters: Mapping[str, Any] | None, check_keys: bool) -> list[str]:
        """Ids (oldest first), or those whose metadata match ``filters``."""
        with self.reading():
            if not filters:
                return sorted(self._ids, key=self._ids.__getitem__)
            known = self._records.meta_keys() if check_keys else None
            compiled = compile_filter(filters, known)
            if compiled is None:
                return list(self._ids)
            keys = set(self._records.select_keys(compiled.sql, compiled.params).tolist())
            return sorted((i for i, k in self._ids.items() if k in keys), key=self._ids.__getitem__)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._ids

    def stats(self) -> dict[str, Any]:
        """Counts per tier, RAM per tier, bridge state."""
        with self.lock.read():
            out = self.memory.stats()
        b = self._bridge
        out["bridge_version"], out["bridge_epsilon"] = (b.version, b.epsilon) if b else (None, None)
        return {**out, "total": len(self._ids)}

    def get_kv(self, name: str) -> str | None:
        """A persisted setting."""
        return self._records.get_kv(name)

    def set_kv(self, name: str, value: str) -> None:
        """Persist a setting."""
        self._check_writable()
        self._records.set_kv(name, value)

    def add_gap(self, when: float, query: str, detail: dict[str, Any]) -> int:
        """Log a knowledge gap."""
        self._check_writable()
        try:
            return self._records.add_gap(when, query, detail)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"gap detail is not JSON-serialisable ({e})") from e

    def gaps(self, limit: int) -> list[dict[str, Any]]:
        """Recent knowledge gaps, newest first."""
        return self._records.gaps(limit)
