"""The answer gate: ANSWER, WIDEN or CLARIFY, decided from a query's Safe@k certificate.

* Safe@1 → **ANSWER** from the top item, with the top ``k`` as context.
* else the smallest ``k' <= k_max`` with Safe@k' → **WIDEN**: answer from that stable set.
* else → **CLARIFY**: ask a question built from what distinguishes the leading candidates, and
  log the query as a knowledge gap.

Before all three, the relevance test (:mod:`luma_rag.relevance`): when the best evidence is
not relevant at all the outcome is **NOT_IN_MEMORY** ("nothing in memory answers this"),
logged as a knowledge gap; nothing irrelevant is ever answered from or widened to. A fourth
outcome rather than a flavour of CLARIFY, because the user's next step differs (add material
or rephrase, not pick a candidate) and LangChain / LlamaIndex code branches on the decision
string alone. ANSWER also needs the candidate set complete at 1 (``Telemetry.complete_at``):
no item outside it can overtake the top-1.

:func:`decide` is pure: it reads one :class:`~luma_rag.results.QueryResult`. The engine
certifies every reranked candidate (``n`` of them, usually ``LumaConfig.rerank_depth``) but
checks prefixes only up to the ``k`` it was asked for, and returns the scores of the top ``k``
only, so a result fetched with ``k < k_max`` cannot say whether some ``k'`` in ``(k, k_max]``
is safe. :func:`decide` then marks its CLARIFY as not ``settled``, and :class:`GatedRetriever`
re-queries with ``k_max`` (the same candidates, certified further). Recomputing Safe@k' from
the returned hits alone would be unsound: over ``m`` hits, Safe@m holds trivially because the
competitors beyond them are missing.

A widened set must leave at least one candidate out (``k' < n``): "all the candidates there
are" is trivially stable and certifies nothing, so it counts as CLARIFY.

Linked items (``GateConfig.link_key``). Items that share a link value in their metadata are
renderings of one thing (a picture and its spoken caption). When the item-level decision is
not ANSWER, the gate fetches every certified candidate with its raw vector and checks
Group-Safe@1 (:func:`luma_rag.safety.groups.certify_groups`: one item of the top group beats
every item of every other group under the same bounds, per item or pairwise); with the
result complete at 1 it ANSWERs from that group. An ANSWER's evidence then leads with the
top group's items, its picture / video first, so an answerer that is shown one image is
shown the group's own picture, never a context hit's. NOT_IN_MEMORY is never overruled.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from luma_rag._checks import MAX_ENCODED_CHARS, check_text, encoder_prefix
from luma_rag.answer.clarify import clarifying_question
from luma_rag.answer.decision import (
    NOT_IN_MEMORY_QUESTION,
    Decision,
    GateConfig,
    GateDecision,
    GateNumbers,
)
from luma_rag.answer.linked import linked_decision
from luma_rag.answer.rules import decide
from luma_rag.errors import ConfigError
from luma_rag.relevance import RelevanceModel
from luma_rag.results import QueryResult

if TYPE_CHECKING:
    from luma_rag.embedder import Embedded
    from luma_rag.engine import Luma

__all__ = [
    "NOT_IN_MEMORY_QUESTION",
    "Decision",
    "GateConfig",
    "GateDecision",
    "GateNumbers",
    "GatedRetriever",
    "clarifying_question",
    "decide",
    "gated_query",
]

logger = logging.getLogger(__name__)


def _gap_detail(decision: GateDecision) -> dict[str, Any]:
    return {
        "candidates": [
            {"id": h.id, "score": h.score, "modality": h.modality, "text": h.text}
            for h in decision.evidence
        ],
        "margins": decision.numbers.to_dict(),
        "reason": decision.reason,
        "clarification": decision.clarification,
        "decision": decision.decision,
        "relevance": decision.relevance.to_dict() if decision.relevance is not None else None,
    }


class GatedRetriever:
    """A :class:`~luma_rag.engine.Luma` store behind the answer gate.

    Each query is fetched with ``config.k``. When that result cannot settle the decision (not
    Safe@1 and no safe ``k' <= k``), or a CLARIFY has fewer hits than a clarifying question
    should name, it is re-queried once with ``max(k_max, max_options)``: the same candidates,
    certified further. A CLARIFY is logged as a knowledge gap (``luma.record_gap``) unless
    ``record_gaps=False``.

    Example:
        >>> gate = GatedRetriever(luma, GateConfig(k=5, k_max=10))
        >>> d = gate.query("a red circle on the left")
        >>> d.decision, [h.id for h in d.evidence]
    """

    def __init__(
        self,
        luma: Luma,
        config: GateConfig | None = None,
        *,
        record_gaps: bool = True,
        relevance: RelevanceModel | Literal["auto"] | None = "auto",
    ) -> None:
        """Wrap ``luma``.

        Args:
            luma: An open store (with an encoder for :meth:`query`).
            config: Gate settings (default :class:`GateConfig`).
            record_gaps: Log every CLARIFY and NOT_IN_MEMORY as a knowledge gap.
            relevance: The relevance test. ``"auto"``: the store's own, calibrated on first
                use and persisted (:func:`~luma_rag.answer.relevance_auto.store_relevance`);
                ``None``: none.
        """
        self.luma = luma
        self.config = config if config is not None else GateConfig()
        self.record_gaps = record_gaps
        self._relevance_arg = relevance
        self._relevance: RelevanceModel | None = None
        self._relevance_ready = False

    @property
    def relevance(self) -> RelevanceModel | None:
        """The relevance model in use (with ``"auto"``, calibrated on first use)."""
        if not self._relevance_ready:
            if self._relevance_arg == "auto":
                from luma_rag.answer.relevance_auto import store_relevance

                self._relevance = store_relevance(self.luma)
            elif isinstance(self._relevance_arg, RelevanceModel):
                self._relevance = self._relevance_arg
            self._relevance_ready = True
        return self._relevance

    def query(
        self,
        text: str | None = None,
        *,
        image: str | os.PathLike[str] | None = None,
        audio: str | os.PathLike[str] | None = None,
        video: str | os.PathLike[str] | None = None,
        filters: Mapping[str, Any] | None = None,
    ) -> GateDecision:
        """Gate a text / image / audio / video query (exactly one), as ``Luma.query`` takes.

        The query is embedded once with the store's encoder and every fetch (first, re-query
        with ``k_max``, the deeper ``fetch_k`` ranking) searches by that vector, with the
        store's radius ρ for the query's modality unless ``config.rho`` is set.

        Returns:
            The :class:`GateDecision`.
        """
        media = {"image": image, "audio": audio, "video": video}
        label = (
            text
            if text is not None
            else next(
                (f"{kind} query: {os.fspath(p)}" for kind, p in media.items() if p is not None),
                "",
            )
        )
        embedded = self._embed(text, image=image, audio=audio, video=video)
        if embedded is None:  # no public audio encoder to embed with: the store embeds it
            extra: dict[str, Any] = {} if self.config.rho is None else {"rho": self.config.rho}

            def requery(k: int) -> QueryResult:
                return self.luma.query(
                    text, image=image, audio=audio, video=video, k=k, filters=filters, **extra
                )

            return self._gate(requery, label, text, "audio", exact=False)
        rho = self.config.rho
        extra = {}
        if rho is None and embedded.modality in self.luma.rho:  # as Luma.query uses
            rho = self.luma.rho[embedded.modality]
            sources = getattr(self.luma, "rho_source", {})
            extra["rho_source"] = (
                "user" if sources.get(embedded.modality) == "user" else "calibrated"
            )
        vector, bridged = embedded.vector, embedded.bridged

        fetch = self._searcher(vector, filters, rho, bridged, extra)
        return self._gate(fetch, label, text, embedded.modality)

    def _embed(
        self,
        text: str | None,
        *,
        image: str | os.PathLike[str] | None,
        audio: str | os.PathLike[str] | None,
        video: str | os.PathLike[str] | None,
    ) -> Embedded | None:
        """Embed the query once with the store's public encoders (None: audio, no encoder)."""
        from luma_rag.embedder import MediaEmbedder

        encoder = getattr(self.luma, "encoder", None)
        if encoder is None:
            raise ConfigError(
                "this store has no encoder; open it with Luma.open(path, encoder='luma-tiny') "
                "(or another model) to gate text and media queries, or use gate.search(vector)"
            )
        audio_encoder = getattr(self.luma, "audio_encoder", None) if audio is not None else None
        if audio is not None and audio_encoder is None:
            return None
        if isinstance(text, str):  # the bound Luma.query applies: the encoder sees a prefix
            text, cut = encoder_prefix(check_text(text, "text"))
            if cut:
                logger.info("gate: query text truncated to %d characters", MAX_ENCODED_CHARS)
        embedder = MediaEmbedder(encoder, audio_encoder)
        return embedder.embed(text=text, image=image, audio=audio, video=video)

    def search(
        self,
        vector: Any,
        *,
        question: str | None = None,
        filters: Mapping[str, Any] | None = None,
        rho: float | None = None,
        bridged: bool = False,
        rho_source: Literal["calibrated", "user", "unset"] | None = None,
    ) -> GateDecision:
        """Gate a raw-vector query, as ``Luma.search`` takes.

        Args:
            vector: (dim,) float query vector.
            question: The text the vector stands for; what a knowledge gap records.
            filters, rho, bridged: passed to ``Luma.search``; ``rho`` defaults to the gate's
                ``config.rho`` (then ``SafetyConfig.rho``).
            rho_source: where ``rho`` came from (see ``Luma.search``).

        Returns:
            The :class:`GateDecision`.
        """
        rho = self.config.rho if rho is None else rho

        extra = {} if rho_source is None else {"rho_source": rho_source}

        fetch = self._searcher(vector, filters, rho, bridged, extra)
        return self._gate(fetch, question or "vector query", question, "text")

    def _searcher(
        self,
        vector: Any,
        filters: Mapping[str, Any] | None,
        rho: float | None,
        bridged: bool,
        extra: dict[str, Any],
    ) -> Callable[..., QueryResult]:
        """``fetch(k)``: ``Luma.search`` at ``rho``, made complete; ``fetch(k, exact=True)``: the
        store's exact top-1 (ρ 0, rescanned when not proven complete) for ``prove_top``."""

        def fetch(k: int, exact: bool = False) -> QueryResult:
            if exact:
                return self.luma.search(
                    vector, 1, filters=filters, rho=0.0, bridged=bridged, ensure_complete=True
                )
            return self.luma.search(
                vector, k, filters=filters, rho=rho, bridged=bridged, ensure_complete=True, **extra
            )

        return fetch

    def _gate(
        self,
        fetch: Callable[..., QueryResult],
        label: str,
        text: str | None = None,
        modality: str = "text",
        *,
        exact: bool = True,
    ) -> GateDecision:
        """Decide from ``fetch(k)``; ``exact``: ``fetch(k, exact=True)`` gives the store's
        exact top-1 (for ``GateConfig.prove_top``)."""
        cfg = self.config

        def exact_top() -> QueryResult:
            return fetch(1, exact=True)

        wide = max(cfg.k_max, cfg.max_options)
        first = fetch(cfg.k)
        model = self.relevance
        top = first.hits[0].score if first.hits else None
        verdict = model.judge(text, modality, top) if model is not None else None
        decision = decide(first, cfg, verdict)
        few_options = len(decision.hits) < min(cfg.max_options, decision.numbers.n_candidates)
        if wide > cfg.k and (
            not decision.settled or (decision.decision == "clarify" and few_options)
        ):
            logger.debug("gate: re-querying with k=%d (%s)", wide, decision.reason)
            decision = dataclasses.replace(decide(fetch(wide), cfg, verdict), requeried=True)
        if cfg.link_key is not None and decision.decision != "not_in_memory":
            decision = linked_decision(decision, fetch, self.luma, cfg)
        if cfg.fetch_k is not None and cfg.fetch_k > len(decision.hits):
            deeper = fetch(cfg.fetch_k).hits
            if [h.id for h in deeper[: len(decision.hits)]] == [h.id for h in decision.hits]:
                decision = dataclasses.replace(decision, hits=tuple(deeper))
            else:  # a store changed in between: keep what the decision was made on
                logger.warning("gate: the deeper fetch ranks differently; keeping the hits")
        if cfg.prove_top and exact:
            decision = _prove_top(decision, exact_top)
        if decision.decision in ("clarify", "not_in_memory") and self.record_gaps:
            gap = self.luma.record_gap(label or "(empty query)", _gap_detail(decision))
            decision = dataclasses.replace(decision, gap_id=gap)
        return decision


def _prove_top(decision: GateDecision, exact_top: Callable[[], QueryResult]) -> GateDecision:
    """``decision`` with ``numbers.top_exact`` set when an exact search at ρ = 0 (rescanned,
    Safe@1 over float rounding, complete at 1) finds the same top-1 (WIDEN / CLARIFY only)."""
    if decision.decision not in ("widen", "clarify") or not decision.hits:
        return decision
    if decision.numbers.top_exact:
        return decision
    res = exact_top()
    tel = res.telemetry
    same = bool(res.hits) and res.hits[0].id == decision.hits[0].id
    if not (same and tel.safe1 and tel.complete_at >= 1):
        logger.debug("gate: the top-1 is not proven exact (%s)", "other top" if not same else
                     "not Safe@1 at rho 0 or not complete")  # fmt: skip
        return decision
    numbers = dataclasses.replace(decision.numbers, top_exact=True)
    return dataclasses.replace(decision, numbers=numbers)


def gated_query(
    luma: Luma,
    text: str | None = None,
    *,
    image: str | os.PathLike[str] | None = None,
    audio: str | os.PathLike[str] | None = None,
    video: str | os.PathLike[str] | None = None,
    config: GateConfig | None = None,
    filters: Mapping[str, Any] | None = None,
    record_gaps: bool = True,
) -> GateDecision:
    """Query ``luma`` and gate the result; see :class:`GatedRetriever`.

    Returns:
        The :class:`GateDecision`.
    """
    gate = GatedRetriever(luma, config, record_gaps=record_gaps)
    return gate.query(text, image=image, audio=audio, video=video, filters=filters)
