"""The baselines: exact numpy, bare FAISS HNSW, LangChain's FAISS store, LlamaIndex's simple store.

Each is used the way its documentation shows, fed precomputed unit vectors, one query per call.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

import numpy as np

__all__ = [
    "BASELINES",
    "OPTIONAL_BASELINE_MODULES",
    "ChromaPersistent",
    "ExactNumpy",
    "FaissHNSW",
    "LangChainFAISS",
    "LlamaIndexSimple",
    "MissingBaselineError",
    "extra_baselines",
]


class MissingBaselineError(RuntimeError):
    """A baseline's package is not installed; the message says what to install."""


class ExactNumpy:
    """Brute force: ``q @ X.T`` then ``argpartition`` and a sort of the top ``k``."""

    name = "numpy-exact"

    def __init__(self) -> None:
        self._x: np.ndarray | None = None

    def build(self, corpus: np.ndarray) -> None:
        """Keep a C-contiguous float32 copy of ``corpus`` (``(n, d)``)."""
        self._x = np.array(corpus, dtype=np.float32, order="C", copy=True)

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        """Top-``k`` row indices of one ``(d,)`` query, best first."""
        if self._x is None:
            raise RuntimeError("call build() first")
        sims = query @ self._x.T
        k = min(k, sims.shape[0])
        top = np.argpartition(-sims, k - 1)[:k]
        return top[np.argsort(-sims[top])]

    def rows(self, result: np.ndarray) -> list[int]:
        """Row indices (already rows)."""
        return [int(i) for i in result]

    def index_bytes(self) -> tuple[float | None, str]:
        """Bytes of the float32 matrix."""
        return (float(self._x.nbytes) if self._x is not None else None), "ndarray.nbytes"

    def close(self) -> None:
        """Drop the matrix."""
        self._x = None


BASELINE_EF_SEARCH = 64  # issue #14's baseline: HNSW32, efSearch 64, efConstruction 40


class FaissHNSW:
    """Bare ``faiss.IndexHNSWFlat`` with inner product: the LUMA hot tier's graph (M,
    efConstruction), searched with issue #14's baseline efSearch (:data:`BASELINE_EF_SEARCH`)."""

    name = "faiss-hnsw"

    def __init__(
        self, m: int | None = None, ef_construction: int | None = None, ef_search: int | None = None
    ) -> None:
        from luma_rag.memory.hot import HotTierConfig

        hot = HotTierConfig()  # the same graph settings as LUMA's hot tier unless told otherwise
        self.m = hot.M if m is None else m
        self.ef_construction = hot.ef_construction if ef_construction is None else ef_construction
        self.ef_search = BASELINE_EF_SEARCH if ef_search is None else ef_search
        self._index: Any = None

    def build(self, corpus: np.ndarray) -> None:
        """Build the graph over ``corpus`` (``(n, d)`` float32) in one ``add`` call."""
        import faiss

        index = faiss.IndexHNSWFlat(corpus.shape[1], self.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        index.hnsw.efSearch = self.ef_search
        index.add(np.ascontiguousarray(corpus, dtype=np.float32))
        self._index = index

    def search(self, query: np.ndarray, k: int) -> Any:
        """``index.search`` on a ``(1, d)`` batch; returns the ``(scores, ids)`` pair."""
        return self._index.search(query.reshape(1, -1), k)

    def rows(self, result: Any) -> list[int]:
        """Ids of the single query, ``-1`` dropped."""
        return [int(i) for i in result[1][0] if i >= 0]

    def index_bytes(self) -> tuple[float | None, str]:
        """Size of ``faiss.serialize_index`` (vectors + graph)."""
        import faiss

        return float(faiss.serialize_index(self._index).nbytes), "faiss.serialize_index"

    def close(self) -> None:
        """Drop the index."""
        self._index = None


def _precomputed_embeddings(dim: int) -> Any:
    """A LangChain ``Embeddings`` that is never asked to embed (vectors are precomputed)."""
    from langchain_core.embeddings import Embeddings

    class PrecomputedEmbeddings(Embeddings):
        """Placeholder embedder: the bench only ever passes vectors."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            raise NotImplementedError("the bench passes precomputed vectors")

        def embed_query(self, text: str) -> list[float]:
            raise NotImplementedError("the bench passes precomputed vectors")

    return PrecomputedEmbeddings()


class LangChainFAISS:
    """``langchain_community.vectorstores.FAISS`` (flat exact inner product) from vectors."""

    name = "langchain-faiss"

    def __init__(self) -> None:
        self._store: Any = None

    def build(self, corpus: np.ndarray) -> None:
        """``FAISS.from_embeddings`` over ``(text, vector)`` pairs with ids ``"0".."n-1"``."""
        try:
            from langchain_community.vectorstores import FAISS
            from langchain_community.vectorstores.utils import DistanceStrategy
        except ImportError as e:
            raise MissingBaselineError(
                "LangChain baseline needs `pip install langchain-community langchain-core`"
            ) from e
        n = corpus.shape[0]
        ids = [str(i) for i in range(n)]
        pairs = zip(ids, corpus, strict=True)
        self._store = FAISS.from_embeddings(
            pairs,
            _precomputed_embeddings(corpus.shape[1]),
            ids=ids,
            distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
        )

    def search(self, query: np.ndarray, k: int) -> Any:
        """``similarity_search_with_score_by_vector`` -> ``[(Document, score)]``."""
        return self._store.similarity_search_with_score_by_vector(query, k=k)

    def rows(self, result: Any) -> list[int]:
        """Document ids are the corpus rows."""
        return [int(doc.id) for doc, _ in result]

    def index_bytes(self) -> tuple[float | None, str]:
        """Vectors plus docstore are Python objects: use the RSS delta (it counts both)."""
        return None, "n/a (see rss delta: flat index + docstore)"

    def close(self) -> None:
        """Drop the store."""
        self._store = None


class LlamaIndexSimple:
    """``llama_index.core.vector_stores.SimpleVectorStore`` queried with ``VectorStoreQuery``."""

    name = "llamaindex-simple"

    def __init__(self) -> None:
        self._store: Any = None
        self._query_cls: Any = None

    def build(self, corpus: np.ndarray) -> None:
        """``SimpleVectorStore.add`` of ``TextNode`` s carrying ``list[float]`` embeddings."""
        try:
            from llama_index.core.schema import TextNode
            from llama_index.core.vector_stores import SimpleVectorStore, VectorStoreQuery
        except ImportError as e:
            raise MissingBaselineError(
                "LlamaIndex baseline needs `pip install llama-index-core`"
            ) from e
        store = SimpleVectorStore()
        batch = 10_000
        for start in range(0, corpus.shape[0], batch):
            block = corpus[start : start + batch]
            nodes = [
                TextNode(id_=str(start + j), text="", embedding=row.tolist())
                for j, row in enumerate(block)
            ]
            store.add(nodes)
        self._store = store
        self._query_cls = VectorStoreQuery

    def search(self, query: np.ndarray, k: int) -> Any:
        """``store.query(VectorStoreQuery(query_embedding=..., similarity_top_k=k))``."""
        q = self._query_cls(query_embedding=query.tolist(), similarity_top_k=k)
        return self._store.query(q)

    def rows(self, result: Any) -> list[int]:
        """Node ids are the corpus rows."""
        return [int(i) for i in result.ids]

    def index_bytes(self) -> tuple[float | None, str]:
        """Not measurable structurally (Python lists): use the RSS delta instead."""
        return None, "n/a (see rss delta)"

    def close(self) -> None:
        """Drop the store."""
        self._store = None


class ChromaPersistent:
    """Chroma's ``PersistentClient`` with its default HNSW settings, fed precomputed vectors.

    The collection is created with no ``hnsw`` configuration (Chroma's defaults: l2 space,
    M 16, construction ef 100, search ef 100), which ranks unit vectors as inner product does.
    Telemetry is off; the store lives in a temporary folder removed by :meth:`close`.
    """

    name = "chroma"

    def __init__(self) -> None:
        self._tmp: Any = None
        self._client: Any = None
        self._col: Any = None

    def build(self, corpus: np.ndarray) -> None:
        """``collection.add`` in the client's largest batches, ids ``"0".."n-1"``."""
        import tempfile

        try:
            import chromadb
            from chromadb.config import Settings
        except ImportError as e:
            raise MissingBaselineError("Chroma baseline needs `pip install chromadb`") from e
        self._tmp = tempfile.TemporaryDirectory(prefix="chroma-bench-")
        self._client = chromadb.PersistentClient(
            path=self._tmp.name, settings=Settings(anonymized_telemetry=False)
        )
        self._col = self._client.create_collection("bench")
        batch = min(int(self._client.get_max_batch_size()), 5_000)
        for start in range(0, corpus.shape[0], batch):
            block = np.ascontiguousarray(corpus[start : start + batch], dtype=np.float32)
            ids = [str(start + j) for j in range(block.shape[0])]
            self._col.add(ids=ids, embeddings=block)

    def search(self, query: np.ndarray, k: int) -> Any:
        """``collection.query(query_embeddings=[q], n_results=k)``."""
        return self._col.query(query_embeddings=query[None, :], n_results=k, include=[])

    def rows(self, result: Any) -> list[int]:
        """Ids are the corpus rows."""
        return [int(i) for i in result["ids"][0]]

    def index_bytes(self) -> tuple[float | None, str]:
        """Not exposed by Chroma: see the RSS delta."""
        return None, "n/a (see rss delta)"

    def close(self) -> None:
        """Drop the client and delete its folder."""
        self._col = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.clear_system_cache()
        self._client = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


BaselineClass = type[ExactNumpy | FaissHNSW | LangChainFAISS | LlamaIndexSimple | ChromaPersistent]

BASELINES: dict[str, BaselineClass] = {
    ExactNumpy.name: ExactNumpy,
    FaissHNSW.name: FaissHNSW,
    ChromaPersistent.name: ChromaPersistent,
    LangChainFAISS.name: LangChainFAISS,
    LlamaIndexSimple.name: LlamaIndexSimple,
}

# Modules that may add baseline rows: each, when importable, exposes ``BASELINES``, a dict of
# name -> class with the ``bench.measure.Method`` interface (e.g. a Milvus server baseline).
OPTIONAL_BASELINE_MODULES = ("bench.milvus_baseline",)


def extra_baselines() -> dict[str, Any]:
    """Baselines contributed by the optional modules that are present (name -> class)."""
    out: dict[str, Any] = {}
    for mod_name in OPTIONAL_BASELINE_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name != mod_name:
                raise
            continue
        out.update(getattr(mod, "BASELINES", {}))
    return out
