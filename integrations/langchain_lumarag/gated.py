"""``build_gated_chain``: retrieval behind the Safe@k answer gate, as one LangChain runnable.

The gate itself (ANSWER / WIDEN / CLARIFY, the re-query with ``k_max``, knowledge gaps) is
:class:`luma_rag.answer.GatedRetriever`; this module only feeds it the retriever's query,
filters and ρ, and hands its decision to an answerer.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import numpy as np
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import run_in_executor
from langchain_core.runnables.utils import AddableDict

from langchain_lumarag._query import ParsedQuery, parse_query
from langchain_lumarag.answerers import ChatModelAnswerer
from langchain_lumarag.retrievers import LumaRetriever
from luma_rag import Luma
from luma_rag.answer import (
    Answer,
    Answerer,
    EvidenceAnswerer,
    GateConfig,
    GateDecision,
    GatedRetriever,
    StreamingAnswerer,
)
from luma_rag.answer.base import Evidence
from luma_rag.answer.readable import readable
from luma_rag.errors import ConfigError, InvalidInputError
from luma_rag.foreign import embedder_relevance, embedder_rho

__all__ = ["GatedInput", "LumaGatedChain", "build_gated_chain"]

#: What the chain is invoked with: text, or the path of an image / audio / video file.
GatedInput = str | os.PathLike[str]


def build_gated_chain(
    retriever_or_luma: LumaRetriever | Luma,
    answerer: Answerer | None = None,
    gate_config: GateConfig | None = None,
    *,
    record_gaps: bool = True,
) -> LumaGatedChain:
    """A runnable that retrieves, gates (ANSWER / WIDEN / CLARIFY) and answers one query.

    ``invoke`` / ``ainvoke`` return a plain, JSON-serialisable dict::

        {
            "answer": str,            # the answer text; for CLARIFY, a clarifying question
            "decision": dict,         # GateDecision.to_dict(): decision, k_used, reason,
                                      # clarification, gap_id, evidence ids, numbers, ...
            "citations": list[dict],  # id, source, text, score (exact cosine), rank, modality
            "telemetry": dict,        # the gate's numbers plus the answerer's own
        }

    ``stream`` / ``astream`` yield :class:`~langchain_core.runnables.utils.AddableDict`
    chunks, as LangChain's dict-valued runnables do: with a streaming answerer, first
    ``{"answer": "", "decision": ..., "citations": ...}`` (known before any text), then one
    ``{"answer": delta}`` per piece of text, then ``{"telemetry": ...}``; the deltas
    concatenate to the answer, and the chunks add up (``+``) to the full output. The
    telemetry of a streamed answer is the gate's numbers, the answerer's name and the
    streaming latency (``"streamed": True``); model-side counts (tokens) come with ``invoke``
    only. An answerer that cannot stream yields the full output as one chunk.

    Args:
        retriever_or_luma: A :class:`~langchain_lumarag.LumaRetriever` (its engine, ``modality``,
            ``filters``, ``rho`` and ``embeddings`` are used), or an open
            :class:`luma_rag.Luma` with an encoder.
        answerer: Turns the decision into text (default:
            :class:`~luma_rag.answer.EvidenceAnswerer`, no model); e.g. a
            :class:`~luma_rag.answer.LlavaAnswerer`, or any LangChain chat model / LLM (wrapped
            in :class:`~langchain_lumarag.ChatModelAnswerer`: the decision is in its prompt).
        gate_config: Gate settings. Default for a retriever: ``GateConfig(k=retriever.k,
            k_max=max(10, retriever.k))``; for an engine: ``GateConfig()``. When given, its
            ``k`` (not the retriever's) is the number of hits fetched.
        record_gaps: Log every CLARIFY as a knowledge gap (``luma.knowledge_gaps()``).

    Returns:
        The :class:`LumaGatedChain`.

    Raises:
        TypeError: ``retriever_or_luma`` is neither, or ``answerer`` has no ``answer``.
        ValueError: an engine without an encoder (pass a retriever with ``embeddings=``).

    Example:
        >>> chain = build_gated_chain(LumaRetriever(luma=luma, k=4))  # EvidenceAnswerer
        >>> out = chain.invoke("a red circle")
        >>> out["decision"]["decision"], out["citations"][0]["id"]
        ('answer', 'item-17')
        >>> "".join(c.get("answer", "") for c in chain.stream("a red circle")) == out["answer"]
        True
        >>> out = await chain.ainvoke("a circle")  # a dozen near-identical circles
        >>> out["decision"]["decision"], out["answer"], luma.knowledge_gaps()[0]["query"]
        ('clarify', 'Did you mean the red circle, the blue circle or the green circle?', 'a circle')
    """
    if isinstance(retriever_or_luma, LumaRetriever):
        retriever = retriever_or_luma
        default = GateConfig(k=retriever.k, k_max=max(GateConfig().k_max, retriever.k))
    elif isinstance(retriever_or_luma, Luma):
        default = GateConfig()
        retriever = LumaRetriever(luma=retriever_or_luma, k=(gate_config or default).k)
    else:
        raise TypeError(
            "build_gated_chain takes a LumaRetriever or an open luma_rag.Luma, got "
            f"{type(retriever_or_luma).__name__}"
        )
    answerer = EvidenceAnswerer() if answerer is None else answerer
    if not isinstance(answerer, Answerer) and isinstance(answerer, Runnable):
        answerer = ChatModelAnswerer(answerer)  # any chat model / LLM, the decision in its prompt
    if not isinstance(answerer, Answerer):
        raise TypeError(
            f"answerer must have answer(question, decision) -> Answer (see "
            f"luma_rag.answer.Answerer), got {type(answerer).__name__}"
        )
    luma = retriever.luma
    if luma is None:  # the retriever's validator opens it; a bypassed validator gets here
        raise ConfigError("the retriever has no engine; build it with luma= or store_path=")
    foreign = retriever.embeddings is not None and not retriever._is_engine_encoder(
        retriever.embeddings
    )
    relevance = embedder_relevance(luma, retriever.embeddings) if foreign else "auto"
    gate = GatedRetriever(
        luma, gate_config or default, record_gaps=record_gaps, relevance=relevance
    )
    return LumaGatedChain(retriever, readable(answerer), gate)


class LumaGatedChain(Runnable[GatedInput, dict[str, Any]]):
    """Retrieve → gate → answer, for one text or media query (see :func:`build_gated_chain`).

    Attributes:
        retriever: Where the query's modality, filters, ρ and embeddings come from.
        answerer: Turns the gate's decision into text.
        gate: The :class:`~luma_rag.answer.GatedRetriever` over the retriever's engine.
    """

    name: str | None = "LumaGatedChain"

    def __init__(self, retriever: LumaRetriever, answerer: Answerer, gate: GatedRetriever) -> None:
        """Use :func:`build_gated_chain` rather than this constructor."""
        self.retriever = retriever
        self.answerer = answerer
        self.gate = gate

    # -- Runnable --------------------------------------------------------------------------------
    def invoke(
        self, input: GatedInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Gate and answer ``input`` (text or a media file path); see :func:`build_gated_chain`.

        ``ainvoke`` runs this in the default executor (the engine's calls block).
        """
        return self._call_with_config(self._invoke, input, config, run_type="chain")

    def stream(
        self, input: GatedInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[dict[str, Any]]:
        """Yield the output as :class:`AddableDict` chunks; see :func:`build_gated_chain`."""
        yield from self._transform_stream_with_config(
            iter([input]), self._transform, config, run_type="chain"
        )

    async def astream(
        self, input: GatedInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """:meth:`stream`, each step in the default executor."""

        async def once() -> AsyncIterator[GatedInput]:
            yield input

        async for chunk in self._atransform_stream_with_config(
            once(), self._atransform, config, run_type="chain"
        ):
            yield chunk

    # -- work ------------------------------------------------------------------------------------
    def _invoke(self, input: GatedInput) -> dict[str, Any]:
        question, decision = self.decide(input)
        return _output(self.answerer.answer(question, decision))

    def _transform(self, inputs: Iterator[GatedInput]) -> Iterator[AddableDict]:
        final: Any = None
        for chunk in inputs:
            final = chunk if final is None else final + chunk
        yield from self._chunks(final)

    async def _atransform(self, inputs: AsyncIterator[GatedInput]) -> AsyncIterator[AddableDict]:
        final: Any = None
        async for chunk in inputs:
            final = chunk if final is None else final + chunk
        steps = self._chunks(final)
        try:
            while (out := await run_in_executor(None, _step, steps)) is not None:
                yield out
        finally:
            await run_in_executor(None, steps.close)

    def _chunks(self, input: GatedInput) -> Generator[AddableDict, None, None]:
        question, decision = self.decide(input)
        answerer = self.answerer
        if not isinstance(answerer, StreamingAnswerer):
            yield AddableDict(_output(answerer.answer(question, decision)))
            return
        citations = [dataclasses.asdict(c) for c in Evidence.from_decision(decision).citations]
        yield AddableDict(answer="", decision=decision.to_dict(), citations=citations)
        t0 = time.perf_counter()
        for piece in answerer.stream(question, decision):
            yield AddableDict(answer=piece)
        telemetry = {
            "answerer": getattr(answerer, "name", type(answerer).__name__),
            "decision": decision.decision,
            "k_used": decision.k_used,
            **decision.numbers.to_dict(),
            "latency_ms": (time.perf_counter() - t0) * 1000.0,
            "streamed": True,
        }
        yield AddableDict(telemetry=telemetry)

    def decide(self, input: GatedInput) -> tuple[str, GateDecision]:
        """Run the gate on ``input``.

        Returns:
            The question as the answerer sees it (the text, or ``"image query: <path>"``)
            and the :class:`~luma_rag.answer.GateDecision`.

        Raises:
            InvalidInputError: an empty query, a missing media file, or ``rho`` set on the
                retriever for an audio / video query the engine embeds.
        """
        parsed = parse_query(input, self.retriever.modality)
        if parsed.modality == "text":
            question = parsed.value
        else:
            question = f"{parsed.modality} query: {parsed.value}"
        filters = self.retriever.filters
        vector = self._vector(parsed)
        if vector is None:
            decision = self.gate.query(**{parsed.modality: parsed.value}, filters=filters)
        else:
            rho, source = self.retriever.rho, None
            embeddings = self.retriever.embeddings
            foreign = embeddings is not None and not self.retriever._is_engine_encoder(embeddings)
            if rho is None and parsed.modality == "text" and foreign:
                rho, source = embedder_rho(self.gate.luma, embeddings)
            decision = self.gate.search(
                vector, question=question, filters=filters, rho=rho, rho_source=source
            )
        return question, decision

    def _vector(self, query: ParsedQuery) -> np.ndarray | None:
        """The query vector, when it is not the engine's to embed (with its calibrated ρ)."""
        retriever = self.retriever
        embed = retriever._embedder(query)  # the retriever's embeddings=, where they apply
        if embed is not None:
            return np.asarray(embed(query.value), dtype=np.float32)
        if retriever.rho is None:
            return None
        encoder = self.gate.luma.encoder
        if encoder is None:  # the retriever's validator checked it
            raise ConfigError("the engine has no encoder; open it with encoder='luma-tiny'")
        if query.modality == "text":
            return np.asarray(encoder.encode_text([query.value])[0], dtype=np.float32)
        if query.modality == "image":
            return np.asarray(encoder.encode_image([query.value])[0], dtype=np.float32)
        raise InvalidInputError(
            f"the retriever's rho={retriever.rho} cannot be applied to a gated "
            f"{query.modality} query; set it on the store with "
            f"luma.set_rho({query.modality!r}, {retriever.rho}) and leave the retriever's "
            "rho unset"
        )


def _step(steps: Iterator[AddableDict]) -> AddableDict | None:
    """The next chunk, or None at the end (for the executor, where StopIteration cannot go)."""
    return next(steps, None)


def _output(answer: Answer) -> dict[str, Any]:
    """The chain's output dict from an :class:`~luma_rag.answer.Answer`."""
    out = answer.to_dict()
    return {
        "answer": out["text"],
        "decision": out["decision"],
        "citations": out["citations"],
        "telemetry": out["telemetry"],
    }
