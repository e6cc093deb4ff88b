"""Score-gap verification: answer from the hits the answerer itself scores as "yes".

The library's default verified path (:func:`~luma_rag.answer.verify_vlm.verified_answerer`).
The certificate alone CLARIFIES most questions (its margins are small against the encoder's
radius ρ), and a yes/no verification used as a binary over ten candidates rarely leaves
exactly one "yes". :class:`ScoredVerifyingAnswerer` reads verification as a **score** and in
**rank order**:

* **grounding** first (``min_coverage``): when the relevance test found a word of the query
  that the store does not know, nothing is answered (a gate ANSWER / WIDEN becomes a CLARIFY)
  and a gate CLARIFY is not verified — a yes/no check reads only what the model knows, and a
  model of shapes sees "a green apple on the left" in any green shape on the left;
* the top ``k_verify`` hits of the decision (retrieval order; an ANSWER, a WIDEN and — with
  ``verify_clarify``, the default — a grounded CLARIFY alike) are each asked a yes/no question
  ("Does this image show <referent>?", :class:`~luma_rag.answer.verify_vlm.VlmVerifier`); the
  reply's **yes-score** is the model's own P("yes") at its verdict token when it reports one
  (:mod:`luma_rag.answer.verdict`; the tiny LLaVA and any transformers LLaVA do), else the
  parsed verdict as 1 / 0 — so it works with any VLM;
* a hit is **verified** when its score is ``>= accept``, a **contender** when it is
  ``>= doubt`` (``doubt <= accept``: a runner-up that the model half believes still counts
  against answering);
* no verified hit → **CLARIFY**, naming the best-scored candidates; a verified hit that beats
  a rejected one by less than ``gap``, or ranks more than ``max_drop`` below the top hit, →
  **CLARIFY** too (both off by default: on the dev corpus they cost coverage and removed no
  error);
* every contender is asked the question; answers that differ (or cannot be read) →
  **CLARIFY** naming one contender per answer (the question is ambiguous among items that
  all fit the referent);
* they agree → **ANSWER** from the top-1 by one of two routes, recorded as
  ``telemetry["verification"]["route"]``:

  - ``"certificate"``: the gate's certificate already said ANSWER (Safe@1, complete) and the
    top-1 is the only contender (with ``certified_top`` a verified certified top-1 is
    answered whatever the other contenders say);
  - ``"verification"`` ("certified by verification", ``verified_top``): whatever the
    certificate said, the store's top-1 is proven to be its **exact** top-1
    (``numbers.top_exact``: complete at 1, or an exact search at ρ = 0 found it —
    :class:`~luma_rag.answer.gate.GatedRetriever` checks it for WIDEN / CLARIFY), it is
    verified at ``verified_top`` with the **highest** yes-score of the pool, every contender
    gives its answer (the answer is exclusive; ``exclusive=True``: the item must be, no
    other contender at all), some hit of the pool does **not** fit (``bounded``: when all
    ``k_verify`` fit, more may past them and answer otherwise), and the answerer reads it
    with probability ``>= top_confidence``;

  otherwise a **WIDEN** over the contenders, answered from the best-ranked verified one.

NOT_IN_MEMORY is never overruled; an answer the answerer itself gives a probability under
``min_confidence`` becomes a CLARIFY, an ANSWER (either route) under ``answer_confidence``
too. The defaults (``k_verify=3, accept=0.5, doubt=0.35, min_coverage=1.0,
min_confidence=0.9``; ``verified_top=0.5, top_confidence=0.99, bounded=True,
answer_confidence=0.99``) come from the dev pair (corpus 6262; the guards with tiny CLIP v2
in session 7; the ANSWER routes with CLIP v3 and the tiny LLaVA v2.1,
:mod:`luma_rag.eval.trust_dev_search`): ``bounded`` and ``answer_confidence`` from the error
analysis of the dev ANSWERs (every dev split was read), then ``verified_top`` by
Learn-then-Test on the **ANSWER** risk over the val split's calibrate questions (n 1000,
α = 0.05, δ = 0.1: feasible, 81 ANSWERs, 0 wrong, p 0.016); checked on the dev test split
(200 questions): ANSWER 8/8 right (Wilson [67.6, 100]; session 7's default: 2/3), WIDEN 62 at
4 wrong, 35.0 % answered at 5.7 % risk (session 7: 35.5 % at 7.0 %), off-topic refused 60/60.
On the calibrate questions: ANSWER 81/81 (session 7: 19/21), WIDEN 9/185 wrong, 26.6 % at
3.4 % (session 7: 26.9 % at 4.1 %). Without ``bounded`` and ``answer_confidence`` the route
ANSWERs 149 of the 1000 at 6 wrong (LTT infeasible at α = 0.05). Session 7's default stays
reachable as :data:`SESSION7_SCORED`, session 6's unguarded path as :data:`SESSION6_SCORED`,
the yes/no path as ``verified_answerer(bot, VerifyConfig())``. Choose your own with
:func:`luma_rag.answer.scored_ltt.choose_scored_config`.

Every answer carries ``telemetry["verified"]`` (ids of the verified hits) and
``telemetry["verification"]`` (scores, contenders, outcome, route), like
:class:`~luma_rag.answer.verify.VerifyingAnswerer`.

Example:
    >>> bot = ScoredVerifyingAnswerer(llava, VlmVerifier(llava), ScoredVerifyConfig(k_verify=3))
    >>> ans = bot.answer("What color is the small circle?", gate.query("a small circle"))
    >>> ans.decision.decision, ans.telemetry["verification"]["scores"]
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

from luma_rag.answer.base import Answer, Answerer, answer_all
from luma_rag.answer.clarify import one_per_answer
from luma_rag.answer.confidence import CONFIDENCE_KEY
from luma_rag.answer.gate import GateDecision
from luma_rag.answer.scored_config import SESSION6_SCORED, SESSION7_SCORED, ScoredVerifyConfig
from luma_rag.answer.verify import (
    _answer_from,
    _check_request,
    _clarify,
    _pool,
    _recorded,
    _widened,
    normalise_text,
)
from luma_rag.errors import InvalidInputError
from luma_rag.results import Hit

__all__ = [
    "SESSION6_SCORED",
    "SESSION7_SCORED",
    "ScoredVerifyConfig",
    "ScoredVerifyingAnswerer",
]

logger = logging.getLogger(__name__)


class ScoredVerifyingAnswerer:
    """An :class:`~luma_rag.answer.base.Answerer` that answers from hits it scores as "yes".

    See the module docstring for the rules.

    Args:
        answerer: Answers the question from each contender, and every final decision.
        verifier: Has ``scores(pairs) -> list[float]`` (yes-scores in [0, 1] per
            ``(question, hit)``, e.g. :class:`~luma_rag.answer.verify_vlm.VlmVerifier`), or is
            a plain ``verifier(question, hit) -> bool | None`` (read as 1 / 0 / 0.5).
        config: Settings (default :class:`ScoredVerifyConfig`).
        normalise: ``normalise(answer_text, kind)`` to compare answers (default
            :func:`~luma_rag.answer.verify.normalise_text`).

    Raises:
        InvalidInputError: a bad answerer, verifier or config.
    """

    def __init__(
        self,
        answerer: Answerer,
        verifier: Any,
        config: ScoredVerifyConfig | None = None,
        *,
        normalise: Callable[[str, str | None], str | None] | None = None,
    ) -> None:
        if not callable(getattr(answerer, "answer", None)):
            raise InvalidInputError(f"answerer must have an answer() method, got {answerer!r}")
        if not callable(getattr(verifier, "scores", None)) and not callable(verifier):
            raise InvalidInputError(
                f"verifier must have scores(pairs) or be callable(question, hit), got {verifier!r}"
            )
        if config is not None and not isinstance(config, ScoredVerifyConfig):
            raise InvalidInputError(f"config must be a ScoredVerifyConfig, got {config!r}")
        self.answerer = answerer
        self.verifier = verifier
        self.config = config if config is not None else ScoredVerifyConfig()
        self.normalise = normalise or normalise_text

    def scores(self, question: str, pool: Sequence[Hit]) -> list[float]:
        """The yes-score per hit of ``pool``, in [0, 1]."""
        many = getattr(self.verifier, "scores", None)
        if callable(many):
            out = [float(s) for s in many([(question, h) for h in pool])]
        else:
            verdicts = [self.verifier(question, h) for h in pool]
            out = [0.5 if v is None else float(bool(v)) for v in verdicts]
        if len(out) != len(pool) or not all(0.0 <= s <= 1.0 for s in out):
            raise InvalidInputError(
                f"verifier.scores must return one score in [0, 1] per hit ({len(pool)}), "
                f"got {out!r}"
            )
        return out

    def grounded(self, decision: GateDecision) -> bool | None:
        """Whether the query's words are known to the store (``min_coverage``); None when
        the relevance test did not check them."""
        cfg = self.config
        verdict = decision.relevance
        coverage = None if verdict is None else verdict.coverage
        if cfg.min_coverage is None:
            return True
        return None if coverage is None else coverage >= cfg.min_coverage

    def rescuable(self, decision: GateDecision) -> bool:
        """Whether a gate CLARIFY may be verified (``verify_clarify``, ``min_coverage``)."""
        return self.config.verify_clarify and self.grounded(decision) is True

    def _doubt(
        self, pool: Sequence[Hit], lead: Hit, contenders: Sequence[Hit], score: dict[str, float]
    ) -> str | None:
        """Why the verified ``lead`` is not sure enough to answer from (None: it is)."""
        cfg = self.config
        others = [score[h.id] for h in pool if all(h.id != c.id for c in contenders)]
        if others and score[lead.id] - max(others) < cfg.gap:
            return (
                f"verification: the best verified hit scores {score[lead.id]:.2f}, less than "
                f"{cfg.gap:.2f} above a rejected one ({max(others):.2f})"
            )
        drop = pool[0].score - lead.score
        if cfg.max_drop is not None and drop > cfg.max_drop:
            return (
                f"verification: the best verified hit ranks {drop:.3f} below the top hit in "
                f"retrieval (more than {cfg.max_drop:.3f})"
            )
        return None

    def answer(self, question: str, decision: GateDecision) -> Answer:
        """Answer ``question`` from ``decision``'s hits that verify and agree.

        Raises:
            InvalidInputError: an empty question or a decision that is not a GateDecision.
        """
        _check_request(question, decision)
        cfg = self.config
        if decision.decision == "not_in_memory" or (
            decision.decision == "clarify" and not self.rescuable(decision)
        ):
            return self.answerer.answer(question, decision)
        if self.grounded(decision) is False:
            info: dict[str, Any] = {"gate_decision": decision.decision, "mode": "scored",
                                    "outcome": "ungrounded"}  # fmt: skip
            cov = decision.relevance.coverage if decision.relevance is not None else None
            reason = (
                f"verification: only {cov:.0%} of the query's words are known to the memory "
                f"(< {cfg.min_coverage:.0%}); not answering"
            )
            options = decision.evidence[: cfg.max_options] or decision.hits[: cfg.max_options]
            return _clarify(self.answerer, question, decision, options, reason, info, [])
        pool = _pool(decision, cfg.k_verify)
        if not pool:
            return self.answerer.answer(question, decision)
        score = dict(zip([h.id for h in pool], self.scores(question, pool), strict=True))
        verified = [h for h in pool if score[h.id] >= cfg.accept]
        contenders = [h for h in pool if score[h.id] >= cfg.doubt]
        info = {
            "gate_decision": decision.decision,
            "mode": "scored",
            "checked": [h.id for h in pool],
            "scores": score,
            "accept": cfg.accept,
            "doubt": cfg.doubt,
            "contenders": [h.id for h in contenders],
        }
        ids = [h.id for h in verified]
        if not verified:
            info["outcome"] = "unverified"
            best = sorted(pool, key=lambda h: -score[h.id])[: cfg.max_options]
            reason = (
                f"verification: none of the top {len(pool)} hits scores >= {cfg.accept:.2f} "
                f"(best {score[best[0].id]:.2f})"
            )
            return _clarify(self.answerer, question, decision, best, reason, info, ids)
        top = decision.evidence[0] if decision.evidence else None
        if cfg.certified_top and decision.decision == "answer" and top in verified:
            info.update(outcome="answered", answered_from=top.id, route="certificate")
            reason = (
                f"{decision.reason}; the certified top hit is verified (yes-score "
                f"{score[top.id]:.2f})"
            )
            final = dataclasses.replace(_answer_from(decision, top), reason=reason)
            out = self.answerer.answer(question, final)
            low = self._unsure_reading(out, True)
            if low is not None:
                info["outcome"] = "unsure reading"
                return _clarify(self.answerer, question, decision, [top], low, info, ids)
            return _recorded(out, ids, info, final)
        doubt = self._doubt(pool, verified[0], contenders, score)
        if doubt is not None:
            info["outcome"] = "unsure"
            best = sorted(pool, key=lambda h: -score[h.id])[: cfg.max_options]
            return _clarify(self.answerer, question, decision, best, doubt, info, ids)
        requests = [(question, _answer_from(decision, hit)) for hit in contenders]
        replies = answer_all(self.answerer, requests)
        answers = dict(zip([h.id for h in contenders], replies, strict=True))
        values = {i: self.normalise(a.text, None) for i, a in answers.items()}
        info["answers"] = values
        distinct = set(values.values())
        if len(distinct) != 1 or None in distinct:
            info["outcome"] = "ambiguous"
            options = one_per_answer(contenders, values, cfg.max_options)
            reason = (
                f"verification: {len(contenders)} of the top {len(pool)} hits fit the question "
                f"(yes-score >= {cfg.doubt:.2f}) and their answers differ "
                f"({sorted(str(v) for v in distinct)})"
            )
            return _clarify(self.answerer, question, decision, options, reason, info, ids)
        said = next(iter(distinct))
        lead = verified[0]
        top_id = decision.evidence[0].id if decision.evidence else None
        route = self._verified_route(decision, pool, contenders, score, answers)
        if decision.decision == "answer" and len(contenders) == 1 and lead.id == top_id:
            info.update(outcome="answered", route="certificate")
            reason = (
                f"{decision.reason}; the top hit is verified (yes-score {score[lead.id]:.2f}) "
                f"and no other of the top {len(pool)} fits (< {cfg.doubt:.2f})"
            )
            final = dataclasses.replace(_answer_from(decision, lead), reason=reason)
        elif route is not None:
            lead = pool[0]
            info.update(outcome="answered", route="verification")
            final = dataclasses.replace(_answer_from(decision, lead), reason=route)
        else:
            info["outcome"] = "widened"
            reason = (
                f"verification: {len(contenders)} of the top {len(pool)} hits fit the question "
                f"(yes-scores {', '.join(f'{score[h.id]:.2f}' for h in contenders)}) and all "
                f"answer {said!r} (gate: {decision.decision}); answering from them"
            )
            final = _widened(decision, [lead, *(h for h in contenders if h.id != lead.id)], reason)
        out = answers[lead.id]
        low = self._unsure_reading(out, final.decision == "answer")
        if low is not None:
            info["outcome"] = "unsure reading"
            return _clarify(self.answerer, question, decision, contenders[: cfg.max_options],
                            low, info, ids)  # fmt: skip
        info["answered_from"] = lead.id
        return _recorded(out, ids, info, final)

    def _verified_route(
        self,
        decision: GateDecision,
        pool: Sequence[Hit],
        contenders: Sequence[Hit],
        score: dict[str, float],
        answers: dict[str, Answer],
    ) -> str | None:
        """Why the store's top-1 is certified by verification (``verified_top``), or None.

        Every condition is checked here, whatever the caller already knows: the pool's first
        hit is the store's exact top-1 (complete at 1), it is verified at ``verified_top``
        and scores highest, it is the only contender (``exclusive``) or every contender
        answers as it does, and its answer is read with ``top_confidence``.
        """
        cfg = self.config
        if cfg.verified_top is None or not pool or decision.decision == "not_in_memory":
            return None
        top = pool[0]
        if decision.hits and decision.hits[0].id != top.id:
            return None
        if not (decision.numbers.top_exact or decision.numbers.complete_at >= 1):
            return None  # an ANN tier may hide a better item
        need = max(cfg.verified_top, cfg.accept)
        if score[top.id] < need or score[top.id] < max(score.values()):
            return None
        others = [h for h in contenders if h.id != top.id]
        if cfg.exclusive and others:
            return None
        if cfg.bounded and len(others) + 1 >= len(pool):  # every hit fits: more may, beyond
            return None
        if top.id not in answers:
            return None
        said = self.normalise(answers[top.id].text, None)
        if said is None or any(self.normalise(answers[h.id].text, None) != said for h in others):
            return None
        conf = answers[top.id].telemetry.get(CONFIDENCE_KEY)
        if isinstance(conf, int | float) and math.isfinite(conf) and conf < cfg.top_confidence:
            return None
        agree = (
            f"no other of the top {len(pool)} fits (< {cfg.doubt:.2f})"
            if not others
            else f"the {len(others)} other hit(s) that fit answer the same"
        )
        return (
            f"certified by verification (gate: {decision.decision}): the store's exact top-1 is "
            f"verified (yes-score {score[top.id]:.2f} >= {need:.2f}, the highest) and {agree}"
        )

    def _unsure_reading(self, out: Answer, answer: bool = False) -> str | None:
        """Why the answerer's reading is too unsure to give (None: sure, or not reported):
        under ``min_confidence``, or for an ANSWER (``answer``) under ``answer_confidence``."""
        conf = out.telemetry.get(CONFIDENCE_KEY)
        if not isinstance(conf, int | float) or not math.isfinite(conf):
            return None
        floor = self.config.min_confidence
        if answer and self.config.answer_confidence is not None:
            floor = max(floor, self.config.answer_confidence)
        if conf >= floor:
            return None
        return (
            f"verification: the answerer's reading {out.text!r} had probability {conf:.2f}, "
            f"under {floor:.2f}; asking instead of guessing"
        )
