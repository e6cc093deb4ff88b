"""``LumaVectorStore``: a LUMA-RAG store as a LlamaIndex vector store."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)
from llama_index.vector_stores.lumarag._async import AsyncMixin
from llama_index.vector_stores.lumarag._engine import check_local_fs, open_engine
from llama_index.vector_stores.lumarag._nodes import (
    embedding_input,
    item_to_node,
    node_modality,
    node_source,
    node_text,
    node_to_item_metadata,
)
from llama_index.vector_stores.lumarag._query import query_input, restrict, top_k
from llama_index.vector_stores.lumarag._search import run_query
from llama_index.vector_stores.lumarag.filters import to_luma_filter

from luma_rag import Luma, LumaConfig
from luma_rag.closing import ClosesOnExit
from luma_rag.encoders import Encoder
from luma_rag.filters import compile_filter

__all__ = ["LumaVectorStore"]

logger = logging.getLogger(__name__)


class LumaVectorStore(AsyncMixin, BasePydanticVectorStore, ClosesOnExit):
    """A LUMA-RAG store (a directory) as a LlamaIndex vector store.

    Nodes are stored whole (``stores_text=True``): their serialized JSON rides in the item's
    metadata, next to the node's own metadata, which stays filterable. Every query result
    carries the Safe@k certificate of its query in ``node.metadata["luma"]`` (``safe1``,
    ``safek``, ``margin_top2``, ``delta_k``, ``epsilon``, ``zeta_mean``, ``zeta_max``,
    ``rho``, ``complete``, and the hit's ``score``, ``rank``, ``tier``, ``modality``), hidden
    from LLM prompts and embeddings; ``similarities`` are the exact cosine scores.

    Writes are durable when ``add`` / ``delete`` return, so ``persist`` has nothing to do;
    reopen a store with ``LumaVectorStore(path)`` or :meth:`from_persist_dir`.

    With an encoder (``encoder="luma-tiny"`` or any :class:`luma_rag.encoders.Encoder`),
    nodes without an embedding are embedded by the store (an ``ImageNode``'s image with the
    image tower), and the store embeds query text itself through ``Luma.query``, so that the
    certificate uses the encoder's radius for text; for that reason ``is_embedding_query``
    defaults to False with an encoder (the retriever then passes the query string). A query
    that already has an embedding is searched as given.

    Setup:
        .. code-block:: bash

            pip install 'luma-rag[llama-index]'

    Instantiate:
        .. code-block:: python

            from llama_index.vector_stores.lumarag import LumaVectorStore

            store = LumaVectorStore("./luma_store", encoder="luma-tiny")   # or dim=... alone

    Use with an index:
        .. code-block:: python

            from llama_index.core import VectorStoreIndex
            from llama_index.vector_stores.lumarag import LumaEmbedding

            index = VectorStoreIndex.from_vector_store(
                store, embed_model=LumaEmbedding(encoder=store.encoder)
            )
            nodes = index.as_retriever(similarity_top_k=3).retrieve("a red circle")
            nodes[0].metadata["luma"]["safe1"]

    Args:
        path: The store's directory (created when missing). Not with ``luma``.
        dim: Embedding dimension of a new store (default: the encoder's).
        encoder: An encoder name for ``Luma.open`` (e.g. ``"luma-tiny"``) or an Encoder.
        config: A full ``LumaConfig`` for a new store (instead of ``dim``).
        luma: An open engine to wrap instead of ``path`` (the caller keeps closing it).
        flat_metadata: Refuse nested metadata values, as many LlamaIndex stores do.
        is_embedding_query: Whether retrievers should embed queries (default: no encoder).
    """

    stores_text: bool = True
    flat_metadata: bool = False
    path: str
    dim: int
    encoder_name: str | None = None

    _luma: Luma = PrivateAttr()
    _owns_engine: bool = PrivateAttr(default=False)

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        dim: int | None = None,
        encoder: Encoder | str | None = None,
        config: LumaConfig | None = None,
        luma: Luma | None = None,
        flat_metadata: bool = False,
        is_embedding_query: bool | None = None,
        **kwargs: Any,
    ) -> None:
        owns = luma is None
        encoder_name = kwargs.pop("encoder_name", None)  # from to_dict(): reopen by name
        if encoder is None and encoder_name is not None and luma is None:
            encoder = encoder_name
        if luma is None:
            if path is None:
                raise ValueError("pass path= (the store's directory) or luma= (an open Luma)")
            luma = open_engine(path, dim=dim, encoder=encoder, config=config)
        elif path is not None or dim is not None or encoder is not None or config is not None:
            raise ValueError(
                "luma= wraps an open engine; path, dim, encoder and config belong to Luma.open"
            )
        enc = luma.encoder
        if is_embedding_query is None:
            is_embedding_query = enc is None
        try:
            super().__init__(
                path=str(luma.path),
                dim=luma.config.dim,
                encoder_name=enc.name if enc is not None else None,
                flat_metadata=flat_metadata,
                is_embedding_query=is_embedding_query,
                **kwargs,
            )
        except BaseException:
            if owns:
                luma.close()
            raise
        self._luma = luma
        self._owns_engine = owns

    @classmethod
    def class_name(cls) -> str:
        return "LumaVectorStore"

    @classmethod
    def from_persist_dir(
        cls,
        persist_dir: str | os.PathLike[str],
        *,
        encoder: Encoder | str | None = None,
        fs: Any = None,
        **kwargs: Any,
    ) -> LumaVectorStore:
        """Reopen the store in ``persist_dir``: ``LumaVectorStore(persist_dir, encoder=...)``.

        Its dimension and settings are read from the store.

        Raises:
            ValueError: ``persist_dir`` is not a directory, or ``fs`` is not the local file
                system (a store is a local directory). luma_rag.errors.ConfigError (a
                ValueError): ``persist_dir`` holds no store and no encoder was given.
        """
        check_local_fs(fs)
        if not os.path.isdir(persist_dir):
            raise ValueError(f"{persist_dir} holds no LUMA-RAG store; create one with dim=...")
        return cls(persist_dir, encoder=encoder, **kwargs)

    @property
    def client(self) -> Luma:
        """The :class:`luma_rag.Luma` engine."""
        return self._luma

    @property
    def encoder(self) -> Encoder | None:
        """The engine's encoder, to share with :class:`LumaEmbedding` (None without one)."""
        return self._luma.encoder

    def close(self) -> None:
        """Close the engine if this store opened it (writes index snapshots). Idempotent."""
        if self._owns_engine:
            self._luma.close()

    def persist(self, persist_path: str, fs: Any = None) -> None:
        """Nothing to do: every write is durable when it returns, in the store's directory.

        ``StorageContext.persist`` calls this with a file path beside its other stores; the
        vectors stay in :attr:`path`, so reopen with ``LumaVectorStore(path)`` and pass it to
        ``StorageContext.from_defaults(vector_store=..., persist_dir=...)``.
        """
        check_local_fs(fs)

    # -- writes --------------------------------------------------------------------------------
    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Add (or replace, by node id) nodes; durable when this returns.

        Nodes without an embedding are embedded with the store's encoder: an ``ImageNode``
        with ``image`` / ``image_path`` through the image tower, other nodes through the text
        tower (their text as LlamaIndex embeds it).

        Returns:
            The node ids, in order.

        Raises:
            ValueError: Duplicate or empty node ids, a wrong embedding size, a NaN or zero
                embedding, no embedding and no encoder, metadata JSON cannot hold; nothing
                is written.
        """
        nodes = list(nodes)
        if not nodes:
            return []
        ids = [node.node_id for node in nodes]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise ValueError(f"node id {dup!r} appears twice in one add; nothing was written")
        if not all(isinstance(i, str) and i for i in ids):
            raise ValueError("every node needs a non-empty string id; nothing was written")
        vectors = self._embed(nodes)
        unusable = ~np.isfinite(vectors).all(axis=1)
        unusable[~unusable] = np.linalg.norm(vectors[~unusable], axis=1) < 1e-12
        if unusable.any():
            bad = [ids[i] for i in np.flatnonzero(unusable)[:5]]
            raise ValueError(
                f"nodes {bad} have embeddings with NaN/inf or all zeros, which cannot be "
                "compared by cosine; nothing was written"
            )
        metadata = [node_to_item_metadata(n, flat_metadata=self.flat_metadata) for n in nodes]
        modality = [node_modality(n) for n in nodes]
        # One engine call per modality; everything the engine checks was checked above, so
        # a batch is not left half-written by bad input.
        for kind in ("text", "image"):
            sel = [i for i, m in enumerate(modality) if m == kind]
            if sel:
                self._luma.add_vectors(
                    vectors[sel],
                    [metadata[i] for i in sel],
                    [ids[i] for i in sel],
                    modality=kind,
                    texts=[node_text(nodes[i]) for i in sel],
                    sources=[node_source(nodes[i]) for i in sel],
                )
        logger.debug("added %d nodes to %s", len(ids), self.path)
        return ids

    def _embed(self, nodes: list[BaseNode]) -> np.ndarray:
        """(n, dim) float32: given embeddings, then the encoder's for the rest."""
        out = np.zeros((len(nodes), self.dim), dtype=np.float32)
        todo: dict[str, list[tuple[int, Any]]] = {"text": [], "image": []}
        for i, node in enumerate(nodes):
            if node.embedding is None:
                kind, data = embedding_input(node)
                todo[kind].append((i, data))
            elif len(node.embedding) != self.dim:
                raise ValueError(
                    f"node {node.node_id!r} has a {len(node.embedding)}-d embedding but the "
                    f"store at {self.path} holds {self.dim}-d vectors; nothing was written"
                )
            else:
                out[i] = node.embedding
        if not (todo["text"] or todo["image"]):
            return out
        encoder = self.encoder
        if encoder is None:
            first = nodes[(todo["text"] or todo["image"])[0][0]].node_id
            raise ValueError(
                f"node {first!r} has no embedding and the store has no encoder; embed nodes "
                "first (e.g. VectorStoreIndex with embed_model=LumaEmbedding()) or open the "
                "store with encoder='luma-tiny'"
            )
        for tower, items in todo.items():
            if items:
                encode = encoder.encode_text if tower == "text" else encoder.encode_image
                out[[i for i, _ in items]] = encode([data for _, data in items])
        return out

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the document ``ref_doc_id`` (none: nothing happens)."""
        # check_keys=False: a store holding no LlamaIndex node has no ref_doc_id key at all
        ids = self._select_ids({"ref_doc_id": ref_doc_id}, check_keys=False)
        if ids:
            self._luma.delete(ids)

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the nodes in ``node_ids`` that match ``filters`` (unknown ids are skipped).

        Raises:
            ValueError: Neither ``node_ids`` nor a non-empty ``filters`` (use :meth:`clear`).
        """
        if node_ids is None and not (filters and filters.filters):
            raise ValueError(
                "delete_nodes needs node_ids and/or filters; use clear() to delete every node"
            )
        ids = self._matching(node_ids, filters)
        if ids:
            self._luma.delete(ids)

    def clear(self) -> None:
        """Delete every node (the store stays open and usable)."""
        ids = self._select_ids(None)
        if ids:
            self._luma.delete(ids)

    # -- reads ---------------------------------------------------------------------------------
    def get_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
    ) -> list[BaseNode]:
        """Stored nodes by id (in that order; unknown ids skipped) and/or filter; all if neither."""
        ids = self._matching(node_ids, filters)
        return [
            item_to_node(
                item["id"],
                item["metadata"],
                modality=item.get("modality", "text"),
                text=item.get("text"),
                source=item.get("source"),
            )
            for item in self._luma.get(ids)
        ]

    def query(
        self, query: VectorStoreQuery, *, rho: float | None = None, **kwargs: Any
    ) -> VectorStoreQueryResult:
        """Top ``similarity_top_k`` nodes by exact cosine, each with its certificate.

        ``doc_ids`` and ``node_ids`` restrict the search (an empty list means no
        restriction, as LlamaIndex's retrievers pass it); ``filters`` are translated by
        :func:`~llama_index.vector_stores.lumarag.filters.to_luma_filter`.

        A query with a ``query_embedding`` is searched as given, with ``rho`` as the encoder
        radius of the certificate (default: the store's ``SafetyConfig.rho``; from a
        retriever, pass ``vector_store_kwargs={"rho": ...}``). A query with only
        ``query_str`` is embedded by the store's encoder through ``Luma.query``, whose ρ is
        the radius calibrated for text.

        ``VectorStoreQueryMode.MMR`` re-ranks for diversity (``mmr_threshold``,
        ``mmr_prefetch_factor``; see :mod:`~llama_index.vector_stores.lumarag._search`). A filter
        on a metadata key no node has returns no nodes.

        Raises:
            ValueError: No embedding and no query text, an embedding of the wrong size,
                ``similarity_top_k`` < 1, a mode other than DEFAULT / MMR, or a bad filter.
        """
        k = top_k(query)
        where = restrict(to_luma_filter(query.filters), query.doc_ids, query.node_ids)
        vector, text = query_input(query, self.dim, has_encoder=self.encoder is not None)
        return run_query(
            self._luma,
            mode=query.mode,
            k=k,
            where=where,
            vector=vector,
            text=text,
            rho=rho,
            mmr_threshold=kwargs.get("mmr_threshold", query.mmr_threshold),
            mmr_prefetch_factor=kwargs.get("mmr_prefetch_factor"),
        )

    # -- helpers -------------------------------------------------------------------------------
    def _matching(self, node_ids: list[str] | None, filters: MetadataFilters | None) -> list[str]:
        """Ids of stored nodes in ``node_ids`` (if given, in that order) matching ``filters``."""
        where = to_luma_filter(filters)
        if node_ids is not None:
            if isinstance(node_ids, str):
                raise ValueError("node_ids must be a list of ids, e.g. [node.node_id]")
            wanted = [i for i in dict.fromkeys(node_ids) if i in self._luma]
            if not where or not wanted:
                return wanted
            found = set(self._select_ids(where))
            return [i for i in wanted if i in found]
        return self._select_ids(where)

    def _select_ids(self, where: Mapping[str, Any] | None, *, check_keys: bool = True) -> list[str]:
        """Ids of the items matching a LUMA-RAG filter (all items for None / {})."""
        if len(self._luma) == 0:
            compile_filter(where)  # validate anyway
            return []
        return self._luma.ids(where or None, check_keys=check_keys)
