"""What the answer gate decides and with which settings: :class:`GateConfig`,
:class:`GateNumbers` (the numbers behind a decision) and :class:`GateDecision`.

The decision itself (:func:`~luma_rag.answer.gate.decide`) and the store-backed
:class:`~luma_rag.answer.gate.GatedRetriever` live in :mod:`luma_rag.answer.gate`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from luma_rag._checks import is_int
from luma_rag._config import ConfigBase, check
from luma_rag.relevance import RelevanceVerdict
from luma_rag.results import Hit

__all__ = ["NOT_IN_MEMORY_QUESTION", "Decision", "GateConfig", "GateDecision", "GateNumbers"]

Decision = Literal["answer", "widen", "clarify", "not_in_memory"]

#: What a NOT_IN_MEMORY decision asks the user.
NOT_IN_MEMORY_QUESTION = (
    "Nothing in memory answers this. Could you add material about it, or rephrase the question?"
)


@dataclass(frozen=True)
class GateConfig(ConfigBase):
    """Settings of the answer gate.

    Attributes:
        k: Hits fetched first, and the context an ANSWER carries; ``>= 1``.
        k_max: Largest set the gate may WIDEN to; ``>= k``.
        max_options: Most candidates a clarifying question names; ``>= 2``.
        rho: Encoder radius ρ the gate certifies its queries with, e.g. one calibrated for
            the gate's own queries by :func:`luma_rag.answer.calibrate.calibrate_gate_radius`;
            ``None`` (default) keeps the store's radius for the query's modality.
            Finite, ``>= 0``.
        fetch_k: Hits the decision carries for a downstream check such as
            :class:`~luma_rag.answer.verify.VerifyingAnswerer` (which looks for a second item
            that fits the question): after deciding, the same ranking is fetched this deep.
            The decision, its evidence and numbers are those of ``k`` / ``k_max``. ``None``
            (default): no extra fetch. ``>= k``.
        link_key: Metadata key whose equal values mark items as renderings of one thing
            (a picture and its spoken caption, the chunks of one document): e.g. ``"doc_id"``,
            LlamaIndex's ``"ref_doc_id"``, LangChain's ``"source"``. When set, a query that
            is not Safe@1 only because items of one group compete with each other is
            ANSWERed from that group when it is certified at the group level
            (:mod:`luma_rag.safety.groups`: one of its items beats every item of every
            other group under the same bounds, and the result is complete at 1); the
            answer's evidence leads with the group, its picture / video first. Items without
            the key are groups of one. ``None`` (default): items are never linked.
        prove_top: When a WIDEN / CLARIFY's top-1 is not proven to be the store's exact
            top-1 (not complete at 1: an HNSW / IVF-PQ tier may have missed a better item),
            one more search at ρ = 0 with an exact rescan checks it, and
            ``GateNumbers.top_exact`` records the answer — what a verified answer from the
            top-1 needs (:class:`~luma_rag.answer.scored.ScoredVerifyingAnswerer`'s
            verification route). Costs one exact scan for such queries in large ANN stores;
            False: never probed.

    Example:
        >>> GateConfig.from_json(GateConfig(k=3, k_max=8).to_json()).k_max
        8
    """

    k: int = 5
    k_max: int = 10
    max_options: int = 3
    rho: float | None = None
    fetch_k: int | None = None
    link_key: str | None = None
    prove_top: bool = True

    def __post_init__(self) -> None:
        check(is_int(self.k) and self.k >= 1, f"GateConfig.k must be an int >= 1, got {self.k!r}")
        check(
            is_int(self.k_max) and self.k_max >= self.k,
            f"GateConfig.k_max must be an int >= k ({self.k!r}), got {self.k_max!r}",
        )
        check(
            is_int(self.max_options) and self.max_options >= 2,
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
            self.fetch_k is None or (is_int(self.fetch_k) and self.fetch_k >= self.k),
            f"GateConfig.fetch_k must be None or an int >= k ({self.k!r}), got {self.fetch_k!r}",
        )
        check(
            self.link_key is None or (isinstance(self.link_key, str) and bool(self.link_key)),
            f"GateConfig.link_key must be None or a non-empty metadata key such as 'doc_id', "
            f"got {self.link_key!r}",
        )
        check(
            isinstance(self.prove_top, bool),
            f"GateConfig.prove_top must be True or False, got {self.prove_top!r}",
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
        complete_at: Largest ``k'`` whose top ``k'`` no outside item can overtake (ANSWER needs
            ``>= 1``, WIDEN to ``k'`` needs ``>= k'``).
        rho_source: Where ρ came from: ``"calibrated"``, ``"user"`` or ``"unset"`` (nobody
            calibrated or set it; the certificate then only covers float rounding).
        n_candidates: Candidates the certificate covers. k_checked: largest ``k'`` examined.
        group_safe: Group-Safe@1 (:mod:`luma_rag.safety.groups`) when ``GateConfig.link_key``
            is set and the gate checked it (None: not checked).
        group_margin / group_slack: the top group's lead over the best other group, and how
            far its certificate is from failing (NaN: not checked).
        group: The top group's link value (``"link:<value>"`` or ``"id:<item id>"``; None:
            not checked).
        top_exact: The top-1 is proven to be the store's exact top-1: complete at 1 under
            the bounds, or (``GateConfig.prove_top``) an exact search at ρ = 0 found the same
            top-1 with a Safe@1 margin over float rounding. False: not proven.
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
    group_safe: bool | None = None
    group_margin: float = math.nan
    group_slack: float = math.nan
    group: str | None = None
    top_exact: bool = False

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

    def as_clarify(
        self, options: Sequence[Hit], reason: str, clarification: str | None = None
    ) -> GateDecision:
        """This decision turned into a CLARIFY over ``options`` (the wrappers that overrule
        an ANSWER / WIDEN: verification, consensus, the confidence floor); the clarifying
        question names ``options`` unless ``clarification`` is given."""
        from luma_rag.answer.clarify import clarifying_question

        return dataclasses.replace(
            self,
            decision="clarify",
            k_used=0,
            evidence=tuple(options),
            reason=reason,
            clarification=clarification or clarifying_question(list(options)),
        )

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
            "relevance": self.relevance.to_dict() if self.relevance is not None else None,
            "evidence": [h.id for h in self.evidence],
            "numbers": self.numbers.to_dict(),
        }
