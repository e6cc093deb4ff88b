"""A Milvus collection as LUMA's item store and index: records, raw vectors and ANN search.

One collection per store::

    id VARCHAR(512) primary | vec FLOAT_VECTOR(dim) raw unit vector | modality VARCHAR
    text VARCHAR | source VARCHAR (path or s3:// URI) | bridge_version INT64 | crc INT64
    seq INT64 (write order)
    meta JSON (the item's metadata)

plus a small side collection ``<collection>__state`` for named blobs (store config, ρ, the
bridge's safetensors), chunked into VARCHAR rows. Reads see every write this backend
acknowledged: the first read after a write asks for ``Strong`` consistency (it waits for
Milvus's time tick, ~200 ms), later reads use ``Session`` (no wait). Writes made by *other*
clients become visible within Milvus's bounded staleness.

Search and what it can promise (``complete``):

1. Milvus returns up to ``rerank_depth`` candidates (ANN over the configured index, with the
   filter's Milvus prefilter — :mod:`luma_rag.backends.milvus_filters`), **with their raw
   vectors**; LUMA rescores them exactly (cosine of float32 unit vectors) and applies the
   exact filter semantics. Scores, Safe@k and the pairwise refinement are therefore exact
   and sound, whatever the index.
2. ``complete`` (no item outside the candidates can overtake the top k) needs a bound on what
   Milvus did *not* return. HNSW and IVF_PQ give none: an ANN index may miss a better item,
   so ``outside_bound`` is +inf and ``complete`` is False. ``FLAT`` is brute force: anything
   not returned scores at most the lowest returned score (plus float tolerance), so
   ``complete`` is certified as for LUMA's local tiers. A filtered query whose prefilter
   matches at most ``exact_scan_below`` items is scanned exactly from the raw vectors on any
   index, and is complete.
"""

from __future__ import annotations

import base64
import logging
import math
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from luma_rag.backends.milvus_config import MilvusConfig
from luma_rag.backends.milvus_filters import to_milvus
from luma_rag.backends.milvus_rows import MilvusCandidates, decode_row, rank_rows
from luma_rag.backends.milvus_schema import (
    SOURCE_MAX,
    TEXT_MAX,
    items_schema,
    search_params,
    state_schema,
)
from luma_rag.errors import (
    BackendError,
    ConfigError,
    DimensionMismatchError,
    InvalidInputError,
    MissingDependencyError,
)
from luma_rag.filters import matches

__all__ = ["MilvusBackend", "MilvusCandidates"]

logger = logging.getLogger(__name__)

RECORD_FIELDS = ("id", "modality", "text", "source", "bridge_version", "crc", "seq", "meta")
_BATCH = 2000
_BLOB_CHUNK = 60000
_WRITES = frozenset({"upsert", "delete"})
_READS = frozenset({"count", "get", "query", "query_iterator", "search"})
_FLAT_TOLERANCE = 1e-4  # Milvus's float IP vs our float32 dot: a few ulps; generous


class MilvusBackend:
    """Records, raw vectors and the ANN index of one store, in a Milvus collection.

    Example:
        >>> be = MilvusBackend(MilvusConfig.from_uri("milvus://127.0.0.1:19530/demo"), dim=64)
        >>> be.upsert(["a"], vecs[:1], [{"color": "red"}], modality="vector")
        >>> be.search(vecs[0], k=1, filters={"color": "red"}).ids
        ['a']
    """

    def __init__(self, config: MilvusConfig, dim: int | None = None) -> None:
        """Connect and open (or, given ``dim``, create) the collection.

        Raises:
            MissingDependencyError: pymilvus is missing. BackendError: Milvus is unreachable.
            DimensionMismatchError: the collection exists with another dimension.
            ConfigError: no ``dim`` and no such collection.
        """
        try:
            from pymilvus import MilvusClient
        except ImportError as e:
            raise MissingDependencyError.for_extra("pymilvus", "milvus") from e
        self.config = config
        try:
            self._client = MilvusClient(uri=f"http://{config.address}", timeout=config.timeout_s)
        except Exception as e:
            raise BackendError(
                f"cannot reach Milvus at {config.address} ({e}); start it (see "
                "`python -m luma_rag.backends.servers`) or fix the address"
            ) from e
        self._state = f"{config.collection}__state"
        self._dirty = True  # a write may be pending: the next read waits for it
        self.dim = self._open(dim)

    # -- lifecycle ------------------------------------------------------------------------------
    def _open(self, dim: int | None) -> int:
        c = self._client
        name = self.config.collection
        if self._call("has_collection", c.has_collection, name):
            desc = self._call("describe_collection", c.describe_collection, name)
            have = next(int(f["params"]["dim"]) for f in desc["fields"] if f["name"] == "vec")
            if dim is not None and dim != have:
                raise DimensionMismatchError(
                    f"Milvus collection {name!r} holds {have}-d vectors, not {dim}-d; use "
                    "another collection or a matching encoder"
                )
            self._call("load_collection", c.load_collection, name)
            self._call("load_collection", c.load_collection, self._state)
            return have
        if dim is None:
            raise ConfigError(
                f"Milvus holds no collection {name!r}; pass dim (LumaConfig(dim=...)) to create it"
            )
        self._create(dim)
        return dim

    def _create(self, dim: int) -> None:
        for name, schema, index in (
            (self.config.collection, *items_schema(dim, self.config)),
            (self._state, *state_schema(_BLOB_CHUNK + 1000)),
        ):
            params = self._client.prepare_index_params()
            params.add_index(field_name="vec", **index)
            self._call(
                "create_collection",
                self._client.create_collection,
                name,
                schema=schema,
                index_params=params,
                consistency_level="Session",
            )
        logger.info(
            "created Milvus collection %s (%d-d, %s)", self.config.uri, dim, self.config.index
        )

    def drop(self) -> None:
        """Delete the collection and its state (irreversible)."""
        for name in (self.config.collection, self._state):
            self._call("drop_collection", self._client.drop_collection, name)

    def clear(self) -> None:
        """Delete every item and every blob, keeping the (empty) collections."""
        for name in (self.config.collection, self._state):
            self._call("delete", self._client.delete, name, filter='id != ""')

    def close(self) -> None:
        """Close the connection (idempotent)."""
        try:
            self._client.close()
        except Exception as e:
            logger.debug("closing the Milvus client: %s", e)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a client call, converting pymilvus errors at the boundary."""
        from pymilvus.exceptions import MilvusException

        dirty = False
        if what in _WRITES:
            self._dirty = True
        elif what in _READS:
            dirty, self._dirty = self._dirty, False
            kwargs["consistency_level"] = "Strong" if dirty else "Session"
        try:
            return fn(*args, **kwargs)
        except MilvusException as e:
            self._dirty = self._dirty or dirty
            raise BackendError(
                f"Milvus {what} on {self.config.uri} failed: {e.message} (code {e.code})"
            ) from e

    # -- writes ---------------------------------------------------------------------------------
    def upsert(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        metadata: Sequence[Mapping[str, Any]],
        *,
        modality: str | Sequence[str] = "vector",
        texts: Sequence[str | None] | None = None,
        sources: Sequence[str | None] | None = None,
        bridge_versions: Sequence[int] | None = None,
    ) -> None:
        """Insert or replace items; visible to every read when this returns.

        Args:
            ids: n unique ids. vectors: float32 (n, dim) unit rows (stored as given).
            metadata: n JSON-serialisable dicts. modality: one for all, or n.
            texts / sources: n strings or None. bridge_versions: n ints (-1: not bridged).
        """
        n = len(ids)
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        if vecs.shape != (n, self.dim):
            raise DimensionMismatchError(
                f"expected ({n}, {self.dim}) vectors for {n} ids, got {vecs.shape}"
            )
        mods = [modality] * n if isinstance(modality, str) else list(modality)
        texts_ = list(texts) if texts is not None else [None] * n
        sources_ = list(sources) if sources is not None else [None] * n
        versions = list(bridge_versions) if bridge_versions is not None else [-1] * n
        rows = []
        seq0 = time.time_ns()
        for i in range(n):
            text, source = texts_[i] or "", sources_[i] or ""
            if len(text.encode()) > TEXT_MAX or len(source.encode()) > SOURCE_MAX:
                raise InvalidInputError(
                    f"item {ids[i]!r}: Milvus stores text up to {TEXT_MAX} bytes and sources up "
                    f"to {SOURCE_MAX}; shorten it"
                )
            rows.append(
                {
                    "id": ids[i],
                    "vec": vecs[i].tolist(),
                    "modality": mods[i],
                    "text": text,
                    "source": source,
                    "bridge_version": int(versions[i]),
                    "crc": zlib.crc32(vecs[i].tobytes()),
                    "seq": seq0 + i,
                    "meta": dict(metadata[i]),
                }
            )
        for start in range(0, n, _BATCH):
            self._call(
                "upsert", self._client.upsert, self.config.collection, rows[start : start + _BATCH]
            )

    def delete(self, ids: Sequence[str]) -> None:
        """Delete items by id (absent ids are ignored)."""
        for start in range(0, len(ids), _BATCH):
            self._call(
                "delete",
                self._client.delete,
                self.config.collection,
                ids=list(ids[start : start + _BATCH]),
            )

    def flush(self) -> None:
        """Seal growing segments so that the index gets built (for bulk loads)."""
        self._call("flush", self._client.flush, self.config.collection)

    # -- reads ----------------------------------------------------------------------------------
    def count(self, expr: str = "") -> int:
        """Number of items (matching the Milvus expression ``expr``)."""
        res = self._call(
            "count",
            self._client.query,
            self.config.collection,
            filter=expr,
            output_fields=["count(*)"],
        )
        return int(res[0]["count(*)"])

    def get(self, ids: Sequence[str], vectors: bool = False) -> dict[str, dict[str, Any]]:
        """Records by id (absent ids are left out); ``vec`` (float32 (dim,)) if asked."""
        fields = [*RECORD_FIELDS, "vec"] if vectors else list(RECORD_FIELDS)
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), _BATCH):
            for row in self._call(
                "get",
                self._client.get,
                self.config.collection,
                ids=list(ids[start : start + _BATCH]),
                output_fields=fields,
            ):
                out[row["id"]] = decode_row(dict(row))
        return out

    def select(self, expr: str, limit: int, vectors: bool = True) -> list[dict[str, Any]]:
        """Up to ``limit`` (<= 16384) records matching ``expr`` in one request."""
        fields = [*RECORD_FIELDS, "vec"] if vectors else list(RECORD_FIELDS)
        rows = self._call(
            "query",
            self._client.query,
            self.config.collection,
            filter=expr,
            output_fields=fields,
            limit=limit,
        )
        return [decode_row(dict(r)) for r in rows]

    def scan(self, expr: str = "", vectors: bool = True) -> Iterator[dict[str, Any]]:
        """Every record (matching ``expr``), in batches from a server-side iterator."""
        fields = [*RECORD_FIELDS, "vec"] if vectors else list(RECORD_FIELDS)
        it = self._call(
            "query_iterator",
            self._client.query_iterator,
            self.config.collection,
            batch_size=1000,
            filter=expr,
            output_fields=fields,
        )
        try:
            while True:
                batch = self._call("query_iterator.next", it.next)
                if not batch:
                    return
                for row in batch:
                    yield decode_row(dict(row))
        finally:
            it.close()

    def search(
        self,
        q: np.ndarray,
        k: int,
        filters: Mapping[str, Any] | None = None,
        depth: int | None = None,
        exact_below: int | None = None,
        exhaustive: bool = False,
    ) -> MilvusCandidates:
        """Candidates for a unit query ``q`` (float32 (dim,)), exactly rescored, best first.

        Args:
            q: float32 (dim,) unit query. k: hits wanted. filters: metadata filter.
            depth: candidates asked of Milvus (default ``rerank_depth``).
            exact_below: scan a filtered set exactly when at most this many items pass the
                prefilter (default ``exact_scan_below``).
            exhaustive: also count (and so scan exactly, when few enough) without a filter.
        """
        q = np.ascontiguousarray(q, dtype=np.float32)
        limit = min(max(k, depth or self.config.rerank_depth), 16384)
        mf = to_milvus(filters)
        expr = mf.upper if mf is not None else ""
        n = self.count(expr) if mf is not None or exhaustive else -1
        below = self.config.exact_scan_below if exact_below is None else exact_below
        if 0 <= n <= min(below, 16384):
            rows = [r for r in self.select(expr, max(n, 1)) if matches(r["meta"], filters)]
            return rank_rows(rows, q, -math.inf)
        res = self._call(
            "search",
            self._client.search,
            self.config.collection,
            data=[q.tolist()],
            limit=limit,
            filter=expr,
            output_fields=[*RECORD_FIELDS, "vec"],
            search_params=search_params(self.config, limit),
        )[0]
        rows, lowest = [], math.inf
        for hit in res:
            row = decode_row(dict(hit["entity"]))
            row["id"] = hit["id"]
            lowest = min(lowest, float(hit["distance"]))
            if mf is None or mf.exact or matches(row["meta"], filters):
                rows.append(row)
        if self.config.index != "FLAT":
            outside = math.inf
        elif len(res) < limit:
            outside = -math.inf  # brute force returned every item the prefilter admits
        else:
            outside = lowest + _FLAT_TOLERANCE
        return rank_rows(rows, q, outside)

    # -- named blobs (config, rho, bridge state) ---------------------------------------------
    def put_blob(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` (replacing it), chunked into the state collection."""
        text = base64.b64encode(data).decode()
        chunks = [text[i : i + _BLOB_CHUNK] for i in range(0, len(text), _BLOB_CHUNK)] or [""]
        self._call("delete", self._client.delete, self._state, filter=f'id like "{name}/%"')
        rows = [
            {"id": f"{name}/{i:06d}", "chunk": c, "vec": [0.0, 0.0]} for i, c in enumerate(chunks)
        ]
        self._call("upsert", self._client.upsert, self._state, rows)

    def get_blob(self, name: str) -> bytes | None:
        """The blob stored under ``name``, or None."""
        rows = self._call(
            "query",
            self._client.query,
            self._state,
            filter=f'id like "{name}/%"',
            output_fields=["id", "chunk"],
        )
        if not rows:
            return None
        rows.sort(key=lambda r: r["id"])
        return base64.b64decode("".join(r["chunk"] for r in rows))
