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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from luma_rag._config import ConfigBase, check
from luma_rag.answer.clarify import clarifying_question
from luma_rag.errors import InvalidInputError
from luma_rag.relevance import RelevanceModel, RelevanceVerdict
from luma_rag.results import Hit, QueryResult

if TYPE_CHECKING:
    from luma_rag.engine import Luma

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

Decision = Literal["answer", "widen", "clarify", "not_in_memory"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class GateConfig(ConfigBase):
    """Settings of the answer gate.

    Attributes:
        k: Hits fetched first, and the context an ANSWER carries; ``>= 1``.
        k_max: Largest set the gate may WIDEN to; ``>= k``.
        max_options: Most candidates a clarifying question names; ``>= 2``.
        rho: Encoder radius ρ the gate certifies its queries with, e.g. one calibrated for
            the gate's own queries by :func:`luma_rag.answer.calibrate.calibrate_gate`;
            ``None`` (default) keeps the store's radius for the query's modality.
            Finite, ``>= 0``.
        fetch_k: Hits the decision carries for a downstream check such as
            :class:`~luma_rag.answer.verify.VerifyingAnswerer` (which looks for a second item
            that fits the question): after deciding, the same ranking is fetched this deep.
            The decision, its evidence and numbers are those of ``k`` / ``k_max``. ``None``
            (default): no extra fetch. ``>= k``.

    Example:
        >>> GateConfig.from_json(GateConfig(k=3, k_max=8).to_json())
        GateConfig(k=3, k_max=8, max_options=3, rho=None, fetch_k=None)
    """

    k: int = 5
    k_max: int = 10
    max_options: int = 3
    rho: float | None = None
    fetch_k: int | None = None

    def __post_init__(self) -> None:
        check(_is_int(self.k) and self.k >= 1, f"GateConfig.k must be an int >= 1, got {self.k!r}")
        check(
            _is_int(self.k_max) and self.k_max >= self.k,
            f"GateConfig.k_max must be an int >= k ({self.k!r}), got {self.k_max!r}",
        )
        check(
            _is_int(self.max_options) and self.max_options >= 2,
            f"GateConfig.max_options must be an int >= 2, got {self.max_options!r}",
        )
        if self.rho is not None:
            check(
                isinstance(self.rho, int | float)
                and not isinstance(self.rho, bool)
                and math.isfinite(self.rho)
                and self.rho >= 0,
                f"GateConfig.rho must be None or a finite number >= 0, got {self.rho!r}",
            )
            object.__setattr__(self, "rho", float(self.rho))
        check(
            self.fetch_k is None or (_is_int(self.fetch_k) and self.fetch_k >= self.k),
            f"GateConfig.fetch_k must be None or an int >= k ({self.k!r}), got {self.fetch_k!r}",
        )


@dataclass(frozen=True)
class GateNumbers:
    """The numbers behind a gate decision (the paper's telemetry plus what the gate used).

    Attributes:
        margin_top2: γ = s1 − s2 (NaN with fewer than 2 candidates).
        delta_k: δ at the decision's set size ``k_used`` (s_k' − s_k'+1) for WIDEN, else the
            certificate's δ_k; NaN when undefined.
        slack: How far the decision's set is from losing its certificate: ``slack_1`` for
            ANSWER and CLARIFY, the slack of the widened set for WIDEN (exact when every
            candidate has the same τ, a lower bound otherwise). Positive means safe.
        epsilon: Bridge drift on the query side (ε_q). epsilon_items: largest item drift ε_i.
        zeta_mean / zeta_max: PQ error of the warm candidates (ζ).
        rho: Encoder radius used (ρ).
        safe1: Safe@1. safe_k: the smallest safe ``k'`` the gate accepted (None: none).
        complete: No item outside the candidates can overtake the top ``k``.
        n_candidates: Candidates the certificate covers. k_checked: largest ``k'`` examined.
        complete_at: Largest ``k'`` whose top ``k'`` no outside item can overtake (ANSWER needs
            ``>= 1``, WIDEN to ``k'`` needs ``>= k'``).
        rho_source: Where ρ came from: ``"calibrated"``, ``"user"`` or ``"unset"`` (nobody
            calibrated or set it; the certificate then only covers float rounding).
    """

    margin_top2: float
    delta_k: float
    slack: float
    epsilon: float
    epsilon_items: float
    zeta_mean: float
    zeta_max: float
    rho: float
    safe1: bool
    safe_k: int | None
    complete: bool
    n_candidates: int
    k_checked: int
    complete_at: int = 0
    rho_source: str = "unset"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict; NaN and ±inf become ``None``."""
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in dataclasses.asdict(self).items()
        }


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided for one query, with its evidence and the numbers behind it.

    Attributes:
        decision: ``"answer"``, ``"widen"``, ``"clarify"`` or ``"not_in_memory"`` (the
            relevance test failed: nothing in memory answers the question).
        k_used: Size of the certified set the decision rests on: 1 for ANSWER, ``k'`` for
            WIDEN, 0 for CLARIFY and NOT_IN_MEMORY.
        evidence: Hits to answer from, best first: the top ``k`` for ANSWER (the first is the
            answer, the rest context), the top ``k'`` for WIDEN, the leading candidates for
            CLARIFY.
        reason: One sentence saying why, with the numbers.
        numbers: The :class:`GateNumbers`.
        clarification: The clarifying question (CLARIFY only).
        settled: False when the result could not show whether some ``k'`` up to ``k_max`` is
            safe (it was fetched with a smaller ``k``); re-query with ``k_max`` to settle it.
        requeried: The decision came from a second query with ``k_max``.
        gap_id: Id of the knowledge gap recorded for a CLARIFY / NOT_IN_MEMORY, if any.
        hits: Every hit of the result it was decided on.
        relevance: The relevance verdict the gate read (None: no relevance model).
    """

    decision: Decision
    k_used: int
    evidence: tuple[Hit, ...]
    reason: str
    numbers: GateNumbers
    clarification: str | None = None
    settled: bool = True
    requeried: bool = False
    gap_id: int | None = None
    hits: tuple[Hit, ...] = field(default=(), repr=False)
    relevance: RelevanceVerdict | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary for result metadata (LangChain / LlamaIndex / the app)."""
        return {
            "decision": self.decision,
            "k_used": self.k_used,
            "reason": self.reason,
            "clarification": self.clarification,
            "settled": self.settled,
            "requeried": self.requeried,
            "gap_id": self.gap_id,
            "evidence": [h.id for h in self.evidence],
            "numbers": self.numbers.to_dict(),
            "relevance": self.relevance.to_dict() if self.relevance is not None else None,
        }


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
        complete_at=int(getattr(tel, "complete_at", 0)),
        rho_source=str(getattr(tel, "rho_source", "unset")),
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


def decide(
    result: QueryResult,
    config: GateConfig | None = None,
    relevance: RelevanceVerdict | None = None,
) -> GateDecision:
    """Decide ANSWER, WIDEN, CLARIFY or NOT_IN_MEMORY for one query result. Pure.

    NOT_IN_MEMORY first, when ``relevance`` says the best evidence is not relevant: nothing
    irrelevant is ever answered from or widened to. ANSWER when the result is Safe@1 *and*
    complete at 1 (no item outside the candidates can overtake the top-1; see
    ``Telemetry.complete_at``); else WIDEN to the certificate's ``safe_prefix`` (the
    smallest safe ``k'``, computed by the engine over all reranked candidates) when it is
    ``<= k_max`` and leaves a candidate out; else CLARIFY. The certificate checks prefixes up
    to the ``k`` the result was fetched with only; when that is below ``min(k_max, n − 1)``
    the CLARIFY is returned with ``settled=False`` (see the module docstring).

    Args:
        result: A query's hits, telemetry and certificate.
        config: Gate settings (default :class:`GateConfig`).
        relevance: The relevance verdict for this query (None: not checked).

    Returns:
        The :class:`GateDecision`.

    Raises:
        InvalidInputError: the result holds more hits than its certificate covers.
    """
    decision = _decide(result, config if config is not None else GateConfig(), relevance)
    return dataclasses.replace(decision, relevance=relevance)


NOT_IN_MEMORY_QUESTION = (
    "Nothing in memory answers this. Could you add material about it, or rephrase the question?"
)


def _complete_at(result: QueryResult) -> int:
    """Largest k' the result is complete at (``complete`` alone implies the full k)."""
    tel, cert = result.telemetry, result.certificate
    full = min(int(cert.k), int(cert.n)) if tel.complete else 0
    return max(int(getattr(tel, "complete_at", 0)), full)


def _decide(
    result: QueryResult, cfg: GateConfig, relevance: RelevanceVerdict | None
) -> GateDecision:
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
    if relevance is not None and not relevance.relevant:
        numbers = _numbers(
            result, slack=cert.slack_1, delta_k=cert.delta_k, safe_k=None, k_checked=0
        )
        return GateDecision(
            "not_in_memory", 0, (), relevance.reason, numbers, NOT_IN_MEMORY_QUESTION, hits=all_hits
        )
    complete_at = _complete_at(result)
    if result.telemetry.safe1 and complete_at >= 1:
        numbers = _numbers(result, slack=cert.slack_1, delta_k=cert.delta_k, safe_k=1, k_checked=1)
        reason = (
            f"Safe@1: the top item's lower bound beats every rival's upper bound "
            f"(margin γ={cert.margin_top2:.4g}, slack {cert.slack_1:.4g})"
        )
        return GateDecision("answer", 1, tuple(hits[: cfg.k]), reason, numbers, hits=all_hits)

    kp = cert.safe_prefix
    if kp is not None and 1 < kp <= min(k_checked, complete_at):
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
    if result.telemetry.safe1 and complete_at < 1:
        reason = (
            "Safe@1 among the candidates, but the candidate set is not proven complete (an "
            "approximate tier may have missed a better item); not answering from it"
        )
    elif settled:
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
            relevance: The relevance test (:mod:`luma_rag.relevance`). ``"auto"`` (default):
                the store's own calibration, calibrated on first use from its items' texts
                and persisted (see :func:`luma_rag.answer.relevance_auto.store_relevance`);
                ``None``: no relevance test.
        """
        self.luma = luma
        self.config = config if config is not None else GateConfig()
        self.record_gaps = record_gaps
        self._relevance_arg = relevance
        self._relevance: RelevanceModel | None = None
        self._relevance_ready = False

    @property
    def relevance(self) -> RelevanceModel | None:
        """The relevance model in use (calibrated on first use with ``"auto"``)."""
        if not self._relevance_ready:
            arg = self._relevance_arg
            if arg == "auto":
                from luma_rag.answer.relevance_auto import store_relevance

                self._relevance = store_relevance(self.luma)
            else:
                self._relevance = arg if isinstance(arg, RelevanceModel) else None
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

        # Only pass rho when the gate has its own, so stand-ins for Luma need not take it.
        extra: dict[str, Any] = {} if self.config.rho is None else {"rho": self.config.rho}

        def fetch(k: int) -> QueryResult:
            return self.luma.query(
                text, image=image, audio=audio, video=video, k=k, filters=filters, **extra
            )

        modality = (
            "text"
            if text is not None
            else next((kind for kind, p in media.items() if p is not None), "text")
        )
        return self._gate(fetch, label, text, modality)

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

        return self._gate(fetch, question or "vector query", question, "text")

    def _judge(
        self, result: QueryResult, text: str | None, modality: str
    ) -> RelevanceVerdict | None:
        model = self.relevance
        if model is None:
            return None
        top = result.hits[0].score if result.hits else None
        return model.judge(text, modality, top)

    def _gate(
        self,
        fetch: Callable[[int], QueryResult],
        label: str,
        text: str | None = None,
        modality: str = "text",
    ) -> GateDecision:
        cfg = self.config
        wide = max(cfg.k_max, cfg.max_options)
        first = fetch(cfg.k)
        verdict = self._judge(first, text, modality)
        decision = decide(first, cfg, verdict)
        few_options = len(decision.hits) < min(cfg.max_options, decision.numbers.n_candidates)
        if wide > cfg.k and (
            not decision.settled or (decision.decision == "clarify" and few_options)
        ):
            logger.debug("gate: re-querying with k=%d (%s)", wide, decision.reason)
            decision = dataclasses.replace(decide(fetch(wide), cfg, verdict), requeried=True)
        if cfg.fetch_k is not None and cfg.fetch_k > len(decision.hits):
            deeper = fetch(cfg.fetch_k).hits
            if [h.id for h in deeper[: len(decision.hits)]] == [h.id for h in decision.hits]:
                decision = dataclasses.replace(decision, hits=tuple(deeper))
            else:  # a store changed in between: keep what the decision was made on
                logger.warning("gate: the deeper fetch ranks differently; keeping the hits")
        if decision.decision in ("clarify", "not_in_memory") and self.record_gaps:
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
