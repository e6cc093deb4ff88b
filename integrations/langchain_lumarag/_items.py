"""Writes and id lookups of :class:`~langchain_lumarag.LumaVectorStore` (a mixin of the store).

The store class (:mod:`langchain_lumarag.vectorstores`) holds construction, lifecycle and search;
this module holds what changes or reads items by id: ``add_texts``, ``add_images``,
``delete`` and ``get_by_ids``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from langchain_lumarag._inputs import as_matrix, item_ids, per_item, reject_kwargs
from luma_rag import Luma
from luma_rag.errors import InvalidInputError, NotFoundError

__all__ = ["ItemsMixin"]


class ItemsMixin:
    """Item writes and lookups over ``self._luma`` with ``self._embedding``."""

    _luma: Luma
    _embedding: Embeddings

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
        reject_kwargs("add_texts", kwargs)
        texts = list(texts)
        if not texts:
            return []
        n = len(texts)
        metas = per_item(metadatas, n, "metadatas", {})
        keys = item_ids(ids, n)
        vectors = self._embedding.embed_documents(texts)
        return self._luma.add_vectors(
            as_matrix(vectors, n), metas, keys, modality="text", texts=texts
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
        metas = per_item(metadatas, n, "metadatas", {})
        texts = per_item(captions, n, "captions", None)
        keys = item_ids(ids, n)
        vectors = embed_image(paths)
        return self._luma.add_vectors(
            as_matrix(vectors, n), metas, keys, modality="image", texts=texts, sources=paths
        )

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete items by id; ids the store does not hold are ignored.

        Raises:
            InvalidInputError: ``ids`` is None (this store never deletes everything at once:
                close it and remove its directory instead) or a single string.
        """
        reject_kwargs("delete", kwargs)
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
