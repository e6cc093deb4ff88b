"""Answer-level consensus: answer only when every item that could be the top-1 gives one answer.

Safe@1 certifies that the ranking is stable, not that the question has one answer: when
several items could be the one meant, the answer depends on which. :class:`ConsensusAnswerer`
wraps any :class:`~luma_rag.answer.base.Answerer` and checks, before an ANSWER or a WIDEN
goes out, that the answerer gives the same (normalised) answer from each *contender*:

* contenders of the top-1: the returned hits ``j`` that could overtake it under the bounds,
  ``s_j + τ_j >= s_1 − τ_1``, with ``τ = perturbation_bound(ρ_c + ε_q, ε_i)``. The gate's
  Safe@1 uses the sharper pairwise test, so with ρ_c = the query's own ρ this set can still
  hold more than the top-1; a larger ``ConsensusConfig.rho`` widens it;
* for a WIDEN, also every item of the widened set (any of them could be the one meant).

Each contender is shown to the answerer as the top evidence of an ANSWER decision. If the
normalised answers agree, the original answer goes out, its telemetry carrying the check. If
they disagree, or a contender's answer cannot be read, or contenders may lie beyond the
returned hits, the decision becomes CLARIFY over contenders with different answers.

The wrapper has no store, so it does not record a knowledge gap for the CLARIFYs it makes;
callers that keep gaps can check ``answer.telemetry["consensus"]``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from luma_rag._checks import is_real
from luma_rag._config import ConfigBase, check
from luma_rag.answer.base import Answer, Answerer
from luma_rag.answer.clarify import one_per_answer
from luma_rag.answer.gate import GateDecision
from luma_rag.errors import InvalidInputError
from luma_rag.results import Hit
from luma_rag.safety import perturbation_bound

__all__ = ["ConsensusAnswerer", "ConsensusConfig", "contenders", "normalise_answer"]

logger = logging.getLogger(__name__)

_ARTICLES = re.compile(r"^(?:the|a|an|it is|it's|there (?:is|are))\s+")


def normalise_answer(text: str) -> str | None:
    """Lower-case, drop punctuation, surrounding articles and spaces; ``None`` when empty.

    >>> normalise_answer("  The Red. ")
    'red'
    """
    words = re.sub(r"[^\w\s]", " ", text.lower())
    out = _ARTICLES.sub("", " ".join(words.split()))
    return out or None


@dataclass(frozen=True)
class ConsensusConfig(ConfigBase):
    """Settings of the consensus check.

    Attributes:
        rho: Radius ρ_c of the contender bound; ``None`` (default) uses the query's own ρ
            (the decision's ``numbers.rho``). Finite, ``>= 0``.
        multiplier: Scale of the bound, as ``SafetyConfig.multiplier``; ``> 0``.
        max_contenders: Most contenders the answerer is asked about; with more, CLARIFY.
            ``>= 1``.
        check_widen: Also check WIDEN decisions (over the widened set and the contenders).
    """

    rho: float | None = None
    multiplier: float = 2.0
    max_contenders: int = 10
    check_widen: bool = True

    def __post_init__(self) -> None:
        check(
            self.rho is None or (is_real(self.rho) and math.isfinite(self.rho) and self.rho >= 0),
            f"ConsensusConfig.rho must be None or a finite number >= 0, got {self.rho!r}",
        )
        check(
            is_real(self.multiplier) and math.isfinite(self.multiplier) and self.multiplier > 0,
            f"ConsensusConfig.multiplier must be a finite number > 0, got {self.multiplier!r}",
        )
        check(
            isinstance(self.max_contenders, int)
            and not isinstance(self.max_contenders, bool)
            and self.max_contenders >= 1,
            f"ConsensusConfig.max_contenders must be an int >= 1, got {self.max_contenders!r}",
        )
        check(
            isinstance(self.check_widen, bool),
            f"ConsensusConfig.check_widen must be a bool, got {self.check_widen!r}",
        )


def contenders(
    decision: GateDecision, config: ConsensusConfig | None = None
) -> tuple[tuple[Hit, ...], bool]:
    """The hits that could be the top-1 under the bounds (the top-1 first), and completeness.

    Every candidate gets the same item-side radius, the decision's largest ``ε_i`` (a
    conservative stand-in: the decision does not carry each item's drift).

    Args:
        decision: A gate decision (its ``hits`` and ``numbers``).
        config: Contender radius and multiplier.

    Returns:
        ``(contenders, complete)``; ``complete`` is False when the last returned hit is a
        contender and the certificate covers more candidates than were returned, so more
        contenders may exist.

    Raises:
        InvalidInputError: the hits are not sorted by score, or the radii are invalid.
    """
    cfg = config if config is not None else ConsensusConfig()
    hits = decision.hits
    if not hits:
        return (), True
    scores = np.array([h.score for h in hits], dtype=np.float64)
    if np.any(np.diff(scores) > 0):
        raise InvalidInputError("the decision's hits must be sorted by score, best first")
    nums = decision.numbers
    rho = nums.rho if cfg.rho is None else cfg.rho
    eps_q = nums.epsilon if math.isfinite(nums.epsilon) else 0.0
    eps_i = nums.epsilon_items if math.isfinite(nums.epsilon_items) else 0.0
    tau = perturbation_bound(rho + eps_q, np.full(len(hits), eps_i), cfg.multiplier)
    floor = scores[0] - tau[0]
    lead = [h for i, h in enumerate(hits) if i == 0 or scores[i] + tau[i] >= floor]
    complete = not (lead[-1] is hits[-1] and len(hits) > 1 and nums.n_candidates > len(hits))
    return tuple(lead), complete


class ConsensusAnswerer:
    """An :class:`~luma_rag.answer.base.Answerer` that answers only on consensus (module doc).

    Example:
        >>> bot = ConsensusAnswerer(LlavaAnswerer("luma-tiny-llava"))
        >>> bot.answer("What color is the circle?", gate.query("a circle")).decision.decision
    """

    def __init__(
        self,
        answerer: Answerer,
        config: ConsensusConfig | None = None,
        *,
        normalise: Callable[[str], str | None] = normalise_answer,
        max_options: int = 3,
    ) -> None:
        """Wrap ``answerer``.

        Args:
            answerer: Answers each contender and the final decision.
            config: Contender bound (default :class:`ConsensusConfig`).
            normalise: Maps an answer text to what must agree (``None``: unreadable, which
                counts as disagreement); e.g. ``parse_answer`` for LUMA-Shapes.
            max_options: Most candidates a clarifying question names; ``>= 2``.
        """
        if max_options < 2:
            raise InvalidInputError(f"max_options must be >= 2, got {max_options}")
        self.answerer = answerer
        self.config = config if config is not None else ConsensusConfig()
        self.normalise = normalise
        self.max_options = max_options

    def answer(self, question: str, decision: GateDecision) -> Answer:
        """Answer ``question`` from ``decision`` if every contender agrees, else ask to clarify."""
        cfg = self.config
        if decision.decision == "clarify" or (decision.decision == "widen" and not cfg.check_widen):
            return self.answerer.answer(question, decision)
        lead, complete = contenders(decision, cfg)
        pool = list(lead)
        if decision.decision == "widen":
            pool += [h for h in decision.evidence if all(h.id != p.id for p in pool)]
        first = self.answerer.answer(question, decision)
        per_item: dict[str, str | None] = {}
        if len(pool) <= cfg.max_contenders:
            for hit in pool:
                if decision.decision == "answer" and hit.id == decision.evidence[0].id:
                    text = first.text
                else:
                    text = self.answerer.answer(question, _answer_from(decision, hit)).text
                per_item[hit.id] = self.normalise(text)
        values = set(per_item.values())
        final = self.normalise(first.text)
        agreed = (
            complete and len(per_item) == len(pool) and None not in values and values <= {final}
        )
        info: dict[str, Any] = {
            "agreed": agreed,
            "complete": complete,
            "contenders": len(pool),
            "answers": per_item,
            "gate_decision": decision.decision,
        }
        if agreed:
            return dataclasses.replace(first, telemetry={**first.telemetry, "consensus": info})
        options = one_per_answer(pool, per_item, self.max_options)
        reason = (
            f"consensus: {len(pool)} items could be the one meant and the answers differ "
            f"({sorted(str(v) for v in values)})"
            if complete and len(per_item) == len(pool)
            else f"consensus: could not check every item that could be the one meant "
            f"({len(pool)} contenders, complete={complete})"
        )
        logger.debug("%s; %s → clarify", reason, decision.decision)
        clar = decision.as_clarify(options, reason)
        out = self.answerer.answer(question, clar)
        return dataclasses.replace(out, telemetry={**out.telemetry, "consensus": info})


def _answer_from(decision: GateDecision, hit: Hit) -> GateDecision:
    """An ANSWER decision with ``hit`` as the top evidence, the rest as context."""
    rest = tuple(h for h in decision.evidence if h.id != hit.id)
    return dataclasses.replace(
        decision, decision="answer", k_used=1, evidence=(hit, *rest), clarification=None
    )
