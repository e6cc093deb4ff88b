"""Engine hits as LangChain documents, with the query's telemetry where asked for."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Final

from langchain_core.documents import Document
from pydantic import PrivateAttr

from luma_rag.results import Hit, QueryResult

__all__ = [
    "DEFAULT_METADATA_KEY",
    "FLAG_KEYS",
    "RetrievedDocument",
    "hit_to_document",
    "result_to_documents",
]

#: Where the retriever nests each document's retrieval details in ``Document.metadata``.
DEFAULT_METADATA_KEY: Final = "luma"
#: Details copied to the top level of ``Document.metadata`` too (unless the item's own
#: metadata already has that key: the user's value is kept).
FLAG_KEYS: Final = ("score", "safe1", "safek")


class RetrievedDocument(Document):
    """A :class:`~langchain_core.documents.Document` carrying one query's retrieval details.

    The details (``metadata[metadata_key]`` and the copied flags) describe the *query*, not
    the item, so two documents of the same item compare equal whatever queries found them:
    ``MultiQueryRetriever`` and ``EnsembleRetriever`` de-duplicate them as they do plain
    documents. Everything else (id, content, the item's own metadata) must match.
    """

    _retrieval_keys: frozenset[str] = PrivateAttr(default=frozenset())

    def _identity(self) -> tuple[Any, ...]:
        own = {k: v for k, v in self.metadata.items() if k not in self._retrieval_keys}
        return (self.id, self.page_content, own)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RetrievedDocument):
            return self._identity() == other._identity()
        if isinstance(other, Document):
            return self._identity() == (other.id, other.page_content, dict(other.metadata))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like Document


def hit_to_document(
    hit: Hit,
    telemetry: Mapping[str, Any] | None = None,
    *,
    metadata_key: str = DEFAULT_METADATA_KEY,
) -> Document:
    """One hit as a :class:`~langchain_core.documents.Document`.

    Args:
        hit: An engine hit.
        telemetry: The query's ``Telemetry.to_dict()``; None gives a plain document whose
            metadata is exactly the item's own (what a LangChain vector store returns).
        metadata_key: Key under which the retrieval details are nested.

    Returns:
        A document with ``id`` = the item id and ``page_content`` = its caption / text /
        transcript (else its source path, else ""). With telemetry, ``metadata[metadata_key]``
        holds id, modality, source, score, rank, tier and the telemetry, and the flags in
        :data:`FLAG_KEYS` are also copied to the top level where the item has no such key;
        such a :class:`RetrievedDocument` equals any other document of the same item.
    """
    metadata = dict(hit.metadata)
    if telemetry is not None:
        details = {
            "id": hit.id,
            "modality": hit.modality,
            "source": hit.source,
            "score": hit.score,
            "rank": hit.rank,
            "tier": hit.tier,
            **telemetry,
        }
        if metadata_key in metadata:
            warnings.warn(
                f"item {hit.id!r} has its own metadata key {metadata_key!r}; the retrieval "
                f"details replace it in the document. Pass metadata_key='...' to the retriever "
                "to nest them under another key",
                UserWarning,
                stacklevel=3,
            )
        added = {metadata_key, *(k for k in FLAG_KEYS if k not in metadata)}
        metadata[metadata_key] = details
        for key in FLAG_KEYS:
            metadata.setdefault(key, details[key])
        doc = RetrievedDocument(id=hit.id, page_content=_content(hit), metadata=metadata)
        doc._retrieval_keys = frozenset(added)
        return doc
    return Document(id=hit.id, page_content=_content(hit), metadata=metadata)


def result_to_documents(
    result: QueryResult, *, telemetry: bool = True, metadata_key: str = DEFAULT_METADATA_KEY
) -> list[Document]:
    """Every hit of ``result`` as a document, best first (see :func:`hit_to_document`)."""
    tel = result.telemetry.to_dict() if telemetry else None
    return [hit_to_document(h, tel, metadata_key=metadata_key) for h in result.hits]


def _content(hit: Hit) -> str:
    return hit.text or hit.source or ""
