"""``LumaVectorStore``: a LangChain vector store backed by a LUMA-RAG engine."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from langchain_lumarag._documents import DEFAULT_METADATA_KEY, hit_to_document
from langchain_lumarag._engine import embedding_dim, open_engine, release
from langchain_lumarag._inputs import check_search_kwargs
from langchain_lumarag._items import ItemsMixin
from langchain_lumarag._mmr import MmrMixin
from langchain_lumarag._query import check_k, search_or_none
from langchain_lumarag.embeddings import LumaEmbeddings
from luma_rag import Luma, LumaConfig
from luma_rag.closing import ClosesOnExit
from luma_rag.errors import (
    DimensionMismatchError,
    InvalidInputError,
)
from luma_rag.foreign import embedder_rho
from luma_rag.results import QueryResult

__all__ = ["LumaVectorStore"]

logger = logging.getLogger(__name__)


class LumaVectorStore(ItemsMixin, MmrMixin, VectorStore, ClosesOnExit):
    """LUMA-RAG vector store: a tiered, durable memory with exact scores and Safe@k.

    Works with any LangChain ``Embeddings`` (the store's dimension is taken from them), and
    with :class:`~langchain_lumarag.LumaEmbeddings` for text and images in one CLIP space.

    Setup:
        ```bash
        pip install -U "luma-rag[langchain]"
        ```

    Key init args:
        embedding: Embeddings | None
            Embeds texts and queries. None: the encoder of ``luma`` (which must have one).
        luma: luma_rag.Luma | None
            An open engine to use (the caller keeps ownership and closes it).
        path: str | os.PathLike | None
            Open (or create) the store in this directory; None with no ``luma``: a temporary
            store, deleted by :meth:`close`.
        config: luma_rag.LumaConfig | None
            Engine settings when creating at ``path`` (its ``dim`` must match the embeddings).

    Instantiate:
        ```python
        from langchain_core.embeddings import DeterministicFakeEmbedding
        from langchain_lumarag import LumaVectorStore

        vector_store = LumaVectorStore(DeterministicFakeEmbedding(size=64), path="./luma-store")
        ```

    Add Documents:
        ```python
        from langchain_core.documents import Document

        documents = [
            Document(page_content="a red circle", metadata={"shape": "circle", "size": 3}),
            Document(page_content="a blue square", metadata={"shape": "square", "size": 5}),
            Document(page_content="a green triangle", metadata={"shape": "triangle", "size": 1}),
        ]
        ids = vector_store.add_documents(documents, ids=["1", "2", "3"])
        ```

    Update Documents:
        Adding an existing id replaces that item.

        ```python
        vector_store.add_documents(
            [Document(page_content="a large red circle", metadata={"shape": "circle", "size": 9})],
            ids=["1"],
        )
        ```

    Delete Documents:
        ```python
        vector_store.delete(ids=["3"])
        ```

    Search:
        ```python
        results = vector_store.similarity_search("a large red circle", k=1)
        print(results[0].id, results[0].page_content)  # 1 a large red circle
        ```

    Search with filter:
        Filters are the engine's Mongo-like language (``$eq $ne $gt $gte $lt $lte $in $nin
        $contains $text_match $exists $and $or $not``).

        ```python
        results = vector_store.similarity_search("circle", k=2, filter={"size": {"$gte": 4}})
        print(sorted(doc.id for doc in results))  # ['1', '2']
        ```

    Search with score:
        Scores are exact cosine similarities (higher is closer). Relevance scores
        (``similarity_search_with_relevance_scores``, ``score_threshold``) are the cosine
        clipped to [0, 1], as in LangChain's cosine stores. A filter on a metadata key no item
        has returns no documents (with a warning in the log).

        ```python
        doc, score = vector_store.similarity_search_with_score("a large red circle", k=1)[0]
        print(doc.id, round(score, 2))  # 1 1.0
        ```

    Search with telemetry:
        ``telemetry=True`` adds the query's Safe@k certificate to each document, as
        :class:`~langchain_lumarag.LumaRetriever` does (``metadata["luma"]`` plus top-level
        ``score`` / ``safe1`` / ``safek``).

        ```python
        doc = vector_store.similarity_search("a blue square", k=1, telemetry=True)[0]
        print(doc.metadata["luma"]["rank"], doc.metadata["safe1"])  # 0 and the Safe@1 flag
        ```

    Async:
        ```python
        import asyncio

        results = asyncio.run(vector_store.asimilarity_search("a blue square", k=1))
        print(results[0].id)  # 2
        ```

    Use as Retriever:
        ```python
        retriever = vector_store.as_retriever(search_kwargs={"k": 1})
        found = retriever.invoke("a blue square")
        print(found[0].id)  # 2
        vector_store.close()
        ```
    """

    def __init__(
        self,
        embedding: Embeddings | None = None,
        *,
        luma: Luma | None = None,
        path: str | os.PathLike[str] | None = None,
        config: LumaConfig | None = None,
    ) -> None:
        """Wrap an open engine, or open one at ``path`` (a temporary one if neither is given).

        Raises:
            InvalidInputError: ``luma`` together with ``path``/``config``; no embeddings and
                no engine encoder. DimensionMismatchError: the engine's dimension is not the
                embeddings'.
        """
        if luma is not None and (path is not None or config is not None):
            raise InvalidInputError(
                "pass either luma= (an open engine) or path= (with an optional config=), not both"
            )
        if embedding is None:
            encoder = luma.encoder if luma is not None else None
            if encoder is None:
                raise InvalidInputError(
                    "LumaVectorStore needs embeddings: pass embedding= (any LangChain "
                    "Embeddings, e.g. LumaEmbeddings()), or luma= an engine opened with an "
                    "encoder (Luma.open(path, encoder='luma-tiny'))"
                )
            embedding = LumaEmbeddings(encoder=encoder)
        dim = embedding_dim(embedding)
        tmpdir: str | None = None
        if luma is None:
            if path is None:
                tmpdir = tempfile.mkdtemp(prefix="luma-langchain-")
                path = Path(tmpdir) / "store"
            try:
                luma = open_engine(path, config, dim)
            except BaseException:
                if tmpdir is not None:
                    shutil.rmtree(tmpdir, ignore_errors=True)
                raise
            owned: Luma | None = luma
        else:
            if luma.config.dim != dim:
                raise DimensionMismatchError(
                    f"the engine at {luma.path} holds {luma.config.dim}-d vectors but the "
                    f"embeddings give {dim}-d; use the embeddings it was built with, or another "
                    "store"
                )
            owned = None
        self._luma = luma
        self._embedding = embedding
        self._finalizer = weakref.finalize(self, release, owned, tmpdir)

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def luma(self) -> Luma:
        """The engine behind this store."""
        return self._luma

    @property
    def embeddings(self) -> Embeddings:
        """The embeddings used for texts and queries."""
        return self._embedding

    def close(self) -> None:
        """Close the engine if this store opened it (and delete a temporary store). Idempotent.

        An engine passed as ``luma=`` is left open: its owner closes it.
        """
        self._finalizer()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self._luma.path)!r}, dim={self._luma.config.dim})"

    # -- reads -----------------------------------------------------------------------------------
    def similarity_search(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents closest to ``query``, best first.

        Args:
            query: Text, embedded with the store's embeddings.
            k: How many, >= 1.
            filter: Metadata filter (the engine's Mongo-like language; ``filters=`` works too).
            **kwargs: ``telemetry=True`` adds the Safe@k certificate to each document's
                metadata (see the class docstring); ``rho=`` sets the encoder radius used by the
                certificate; ``metadata_key=`` where telemetry is nested (default "luma").
        """
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Like :meth:`similarity_search`, with each document's exact cosine similarity."""
        check_search_kwargs(kwargs)
        vector = self._embedding.embed_query(query)
        return self._with_scores(self._search(vector, k, filter, kwargs, text=True), kwargs)

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """The ``k`` documents closest to an embedding (same keywords as similarity_search)."""
        return [
            doc
            for doc, _ in self.similarity_search_with_score_by_vector(
                embedding, k, filter, **kwargs
            )
        ]

    def similarity_search_with_score_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Like :meth:`similarity_search_by_vector`, with exact cosine similarities."""
        check_search_kwargs(kwargs)
        return self._with_scores(self._search(embedding, k, filter, kwargs), kwargs)

    def _search(
        self,
        vector: Sequence[float],
        k: int,
        filter: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
        *,
        text: bool = False,
    ) -> QueryResult | None:
        filters = kwargs.get("filters")
        if filter is not None and filters is not None:
            raise InvalidInputError("pass filter= or filters=, not both")
        rho, source = kwargs.get("rho"), None
        if rho is None and text and self._embeds_with_engine_encoder():
            rho = self._luma.rho.get("text")  # the radius calibrated for this encoder
            source = "calibrated" if rho is not None else None
        elif rho is None and text:  # foreign embeddings: calibrated on first use, or unset
            rho, source = embedder_rho(self._luma, self._embedding)
        where = filter if filter is not None else filters
        query = np.asarray(vector, dtype=np.float32)
        k = check_k(k)
        return search_or_none(
            self._luma,
            where,
            lambda: self._luma.search(query, k=k, filters=where, rho=rho, rho_source=source),
        )

    def _embeds_with_engine_encoder(self) -> bool:
        encoder = self._luma.encoder
        return (
            encoder is not None
            and isinstance(self._embedding, LumaEmbeddings)
            and self._embedding.encoder is encoder
        )

    def _with_scores(
        self, result: QueryResult | None, kwargs: Mapping[str, Any]
    ) -> list[tuple[Document, float]]:
        if result is None:  # a filter no stored item can match
            return []
        tel = result.telemetry.to_dict() if kwargs.get("telemetry") else None
        key = kwargs.get("metadata_key", DEFAULT_METADATA_KEY)
        return [(hit_to_document(h, tel, metadata_key=key), h.score) for h in result.hits]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Cosine similarity -> relevance: the cosine itself, clipped to [0, 1].

        This is what LangChain's cosine stores return (relevance = 1 − cosine distance), so
        ``score_threshold=0.55`` keeps hits with cosine >= 0.55; opposite vectors get 0.
        """
        return _cosine_to_relevance

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        luma: Luma | None = None,
        path: str | os.PathLike[str] | None = None,
        config: LumaConfig | None = None,
        **kwargs: Any,
    ) -> Self:
        """Open a store (see :meth:`__init__`) and add ``texts`` to it."""
        store = cls(embedding, luma=luma, path=path, config=config)
        try:
            store.add_texts(texts, metadatas, ids=ids, **kwargs)
        except BaseException:
            store.close()
            raise
        return store


def _cosine_to_relevance(score: float) -> float:
    return min(1.0, max(0.0, float(score)))
