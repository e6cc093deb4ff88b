"""The gate's trust score: how a question's no-gate answer is ranked for risk–coverage.

Issue #17 asks whether the gate orders answers better than a raw margin threshold (the area
under the risk–coverage curve, AURC, of the no-gate answers — always from the top-1 — ordered
by a score). The certificate's slack alone cannot: with one radius ρ per query modality and no
drift or quantisation, slack = γ − 2τ with the same τ for every query, so it orders the
questions exactly as the raw margin γ does (held out, CLIP v3: AURC 0.188 vs 0.193).

What the gate knows beyond the certificate is its verification. :func:`trust_score` is

    score = A · y₁ · c + slack,

* ``A`` (agreement): 1 when every other hit of the top ``k`` that the model half believes
  (yes-score ``>= doubt``) gives the top-1's answer, else 0;
* ``y₁``: the top-1's yes-score ("Does this image show <referent>?", the answerer's own
  P(yes); 1 / 0 for a VLM that reports none);
* ``c``: the answerer's probability of its answer from the top-1 (1 when it reports none);
* ``slack``: the certificate's Safe@1 slack (0 when undefined), which breaks ties among
  questions the verification rates alike.

The form was chosen on the dev corpus (seed 6262) among a dozen products and sums of these
terms, by the learn part's AURC (questions 6364; the calibrate and test parts were printed
beside it, so they are not untouched). Dev AURC, gate score vs raw margin (bootstrap 1000):
learn 0.128 vs 0.157 (difference −0.029 [−0.067, +0.007], n 200); calibrate 0.129 vs 0.214
(−0.085 [−0.112, −0.058], n 1000); test 0.130 vs 0.160 (−0.031 [−0.080, +0.019], n 200).
It reads only what the default verified path already asks, so it costs no extra model call
there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from luma_rag.answer.base import Answerer
from luma_rag.answer.confidence import CONFIDENCE_KEY
from luma_rag.answer.gate import GateDecision
from luma_rag.answer.verify import normalise_text
from luma_rag.answer.verify_vlm import single_hit_decision
from luma_rag.results import Hit

__all__ = ["trust_score"]


def trust_score(
    question: str,
    decision: GateDecision,
    answerer: Answerer,
    scores: Callable[[Sequence[tuple[str, Hit]]], Sequence[float]],
    *,
    k: int = 3,
    doubt: float = 0.35,
) -> float:
    """``A · y₁ · c + slack`` for one question (module docstring); higher is surer.

    Args:
        question: What the answerer is asked.
        decision: The gate's decision (its ``hits`` ranked, its ``numbers.slack``).
        answerer: Answers ``question`` from one hit (a cached one in evaluations).
        scores: Yes-scores in [0, 1] per ``(question, hit)``, e.g.
            :meth:`~luma_rag.answer.verify_vlm.VlmVerifier.scores`.
        k: Hits verified (the top ``k``).
        doubt: Yes-score from which another hit counts against agreement.

    Returns:
        The score; ``-inf`` for a decision without hits.
    """
    hits = list(decision.hits[:k])
    if not hits:
        return -math.inf
    ys = list(scores([(question, h) for h in hits]))
    others = [h for h, y in zip(hits[1:], ys[1:], strict=True) if y >= doubt]
    replies = [answerer.answer(question, single_hit_decision(h)) for h in [hits[0], *others]]
    said = normalise_text(replies[0].text)
    agree = said is not None and all(normalise_text(r.text) == said for r in replies[1:])
    conf = replies[0].telemetry.get(CONFIDENCE_KEY)
    c = float(conf) if isinstance(conf, int | float) and math.isfinite(conf) else 1.0
    slack = decision.numbers.slack
    return float(agree) * ys[0] * c + (float(slack) if math.isfinite(slack) else 0.0)
