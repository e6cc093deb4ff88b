"""``LumaGatedQueryEngine``: a LlamaIndex query engine behind the Safe@k answer gate.

The gate itself (ANSWER / WIDEN / CLARIFY, the re-query with ``k_max``, knowledge gaps) is
:class:`luma_rag.answer.GatedRetriever` over the store's engine; this module only embeds the
query where the engine does not, and turns the decision into a LlamaIndex response.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Generator
from dataclasses import asdict
from typing import Any

import numpy as np
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.response.schema import (
    RESPONSE_TYPE,
    AsyncStreamingResponse,
    Response,
    StreamingResponse,
)
from llama_index.core.callbacks import CallbackManager
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.llms import LLM
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilters
from llama_index.vector_stores.lumarag._nodes import item_to_node
from llama_index.vector_stores.lumarag._query import query_vector
from llama_index.vector_stores.lumarag.answerers import LLMAnswerer
from llama_index.vector_stores.lumarag.base import LumaVectorStore
from llama_index.vector_stores.lumarag.filters import to_luma_filter

from luma_rag.answer import (
    Answerer,
    EvidenceAnswerer,
    GateConfig,
    GateDecision,
    GatedRetriever,
    StreamingAnswerer,
)
from luma_rag.answer.base import Evidence
from luma_rag.answer.readable import readable
from luma_rag.foreign import embedder_relevance, embedder_rho

__all__ = ["LumaGatedQueryEngine"]


class LumaGatedQueryEngine(BaseQueryEngine):
    """Answers from a :class:`LumaVectorStore` only as far as its Safe@k certificate allows.

    Each query goes through :class:`luma_rag.answer.GatedRetriever`: Safe@1 → ANSWER from
    the top node (the top ``k`` as context); else the smallest stable set of ``k' <= k_max``
    → WIDEN; else CLARIFY, with a clarifying question as the response and the query logged
    as a knowledge gap (``vector_store.client.knowledge_gaps()``). The answerer (default
    :class:`~luma_rag.answer.EvidenceAnswerer`, no model) writes the text.

    The :class:`~llama_index.core.base.response.schema.Response` carries:

    * ``response``: the answer text (for CLARIFY, the clarifying question);
    * ``source_nodes``: the gate's evidence, best first, as ``NodeWithScore`` whose
      ``score`` is the exact cosine; each ``node.metadata["luma"]`` (hidden from LLM and
      embed metadata) holds the hit's ``score``, ``rank``, ``tier``, ``modality``, its
      ``citation`` number (``[1]`` in the text), the ``decision``, ``k_used`` and the gate's
      numbers (``margin_top2``, ``slack``, ``safe1``, ``safe_k``, ``rho``, ...);
    * ``metadata``: ``{"decision": GateDecision.to_dict(), "citations": [dict, ...],
      "telemetry": dict}``, all JSON-serialisable.

    With ``streaming=True``, ``query`` returns a ``StreamingResponse`` (``aquery``: an
    ``AsyncStreamingResponse``) whose generator yields the answerer's text pieces; its
    ``source_nodes`` and ``metadata`` are there at once, and ``metadata["telemetry"]`` gets
    ``latency_ms`` when the stream ends. An answerer that cannot stream yields one piece.

    How the query is embedded: a ``QueryBundle`` with an ``embedding`` is searched as given;
    else ``embed_model`` embeds its text (or, for a multimodal model, its ``image_path``);
    else the store's encoder does, through ``Luma.query`` with the radius ρ calibrated for
    that modality, unless ``rho`` is given.

    Example:
        .. code-block:: python

            from llama_index.vector_stores.lumarag import LumaGatedQueryEngine, LumaVectorStore

            store = LumaVectorStore("./luma_store", encoder="luma-tiny")
            engine = LumaGatedQueryEngine(store)
            response = engine.query("a red circle")
            response.metadata["decision"]["decision"]  # "answer", "widen" or "clarify"
            [n.node.node_id for n in response.source_nodes]

    Args:
        vector_store: The store (its engine is queried; the caller keeps closing it).
        answerer: Turns the decision into text (default: ``EvidenceAnswerer()``); any
            LlamaIndex LLM is wrapped in :class:`~llama_index.vector_stores.lumarag.LLMAnswerer`
            (the decision is in its prompt).
        gate_config: Gate settings (default ``GateConfig()``: k=5, k_max=10).
        embed_model: Embeds queries instead of the store's encoder (a store without one).
        filters: Metadata filters applied to every query.
        rho: Encoder radius ρ for the certificate (None: the store's calibrated ρ).
        record_gaps: Log every CLARIFY as a knowledge gap.
        streaming: Return streaming responses.
        callback_manager: LlamaIndex callbacks.

    Raises:
        TypeError: ``vector_store`` is not a LumaVectorStore, or ``answerer`` has no
            ``answer``.
        ValueError: a negative ``rho``, or filters that cannot be translated.
    """

    def __init__(
        self,
        vector_store: LumaVectorStore,
        answerer: Answerer | LLM | None = None,
        gate_config: GateConfig | None = None,
        *,
        embed_model: BaseEmbedding | None = None,
        filters: MetadataFilters | None = None,
        rho: float | None = None,
        record_gaps: bool = True,
        streaming: bool = False,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        if not isinstance(vector_store, LumaVectorStore):
            raise TypeError(
                f"LumaGatedQueryEngine needs a LumaVectorStore, got {type(vector_store).__name__}"
            )
        answerer = EvidenceAnswerer() if answerer is None else answerer
        if isinstance(answerer, LLM):
            answerer = LLMAnswerer(answerer)  # any LlamaIndex LLM, the decision in its prompt
        if not isinstance(answerer, Answerer):
            raise TypeError(
                "answerer must have answer(question, decision) -> Answer (see "
                f"luma_rag.answer.Answerer), got {type(answerer).__name__}"
            )
        finite = isinstance(rho, int | float) and not isinstance(rho, bool) and rho < np.inf
        if rho is not None and not (finite and rho >= 0.0):
            raise ValueError(f"rho must be a finite number >= 0, got {rho!r}")
        super().__init__(callback_manager=callback_manager)
        self.vector_store = vector_store
        self.answerer = answerer
        self._readable = readable(answerer)  # what answers: never empty, cited, no node fields
        client = vector_store.client
        relevance = embedder_relevance(client, embed_model) if embed_model is not None else "auto"
        self.gate = GatedRetriever(
            client, gate_config, record_gaps=record_gaps, relevance=relevance
        )
        self.embed_model = embed_model
        self.filters = filters
        self.rho = rho
        self.streaming = streaming
        self._where = to_luma_filter(filters) or None  # translated once: bad filters fail here

    def _get_prompt_modules(self) -> dict[str, Any]:
        return {}

    # -- BaseQueryEngine -------------------------------------------------------------------------
    def _query(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        question, decision = self.decide(query_bundle)
        if self.streaming:
            gen, metadata = self._stream(question, decision)
            return StreamingResponse(gen, _source_nodes(decision), metadata)
        return self._respond(question, decision)

    async def _aquery(self, query_bundle: QueryBundle) -> RESPONSE_TYPE:
        # The engine's calls (and most answerers) block: they run in worker threads.
        question, decision = await asyncio.to_thread(self.decide, query_bundle)
        if self.streaming:
            gen, metadata = self._stream(question, decision)
            return AsyncStreamingResponse(_in_threads(gen), _source_nodes(decision), metadata)
        return await asyncio.to_thread(self._respond, question, decision)

    # -- the gate --------------------------------------------------------------------------------
    def decide(self, query_bundle: QueryBundle) -> tuple[str, GateDecision]:
        """Run the gate on a query.

        Returns:
            The question as the answerer sees it and the knowledge gap records (the query
            text; without text, ``"image query: <path>"`` or ``"vector query"``) and the
            :class:`~luma_rag.answer.GateDecision`.

        Raises:
            ValueError: an empty query, an embedding of the wrong size, or nothing to embed
                the query with (no embedding, no ``embed_model``, no encoder).
        """
        image = query_bundle.image_path
        text = query_bundle.query_str or ""
        if text.strip():
            question = text
        elif image is not None:
            question = f"image query: {image}"
        elif query_bundle.embedding is not None:
            question = "vector query"
        else:
            raise ValueError("empty query: give query text, an image_path or an embedding")
        vector = self._vector(query_bundle)
        if vector is not None:
            rho, source = self.rho, None
            if rho is None and self.embed_model is not None and image is None:
                rho, source = embedder_rho(self.gate.luma, self.embed_model)  # or "unset"
            return question, self.gate.search(
                vector, question=question, filters=self._where, rho=rho, rho_source=source
            )
        if image is not None:
            return question, self.gate.query(image=image, filters=self._where)
        return question, self.gate.query(text, filters=self._where)

    def _vector(self, query_bundle: QueryBundle) -> np.ndarray | None:
        """The query vector, or None where the engine embeds it (with its calibrated ρ)."""
        dim = self.vector_store.dim
        if query_bundle.embedding is not None:
            return query_vector(query_bundle.embedding, dim)
        image = query_bundle.image_path
        model = self.embed_model
        if model is not None:
            if image is None:
                embedding = model.get_agg_embedding_from_queries(query_bundle.embedding_strs)
                return query_vector(embedding, dim)
            if isinstance(model, MultiModalEmbedding):
                return query_vector(model.get_image_embedding(image), dim)
        encoder = self.vector_store.encoder
        if encoder is None:
            model_hint = "a MultiModalEmbedding as embed_model=" if image else "embed_model="
            raise ValueError(
                f"the store at {self.vector_store.path} has no encoder to embed this query; "
                f"pass {model_hint}, a QueryBundle with an embedding, or open the store with "
                "an encoder"
            )
        if self.rho is None:
            return None
        if image is not None:
            return query_vector(encoder.encode_image([image])[0].tolist(), dim)
        return query_vector(encoder.encode_text([query_bundle.query_str])[0].tolist(), dim)

    # -- responses -------------------------------------------------------------------------------
    def _respond(self, question: str, decision: GateDecision) -> Response:
        answer = self._readable.answer(question, decision).to_dict()
        metadata = {key: answer[key] for key in ("decision", "citations", "telemetry")}
        return Response(answer["text"], _source_nodes(decision), metadata)

    def _stream(
        self, question: str, decision: GateDecision
    ) -> tuple[Generator[str, None, None], dict[str, Any]]:
        """The text generator, and the metadata it completes when it ends."""
        answerer = self._readable
        telemetry: dict[str, Any] = {
            "answerer": getattr(self.answerer, "name", type(self.answerer).__name__),
            "decision": decision.decision,
            "k_used": decision.k_used,
            **decision.numbers.to_dict(),
            "streamed": True,
        }
        metadata = {
            "decision": decision.to_dict(),
            "citations": [asdict(c) for c in Evidence.from_decision(decision).citations],
            "telemetry": telemetry,
        }

        def pieces() -> Generator[str, None, None]:
            t0 = time.perf_counter()
            if isinstance(answerer, StreamingAnswerer):
                yield from answerer.stream(question, decision)
            else:
                yield answerer.answer(question, decision).text
            telemetry["latency_ms"] = (time.perf_counter() - t0) * 1000.0

        return pieces(), metadata


def _source_nodes(decision: GateDecision) -> list[NodeWithScore]:
    """The decision's evidence as nodes with their exact scores, best first."""
    numbers = decision.numbers.to_dict()
    out = []
    for i, hit in enumerate(decision.evidence):
        details = {
            "score": hit.score,
            "rank": hit.rank,
            "tier": hit.tier,
            "modality": hit.modality,
            "citation": i + 1,
            "decision": decision.decision,
            "k_used": decision.k_used,
            **numbers,
        }
        node = item_to_node(
            hit.id,
            hit.metadata,
            modality=hit.modality,
            text=hit.text,
            source=hit.source,
            telemetry=details,
        )
        out.append(NodeWithScore(node=node, score=hit.score))
    return out


async def _in_threads(gen: Generator[str, None, None]) -> AsyncGenerator[str, None]:
    """Step a blocking generator in worker threads."""
    try:
        while (piece := await asyncio.to_thread(next, gen, None)) is not None:
            yield piece
    finally:
        await asyncio.to_thread(gen.close)
