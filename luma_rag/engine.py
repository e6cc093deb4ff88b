"""The facade a user holds: open a store, add vectors or media, search with a certificate, delete.

``Luma`` composes the parts and owns no algorithm:

* a storage backend (:class:`~luma_rag.store.base.StoreBackend`): the local directory by default
  (:class:`~luma_rag.store.local.LocalStore`: records, raw vectors, tiers, snapshots, bridge
  state, recovery); another backend plugs in through :meth:`Luma.from_backend`;
* the query pipeline (:func:`~luma_rag.pipeline.run_query`: candidates → rerank → bounds →
  certificate → completeness → telemetry);
* input checks (:mod:`luma_rag._checks`), the bridge projection (:mod:`luma_rag.bridge`), the
  encoders (:mod:`luma_rag.encoders`) and the radius calibration (:mod:`luma_rag.calibration`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import luma_rag._checks as checks
import luma_rag.composite as _composite
import luma_rag.encoding as _encoding
import luma_rag.enrich.linked as _linked
import luma_rag.gaps as _gaps
import luma_rag.store_calibration as _calibrate_store
from luma_rag._arrays import as_query, as_unit_matrix
from luma_rag.bridge import ProcrustesBridge
from luma_rag.closing import ClosesOnExit
from luma_rag.config import LumaConfig, session_config
from luma_rag.encoders.resolve import check_encoder_name
from luma_rag.encoders.resolve import resolve_encoder as _resolve_encoder
from luma_rag.errors import ConfigError, InvalidInputError
from luma_rag.pipeline import run_query
from luma_rag.results import QueryResult
from luma_rag.store.local import LocalStore
from luma_rag.store.recovery import read_config, write_config

if TYPE_CHECKING:
    from luma_rag.embedder import MediaEmbedder
    from luma_rag.encoders.base import Encoder
    from luma_rag.enrich.linked import TextExtractor
    from luma_rag.memory.tiered import TieredMemory
    from luma_rag.store.base import StoreBackend

__all__ = ["Luma"]

logger = logging.getLogger(__name__)


class Luma(ClosesOnExit):
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

    def __init__(self, backend: StoreBackend) -> None:
        """Use :meth:`open` (local directory) or :meth:`from_backend`."""
        self._store = backend
        self.path = backend.path
        self.config = backend.config
        self._embedder: MediaEmbedder | None = None
        self.rho: dict[str, float] = {}
        self.rho_source: dict[str, str] = {}  # per modality: "calibrated" or "user"
        self.notices: list[str] = []  # what attaching found and changed (ρ dropped, ...)
        #: Text extractors run at ingest, by media modality ("audio", "video": a transcriber;
        #: "image": an OCR reader); see :mod:`luma_rag.enrich`. Empty: ingest as before.
        self.enrichers: dict[str, TextExtractor] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        config: LumaConfig | None = None,
        *,
        encoder: Encoder | str | None = None,
        audio_encoder: Encoder | str | None = None,
        read_only: bool = False,
    ) -> Self:
        """Create a store at ``path``, or reopen it (one writer at a time, any number of readers).

        Args:
            path: a directory (created if missing), or ``milvus://host:port/collection``
                (``?media=s3`` keeps media in S3; see :mod:`luma_rag.backends.milvus_store`).
            config: required to create without an encoder; when reopening, ``dim`` must match
                the store's and the other settings apply to this session (None: the stored ones).
            encoder: a CLIP-space :class:`~luma_rag.encoders.base.Encoder`, or a registry name
                (``"luma-tiny"``: the shipped offline model; ``"ViT-B-32"``: production).
                Enables :meth:`ingest` / :meth:`query` on text, images and video.
            audio_encoder: a CLAP encoder or name (``"luma-tiny-clap"``,
                ``"laion/clap-htsat-unfused"``); audio then crosses the CLAP→CLIP bridge, which
                a store gets automatically when one is given. Both names are looked up before
                either model is loaded.
            read_only: open beside the writer without writing anything: a consistent view of
                the last committed state; :meth:`refresh` moves it to the latest.

        Opening is cheap: no calibration runs here for production models (ρ is read from the
        store if it was measured with these encoders, else ``rho_source`` is ``"unset"`` until
        :meth:`calibrate` runs on the store's own items); only the shipped tiny models are
        calibrated at once, on the shipped LUMA-Shapes inputs.

        Raises:
            ConfigError: no config for a new store. DimensionMismatchError: wrong ``dim``.
            StoreLockedError: another process has the store open for writing (names its pid).
            StoreCorruptedError: files fail their checks and cannot be recovered.
        """
        if isinstance(path, str) and path.startswith("milvus://"):  # a Milvus server backend
            from luma_rag.backends.milvus_store import open_milvus_store

            if read_only:
                raise ConfigError(
                    "read_only=True is for local stores; a Milvus store has no writer lock "
                    "(open it without read_only)"
                )
            enc, aenc = _resolve_encoder(encoder), _resolve_encoder(audio_encoder)
            return cls.from_backend(
                open_milvus_store(path, config, enc, aenc), encoder=enc, audio_encoder=aenc
            )
        path = Path(path)
        stored, stored_id = read_config(path)
        if read_only and stored is None:
            raise ConfigError(f"{path} holds no store to open read-only")
        check_encoder_name(audio_encoder, "audio")  # a bad audio name fails before CLIP loads
        enc = _resolve_encoder(encoder, "clip")
        aenc = _resolve_encoder(audio_encoder, "audio")
        cfg = session_config(path, stored, config, enc, aenc)
        if not read_only:
            path.mkdir(parents=True, exist_ok=True)
        store = LocalStore(path, cfg, store_id=stored_id, read_only=read_only)
        luma = cls(store)  # first: a config that does not fit the files is not persisted
        if not read_only and (stored != cfg or stored_id != store.store_id):
            write_config(path, cfg, store.store_id)
        if enc is not None:
            luma.attach_encoders(enc, aenc)
        return luma

    @classmethod
    def from_backend(
        cls,
        backend: StoreBackend,
        *,
        encoder: Encoder | str | None = None,
        audio_encoder: Encoder | str | None = None,
    ) -> Self:
        """Wrap an open :class:`~luma_rag.store.base.StoreBackend` (e.g. a server backend)."""
        luma = cls(backend)
        check_encoder_name(audio_encoder, "audio")
        enc = _resolve_encoder(encoder, "clip")
        if enc is not None:
            luma.attach_encoders(enc, _resolve_encoder(audio_encoder, "audio"))
        return luma

    def close(self) -> None:
        """Finish background work, write index snapshots, close files. Idempotent."""
        self._store.close()

    def refresh(self) -> None:
        """Move to the latest committed state of the store (readers; a writer is always there)."""
        self._store.check_open()
        old = self._store
        self._store = old.reopen()
        old.close()

    def wait_idle(self, timeout: float | None = None) -> None:
        """Wait for background work (hot graph rebuild, warm-tier retrain) to finish."""
        self._store.wait_idle(timeout)

    @property
    def memory(self) -> TieredMemory:
        """The local store's two-tier memory (for inspection and benchmarks)."""
        memory: TieredMemory | None = getattr(self._store, "memory", None)
        if memory is None:
            raise ConfigError(f"the {type(self._store).__name__} backend has no local tiers")
        return memory

    @property
    def backend(self) -> StoreBackend:
        """The storage backend this facade runs on."""
        return self._store

    @property
    def bridge(self) -> ProcrustesBridge | None:
        """The store's CLAP→CLIP bridge (None: no bridge)."""
        return self._store.bridge

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
        self._store.check_open()
        version = -1
        if bridged:
            bridge = self._need_bridge()
            vecs = as_unit_matrix(vectors, bridge.config.source_dim, name="vectors")
            vecs, version = bridge.project_with_version(vecs)
            vecs = as_unit_matrix(vecs, self.config.dim)
        else:
            vecs = as_unit_matrix(vectors, self.config.dim)
        n = len(vecs)
        metas = checks.check_metadata(metadata, n)
        new_ids = checks.check_ids(ids, n)
        texts_ = checks.check_optional_strings(texts, n, "texts")
        sources_ = checks.check_optional_strings(sources, n, "sources")
        if not isinstance(modality, str) or not modality:
            raise InvalidInputError("modality must be a non-empty string such as 'text' or 'image'")
        self._store.add(vecs, new_ids, metas, texts_, sources_, modality, version)
        return new_ids

    def delete(self, ids: Sequence[str]) -> None:
        """Delete items by id. All ids must exist (else NotFoundError and nothing is deleted)."""
        self._store.check_open()
        self._store.delete(checks.check_id_list(ids, "delete"))

    def add_bridge_pairs(self, x_source: Any, y_target: Any) -> list[float]:
        """Feed co-occurring (CLAP, CLIP) pairs to the bridge; returns ε of any refreshes."""
        self._store.check_open()
        self._need_bridge()
        return self._store.add_bridge_pairs(x_source, y_target)

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
        ensure_complete: bool | None = None,
    ) -> QueryResult:
        """Top ``k`` by exact cosine, with the Safe@k certificate.

        Args:
            query: (dim,) vector (or (source_dim,) with ``bridged=True``).
            k: number of hits, 1 <= k <= ``LumaConfig.max_k``; clamped to the items stored.
            filters: metadata filter (see :mod:`luma_rag.filters`).
            rho: encoder radius for this query (default ``SafetyConfig.rho``).
            rho_source: where ``rho`` came from, reported as ``Telemetry.rho_source``;
                default ``"user"`` when ``rho`` is given or ``SafetyConfig.rho > 0``, else
                ``"unset"`` (nobody calibrated or set ρ: the certificate is then only
                "stable under float rounding", which says little).
            ensure_complete: rescan exactly when the result is Safe@1 but not proven complete
                (default ``SafetyConfig.complete_on_demand``; the answer gate passes True).
        """
        t0 = time.perf_counter()
        self._store.check_open()
        k = checks.check_k(k, max_k=self.config.max_k)
        notes: list[str] = []
        stored = len(self._store)
        if k > stored > 0:
            notes.append(f"k={k} clamped to the {stored} items stored")
            k = stored
        if rho_source is None:
            given = rho is not None or self.config.safety.rho > 0
            rho_source = "user" if given else "unset"
        rho = self.config.safety.rho if rho is None else checks.check_rho(rho)
        eps_q = 0.0
        if bridged:
            bridge = self._need_bridge()
            q = as_query(query, bridge.config.source_dim)
            projected, eps_q = bridge.project_query(q[None, :])  # ε_q with renormalisation
            q = as_query(projected[0], self.config.dim)
        else:
            q = as_query(query, self.config.dim)
        stages = {"bridge": time.perf_counter() - t0 if bridged else 0.0}
        return run_query(
            self._store,
            q,
            k,
            filters=filters,
            rho=rho,
            eps_q=eps_q,
            safety=self.config.safety
            if ensure_complete is None
            else replace(self.config.safety, complete_on_demand=bool(ensure_complete)),
            stages=stages,
            started=t0,
            rho_source=rho_source,
            notes=notes,
        )

    # -- media -----------------------------------------------------------------------------------
    @property
    def encoder(self) -> Encoder | None:
        """The CLIP-space encoder attached to this store (None: vectors only)."""
        return self._embedder.encoder if self._embedder else None

    def _need_embedder(self) -> MediaEmbedder:
        if self._embedder is None:
            raise ConfigError(
                "this store has no encoder; open it with Luma.open(path, encoder='luma-tiny') "
                "(or another model) to ingest and query media, or use add_vectors/search"
            )
        return self._embedder

    # The encoder side (attach, calibrate, embed media): bodies in luma_rag/encoding.py.
    attach_encoders = _encoding.attach_encoders
    set_rho = _encoding.set_rho
    calibration = _encoding.calibration
    set_calibration = _encoding.set_calibration
    ingest = _encoding.ingest_item
    ingest_texts = _encoding.ingest_texts
    ingest_images = _encoding.ingest_images
    ingest_audio = _encoding.ingest_audio  # batched: luma_rag/audio_ingest.py
    query = _encoding.query_media
    calibrate = _calibrate_store.calibrate_store
    # Composite queries: luma_rag/composite.py; transcripts/OCR routes: luma_rag/enrich/.
    query_parts = _composite.composite_query
    query_fused = _linked.query_fused

    # -- records ---------------------------------------------------------------------------------
    record_gap = _gaps.record_gap  # knowledge gaps: luma_rag/gaps.py
    knowledge_gaps = _gaps.knowledge_gaps

    def get(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Stored items by id (unknown ids skipped).

        Returns:
            dicts with id, modality, metadata, text, source and vector ((dim,) float32).
        """
        self._store.check_open()
        return self._store.get(checks.check_id_list(ids, "get"))

    def ids(
        self, filters: Mapping[str, Any] | None = None, *, check_keys: bool = True
    ) -> list[str]:
        """Ids of the stored items (oldest first), or of those whose metadata match ``filters``.

        Args:
            check_keys: refuse filters on keys no item has (as :meth:`search` does); False lets
                such a filter match nothing.
        """
        self._store.check_open()
        return self._store.ids(filters, check_keys)

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._store

    def stats(self) -> dict[str, Any]:
        """Counts per tier, RAM per tier, bridge state."""
        return self._store.stats()
