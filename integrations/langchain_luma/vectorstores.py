"""``LumaVectorStore``: a LangChain vector store backed by a LUMA-RAG engine."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from langchain_luma._documents import DEFAULT_METADATA_KEY, hit_to_document
from langchain_luma._query import check_k
from langchain_luma.embeddings import LumaEmbeddings
from luma_rag import Luma, LumaConfig
from luma_rag.errors import (
    ConfigError,
    DimensionMismatchError,
    InvalidInputError,
    NotFoundError,
)
from luma_rag.results import QueryResult

__all__ = ["LumaVectorStore"]

logger = logging.getLogger(__name__)

_PROBE = "LUMA-RAG dimension probe"
_SEARCH_KWARGS = frozenset({"filters", "telemetry", "rho", "metadata_key"})


class LumaVectorStore(VectorStore):
    """LUMA-RAG vector store: a tiered, durable memory with exact scores and Safe@k.

    Works with any LangChain ``Embeddings`` (the store's dimension is taken from them), and
    with :class:`~langchain_luma.LumaEmbeddings` for text and images in one CLIP space.

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
        from langchain_luma import LumaVectorStore

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
        assert results[0].id == "1" and results[0].page_content == "a large red circle"
        ```

    Search with filter:
        Filters are the engine's Mongo-like language (``$eq $ne $gt $gte $lt $lte $in $nin
        $contains $text_match $exists $and $or $not``).

        ```python
        results = vector_store.similarity_search("circle", k=2, filter={"size": {"$gte": 4}})
        assert {doc.id for doc in results} == {"1", "2"}
        ```

    Search with score:
        Scores are exact cosine similarities (higher is closer).

        ```python
        doc, score = vector_store.similarity_search_with_score("a large red circle", k=1)[0]
        assert doc.id == "1" and score > 0.99
        ```

    Search with telemetry:
        ``telemetry=True`` adds the query's Safe@k certificate to each document, as
        :class:`~langchain_luma.LumaRetriever` does (``metadata["luma"]`` plus top-level
        ``score`` / ``safe1`` / ``safek``).

        ```python
        doc = vector_store.similarity_search("a blue square", k=1, telemetry=True)[0]
        assert doc.metadata["luma"]["rank"] == 0 and "safe1" in doc.metadata
        ```

    Async:
        ```python
        import asyncio

        results = asyncio.run(vector_store.asimilarity_search("a blue square", k=1))
        assert results[0].id == "2"
        ```

    Use as Retriever:
        ```python
        retriever = vector_store.as_retriever(search_kwargs={"k": 1})
        assert retriever.invoke("a blue square")[0].id == "2"
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
        dim = _embedding_dim(embedding)
        tmpdir: str | None = None
        if luma is None:
            if path is None:
                tmpdir = tempfile.mkdtemp(prefix="luma-langchain-")
                path = Path(tmpdir) / "store"
            try:
                luma = _open_engine(path, config, dim)
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
        self._finalizer = weakref.finalize(self, _release, owned, tmpdir)

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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self._luma.path)!r}, dim={self._luma.config.dim})"

    # -- writes ----------------------------------------------------------------------------------
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and add texts (an existing id is replaced); durable when this returns.

        Args:
            texts: The texts; each becomes a document's ``page_content``.
            metadatas: One JSON-serialisable dict per text (None: empty metadata).
            ids: One id per text; None entries (or no list) get new uuids.
            batch_size: Accepted for LangChain's indexing API; the batch is written at once.

        Returns:
            The ids, in order.

        Raises:
            InvalidInputError: lengths differ, metadata is not JSON, ids repeat; nothing is
                written.
        """
        _reject_kwargs("add_texts", kwargs)
        texts = list(texts)
        if not texts:
            return []
        n = len(texts)
        metas = _per_item(metadatas, n, "metadatas", {})
        item_ids = _item_ids(ids, n)
        vectors = self._embedding.embed_documents(texts)
        return self._luma.add_vectors(
            _as_matrix(vectors, n), metas, item_ids, modality="text", texts=texts
        )

    def add_images(
        self,
        uris: Sequence[str | os.PathLike[str]],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        captions: Sequence[str | None] | None = None,
    ) -> list[str]:
        """Embed images by path and add them (needs embeddings with ``embed_image``).

        Args:
            uris: Image paths; each is stored as the item's source.
            metadatas: One dict per image.
            ids: One id per image (None entries get uuids).
            captions: Optional text per image, returned as ``page_content`` (else the path).

        Returns:
            The ids, in order.
        """
        embed_image: Callable[[list[str]], list[list[float]]] | None = getattr(
            self._embedding, "embed_image", None
        )
        if embed_image is None:
            raise InvalidInputError(
                f"{type(self._embedding).__name__} cannot embed images; build the store with "
                "LumaEmbeddings (or other embeddings that have embed_image)"
            )
        if isinstance(uris, str | os.PathLike):
            raise InvalidInputError("add_images takes a list of paths; wrap a single path")
        paths = [os.fspath(u) for u in uris]
        if not paths:
            return []
        n = len(paths)
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            raise InvalidInputError(f"no such image file(s): {missing[:5]!r}; nothing was added")
        metas = _per_item(metadatas, n, "metadatas", {})
        texts = _per_item(captions, n, "captions", None)
        item_ids = _item_ids(ids, n)
        vectors = embed_image(paths)
        return self._luma.add_vectors(
            _as_matrix(vectors, n), metas, item_ids, modality="image", texts=texts, sources=paths
        )

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete items by id; ids the store does not hold are ignored.

        Raises:
            InvalidInputError: ``ids`` is None (this store never deletes everything at once:
                close it and remove its directory instead) or a single string.
        """
        _reject_kwargs("delete", kwargs)
        if ids is None:
            raise InvalidInputError(
                "delete needs the ids to delete; LumaVectorStore does not delete everything "
                "at once (close it and remove its directory instead)"
            )
        if isinstance(ids, str) or not isinstance(ids, Iterable):
            raise InvalidInputError("delete takes a list of ids, e.g. vector_store.delete([id])")
        wanted = list(dict.fromkeys(ids))
        for attempt in range(3):
            known = [i for i in wanted if i in self._luma]
            if not known:
                return True
            try:
                self._luma.delete(known)
                return True
            except NotFoundError:  # another thread deleted some of them meanwhile
                if attempt == 2:
                    raise
        return True

    # -- reads -----------------------------------------------------------------------------------
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Stored documents by id, in the order asked; unknown ids are skipped."""
        if isinstance(ids, str):
            raise InvalidInputError("get_by_ids takes a list of ids; wrap a single id")
        items = self._luma.get([i for i in dict.fromkeys(ids) if isinstance(i, str)])
        return [
            Document(
                id=item["id"],
                page_content=item.get("text") or item.get("source") or "",
                metadata=dict(item["metadata"]),
            )
            for item in items
        ]

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
        _check_search_kwargs(kwargs)
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
        _check_search_kwargs(kwargs)
        return self._with_scores(self._search(embedding, k, filter, kwargs), kwargs)

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` documents that are close to ``query`` and diverse, out of the ``fetch_k`` best.

        ``lambda_mult`` runs from 0 (most diverse) to 1 (plain similarity).
        """
        _check_search_kwargs(kwargs)
        vector = self._embedding.embed_query(query)
        return self._mmr(vector, k, fetch_k, lambda_mult, filter, kwargs, text=True)

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR over the stored raw vectors of the ``fetch_k`` nearest items."""
        _check_search_kwargs(kwargs)
        return self._mmr(embedding, k, fetch_k, lambda_mult, filter, kwargs, text=False)

    def _mmr(
        self,
        embedding: Sequence[float],
        k: int,
        fetch_k: int,
        lambda_mult: float,
        filter: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
        *,
        text: bool,
    ) -> list[Document]:
        k = check_k(k)
        fetch_k = check_k(fetch_k, "fetch_k")
        if not 0.0 <= lambda_mult <= 1.0:
            raise InvalidInputError(f"lambda_mult must be in [0, 1], got {lambda_mult!r}")
        result = self._search(embedding, max(k, fetch_k), filter, kwargs, text=text)
        if not result.hits:
            return []
        vectors = {item["id"]: item["vector"] for item in self._luma.get(result.ids)}
        hits = [h for h in result.hits if h.id in vectors]  # an item deleted meanwhile
        if not hits:
            return []
        chosen = maximal_marginal_relevance(
            np.asarray(embedding, dtype=np.float32),
            [vectors[h.id] for h in hits],
            lambda_mult=lambda_mult,
            k=min(k, len(hits)),
        )
        tel = result.telemetry.to_dict() if kwargs.get("telemetry") else None
        key = kwargs.get("metadata_key", DEFAULT_METADATA_KEY)
        return [hit_to_document(hits[i], tel, metadata_key=key) for i in chosen]

    def _search(
        self,
        vector: Sequence[float],
        k: int,
        filter: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
        *,
        text: bool = False,
    ) -> QueryResult:
        filters = kwargs.get("filters")
        if filter is not None and filters is not None:
            raise InvalidInputError("pass filter= or filters=, not both")
        rho = kwargs.get("rho")
        if rho is None and text and self._embeds_with_engine_encoder():
            rho = self._luma.rho.get("text")  # the radius calibrated for this encoder
        return self._luma.search(
            np.asarray(vector, dtype=np.float32),
            k=check_k(k),
            filters=filter if filter is not None else filters,
            rho=rho,
        )

    def _embeds_with_engine_encoder(self) -> bool:
        encoder = self._luma.encoder
        return (
            encoder is not None
            and isinstance(self._embedding, LumaEmbeddings)
            and self._embedding.encoder is encoder
        )

    def _with_scores(
        self, result: QueryResult, kwargs: Mapping[str, Any]
    ) -> list[tuple[Document, float]]:
        tel = result.telemetry.to_dict() if kwargs.get("telemetry") else None
        key = kwargs.get("metadata_key", DEFAULT_METADATA_KEY)
        return [(hit_to_document(h, tel, metadata_key=key), h.score) for h in result.hits]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Cosine similarity in [-1, 1] -> relevance in [0, 1]."""
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
    return (score + 1.0) / 2.0


def _embedding_dim(embedding: Embeddings) -> int:
    if isinstance(embedding, LumaEmbeddings):
        return embedding.dim
    probe = embedding.embed_query(_PROBE)
    if not isinstance(probe, Sequence | np.ndarray) or len(probe) == 0:
        raise InvalidInputError(
            f"{type(embedding).__name__}.embed_query returned {type(probe).__name__}, "
            "not a non-empty list of floats"
        )
    return len(probe)


def _open_engine(path: str | os.PathLike[str], config: LumaConfig | None, dim: int) -> Luma:
    """Open the store at ``path`` (its stored settings), or create it with ``dim``."""
    if config is not None:
        if config.dim != dim:
            raise DimensionMismatchError(
                f"config.dim={config.dim} but the embeddings give {dim}-d vectors; "
                f"pass LumaConfig(dim={dim}, ...)"
            )
        return Luma.open(path, config)
    try:
        luma = Luma.open(path)
    except ConfigError:  # no store there yet
        return Luma.open(path, LumaConfig(dim=dim))
    if luma.config.dim != dim:
        luma.close()
        raise DimensionMismatchError(
            f"the store at {path} holds {luma.config.dim}-d vectors but the embeddings give "
            f"{dim}-d; open it with the embeddings it was built with, or use another path"
        )
    return luma


def _release(luma: Luma | None, tmpdir: str | None) -> None:
    if luma is not None:
        luma.close()
    if tmpdir is not None:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _reject_kwargs(method: str, kwargs: Mapping[str, Any]) -> None:
    if kwargs:
        raise TypeError(f"LumaVectorStore.{method} got unexpected keyword(s) {sorted(kwargs)}")


def _check_search_kwargs(kwargs: Mapping[str, Any]) -> None:
    unknown = set(kwargs) - _SEARCH_KWARGS
    if unknown:
        raise TypeError(
            f"unexpected search keyword(s) {sorted(unknown)}; LumaVectorStore searches take "
            f"k, filter and {sorted(_SEARCH_KWARGS)}"
        )


def _per_item(values: Sequence[Any] | None, n: int, name: str, default: Any) -> list[Any]:
    if values is None:
        return [default] * n
    if isinstance(values, str | Mapping) or not isinstance(values, Sequence):
        raise InvalidInputError(f"{name} must be a list with one entry per item")
    if len(values) != n:
        raise InvalidInputError(f"got {len(values)} {name} for {n} items; pass one per item")
    return [default if v is None else v for v in values]


def _item_ids(ids: Sequence[str | None] | None, n: int) -> list[str]:
    if ids is None:
        return [uuid.uuid4().hex for _ in range(n)]
    if isinstance(ids, str) or not isinstance(ids, Sequence):
        raise InvalidInputError("ids must be a list of strings, one per item")
    if len(ids) != n:
        raise InvalidInputError(f"got {len(ids)} ids for {n} items; pass one per item")
    return [uuid.uuid4().hex if i is None else i for i in ids]


def _as_matrix(vectors: Any, n: int) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise InvalidInputError(
            f"the embeddings returned shape {arr.shape} for {n} inputs; expected ({n}, dim)"
        )
    return arr
