"""The answer gate: ANSWER, WIDEN or CLARIFY, decided from a query's Safe@k certificate.

* Safe@1 → **ANSWER** from the top item, with the top ``k`` as context.
* else the smallest ``k' <= k_max`` with Safe@k' → **WIDEN**: answer from that stable set.
* else → **CLARIFY**: ask a question built from what distinguishes the leading candidates, and
  log the query as a knowledge gap.

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
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from luma_rag._checks import MAX_ENCODED_CHARS, check_text, encoder_prefix
from luma_rag.answer.clarify import clarifying_question
from luma_rag.answer.decision import Decision, GateConfig, GateDecision, GateNumbers
from luma_rag.errors import ConfigError, InvalidInputError
from luma_rag.results import QueryResult

if TYPE_CHECKING:
    from luma_rag.embedder import Embedded
    from luma_rag.engine import Luma
    from luma_rag.results import Hit

__all__ = [
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


def _numbers(
    result: QueryResult, *, slack: float, delta_k: float, safe_k: int | None, k_checked: int
) -> GateNumbers:
    tel = result.telemetry
    return GateNumbers(
        margin_top2=float(tel.margin_top2),
        delta_k=float(delta_k),
        slack=float(slack),
        epsilon=float(tel.epsilon),
        epsilon_items=float(tel.epsilon_items),
        zeta_mean=float(tel.zeta_mean),
        zeta_max=float(tel.zeta_max),
        rho=float(tel.rho),
        safe1=bool(tel.safe1),
        safe_k=safe_k,
        complete=bool(tel.complete),
        n_candidates=int(result.certificate.n),
        k_checked=int(k_checked),
    )


def _widened_slack(result: QueryResult, kp: int) -> float:
    """Slack of the top-``kp`` set: exact at the certified ``k``, else from the hits.

    Beyond the returned hits only τ is known, so their rival ``s + τ`` is bounded by the last
    hit's score plus their largest τ: exact when τ is uniform, a lower bound on the slack
    otherwise.
    """
    cert = result.certificate
    if kp == min(cert.k, cert.n):
        return float(cert.slack_k)
    scores = [h.score for h in result.hits]
    tau = [float(t) for t in cert.tau]
    m = len(scores)
    floor = min(s - t for s, t in zip(scores[:kp], tau[:kp], strict=True))
    rivals = [s + t for s, t in zip(scores[kp:m], tau[kp:m], strict=True)]
    if cert.n > m:
        rivals.append(scores[-1] + max(tau[m:]))
    return floor - max(rivals) if rivals else math.inf


def _leading(result: QueryResult, limit: int) -> tuple[Hit, ...]:
    """Candidates that could be the top-1 under the bounds (at least two), best first."""
    hits, tau = result.hits, result.certificate.tau
    if len(hits) <= 2:
        return tuple(hits)
    top_floor = hits[0].score - float(tau[0])
    lead = [h for i, h in enumerate(hits) if i == 0 or h.score + float(tau[i]) >= top_floor]
    if len(lead) < 2:
        lead = list(hits[:2])
    return tuple(lead[:limit])


def decide(result: QueryResult, config: GateConfig | None = None) -> GateDecision:
    """Decide ANSWER, WIDEN or CLARIFY for one query result. Pure.

    ANSWER when the result is Safe@1; else WIDEN to the certificate's ``safe_prefix`` (the
    smallest safe ``k'``, computed by the engine over all reranked candidates) when it is
    ``<= k_max`` and leaves a candidate out; else CLARIFY. The certificate checks prefixes up
    to the ``k`` the result was fetched with only; when that is below ``min(k_max, n − 1)``
    the CLARIFY is returned with ``settled=False`` (see the module docstring).

    Args:
        result: A query's hits, telemetry and certificate.
        config: Gate settings (default :class:`GateConfig`).

    Returns:
        The :class:`GateDecision`.

    Raises:
        InvalidInputError: the result holds more hits than its certificate covers.
    """
    cfg = config if config is not None else GateConfig()
    cert, hits = result.certificate, list(result.hits)
    n = int(cert.n)
    if len(hits) > n:
        raise InvalidInputError(
            f"the result has {len(hits)} hits but its certificate covers {n} candidates; "
            "certify the full ranked candidate list"
        )
    widen_limit = max(0, min(cfg.k_max, n - 1))  # k' = n leaves nothing out: vacuous
    k_checked = min(cert.k, widen_limit, len(hits))
    all_hits = tuple(hits)
    if not hits:
        question = clarifying_question([])
        numbers = _numbers(result, slack=math.nan, delta_k=math.nan, safe_k=None, k_checked=0)
        return GateDecision(
            "clarify",
            0,
            (),
            "no candidates: the memory holds nothing that matches",
            numbers,
            question,
            hits=all_hits,
        )
    if result.telemetry.safe1:
        numbers = _numbers(result, slack=cert.slack_1, delta_k=cert.delta_k, safe_k=1, k_checked=1)
        reason = (
            f"Safe@1: the top item's lower bound beats every rival's upper bound "
            f"(margin γ={cert.margin_top2:.4g}, slack {cert.slack_1:.4g})"
        )
        return GateDecision("answer", 1, tuple(hits[: cfg.k]), reason, numbers, hits=all_hits)

    kp = cert.safe_prefix
    if kp is not None and 1 < kp <= k_checked:
        slack = _widened_slack(result, kp)
        delta = hits[kp - 1].score - hits[kp].score if kp < len(hits) else cert.delta_k
        numbers = _numbers(result, slack=slack, delta_k=delta, safe_k=kp, k_checked=k_checked)
        reason = (
            f"not Safe@1 (margin γ={cert.margin_top2:.4g} within the bounds), but the top "
            f"{kp} are Safe@{kp}: no perturbation within the bounds changes that set"
        )
        return GateDecision("widen", kp, tuple(hits[:kp]), reason, numbers, hits=all_hits)

    settled = cert.k >= widen_limit
    lead = _leading(result, cfg.max_options)
    numbers = _numbers(
        result, slack=cert.slack_1, delta_k=cert.delta_k, safe_k=None, k_checked=k_checked
    )
    if settled:
        reason = (
            f"no set of k' <= {widen_limit} results is stable (Safe@1 slack "
            f"{cert.slack_1:.4g}); the leading candidates are too close to tell apart"
        )
    else:
        reason = (
            f"not Safe@1 and no safe k' <= {k_checked}; the result was fetched with "
            f"k={cert.k}, so re-query with k={cfg.k_max} to check larger sets"
        )
    return GateDecision(
        "clarify", 0, lead, reason, numbers, clarifying_question(lead), settled, hits=all_hits
    )


def _gap_detail(decision: GateDecision) -> dict[str, Any]:
    return {
        "candidates": [
            {"id": h.id, "score": h.score, "modality": h.modality, "text": h.text}
            for h in decision.evidence
        ],
        "margins": decision.numbers.to_dict(),
        "reason": decision.reason,
        "clarification": decision.clarification,
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
        self, luma: Luma, config: GateConfig | None = None, *, record_gaps: bool = True
    ) -> None:
        """Wrap ``luma``.

        Args:
            luma: An open store (with an encoder for :meth:`query`).
            config: Gate settings (default :class:`GateConfig`).
            record_gaps: Log every CLARIFY as a knowledge gap.
        """
        self.luma = luma
        self.config = config if config is not None else GateConfig()
        self.record_gaps = record_gaps

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

            return self._gate(requery, label)
        rho = self.config.rho
        if rho is None:  # the store's radius for the query's modality, as Luma.query uses
            rho = self.luma.rho.get(embedded.modality, self.luma.config.safety.rho)
        vector, bridged = embedded.vector, embedded.bridged

        def fetch(k: int) -> QueryResult:
            return self.luma.search(vector, k, filters=filters, rho=rho, bridged=bridged)

        return self._gate(fetch, label)

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
    ) -> GateDecision:
        """Gate a raw-vector query, as ``Luma.search`` takes.

        Args:
            vector: (dim,) float query vector.
            question: The text the vector stands for; what a knowledge gap records.
            filters, rho, bridged: passed to ``Luma.search``; ``rho`` defaults to the gate's
                ``config.rho`` (then ``SafetyConfig.rho``).

        Returns:
            The :class:`GateDecision`.
        """
        rho = self.config.rho if rho is None else rho

        def fetch(k: int) -> QueryResult:
            return self.luma.search(vector, k, filters=filters, rho=rho, bridged=bridged)

        return self._gate(fetch, question or "vector query")

    def _gate(self, fetch: Callable[[int], QueryResult], label: str) -> GateDecision:
        cfg = self.config
        wide = max(cfg.k_max, cfg.max_options)
        decision = decide(fetch(cfg.k), cfg)
        few_options = len(decision.hits) < min(cfg.max_options, decision.numbers.n_candidates)
        if wide > cfg.k and (
            not decision.settled or (decision.decision == "clarify" and few_options)
        ):
            logger.debug("gate: re-querying with k=%d (%s)", wide, decision.reason)
            decision = dataclasses.replace(decide(fetch(wide), cfg), requeried=True)
        if cfg.fetch_k is not None and cfg.fetch_k > len(decision.hits):
            deeper = fetch(cfg.fetch_k).hits
            if [h.id for h in deeper[: len(decision.hits)]] == [h.id for h in decision.hits]:
                decision = dataclasses.replace(decision, hits=tuple(deeper))
            else:  # a store changed in between: keep what the decision was made on
                logger.warning("gate: the deeper fetch ranks differently; keeping the hits")
        if decision.decision == "clarify" and self.record_gaps:
            gap = self.luma.record_gap(label or "(empty query)", _gap_detail(decision))
            decision = dataclasses.replace(decision, gap_id=gap)
        return decision


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
