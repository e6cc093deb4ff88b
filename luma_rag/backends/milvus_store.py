"""A Milvus collection (+ optional S3 media) as a :class:`~luma_rag.store.base.StoreBackend`.

``Luma.open("milvus://127.0.0.1:19530/docs", encoder=...)`` lands here: the facade, the query
pipeline and the certificate are the local ones; this module maps the backend contract onto
:class:`~luma_rag.backends.milvus.MilvusBackend`:

* items keep their string ids in Milvus; the pipeline's integer keys are handed out per
  session (``_key_of``) as ids are seen;
* candidates are Milvus's, rescored exactly from the raw vectors stored in Milvus;
  ``outside_bound`` is +inf on HNSW / IVF_PQ (``complete`` is False), a real bound on FLAT,
  -inf when a small filtered set was scanned whole (see :mod:`luma_rag.backends.milvus`);
* the bridge state, the store config, the radii ρ, the known metadata keys, the oldest bridge
  version and the knowledge gaps are blobs in the collection's state collection;
* with ``media`` set, a source that names a local file is uploaded at ingest and the record
  keeps its ``s3://`` URI (:meth:`MilvusStore.media_url` signs it for a browser).
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from luma_rag.backends.milvus import MilvusBackend
from luma_rag.backends.milvus_config import MilvusConfig
from luma_rag.backends.s3 import S3Config, S3MediaStore, is_s3_uri
from luma_rag.bridge import ProcrustesBridge
from luma_rag.config import LumaConfig, session_config
from luma_rag.errors import ConfigError, InvalidInputError, NotFoundError, StoreClosedError
from luma_rag.filters.syntax import check_known_keys, parse_filter
from luma_rag.memory.tiered import HOT, WARM, Candidates
from luma_rag.store.bridge_file import load_bridge, save_bridge
from luma_rag.store.records import ItemDetails

if TYPE_CHECKING:
    from luma_rag.encoders.base import Encoder

__all__ = ["MilvusStore", "open_milvus_store"]

logger = logging.getLogger(__name__)

_MAX_GAPS = 1000


def open_milvus_store(
    uri: str,
    config: LumaConfig | None = None,
    enc: Encoder | None = None,
    aenc: Encoder | None = None,
    media: S3MediaStore | None = None,
) -> MilvusStore:
    """Open (or create) the store a ``milvus://host:port/collection[?media=s3&...]`` URI names.

    ``media=s3`` in the query string keeps media in S3 (settings from the environment, see
    :meth:`~luma_rag.backends.s3.S3Config.from_env`); other query settings go to
    :class:`~luma_rag.backends.milvus_config.MilvusConfig`.
    """
    base, _, query = uri.partition("?")
    rest = [p for p in query.split("&") if p and p != "media=s3"]
    if media is None and "media=s3" in query.split("&"):
        media = S3MediaStore(S3Config.from_env())
    mcfg = MilvusConfig.from_uri(base + ("?" + "&".join(rest) if rest else ""))
    probe = MilvusBackend(mcfg, dim=config.dim if config else (enc.dim if enc else None))
    raw = probe.get_blob("config")
    stored = LumaConfig.from_json(raw.decode()) if raw else None
    cfg = session_config(Path(mcfg.uri), stored, config, enc, aenc)
    return MilvusStore(probe, cfg, media)


class MilvusStore:
    """Records + raw vectors + ANN candidates + bridge state of one store, in Milvus."""

    def __init__(
        self, backend: MilvusBackend, config: LumaConfig, media: S3MediaStore | None = None
    ) -> None:
        self.backend = backend
        self.config = config
        self.media = media
        self.path = Path(backend.config.uri)  # a label for messages; nothing is written there
        self._closed = False
        self._lock = threading.RLock()
        self._key_of: dict[str, int] = {}
        self._id_of: list[str] = []
        self._versions: dict[int, int] = {}
        self._meta_keys: set[str] = set(json.loads(self.get_kv("meta_keys") or "[]"))
        oldest = self.get_kv("oldest_bridge_version")
        self._oldest_version = int(oldest) if oldest is not None else -1
        self._bridge = self._load_bridge()
        backend.put_blob("config", config.to_json().encode())

    def _load_bridge(self) -> ProcrustesBridge | None:
        if self.config.bridge is None:
            return None
        blob = self.backend.get_blob("bridge")
        if blob is None:
            return ProcrustesBridge(self.config.bridge)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bridge.safetensors"
            path.write_bytes(blob)
            return load_bridge(path)

    def _save_bridge(self) -> None:
        if self._bridge is None:
            return
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bridge.safetensors"
            save_bridge(self._bridge, path)
            self.backend.put_blob("bridge", path.read_bytes())

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def bridge(self) -> ProcrustesBridge | None:
        """The store's bridge (None: none)."""
        return self._bridge

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran."""
        return self._closed

    @property
    def notes(self) -> tuple[str, ...]:
        """Conditions that may change results: Milvus's index is approximate unless FLAT."""
        if self.backend.config.index == "FLAT":
            return ()
        return (f"milvus {self.backend.config.index}: approximate candidates, complete=False",)

    def reopen(self) -> MilvusStore:
        """A fresh view of the same collection (Milvus readers always see the latest writes)."""
        self.check_open()
        backend = MilvusBackend(self.backend.config)
        return MilvusStore(backend, self.config, self.media)

    def check_open(self) -> None:
        """Raise once closed."""
        if self._closed:
            raise StoreClosedError(f"the store at {self.path} is closed; reopen it with Luma.open")

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Milvus reads are consistent per request; this only guards the key maps."""
        self.check_open()
        yield

    def wait_idle(self, timeout: float | None = None) -> None:
        """Nothing runs in the background here (Milvus indexes on its own)."""

    def close(self) -> None:
        """Close the connection. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self.backend.close()

    def media_url(self, source: str, expires_s: int = 3600) -> str:
        """A presigned URL for an ``s3://`` source (a local path is returned unchanged)."""
        if self.media is None or not is_s3_uri(source):
            return source
        return self.media.url(source, expires_s)

    # -- writes ---------------------------------------------------------------------------------
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
        """Upsert validated unit vectors float32 (n, dim); media uploaded first when configured."""
        with self._lock:
            self.check_open()
            if len(set(ids)) != len(ids):
                raise InvalidInputError("ids must be unique within one call")
            if self.media is not None:
                sources = [self._upload(s) for s in sources]
            keys = {k for m in metadata for k in m}
            self.backend.upsert(
                ids,
                vectors,
                metadata,
                modality=modality,
                texts=texts,
                sources=sources,
                bridge_versions=[bridge_version] * len(ids),
            )
            if not keys <= self._meta_keys:
                self._meta_keys |= keys
                self.set_kv("meta_keys", json.dumps(sorted(self._meta_keys)))
            if bridge_version >= 0 and not 0 <= self._oldest_version <= bridge_version:
                self._oldest_version = bridge_version
                self.set_kv("oldest_bridge_version", str(bridge_version))
            for i in ids:
                self._versions[self._key(i)] = bridge_version

    def _upload(self, source: str | None) -> str | None:
        if self.media is None or source is None or is_s3_uri(source):
            return source
        return self.media.put_file(source) if Path(source).is_file() else source

    def delete(self, ids: list[str]) -> None:
        """Delete existing ids (NotFoundError, nothing deleted, if any is unknown)."""
        with self._lock:
            self.check_open()
            ids = list(dict.fromkeys(ids))
            found = self.backend.get(ids)
            unknown = [i for i in ids if i not in found]
            if unknown:
                raise NotFoundError(f"unknown id(s) {unknown[:5]!r}; nothing was deleted")
            self.backend.delete(ids)

    def add_bridge_pairs(self, x_source: np.ndarray, y_target: np.ndarray) -> list[float]:
        """Feed pairs to the bridge and persist it in Milvus; ε of any refreshes."""
        if self._bridge is None:
            raise ConfigError(
                "this store has no bridge; create it with LumaConfig(bridge=BridgeConfig(...))"
            )
        with self._lock:
            self.check_open()
            eps = self._bridge.add_pairs(x_source, y_target)
            self._save_bridge()
        return eps

    # -- the pipeline's reads -----------------------------------------------------------------
    def _key(self, item_id: str) -> int:
        key = self._key_of.get(item_id)
        if key is None:
            with self._lock:
                key = self._key_of.setdefault(item_id, len(self._id_of))
                if key == len(self._id_of):
                    self._id_of.append(item_id)
        return key

    def _check_filter(self, filters: Mapping[str, Any] | None, check_keys: bool = True) -> None:
        if filters:
            node = parse_filter(filters)
            if check_keys:
                check_known_keys(node, self._meta_keys)

    def candidates(
        self, query: np.ndarray, k: int, filters: Mapping[str, Any] | None
    ) -> Candidates:
        """Milvus's candidates, rescored exactly from their raw vectors, best first."""
        self._check_filter(filters)
        depth = max(k, self.config.rerank_depth, self.backend.config.rerank_depth)
        res = self.backend.search(
            query, k, filters, depth=depth, exact_below=self.config.exact_filter_below
        )
        return self._candidates_of(res)

    def rescan(self, query: np.ndarray, k: int, filters: Mapping[str, Any] | None) -> Candidates:
        """Exact top over every allowed item when at most 16,384 pass the filter (complete);
        beyond that Milvus's own candidates, whose outside bound stays +inf (not complete)."""
        self._check_filter(filters)
        depth = max(k, self.config.rerank_depth, self.backend.config.rerank_depth)
        res = self.backend.search(
            query, k, filters, depth=depth, exact_below=16384, exhaustive=True
        )
        return self._candidates_of(res)

    def _candidates_of(self, res: Any) -> Candidates:
        keys = np.array([self._key(i) for i in res.ids], dtype=np.int64)
        self._details = {}
        for key, rec in zip(keys.tolist(), res.records, strict=True):
            self._versions[key] = int(rec["bridge_version"])
            self._details[key] = ItemDetails(
                rec["id"], rec["modality"], rec["meta"], rec["text"], rec["source"]
            )
        tier = WARM if self.backend.config.index == "IVF_PQ" else HOT
        return Candidates(
            keys,
            res.scores,
            np.full(len(keys), tier, dtype=np.int8),
            np.zeros(len(keys), np.float32),
            res.outside_bound,
            res.vectors,
        )

    def item_drift(self, keys: np.ndarray) -> np.ndarray:
        """ε_i per key: bridge drift since the item's projection (0: never projected)."""
        out = np.zeros(len(keys), dtype=np.float64)
        if self._bridge is None:
            return out
        for j, key in enumerate(keys.tolist()):
            v = self._versions.get(int(key), -1)
            if v >= 0:
                out[j] = self._bridge.drift_since(v)
        return out

    def worst_drift(self) -> float:
        """Drift since the oldest bridge version any item was ever projected with (sound)."""
        if self._bridge is None or self._oldest_version < 0:
            return 0.0
        return self._bridge.drift_since(self._oldest_version)

    def details(self, keys: Sequence[int]) -> dict[int, ItemDetails]:
        """What a hit shows of each key (from the last candidates, else fetched)."""
        cached = getattr(self, "_details", {})
        out = {k: cached[k] for k in keys if k in cached}
        missing = [self._id_of[k] for k in keys if k not in out and 0 <= k < len(self._id_of)]
        for rec in self.backend.get(missing).values():
            out[self._key(rec["id"])] = ItemDetails(
                rec["id"], rec["modality"], rec["meta"], rec["text"], rec["source"]
            )
        return out

    def record_hits(self, keys: np.ndarray, now: float) -> None:
        """Usage statistics drive LUMA's local tiers; Milvus places data itself: a no-op."""

    # -- the rest of the facade -----------------------------------------------------------------
    def get(self, ids: Sequence[Any]) -> list[dict[str, Any]]:
        """Stored items (unknown ids skipped), with their (dim,) float32 vectors."""
        self.check_open()
        wanted = [i for i in ids if isinstance(i, str)]
        found = self.backend.get(wanted, vectors=True)
        return [
            {
                "id": i,
                "modality": r["modality"],
                "metadata": r["meta"],
                "text": r["text"],
                "source": r["source"],
                "vector": r["vec"],
            }
            for i in dict.fromkeys(wanted)
            if (r := found.get(i)) is not None
        ]

    def ids(self, filters: Mapping[str, Any] | None, check_keys: bool) -> list[str]:
        """Ids, oldest first (write order), optionally those matching ``filters``."""
        from luma_rag.backends.milvus_filters import to_milvus
        from luma_rag.filters import matches

        self.check_open()
        self._check_filter(filters, check_keys)
        mf = to_milvus(filters)
        rows = [
            r
            for r in self.backend.scan(mf.upper if mf else "", vectors=False)
            if mf is None or mf.exact or matches(r["meta"], filters)
        ]
        return [r["id"] for r in sorted(rows, key=lambda r: (r["seq"], r["id"]))]

    def __len__(self) -> int:
        return self.backend.count()

    def __contains__(self, item_id: object) -> bool:
        return isinstance(item_id, str) and bool(self.backend.get([item_id]))

    def stats(self) -> dict[str, Any]:
        """Total count, the backend and its index, bridge state."""
        return {
            "total": len(self),
            "backend": "milvus",
            "uri": self.backend.config.uri,
            "index": self.backend.config.index,
            "bridge_version": self._bridge.version if self._bridge else None,
            "bridge_epsilon": self._bridge.epsilon if self._bridge else None,
        }

    def get_kv(self, name: str) -> str | None:
        """A small persisted setting."""
        blob = self.backend.get_blob(f"kv.{name}")
        return None if blob is None else blob.decode()

    def set_kv(self, name: str, value: str) -> None:
        """Persist a small setting."""
        self.backend.put_blob(f"kv.{name}", value.encode())

    def add_gap(self, when: float, query: str, detail: dict[str, Any]) -> int:
        """Log a knowledge gap (the newest 1000 are kept)."""
        with self._lock:
            gaps = json.loads(self.get_kv("gaps") or "[]")
            number = (gaps[-1]["gap"] + 1) if gaps else 1
            try:
                gaps.append({**detail, "gap": number, "time": when, "query": query})
                self.set_kv("gaps", json.dumps(gaps[-_MAX_GAPS:]))
            except (TypeError, ValueError) as e:
                raise InvalidInputError(f"gap detail is not JSON-serialisable ({e})") from e
            return int(number)

    def gaps(self, limit: int) -> list[dict[str, Any]]:
        """Recent knowledge gaps, newest first."""
        return list(reversed(json.loads(self.get_kv("gaps") or "[]")))[:limit]
