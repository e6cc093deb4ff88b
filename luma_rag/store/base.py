"""The storage-backend contract: what :class:`~luma_rag.Luma` and the query pipeline need.

A backend owns the durable record (ids, metadata, texts, sources, the bridge version each item
was projected with), the raw vectors, candidate generation, and the bridge state. The facade
(:mod:`luma_rag.engine`) validates inputs, runs encoders and the bridge projection; the query
pipeline (:mod:`luma_rag.pipeline`) turns the backend's exactly rescored
:class:`~luma_rag.memory.tiered.Candidates` into a certified result. So a new backend (e.g.
Milvus with media in object storage) implements this Protocol and reuses the same pipeline and
certificate unchanged; :class:`~luma_rag.store.local.LocalStore` is the embedded default.

Contract of :meth:`StoreBackend.candidates`: keys, **exact** cosine scores against the raw
vectors (sorted descending), the vectors themselves (float32 (m, d)), per-item ζ (0 when the
score is exact) and ``outside_bound`` — an upper bound on the exact score of any allowed item
left out (+inf when the backend cannot bound it, e.g. an approximate ANN index; -inf when
nothing was left out). With +inf the certificate still holds on the candidates, and the result
says ``complete=False``.

Reads that must agree with each other (candidates, drift, details) happen inside one
``with backend.reading():`` block; a backend without in-process state may return a null context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from luma_rag.bridge import ProcrustesBridge
from luma_rag.config import LumaConfig
from luma_rag.memory.tiered import Candidates
from luma_rag.store.records import ItemDetails

__all__ = ["StoreBackend"]


class StoreBackend(Protocol):
    """Records + raw vectors + candidate generation + bridge state of one store."""

    path: Path
    config: LumaConfig

    @property
    def bridge(self) -> ProcrustesBridge | None:
        """The store's CLAP→CLIP bridge (None: the store has none)."""

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""

    @property
    def notes(self) -> tuple[str, ...]:
        """Conditions that may change results (e.g. an index rebuilt), shown in telemetry."""

    def reopen(self) -> StoreBackend:
        """A fresh view of the same store (a reader: the latest committed state)."""

    def check_open(self) -> None:
        """Raise :class:`~luma_rag.errors.StoreClosedError` once closed."""

    def reading(self) -> AbstractContextManager[None]:
        """A context in which reads see one consistent state."""

    # -- writes (durable when they return) ----------------------------------------------------
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
        """Insert (or upsert by id) validated unit vectors float32 (n, dim)."""

    def delete(self, ids: list[str]) -> None:
        """Delete existing ids (NotFoundError, nothing deleted, if any is unknown)."""

    def add_bridge_pairs(self, x_source: np.ndarray, y_target: np.ndarray) -> list[float]:
        """Feed (source, target) pairs to the bridge and persist it; ε of any refreshes."""

    # -- the query pipeline's reads (inside reading()) ----------------------------------------
    def candidates(
        self, query: np.ndarray, k: int, filters: Mapping[str, Any] | None
    ) -> Candidates:
        """At least ``k`` (when that many match) exactly rescored candidates, best first."""

    def rescan(self, query: np.ndarray, k: int, filters: Mapping[str, Any] | None) -> Candidates:
        """The exact top candidates over every allowed live item, with an exact outside bound
        (the completeness fallback; ``TieredMemory.exact_top``)."""

    def item_drift(self, keys: np.ndarray) -> np.ndarray:
        """ε_i per key, float64 (m,): bridge drift since the item was projected (0: never)."""

    def worst_drift(self) -> float:
        """Largest ε_i over every stored item (bounds items outside the candidates)."""

    def details(self, keys: Sequence[int]) -> dict[int, ItemDetails]:
        """What a hit shows of each key (missing keys omitted)."""

    def record_hits(self, keys: np.ndarray, now: float) -> None:
        """Count a retrieval of ``keys`` (usage statistics; may be a no-op)."""

    # -- the rest of the facade -------------------------------------------------------------
    def get(self, ids: Sequence[Any]) -> list[dict[str, Any]]:
        """Stored items (id, modality, metadata, text, source, vector); unknown ids skipped."""

    def ids(self, filters: Mapping[str, Any] | None, check_keys: bool) -> list[str]:
        """Ids, oldest first, optionally those matching ``filters``."""

    def __len__(self) -> int: ...

    def __contains__(self, item_id: object) -> bool: ...

    def stats(self) -> dict[str, Any]:
        """Counts (``total`` at least) and backend-specific figures."""

    def get_kv(self, name: str) -> str | None:
        """A small persisted setting (e.g. the calibrated radii as JSON)."""

    def set_kv(self, name: str, value: str) -> None:
        """Persist a small setting."""

    def add_gap(self, when: float, query: str, detail: dict[str, Any]) -> int:
        """Log a knowledge gap; returns its number."""

    def gaps(self, limit: int) -> list[dict[str, Any]]:
        """Recent knowledge gaps, newest first."""

    def wait_idle(self, timeout: float | None = None) -> None:
        """Wait for background maintenance."""

    def close(self) -> None:
        """Persist derived state and release the store. Idempotent."""
