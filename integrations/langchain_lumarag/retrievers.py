"""``LumaRetriever``: multimodal retrieval with a Safe@k certificate on every document."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from langchain_lumarag._documents import DEFAULT_METADATA_KEY, result_to_documents
from langchain_lumarag._query import ParsedQuery, check_k, parse_query, search_or_none
from langchain_lumarag.embeddings import LumaEmbeddings
from luma_rag import Luma
from luma_rag.closing import ClosesOnExit
from luma_rag.encoders import DEFAULT_MODEL
from luma_rag.errors import ConfigError, InvalidInputError
from luma_rag.foreign import embedder_rho
from luma_rag.results import QueryResult

__all__ = ["LumaRetriever"]

_CALL_KWARGS = frozenset({"k", "filters", "filter", "modality", "rho"})
# LangChain's invoke() forwards these to every retriever; they mean nothing here.
_IGNORED_KWARGS = frozenset({"verbose"})


class LumaRetriever(BaseRetriever, ClosesOnExit):
    """LUMA-RAG retriever: text, image, audio or video queries over one multimodal memory.

    Every document carries the query's Safe@k certificate, so a chain can answer, widen its
    evidence or ask the user to clarify:

    * ``page_content``: the item's caption / text / transcript (else its source path);
    * ``id``: the item id;
    * ``metadata``: the item's own metadata, plus ``metadata["luma"]`` (see ``metadata_key``)
      with ``id``, ``modality``, ``source`` (file path or None), ``score`` (exact cosine),
      ``rank`` (0-based), ``tier`` ("hot"/"warm") and the query's telemetry: ``safe1``,
      ``safek``, ``safe_k_min``, ``margin_top2`` (γ), ``delta_k`` (δ_k; None when undefined),
      ``epsilon``, ``epsilon_items``, ``zeta_mean``, ``zeta_max``, ``rho``, ``complete``, ``k``,
      ``n_candidates``, ``latency_ms``;
    * ``score``, ``safe1`` and ``safek`` are also copied to the top level of ``metadata``,
      except where the item's own metadata already has that key: the user's value is kept
      (``metadata["luma"]`` always holds the retriever's).

    Setup:
        ```bash
        pip install -U "luma-rag[langchain]"
        ```

    Key init args:
        luma: luma_rag.Luma | None
            An open engine (the caller keeps ownership and closes it).
        store_path: str | Path | None
            Or: a store directory, opened with ``encoder`` (closed by :meth:`close`).
        encoder: str
            Encoder name used with ``store_path`` (default ``"luma-tiny"``, shipped offline).
        embeddings: Embeddings | None
            Embed text queries with these instead of the engine's encoder (a store built by
            :class:`~langchain_lumarag.LumaVectorStore` with other embeddings).

    Key search args (defaults; ``k``, ``filters``, ``modality`` and ``rho`` can also be given
    to ``invoke``):
        k: int
            Documents returned (default 4).
        modality: "auto" | "text" | "image" | "audio" | "video"
            "auto": a single-line query ending in a media suffix (``.png``, ``.jpg``, ``.wav``,
            ``.mp4``, ...) is that file; anything else is text.
        filters: dict | None
            Metadata filter in the engine's Mongo-like language (``filter=`` works too).
        rho: float | None
            Encoder radius ρ for the certificate (None: the store's calibrated / configured ρ).

    Instantiate:
        ```python
        from luma_rag import Luma
        from langchain_lumarag import LumaRetriever

        luma = Luma.open("./luma-store", encoder="luma-tiny")
        luma.ingest_texts(
            ["a red circle", "a blue square", "a green triangle"],
            metadatas=[{"shape": "circle"}, {"shape": "square"}, {"shape": "triangle"}],
        )
        retriever = LumaRetriever(luma=luma, k=2)
        ```

    Usage:
        ```python
        docs = retriever.invoke("a red circle")
        top = docs[0]
        print(len(docs), top.id == top.metadata["luma"]["id"])  # 2 True
        answerable = top.metadata["safe1"]  # Safe@1: the top item is certified
        squares = retriever.invoke("a shape", k=1, filters={"shape": {"$in": ["square"]}})
        print(squares[0].metadata["shape"])  # square
        ```

    Query with an image:
        ```python
        from PIL import Image

        Image.new("RGB", (64, 64), "red").save("query.png")
        docs = retriever.invoke("query.png")  # or retriever.invoke(path, modality="image")
        ```

    Use within a chain:
        ```python
        from langchain_core.language_models.fake_chat_models import FakeListChatModel
        from langchain_core.output_parsers import StrOutputParser
        from langchain_core.prompts import ChatPromptTemplate
        from langchain_core.runnables import RunnablePassthrough

        prompt = ChatPromptTemplate.from_template(
            "Answer from the context only.\\n\\nContext: {context}\\n\\nQuestion: {question}"
        )
        llm = FakeListChatModel(responses=["A red circle."])  # any chat model


        def format_docs(docs):
            return "\\n\\n".join(doc.page_content for doc in docs)


        chain = (
            {"context": retriever | format_docs, "question": RunnablePassthrough()}
            | prompt
            | llm
            | StrOutputParser()
        )
        answer = chain.invoke("which shape is red?")
        print(answer)  # A red circle.
        ```

    Async:
        ```python
        import asyncio

        docs = asyncio.run(retriever.ainvoke("a blue square", k=1))
        luma.close()
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    luma: Luma | None = None
    """An open engine; the caller keeps ownership."""
    store_path: Path | None = None
    """A store directory to open (with ``encoder``) instead of passing ``luma``."""
    encoder: str = DEFAULT_MODEL
    """Encoder name used to open ``store_path``."""
    embeddings: Embeddings | None = None
    """Embeds text queries instead of the engine's encoder, when given."""
    k: int = Field(default=4, ge=1)
    """Number of documents to return."""
    modality: Literal["auto", "text", "image", "audio", "video"] = "auto"
    """What a query is; "auto" decides from a media file suffix."""
    filters: dict[str, Any] | None = None
    """Default metadata filter (Mongo-like)."""
    rho: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    """Encoder radius ρ for the Safe@k certificate (None: the store's)."""
    metadata_key: str = Field(default=DEFAULT_METADATA_KEY, min_length=1)
    """Key of ``Document.metadata`` under which retrieval details and telemetry are nested."""

    _owns_engine: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _connect(self) -> Self:
        if (self.luma is None) == (self.store_path is None):
            raise ValueError(
                "pass exactly one of luma= (an open Luma engine) or store_path= (a store "
                "directory, opened with encoder=)"
            )
        if self.luma is not None and "encoder" in self.model_fields_set:
            raise ValueError("encoder= applies to store_path= only; the engine has its own")
        if self.luma is None and self.store_path is not None:
            self.luma = Luma.open(self.store_path, encoder=self.encoder)
            self._owns_engine = True
        if self.embeddings is None and self.luma.encoder is None:
            self.close()
            raise ValueError(
                f"the engine at {self.luma.path} has no encoder, so queries cannot be embedded; "
                "open it with Luma.open(path, encoder='luma-tiny'), or pass embeddings="
            )
        return self

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the engine if this retriever opened it (``store_path=``). Idempotent."""
        if self._owns_engine and self.luma is not None:
            self.luma.close()

    # -- retrieval -------------------------------------------------------------------------------
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return self._retrieve(query, kwargs)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        # The engine is thread-safe; its calls block, so they run in the default executor.
        return await run_in_executor(None, self._retrieve, query, kwargs)

    def _retrieve(self, query: str | os.PathLike[str], kwargs: Mapping[str, Any]) -> list[Document]:
        opts = {key: value for key, value in kwargs.items() if key not in _IGNORED_KWARGS}
        unknown = set(opts) - _CALL_KWARGS
        if unknown:
            raise TypeError(
                f"LumaRetriever got unexpected keyword(s) {sorted(unknown)}; it takes "
                f"{sorted(_CALL_KWARGS)}"
            )
        if "filter" in opts and "filters" in opts:
            raise InvalidInputError("pass filter= or filters=, not both")
        k = check_k(opts.get("k", self.k))
        filters = opts.get("filters", opts.get("filter", self.filters))
        rho = opts.get("rho", self.rho)
        parsed = parse_query(query, opts.get("modality", self.modality))
        luma = self.luma
        if luma is None:  # the validator opens it; a bypassed validator gets here
            raise ConfigError("LumaRetriever has no engine; build it with luma= or store_path=")
        result = search_or_none(luma, filters, lambda: self._search(parsed, k, filters, rho))
        if result is None:
            return []
        return result_to_documents(result, metadata_key=self.metadata_key)

    def _search(
        self, query: ParsedQuery, k: int, filters: Mapping[str, Any] | None, rho: float | None
    ) -> QueryResult:
        luma = self.luma
        if luma is None:  # the validator opens it; a bypassed validator gets here
            raise ConfigError("LumaRetriever has no engine; build it with luma= or store_path=")
        embed = self._embedder(query)
        if embed is not None:
            vector = np.asarray(embed(query.value), dtype=np.float32)
            source = None
            if rho is None and query.modality == "text":  # calibrated for these embeddings
                rho, source = embedder_rho(luma, self.embeddings)
            return luma.search(vector, k=k, filters=filters, rho=rho, rho_source=source)
        return luma.query(**{query.modality: query.value}, k=k, filters=filters, rho=rho)

    def _embedder(self, query: ParsedQuery) -> Callable[[str], Any] | None:
        """The user's embeddings for this query, if they were given and can embed it."""
        if self.embeddings is None or self._is_engine_encoder(self.embeddings):
            return None  # the engine embeds it (and applies its calibrated ρ per modality)
        if query.modality == "text":
            return self.embeddings.embed_query
        embed_image = getattr(self.embeddings, "embed_image", None)
        if query.modality == "image" and embed_image is not None:
            return lambda path: embed_image([path])[0]
        if self.luma is not None and self.luma.encoder is not None:
            return None  # the engine's encoder handles this modality
        raise InvalidInputError(
            f"{type(self.embeddings).__name__} cannot embed {query.modality} queries and the "
            "engine has no encoder; open it with Luma.open(path, encoder='luma-tiny')"
        )

    def _is_engine_encoder(self, embeddings: Embeddings) -> bool:
        encoder = self.luma.encoder if self.luma is not None else None
        return (
            encoder is not None
            and isinstance(embeddings, LumaEmbeddings)
            and embeddings.encoder is encoder
        )
