"""Answer only when the answerer is sure of its own words: a confidence floor on ANSWER / WIDEN.

Safe@1 says the ranking is stable; relevance says the evidence is on topic; neither says the
answerer read the evidence right. A generative answerer that reports how probable its own
answer was (``Answer.telemetry["answer_confidence"]``: the probability of the generated tokens
under greedy decoding, which :class:`~luma_rag.answer.llava.LlavaAnswerer` reports) gives a
third, independent signal, and it works with any such model — no question grammar, no yes/no
training. :class:`ConfidenceAnswerer` wraps an answerer: an ANSWER or WIDEN whose answer is
less probable than ``floor`` becomes a CLARIFY that says so and names the candidates, and an
answer that reports no confidence passes through marked ``"confidence": "not reported"``.

The floor is a trade-off between coverage and risk; :func:`choose_floor` picks it on held-out
(answer confidence, answer right?) pairs with the Learn-then-Test fixed-sequence test
(:mod:`luma_rag.risk_control`), so that the ANSWER risk is at most ``alpha`` with probability at
least ``1 - delta`` — or says that no floor achieves it.

Example:
    >>> bot = ConfidenceAnswerer(LlavaAnswerer("luma-tiny-llava"), ConfidenceConfig(floor=0.9))
    >>> ans = bot.answer("What shape is the small red thing?", gate.query("small red thing"))
    >>> ans.decision.decision, ans.telemetry["answer_confidence"]
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from luma_rag._config import ConfigBase, check
from luma_rag.answer.base import Answer, Answerer, answer_all
from luma_rag.answer.gate import GateDecision
from luma_rag.errors import InvalidInputError

__all__ = [
    "CONFIDENCE_KEY",
    "ConfidenceAnswerer",
    "ConfidenceConfig",
    "choose_floor",
    "fixed_sequence",
    "generation_confidences",
]

logger = logging.getLogger(__name__)

#: Telemetry key of an answer's own probability, in [0, 1].
CONFIDENCE_KEY = "answer_confidence"
_ACTIVE = ("answer", "widen")


@dataclass(frozen=True)
class ConfidenceConfig(ConfigBase):
    """Attributes:
    floor: Least answer probability for an ANSWER / WIDEN to stand, in [0, 1]; 0 keeps
        every answer.
    """

    floor: float = 0.9

    def __post_init__(self) -> None:
        check(
            isinstance(self.floor, int | float) and 0.0 <= float(self.floor) <= 1.0,
            f"floor must be in [0, 1], got {self.floor!r}",
        )


class ConfidenceAnswerer:
    """Wraps an answerer; low-confidence ANSWER / WIDEN become CLARIFY (see module docstring)."""

    def __init__(self, answerer: Answerer, config: ConfidenceConfig | None = None) -> None:
        self.answerer = answerer
        self.config = config or ConfidenceConfig()
        self.name = f"confidence({getattr(answerer, 'name', type(answerer).__name__)})"

    def answer(self, question: str, decision: GateDecision) -> Answer:
        """Answer through the wrapped answerer, then apply the floor."""
        return self._judge(question, self.answerer.answer(question, decision))

    def answer_many(self, requests: Sequence[tuple[str, GateDecision]]) -> list[Answer]:
        """:meth:`answer` for each request, batched when the wrapped answerer batches."""
        answers = answer_all(self.answerer, requests)
        return [self._judge(q, a) for (q, _), a in zip(requests, answers, strict=True)]

    def _judge(self, question: str, out: Answer) -> Answer:
        decision = out.decision
        if decision.decision not in _ACTIVE:
            return out
        conf = out.telemetry.get(CONFIDENCE_KEY)
        if not isinstance(conf, int | float) or not math.isfinite(conf):
            telemetry = {**out.telemetry, "confidence": "not reported"}
            return dataclasses.replace(out, telemetry=telemetry)
        if conf >= self.config.floor:
            telemetry = {**out.telemetry, "confidence": "passed"}
            return dataclasses.replace(out, telemetry=telemetry)
        options = tuple(decision.evidence[:3]) or tuple(decision.hits[:3])
        reason = (
            f"the answerer's own answer {out.text!r} had probability {conf:.2f}, under the "
            f"confidence floor {self.config.floor:.2f}; asking instead of guessing"
        )
        logger.debug("%s → clarify", reason)
        clar = decision.as_clarify(options, reason)
        text = (
            f"I am not sure: my reading of the evidence was {out.text!r}, which I could not "
            f"confirm. {clar.clarification}"
        )
        telemetry = {
            **out.telemetry,
            "decision": "clarify",
            "confidence": "below floor",
            "unconfirmed_answer": out.text,
        }
        return dataclasses.replace(out, text=text, decision=clar, telemetry=telemetry)


def generation_confidences(gen: Any, width: int, tokenizer: Any) -> tuple[Any, list[float | None]]:
    """Sequences and each row's answer probability from a transformers ``generate`` output.

    The probability is the product over the row's new tokens, up to and including the first
    end token, of the token's probability under the (processed) scores greedy decoding chose
    it from. ``gen`` is ``generate(..., output_scores=True, return_dict_in_generate=True)``'s
    output; a bare tensor of sequences (no scores) gives ``None`` per row. ``width``: the
    prompt length.
    """
    if not hasattr(gen, "sequences"):
        return gen, [None] * int(gen.shape[0])
    import torch

    eos = tokenizer.eos_token_id
    new = gen.sequences[:, width:]
    out: list[float | None] = []
    for row in range(new.shape[0]):
        total = 0.0
        for step, scores in enumerate(gen.scores[: new.shape[1]]):
            token = int(new[row, step])
            total += float(torch.log_softmax(scores[row].float(), dim=-1)[token])
            if eos is not None and token == int(eos):
                break
        out.append(math.exp(total) if math.isfinite(total) else 0.0)
    return gen.sequences, out


def choose_floor(
    confidences: Sequence[float],
    right: Sequence[bool],
    *,
    alpha: float = 0.1,
    delta: float = 0.1,
    grid: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Pick the lowest confidence floor whose ANSWER risk is ≤ ``alpha`` w.p. ≥ ``1 - delta``.

    Learn-then-Test with fixed-sequence testing: floors are tested from the strictest down;
    floor ``t`` is accepted when the binomial tail p-value of its empirical risk (answers with
    confidence ≥ ``t`` that are wrong) is ≤ ``delta``; testing stops at the first floor that
    is not accepted. Floors that keep too few answers to ever pass are skipped.
    The bound is the exact binomial (Clopper-Pearson style) tail, valid for any sample size.

    Args:
        confidences: Held-out answer probabilities, in [0, 1].
        right: Whether each held-out answer was right.
        alpha: Target risk among kept answers.
        delta: Failure probability of the guarantee.
        grid: Candidate floors (default 0.50, 0.51, ..., 0.99, 0.995, 0.999).

    Returns:
        ``{"feasible", "floor", "coverage", "risk", "n", "n_kept", "p_value"}``; with no
        feasible floor, ``floor`` is None.

    Raises:
        InvalidInputError: Lengths differ, no pairs, or alpha/delta outside (0, 1).
    """
    if len(confidences) != len(right) or not confidences:
        raise InvalidInputError("need as many right/wrong labels as confidences, at least one")
    if not (0 < alpha < 1 and 0 < delta < 1):
        raise InvalidInputError(f"alpha and delta must be in (0, 1), got {alpha}, {delta}")
    floors = sorted(
        grid if grid is not None else [*(i / 100 for i in range(50, 100)), 0.995, 0.999]
    )
    steps = [
        (floor, [r for c, r in zip(confidences, right, strict=True) if c >= floor])
        for floor in reversed(floors)
    ]
    out = fixed_sequence(steps, n_total=len(confidences), alpha=alpha, delta=delta)
    out["floor"] = out.pop("setting")
    return out


def fixed_sequence(
    steps: Sequence[tuple[float, Sequence[bool]]],
    *,
    n_total: int,
    alpha: float,
    delta: float,
    min_share: float = 0.1,
) -> dict[str, Any]:
    """Learn-then-Test over settings in a fixed order, strictest first.

    ``steps``: ``(setting, outcomes)`` where ``outcomes`` are right/wrong flags of the answers
    that setting keeps. A setting is accepted when the binomial tail p-value of its errors is
    ≤ ``delta``; testing stops at the first setting that is not accepted. Settings that keep
    too few answers to ever pass are skipped (which ones depends on how many answers each
    keeps, not on whether they are right, so the tested order stays fixed given those
    counts): fewer than ``min_share`` (default a tenth) of ``n_total``, or fewer than any
    error-free sample could pass with. Returns the last accepted setting: ``{"feasible",
    "setting", "coverage", "risk", "n", "n_kept", "p_value", "alpha", "delta"}`` (``setting``
    None when none is accepted).
    """
    # The fewest kept answers worth testing: enough that no error at all could pass, and a
    # tenth of the sample (a setting that keeps a handful of answers would stop the sequence
    # on noise). Both depend on counts only, never on the labels.
    least = max(math.ceil(math.log(delta) / math.log(1.0 - alpha)), math.ceil(min_share * n_total))
    best: dict[str, Any] = {
        "feasible": False, "setting": None, "n": n_total, "alpha": alpha, "delta": delta,
    }  # fmt: skip
    for setting, kept in steps:
        if len(kept) < least:
            continue
        errors = sum(1 for r in kept if not r)
        p = _binomial_tail(errors, len(kept), alpha)
        if p > delta:
            break
        best = {
            "feasible": True,
            "setting": setting,
            "coverage": len(kept) / n_total if n_total else None,
            "risk": errors / len(kept),
            "n": n_total,
            "n_kept": len(kept),
            "p_value": p,
            "alpha": alpha,
            "delta": delta,
        }
    return best


def _binomial_tail(errors: int, n: int, alpha: float) -> float:
    """P(Binomial(n, alpha) ≤ errors): small when the true risk is unlikely to reach alpha."""
    total = 0.0
    for i in range(errors + 1):
        total += math.comb(n, i) * alpha**i * (1 - alpha) ** (n - i)
    return min(1.0, total)
