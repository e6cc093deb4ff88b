"""An answerer without a model: an honest, cited summary of the gate's evidence.

It never invents content: it reports what was retrieved, how sure the certificate is, and,
when the gate says CLARIFY, asks the gate's clarifying question. It is the offline default of
the demo and the reference the model-based answerers are compared against.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from luma_rag.answer.base import Answer, Evidence
from luma_rag.answer.gate import GateDecision

__all__ = ["EvidenceAnswerer"]

logger = logging.getLogger(__name__)


def _num(value: float) -> str:
    return f"{value:.3f}" if value == value else "n/a"  # NaN != NaN


class EvidenceAnswerer:
    """Summarises the evidence with citations; distinct wording for ANSWER, WIDEN, CLARIFY.

    Example:
        >>> decision = gated_query(luma, "a red circle")
        >>> print(EvidenceAnswerer().answer("a red circle", decision).text)
        Top match [1]: a red circle on the left (image, score 0.830). Also relevant: ...
    """

    name = "evidence"

    def sentences(self, question: str, decision: GateDecision) -> list[str]:
        """The answer text as sentences (joined by single spaces in :meth:`answer`).

        Args:
            question: The user's question (not echoed; kept for the protocol).
            decision: The gate's decision.

        Returns:
            The sentences of the answer text, in order.
        """
        evidence = Evidence.from_decision(decision)
        lines = evidence.lines()
        nums = decision.numbers
        if decision.decision == "answer":
            out = [f"Top match [1]: {evidence.describe(0)}."]
            if len(lines) > 1:
                out.append("Also relevant: " + "; ".join(lines[1:]) + ".")
            if nums.n_candidates < 2:
                out.append("It is the only candidate in memory.")
            elif nums.group_safe and not nums.safe1:  # GateConfig.link_key: one linked group
                out.append(
                    "Its linked items render one thing, and that thing is certified "
                    f"(Group-Safe@1): it leads every other by {_num(nums.group_margin)} under "
                    f"every perturbation within the bounds (slack {_num(nums.group_slack)})."
                )
            else:
                out.append(
                    f"The top match is certified (Safe@1): its lead γ={_num(nums.margin_top2)} "
                    f"holds under every perturbation within the bounds (slack {_num(nums.slack)})."
                )
            return out
        if decision.decision == "widen":
            return [
                f"No single item is certain, but the top {decision.k_used} form a stable set "
                f"(Safe@{decision.k_used}): " + "; ".join(lines) + ".",
                f"[1] leads by only γ={_num(nums.margin_top2)}, within the perturbation "
                "bounds, so they are given together.",
            ]
        question_text = decision.clarification or "Could you say more about what you mean?"
        return [question_text]

    def answer(self, question: str, decision: GateDecision) -> Answer:
        """Answer from ``decision``'s evidence (for CLARIFY, the clarifying question).

        Args:
            question: The user's question.
            decision: The gate's decision.

        Returns:
            The :class:`~luma_rag.answer.base.Answer`, citing the decision's evidence.
        """
        t0 = time.perf_counter()
        text = " ".join(self.sentences(question, decision))
        telemetry: dict[str, Any] = {
            "answerer": self.name,
            "decision": decision.decision,
            "k_used": decision.k_used,
            **decision.numbers.to_dict(),
            "latency_ms": (time.perf_counter() - t0) * 1000.0,
        }
        citations = list(Evidence.from_decision(decision).citations)
        return Answer(text, decision, citations, telemetry)

    def stream(self, question: str, decision: GateDecision) -> Iterator[str]:
        """Yield the answer sentence by sentence (separated by single spaces)."""
        for i, sentence in enumerate(self.sentences(question, decision)):
            yield sentence if i == 0 else " " + sentence
