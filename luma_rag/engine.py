"""The facade a user holds: open a store, add vectors, search with a certificate, delete.

``Luma`` composes the parts and owns no algorithm: the durable record (:mod:`luma_rag.store`),
the two-tier memory (:mod:`luma_rag.memory`), the bridge (:mod:`luma_rag.bridge`) and the
certificate (:mod:`luma_rag.safety`).

Write path: validate everything -> append raw vectors (fsync) -> commit records (SQLite WAL)
-> update the in-memory tiers. A call returns only after the commit, so an acknowledged item
survives a crash; on open, the tiers are rebuilt from snapshots reconciled with the record.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np

from luma_rag._arrays import as_query, as_unit_matrix
from luma_rag._rwlock import RWLock
from luma_rag.bridge import BridgeConfig, ProcrustesBridge
from luma_rag.config import LumaConfig
from luma_rag.errors import (
    ConfigError,
    DimensionMismatchError,
    InvalidInputError,
    LumaError,
    NotFoundError,
    StoreClosedError,
    StoreCorruptedError,
)
from luma_rag.filters import compile_filter
from luma_rag.memory.exact import exact_candidates
from luma_rag.memory.tiered import TIER_NAMES, WARM, Candidates, TieredMemory
from luma_rag.results import Hit, QueryResult, Telemetry
from luma_rag.safety import (
    Certificate,
    certify,
    completeness,
    perturbation_bound,
    refine_with_geometry,
    score_rounding_error,
)
from luma_rag.store import (
    NewRecord,
    RecordStore,
    VectorFile,
    read_snapshot,
    row_crc,
    write_snapshot,
)

if TYPE_CHECKING:
    from luma_rag.embedder import MediaEmbedder
    from luma_rag.encoders.base import Encoder

__all__ = ["Luma"]

logger = logging.getLogger(__name__)

_CONFIG_FILE = "config.json"


class Luma:
    """A lifelong multimodal memory in one directory.

    Example:
        >>> import numpy as np
        >>> from luma_rag import Luma, LumaConfig
        >>> vecs = np.random.default_rng(0).standard_normal((100, 64)).astype("float32")
        >>> with Luma.open(tmp_path / "store", LumaConfig(dim=64, hot_budget=50)) as luma:
        ...     ids = luma.add_vectors(vecs, metadata=[{"n": i} for i in range(100)])
        ...     res = luma.search(vecs[0], k=5)
        ...     res.hits[0].id == ids[0], res.telemetry.safe1
    """

    def __init__(self, path: Path, config: LumaConfig) -> None:
        """Use :meth:`open`."""
        self.path = path
        self.config = config
        self._lock = RWLock()
        self._ingest = threading.Lock()
        self._closed = False
        self._records = RecordStore(path / "records.sqlite")
        try:
            self._vectors = VectorFile(path / "vectors.f32", config.dim)
        except BaseException:
            self._records.close()
            raise
        self.memory = TieredMemory(
            config.dim,
            config.hot_budget,
            fetch=self._vectors.get,
            lock=self._lock,
            hot=config.hot,
            warm=config.warm,
            spill=config.spill,
        )
        self.bridge: ProcrustesBridge | None = None
        self._ids: dict[str, int] = {}
        self._bridge_version = np.zeros(0, dtype=np.int32)
        self._promote: set[int] = set()
        self._promote_lock = threading.Lock()  # readers add to _promote concurrently
        self._embedder: MediaEmbedder | None = None
        self.rho: dict[str, float] = {}
        self.rho_source: dict[str, str] = {}  # per modality: "calibrated" or "user"
        try:
            self._recover()
        except BaseException:
            self._records.close()
            self._vectors.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        config: LumaConfig | None = None,
        *,
        encoder: Encoder | str | None = None,
        audio_encoder: Encoder | str | None = None,
    ) -> Self:
        """Create a store at ``path``, or reopen it.

        Args:
            path: a directory (created if missing).
            config: required to create without an encoder; when reopening, ``dim`` must match
                the store's and the other settings apply to this session (None: the stored ones).
            encoder: a CLIP-space :class:`~luma_rag.encoders.base.Encoder`, or a registry name
                (``"luma-tiny"``: the shipped offline model; ``"ViT-B-32"``: production).
                Enables :meth:`ingest` / :meth:`query` on text, images and video.
            audio_encoder: a CLAP encoder or name (``"luma-tiny-clap"``); audio then crosses
                the CLAP→CLIP bridge, which a store gets automatically when one is given.

        Raises:
            ConfigError: no config for a new store. DimensionMismatchError: wrong ``dim``.
            StoreCorruptedError: files fail their checks and cannot be recovered.
        """
        path = Path(path)
        cfg_file = path / _CONFIG_FILE
        stored: LumaConfig | None = None
        if cfg_file.exists():
            try:
                stored = LumaConfig.from_json(cfg_file.read_text())
            except (ConfigError, OSError, UnicodeDecodeError, TypeError, AttributeError) as e:
                # TypeError / AttributeError: a field missing or of the wrong JSON type
                raise StoreCorruptedError(
                    f"{cfg_file}: unreadable store config ({e}); fix it, or delete it and reopen "
                    "with LumaConfig(dim=<the store's dim>)"
                ) from e
        enc = _resolve_encoder(encoder)
        aenc = _resolve_encoder(audio_encoder)
        if stored is None and config is None and enc is not None:
            config = LumaConfig(dim=enc.dim)
        base = config or stored
        if base is None:
            raise ConfigError(f"{path} holds no store; pass LumaConfig(dim=...) to create one")
        if enc is not None and enc.dim != base.dim:
            raise DimensionMismatchError(
                f"the encoder {enc.name} gives {enc.dim}-d vectors but the store at {path} is "
                f"{base.dim}-d; use a matching encoder or another path"
            )
        if stored is not None and config is not None and stored.dim != config.dim:
            raise DimensionMismatchError(
                f"{path} holds {stored.dim}-d vectors but the config says dim={config.dim}; "
                f"open it with dim={stored.dim} or use another path"
            )
        cfg = config or stored
        assert cfg is not None
        if aenc is not None and cfg.bridge is None:
            cfg = dataclasses.replace(
                cfg, bridge=BridgeConfig(source_dim=aenc.dim, target_dim=cfg.dim)
            )
        if aenc is not None and cfg.bridge is not None and cfg.bridge.source_dim != aenc.dim:
            raise DimensionMismatchError(
                f"the audio encoder {aenc.name} gives {aenc.dim}-d vectors but the store's bridge "
                f"expects {cfg.bridge.source_dim}-d"
            )
        path.mkdir(parents=True, exist_ok=True)
        luma = cls(path, cfg)  # first: a config that does not fit the files is not persisted
        if stored is None or stored != cfg:
            tmp = cfg_file.with_name(_CONFIG_FILE + ".tmp")
            tmp.write_text(cfg.to_json())
            os.replace(tmp, cfg_file)
        if enc is not None:
            luma.attach_encoders(enc, aenc)
        return luma

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Finish background work, write index snapshots, close files. Idempotent."""
        if self._closed:
            return
        with self._ingest:  # no write, hence no new background retrain, can start now
            self.wait_idle()
            with self._lock.write():
                if self._closed:
                    return
                self._closed = True
                for tier in (self.memory.hot, self.memory.warm):
                    arrays, header = tier.snapshot()
                    write_snapshot(self.path / f"{tier.name}.snapshot", arrays, header)
                keys = np.array(sorted(self._ids.values()), dtype=np.int64)
                if keys.size:
                    hits, last = self.memory.usage(keys)
                    self._records.set_usage(keys, hits, last)
                self._records.close()
                self._vectors.close()

    def wait_idle(self, timeout: float | None = None) -> None:
        """Wait for background work (hot graph rebuild, warm-tier retrain) to finish."""
        self.memory.wait(timeout)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"the store at {self.path} is closed; reopen it with Luma.open")

    def _recover(self) -> None:
        """Rebuild in-memory state from the durable record (+ snapshots where valid)."""
        recorded = self._records.get_kv("next_key")
        if recorded is None:  # a new store records its high-water mark before any write
            if self._vectors.rows:
                raise StoreCorruptedError(
                    f"{self.path}: records.sqlite is missing or empty but vectors.f32 holds "
                    f"{self._vectors.rows} rows; restore records.sqlite from a backup"
                )
            self._records.set_kv("next_key", "0")
        table = self._records.load()
        next_key = int(recorded or 0)
        if table.keys.size and int(table.keys.max()) >= next_key:
            raise StoreCorruptedError(
                f"{self.path}: record keys exceed the recorded high-water mark"
            )
        if self._vectors.rows < next_key:
            raise StoreCorruptedError(
                f"{self.path}: records reference {next_key} vector rows but vectors.f32 holds "
                f"{self._vectors.rows}; the vector file is truncated"
            )
        self._vectors.truncate(next_key)  # drop the tail of an append that never committed
        bad = self._vectors.verify(table.keys, table.crcs)
        if bad.size:
            raise StoreCorruptedError(
                f"{self.path}: {bad.size} raw vectors fail their checksum "
                f"(keys {bad[:5].tolist()}); "
                "restore vectors.f32 from a backup"
            )
        self._next_key = next_key
        self._ids = dict(zip(table.ids, table.keys.tolist(), strict=True))
        self._bridge_version = np.full(max(next_key, 1), -1, dtype=np.int32)
        self._bridge_version[table.keys] = table.bridge_versions
        snaps: dict[str, Any] = {}
        for name in ("hot", "warm"):
            try:
                snaps[name] = read_snapshot(self.path / f"{name}.snapshot")
            except FileNotFoundError:
                snaps[name] = None
            except StoreCorruptedError as e:
                logger.warning("%s; rebuilding that tier from the raw vectors", e)
                snaps[name] = None
        with self._lock.write():
            self.memory.load(
                table.keys, table.tiers, table.hits, table.last_hit, table.novelty, snaps
            )
            # A crash between a commit and its tier update leaves the hot tier over budget.
            moved = self.memory.spill(time.time())
        self._persist_tiers(moved)
        self.wait_idle()
        if self.config.bridge is not None:
            bpath = self.path / "bridge.safetensors"
            self.bridge = (
                ProcrustesBridge.load(bpath)
                if bpath.exists()
                else ProcrustesBridge(self.config.bridge)
            )

    # -- writes ----------------------------------------------------------------------------------
    def add_vectors(
        self,
        vectors: Any,
        metadata: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
        *,
        modality: str = "vector",
        bridged: bool = False,
        texts: Sequence[str | None] | None = None,
        sources: Sequence[str | None] | None = None,
    ) -> list[str]:
        """Add (or upsert) a batch of vectors; durable when this returns.

        Args:
            vectors: (n, dim) float array (normalised here). With ``bridged=True``: (n, source_dim)
                vectors in the bridge's source space (CLAP), projected into the store's space.
            metadata: n JSON-serialisable dicts (str keys).
            ids: n unique non-empty strings; an existing id is replaced (upsert). None: new uuids.
            modality: recorded with each item ("text", "image", "audio", "video", "vector").
            texts: n captions / texts / transcripts (or None), returned as ``Hit.text``.
            sources: n media paths or URIs (or None), returned as ``Hit.source``.

        Returns:
            The n ids, in order.

        Raises:
            InvalidInputError / DimensionMismatchError: nothing is written.
        """
        self._check_open()
        version = -1
        if bridged:
            bridge = self._need_bridge()
            vecs = as_unit_matrix(vectors, bridge.config.source_dim, name="vectors")
            vecs, version = bridge.project_with_version(vecs)
            vecs = as_unit_matrix(vecs, self.config.dim)
        else:
            vecs = as_unit_matrix(vectors, self.config.dim)
        n = len(vecs)
        metas = _check_metadata(metadata, n)
        new_ids = _check_ids(ids, n)
        texts_ = _check_optional_strings(texts, n, "texts")
        sources_ = _check_optional_strings(sources, n, "sources")
        if not isinstance(modality, str) or not modality:
            raise InvalidInputError("modality must be a non-empty string such as 'text' or 'image'")
        with self._ingest:
            self._check_open()
            now = time.time()
            keys = np.arange(self._next_key, self._next_key + n, dtype=np.int64)
            with self._lock.read():
                novelty = self.memory.novelty(vecs)
            replaced = [self._ids[i] for i in new_ids if i in self._ids]
            crcs = row_crc(vecs)
            records = [
                NewRecord(int(k), i, c, 0, modality, m, now, version, float(nv), t, src)
                for k, i, c, m, nv, t, src in zip(
                    keys, new_ids, crcs, metas, novelty, texts_, sources_, strict=True
                )
            ]
            self._vectors.append(vecs, self._next_key)
            self._records.commit(records, replaced, self._next_key + n)
            self._next_key += n
            with self._lock.write():
                if len(self._bridge_version) < self._next_key:
                    grow = max(self._next_key, 2 * len(self._bridge_version)) - len(
                        self._bridge_version
                    )
                    self._bridge_version = np.concatenate(
                        [self._bridge_version, np.full(grow, -1, np.int32)]
                    )
                self._bridge_version[keys] = version
                if replaced:
                    self.memory.remove(np.array(replaced, dtype=np.int64))
                for i, k in zip(new_ids, keys.tolist(), strict=True):
                    self._ids[i] = k
                moved = self.memory.add(keys, vecs, novelty, now)
                moved = np.concatenate([moved, self._apply_promotions(now)])
            self._persist_tiers(moved)
        return new_ids

    def _persist_tiers(self, keys: np.ndarray) -> None:
        if keys.size:
            tiers = self.memory.tier_of(keys)
            for code in (0, 1):
                sel = keys[tiers == code]
                if sel.size:
                    self._records.set_tiers(sel, code)

    def _apply_promotions(self, now: float) -> np.ndarray:
        """Promote queued warm items (under the write lock). Returns keys whose tier changed."""
        if not self._promote:
            return np.zeros(0, dtype=np.int64)
        alive = set(self._ids.values())
        live = [k for k in self._promote if k in alive]
        self._promote.clear()
        promoted, spilled = self.memory.promote(np.array(live, dtype=np.int64), now)
        return np.concatenate([promoted, spilled])

    def delete(self, ids: Sequence[str]) -> None:
        """Delete items by id. All ids must exist (else NotFoundError and nothing is deleted)."""
        self._check_open()
        if isinstance(ids, str) or not isinstance(ids, Sequence):
            raise InvalidInputError("delete takes a list of ids, e.g. luma.delete([id])")
        with self._ingest:
            self._check_open()
            unknown = [i for i in ids if not isinstance(i, str) or i not in self._ids]
            if unknown:
                raise NotFoundError(f"unknown id(s) {unknown[:5]!r}; nothing was deleted")
            ids = list(dict.fromkeys(ids))  # a repeated id is deleted once
            keys = [self._ids[i] for i in ids]
            self._records.commit([], keys, self._next_key)
            with self._lock.write():
                for i in ids:
                    self._ids.pop(i, None)
                self.memory.remove(np.array(keys, dtype=np.int64))

    def add_bridge_pairs(self, x_source: Any, y_target: Any) -> list[float]:
        """Feed co-occurring (CLAP, CLIP) pairs to the bridge; returns ε of any refreshes."""
        self._check_open()
        bridge = self._need_bridge()
        with self._ingest:
            eps = bridge.add_pairs(np.asarray(x_source), np.asarray(y_target))
            bridge.save(self.path / "bridge.safetensors")
        return eps

    def _need_bridge(self) -> ProcrustesBridge:
        if self.bridge is None:
            raise ConfigError(
                "this store has no bridge; create it with LumaConfig(bridge=BridgeConfig(...))"
            )
        return self.bridge

    # -- reads -----------------------------------------------------------------------------------
    def search(
        self,
        query: Any,
        k: int = 10,
        *,
        filters: Mapping[str, Any] | None = None,
        rho: float | None = None,
        bridged: bool = False,
        rho_source: Literal["calibrated", "user", "unset"] | None = None,
    ) -> QueryResult:
        """Top ``k`` by exact cosine, with the Safe@k certificate.

        Args:
            query: (dim,) vector (or (source_dim,) with ``bridged=True``).
            k: number of hits, >= 1.
            filters: metadata filter (see :mod:`luma_rag.filters`).
            rho: encoder radius for this query (default ``SafetyConfig.rho``).
            rho_source: where ``rho`` came from, reported in the telemetry; default ``"user"``
                when ``rho`` is given, else ``"user"`` for a nonzero ``SafetyConfig.rho`` and
                ``"unset"`` for 0.
        """
        t0 = time.perf_counter()
        self._check_open()
        k = _check_k(k)
        if rho_source is None:
            given = rho is not None or self.config.safety.rho > 0
            rho_source = "user" if given else "unset"
        rho = self.config.safety.rho if rho is None else _check_rho(rho)
        eps_q = 0.0
        t_bridge = time.perf_counter()
        if bridged:
            bridge = self._need_bridge()
            q = as_query(query, bridge.config.source_dim)
            projected, eps_q = bridge.project_query(q[None, :])  # ε_q with renormalisation
            q = as_query(projected[0], self.config.dim)
        else:
            q = as_query(query, self.config.dim)
        stages = {"bridge": time.perf_counter() - t_bridge if bridged else 0.0}
        with self._lock.read():
            self._check_open()
            t_stage = time.perf_counter()
            cands = self._candidates(q, k, filters)
            stages["candidates"] = time.perf_counter() - t_stage
            t_stage = time.perf_counter()
            r = rho + eps_q
            cert, eps_items = self._certify(cands, k, r)
            stages["certify"] = time.perf_counter() - t_stage
            t_stage = time.perf_counter()
            complete_at = self._complete_at(cands, cert, k, r)
            stages["rescan"] = 0.0
            if cert.safe1 and complete_at < 1 and self.config.safety.complete_on_demand:
                # the gate would ANSWER on a set not proven complete: scan exactly, recertify
                cands = self._rescan(q, k, filters)
                cert, eps_items = self._certify(cands, k, r)
                complete_at = self._complete_at(cands, cert, k, r)
                stages["rescan"] = time.perf_counter() - t_stage
            complete = cands.keys.size > 0 and complete_at >= min(k, cands.keys.size)
            stages["complete"] = time.perf_counter() - t_stage
            t_stage = time.perf_counter()
            top = cands.keys[:k]
            details = self._records.details(top.tolist())
            now = time.time()
            due = self.memory.record_hits(top, now)
            if due.size:  # under the read lock: the writer drains this set under the write lock
                with self._promote_lock:
                    self._promote.update(due.tolist())
            stages["records"] = time.perf_counter() - t_stage
        hits = [
            Hit(
                id=details[kk].id,
                score=float(s),
                tier=TIER_NAMES[int(t)],
                rank=rank,
                modality=details[kk].modality,
                metadata=details[kk].metadata,
                text=details[kk].text,
                source=details[kk].source,
            )
            for rank, (kk, s, t) in enumerate(
                zip(top.tolist(), cands.scores[:k], cands.tiers[:k], strict=True)
            )
            if kk in details
        ]
        warm = cands.tiers == WARM
        zeta = cands.zeta[warm]
        tel = Telemetry(
            margin_top2=cert.margin_top2,
            delta_k=cert.delta_k,
            epsilon=eps_q,
            epsilon_items=float(eps_items.max(initial=0.0)),
            zeta_mean=float(zeta.mean()) if zeta.size else 0.0,
            zeta_max=float(zeta.max()) if zeta.size else 0.0,
            rho=rho,
            safe1=cert.safe1,
            safek=cert.safek,
            safe_k_min=cert.safe_prefix,
            complete=bool(complete),
            complete_at=int(complete_at),
            rho_source=rho_source,
            k=k,
            n_candidates=int(cands.keys.size),
            latency_ms=(time.perf_counter() - t0) * 1000.0,
            stages_ms={name: seconds * 1000.0 for name, seconds in stages.items()},
        )
        return QueryResult(hits=hits, telemetry=tel, certificate=cert)

    def _candidates(self, q: np.ndarray, k: int, filters: Mapping[str, Any] | None) -> Candidates:
        fetch_k = max(k, self.config.rerank_depth)
        compiled = compile_filter(filters, self._records.meta_keys()) if filters else None
        if compiled is None:
            return self.memory.search(q, fetch_k, None)
        keys = self._records.select_keys(compiled.sql, compiled.params)
        keys = keys[self.memory.tier_of(keys) >= 0]
        if keys.size <= self.config.exact_filter_below:
            vectors = self._vectors.get(keys)
            scores = (vectors @ q).astype(np.float32)
            order = np.argsort(-scores, kind="stable")
            keys = keys[order]
            return Candidates(
                keys,
                scores[order],
                self.memory.tier_of(keys),
                np.zeros(len(keys), np.float32),
                float("-inf"),
                vectors[order],
            )
        allowed = np.zeros(self._next_key, dtype=bool)
        allowed[keys] = True
        return self.memory.search(q, fetch_k, allowed)

    def _certify(self, cands: Candidates, k: int, r: float) -> tuple[Certificate, np.ndarray]:
        """Safe@k of the candidates: per-item τ (+ float32 rounding), then the pairwise test."""
        eps_items = self._item_drift(cands.keys)
        mult = self.config.safety.multiplier
        eta = score_rounding_error(self.config.dim)
        cert = certify(cands.scores, perturbation_bound(r, eps_items, mult) + eta, k)
        if cands.keys.size > 1:  # the shared query perturbation: a sharper, still sound test
            cert = refine_with_geometry(cert, cands.scores, cands.vectors, r, eps_items, mult)
        return cert, eps_items

    def _rescan(self, q: np.ndarray, k: int, filters: Mapping[str, Any] | None) -> Candidates:
        """Exact top candidates over every allowed live item (see :mod:`luma_rag.memory.exact`)."""
        compiled = compile_filter(filters, self._records.meta_keys()) if filters else None
        if compiled is not None:
            keys = self._records.select_keys(compiled.sql, compiled.params)
        else:
            keys = np.arange(self._next_key, dtype=np.int64)
        keys = keys[self.memory.tier_of(keys) >= 0]
        fetch_k = max(k, self.config.rerank_depth)
        return exact_candidates(q, keys, self._vectors.get, self.memory.tier_of, fetch_k)

    def _complete_at(self, cands: Candidates, cert: Certificate, k: int, r: float) -> int:
        """Largest k' <= k whose top k' no outside item can overtake under the same bounds."""
        kk = min(k, int(cands.keys.size))
        if kk == 0:
            return 0
        if math.isinf(cands.outside_bound):  # -inf: nothing was left out; +inf: not certifiable
            return kk if cands.outside_bound < 0 else 0
        floors = np.minimum.accumulate(cands.scores[:kk].astype(np.float64) - cert.tau[:kk])
        ok = [self._complete(cands, float(f), r) for f in floors]
        return int(np.argmin(ok)) if not all(ok) else kk

    def _complete(self, cands: Candidates, floor_k: float, r: float) -> bool:
        """Whether no item outside the candidates can overtake a floor under the same bounds."""
        if math.isinf(cands.outside_bound):
            return cands.outside_bound < 0  # -inf: nothing was left out; +inf: not certifiable
        if cands.keys.size == 0:
            return False
        worst_drift = 0.0
        if self.bridge is not None:
            versions = self._bridge_version[self._bridge_version >= 0]
            if versions.size:
                worst_drift = self.bridge.drift_since(int(versions.min()))
        slack = float(perturbation_bound(r, [worst_drift], self.config.safety.multiplier)[0])
        slack += score_rounding_error(self.config.dim)  # the outside bound is a float32 score
        return completeness(floor_k, np.array([cands.outside_bound + slack]))

    def _item_drift(self, keys: np.ndarray) -> np.ndarray:
        """ε_i per candidate: bridge drift since the item was projected (0 if it was not)."""
        out = np.zeros(len(keys), dtype=np.float64)
        if self.bridge is None or keys.size == 0:
            return out
        versions = self._bridge_version[keys]
        for v in np.unique(versions[versions >= 0]).tolist():
            out[versions == v] = self.bridge.drift_since(int(v))
        return out

    # -- media -----------------------------------------------------------------------------------
    @property
    def encoder(self) -> Encoder | None:
        """The CLIP-space encoder attached to this store (None: vectors only)."""
        return self._embedder.encoder if self._embedder else None

    def attach_encoders(self, encoder: Encoder, audio_encoder: Encoder | None = None) -> None:
        """Attach encoders; calibrate ρ and warm-start the bridge when the store has none yet.

        ρ per query modality is read from the store (``luma.rho``); the ones missing are
        calibrated on first attach (see :func:`_calibrate_radii`: text from paraphrases, image
        and video from shifted / re-lit renders, audio from the bridge's residual), so no
        encoder modality is certified with the vacuous ρ = 0. An unfitted bridge is
        warm-started from caption pairs through both text towers first.
        """
        from luma_rag.datasets.captions import paraphrase_groups
        from luma_rag.embedder import MediaEmbedder

        self._check_open()
        if encoder.dim != self.config.dim:
            raise DimensionMismatchError(
                f"encoder {encoder.name} gives {encoder.dim}-d vectors; "
                f"the store is {self.config.dim}-d"
            )
        self._embedder = MediaEmbedder(encoder, audio_encoder)
        stored = self._records.get_kv("rho")
        self.rho = {k: float(v) for k, v in json.loads(stored).items()} if stored else {}
        sources = self._records.get_kv("rho_source")
        self.rho_source = dict(json.loads(sources)) if sources else {}
        if audio_encoder is not None and self.bridge is not None and not self.bridge.fitted:
            captions = [
                c
                for g in paraphrase_groups(self.bridge.config.resolved_min_pairs // 2 + 1, seed=2)
                for c in g[:2]
            ]
            self.add_bridge_pairs(
                audio_encoder.encode_text(captions), encoder.encode_text(captions)
            )
        missing = {"text", "image", "video"} - set(self.rho)
        if audio_encoder is not None and self.bridge is not None:
            missing |= {"audio"} - set(self.rho)
        if missing:
            self.rho.update(_calibrate_radii(encoder, audio_encoder, self.bridge, missing))
            self.rho_source.update({m: "calibrated" for m in missing})
            self._records.set_kv("rho", json.dumps(self.rho))
            self._records.set_kv("rho_source", json.dumps(self.rho_source))

    def set_rho(
        self, modality: str, value: float, *, source: Literal["calibrated", "user"] = "user"
    ) -> None:
        """Set the encoder radius ρ used for queries of ``modality`` (persisted).

        Args:
            modality: ``"text"``, ``"image"``, ``"audio"`` or ``"video"``.
            value: ρ, finite and ``>= 0``.
            source: ``"calibrated"`` when measured (e.g. by :mod:`luma_rag.rho`), else
                ``"user"``; reported as ``Telemetry.rho_source``.
        """
        self._check_open()
        if source not in ("calibrated", "user"):
            raise InvalidInputError(f"source must be 'calibrated' or 'user', got {source!r}")
        self.rho[str(modality)] = _check_rho(value)
        self.rho_source[str(modality)] = source
        self._records.set_kv("rho", json.dumps(self.rho))
        self._records.set_kv("rho_source", json.dumps(self.rho_source))

    def calibration(self, name: str) -> dict[str, Any] | None:
        """A calibration stored with :meth:`set_calibration` (``None`` if there is none)."""
        self._check_open()
        stored = self._records.get_kv(f"calibration:{name}")
        return dict(json.loads(stored)) if stored else None

    def set_calibration(self, name: str, value: Mapping[str, Any]) -> None:
        """Persist a JSON-serialisable calibration (ρ of a foreign embedder, relevance floors).

        Args:
            name: Key, e.g. ``"rho:langchain:HuggingFaceEmbeddings"`` or ``"relevance:text"``.
            value: JSON-serialisable mapping.
        """
        self._check_open()
        try:
            text = json.dumps(dict(value))
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"calibration {name!r} must be JSON-serialisable ({e})") from e
        self._records.set_kv(f"calibration:{name}", text)

    def _need_embedder(self) -> MediaEmbedder:
        if self._embedder is None:
            raise ConfigError(
                "this store has no encoder; open it with Luma.open(path, encoder='luma-tiny') "
                "(or another model) to ingest and query media, or use add_vectors/search"
            )
        return self._embedder

    def ingest(
        self,
        text: str | None = None,
        *,
        image: str | os.PathLike[str] | None = None,
        audio: str | os.PathLike[str] | None = None,
        video: str | os.PathLike[str] | None = None,
        caption: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        id: str | None = None,
    ) -> str:
        """Embed and store one item (exactly one of text / image / audio / video).

        Args:
            caption: what the item shows or says; returned as ``Hit.text`` and, with an audio
                encoder attached, fed to the bridge as a (CLAP-text, CLIP-text) pair (plus
                (CLAP-audio, CLIP-text) for audio items).

        Returns:
            The item's id.
        """
        self._check_open()
        metas = _check_metadata([metadata or {}], 1)
        ids = _check_ids([id], 1) if id is not None else None
        emb = self._need_embedder().embed(
            text=text, image=image, audio=audio, video=video, caption=caption
        )
        if emb.pairs is not None and self.bridge is not None:
            self.add_bridge_pairs(*emb.pairs)
        return self.add_vectors(
            emb.vector[None, :],
            metas,
            ids,
            modality=emb.modality,
            bridged=emb.bridged,
            texts=[caption if caption is not None else text],
            sources=[emb.source],
        )[0]

    def ingest_texts(
        self,
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Embed and store a batch of texts (one encoder call)."""
        self._check_open()
        if (
            isinstance(texts, str)
            or not texts
            or not all(isinstance(t, str) and t.strip() for t in texts)
        ):
            raise InvalidInputError("texts must be a non-empty list of non-empty strings")
        metas = _check_metadata(metadatas, len(texts))
        ids_ = _check_ids(ids, len(texts))
        vecs = self._need_embedder().encoder.encode_text(list(texts))
        return self.add_vectors(vecs, metas, ids_, modality="text", texts=list(texts))

    def ingest_images(
        self,
        paths: Sequence[str | os.PathLike[str]],
        captions: Sequence[str | None] | None = None,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Embed and store a batch of images (one encoder call; captions optional)."""
        self._check_open()
        if isinstance(paths, (str, os.PathLike)) or not paths:
            raise InvalidInputError("paths must be a non-empty list of image files")
        n = len(paths)
        caps = _check_optional_strings(captions, n, "captions")
        metas = _check_metadata(metadatas, n)
        ids_ = _check_ids(ids, n)
        vecs = self._need_embedder().encoder.encode_image(list(paths))
        return self.add_vectors(
            vecs, metas, ids_, modality="image", texts=caps, sources=[os.fspath(p) for p in paths]
        )

    def query(
        self,
        text: str | None = None,
        *,
        image: str | os.PathLike[str] | None = None,
        audio: str | os.PathLike[str] | None = None,
        video: str | os.PathLike[str] | None = None,
        k: int = 10,
        filters: Mapping[str, Any] | None = None,
        rho: float | None = None,
    ) -> QueryResult:
        """Search with a text, image, audio or video query (exactly one).

        ρ defaults to the store's calibrated radius for the query's modality (``luma.rho``),
        else ``SafetyConfig.rho``. Audio queries cross the bridge, so ε_q enters the bound.
        """
        self._check_open()
        k = _check_k(k)
        t0 = time.perf_counter()
        emb = self._need_embedder().embed(text=text, image=image, audio=audio, video=video)
        encode_ms = (time.perf_counter() - t0) * 1000.0
        source: Literal["calibrated", "user", "unset"] | None = None
        if rho is None and emb.modality in self.rho:
            rho = self.rho[emb.modality]
            source = "user" if self.rho_source.get(emb.modality) == "user" else "calibrated"
        res = self.search(
            emb.vector, k, filters=filters, rho=rho, bridged=emb.bridged, rho_source=source
        )
        tel = dataclasses.replace(
            res.telemetry,
            latency_ms=(time.perf_counter() - t0) * 1000.0,
            stages_ms={"encode": encode_ms, **res.telemetry.stages_ms},
        )
        return dataclasses.replace(res, telemetry=tel)

    def record_gap(self, query: str, detail: Mapping[str, Any]) -> int:
        """Log a knowledge gap: a query the memory could not settle (the gate's CLARIFY).

        Args:
            query: the user's question (or a description of a media query).
            detail: JSON-serialisable context, e.g. candidates and margins.
        """
        self._check_open()
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("a knowledge gap needs the query text")
        try:
            return self._records.add_gap(time.time(), query, dict(detail))
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"gap detail is not JSON-serialisable ({e})") from e

    def knowledge_gaps(self, limit: int = 50) -> list[dict[str, Any]]:
        """Recent knowledge gaps, newest first: dicts with gap, time, query and the detail."""
        self._check_open()
        return self._records.gaps(_check_k(limit))

    def get(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Stored items by id (unknown ids skipped).

        Returns:
            dicts with id, modality, metadata, text, source and vector ((dim,) float32).
        """
        self._check_open()
        if isinstance(ids, str) or not isinstance(ids, Sequence):
            raise InvalidInputError("get takes a list of ids, e.g. luma.get([id])")
        with self._lock.read():
            keys = [self._ids[i] for i in ids if i in self._ids]
            details = self._records.details(keys)
            vecs = self._vectors.get(np.array(keys, dtype=np.int64))
        return [
            {**details[k]._asdict(), "vector": v}
            for k, v in zip(keys, vecs, strict=True)
            if k in details
        ]

    def ids(
        self, filters: Mapping[str, Any] | None = None, *, check_keys: bool = True
    ) -> list[str]:
        """Ids of the stored items (oldest first), or of those whose metadata match ``filters``.

        Args:
            check_keys: refuse filters on keys no item has (as :meth:`search` does); False lets
                such a filter match nothing.
        """
        self._check_open()
        with self._lock.read():
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
        with self._lock.read():
            out = self.memory.stats()
        out["total"] = len(self._ids)
        out["bridge_version"] = self.bridge.version if self.bridge else None
        out["bridge_epsilon"] = self.bridge.epsilon if self.bridge else None
        return out


def _calibrate_radii(
    encoder: Encoder,
    audio_encoder: Encoder | None,
    bridge: ProcrustesBridge | None,
    modalities: set[str],
) -> dict[str, float]:
    """ρ per query modality from inputs that mean the same (DESIGN.md, "Safe@k").

    text: paraphrased LUMA-Shapes captions; image (and video, whose vector pools image
    embeddings): rendered LUMA-Shapes images vs. shifted / re-lit copies; audio: the bridge's
    residual ‖T·CLAP(caption) − CLIP(caption)‖ on held-out captions (drift ε is added apart).
    """
    import tempfile

    from PIL import Image

    from luma_rag.calibration import (
        radius_from_augmentations,
        radius_from_groups,
        radius_from_pairs,
    )
    from luma_rag.datasets.captions import paraphrase_groups
    from luma_rag.datasets.shapes import generate, load_manifest

    out: dict[str, float] = {}
    if "text" in modalities:
        out["text"] = radius_from_groups(encoder.encode_text, paraphrase_groups(128, seed=1))
    if modalities & {"image", "video"} and "image" in encoder.modalities:
        with tempfile.TemporaryDirectory() as tmp:
            manifest = generate(tmp, 48, seed=3)
            images = [
                Image.open(Path(tmp) / it.image).convert("RGB") for it in load_manifest(manifest)
            ]
            try:
                rho_image = radius_from_augmentations(encoder.encode_image, images, seed=3)
            except (LumaError, NotImplementedError, TypeError, ValueError, OSError) as e:
                # e.g. a custom encoder that takes only paths: say so, certify image queries
                # with SafetyConfig.rho until luma.set_rho("image", ...) is called
                logger.warning("could not calibrate the image radius with %s: %s", encoder.name, e)
            else:
                out["image"] = out["video"] = rho_image
    if "audio" in modalities and audio_encoder is not None and bridge is not None and bridge.fitted:
        captions = [g[0] for g in paraphrase_groups(128, seed=4)]
        projected = bridge.project(audio_encoder.encode_text(captions))
        out["audio"] = radius_from_pairs(projected, encoder.encode_text(captions))
    logger.info("calibrated encoder radii: %s", out)
    return out


def _resolve_encoder(encoder: Encoder | str | None) -> Encoder | None:
    if encoder is None or not isinstance(encoder, str):
        return encoder
    if encoder.startswith("luma-tiny-clap") or "clap" in encoder.lower():
        from luma_rag.encoders.clap.backend import ClapEncoder

        return ClapEncoder(encoder)
    from luma_rag.encoders.registry import get_encoder

    return get_encoder(encoder)


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInputError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def _check_rho(rho: Any) -> float:
    if (
        isinstance(rho, bool)
        or not isinstance(rho, (int, float))
        or not math.isfinite(rho)
        or rho < 0
    ):
        raise InvalidInputError(f"rho (encoder radius) must be a finite number >= 0, got {rho!r}")
    return float(rho)


def _check_metadata(metadata: Sequence[Mapping[str, Any]] | None, n: int) -> list[dict[str, Any]]:
    if metadata is None:
        return [{} for _ in range(n)]
    if isinstance(metadata, Mapping) or not isinstance(metadata, Sequence):
        raise InvalidInputError("metadata must be a list with one dict per vector")
    if len(metadata) != n:
        raise InvalidInputError(
            f"got {len(metadata)} metadata dicts for {n} vectors; pass one per vector"
        )
    out = []
    for i, m in enumerate(metadata):
        if m is None:
            m = {}
        if not isinstance(m, Mapping) or not all(isinstance(key, str) for key in m):
            raise InvalidInputError(f"metadata[{i}] must be a dict with string keys")
        try:
            json.dumps(m, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"metadata[{i}] is not JSON-serialisable ({e})") from e
        out.append(dict(m))
    return out


def _check_optional_strings(
    values: Sequence[str | None] | None, n: int, name: str
) -> list[str | None]:
    if values is None:
        return [None] * n
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InvalidInputError(f"{name} must be a list with one string (or None) per vector")
    if len(values) != n:
        raise InvalidInputError(f"got {len(values)} {name} for {n} vectors; pass one per vector")
    if not all(v is None or isinstance(v, str) for v in values):
        raise InvalidInputError(f"every entry of {name} must be a string or None")
    return list(values)


def _check_ids(ids: Sequence[str] | None, n: int) -> list[str]:
    if ids is None:
        return [uuid.uuid4().hex for _ in range(n)]
    if isinstance(ids, str) or not isinstance(ids, Sequence):
        raise InvalidInputError("ids must be a list of strings, one per vector")
    if len(ids) != n:
        raise InvalidInputError(f"got {len(ids)} ids for {n} vectors; pass one per vector")
    if not all(isinstance(i, str) and i for i in ids):
        raise InvalidInputError("every id must be a non-empty string")
    if len(set(ids)) != n:
        raise InvalidInputError("ids within one batch must be unique")
    return list(ids)
