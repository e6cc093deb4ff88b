"""Score-gap verification: answer from the hits the answerer itself scores as "yes".

The certificate alone CLARIFIES most questions (its margins are small against the encoder's
radius ρ), and a yes/no verification used as a binary over ten candidates rarely leaves
exactly one "yes". :class:`ScoredVerifyingAnswerer` reads verification as a **score** and in
**rank order**:

* the top ``k_verify`` hits of the decision (retrieval order; an ANSWER, a WIDEN and — with
  ``verify_clarify``, the default — a CLARIFY alike) are each asked a yes/no question
  ("Does this image show <referent>?", :class:`~luma_rag.answer.verify_vlm.VlmVerifier`); the
  reply's **yes-score** is the model's own P("yes") at its verdict token when it reports one
  (:mod:`luma_rag.answer.verdict`; the tiny LLaVA and any transformers LLaVA do), else the
  parsed verdict as 1 / 0 — so it works with any VLM;
* a hit is **verified** when its score is ``>= accept``, a **contender** when it is
  ``>= doubt`` (``doubt <= accept``: a runner-up that the model half believes still counts
  against answering);
* no verified hit → **CLARIFY**, naming the best-scored candidates;
* every contender is asked the question; answers that differ (or cannot be read) →
  **CLARIFY** naming one contender per answer (the question is ambiguous among items that
  all fit the referent);
* they agree → **ANSWER** from the top-1 when the gate's certificate already said ANSWER and
  the top-1 is the only contender (certified and verified); otherwise a **WIDEN** over the
  contenders, answered from the best-ranked verified one.

NOT_IN_MEMORY (the relevance test) is never overruled: irrelevant evidence is not verified
into an answer. The thresholds are a coverage / risk trade-off; choose them on held-out
questions (e.g. Learn-then-Test, :func:`luma_rag.answer.confidence.fixed_sequence`) or keep
the defaults ``k_verify=3, accept=0.5, doubt=0.2``, chosen on the dev pair (corpus seed 6262,
val split, 150 questions of question seed 6364, tiny LLaVA v2.1): coverage 38.7 % at 1.7 %
risk (1/58), against 6.7 % coverage (2/10 wrong) for the previous default on the same
questions.

Every answer carries ``telemetry["verified"]`` (ids of the verified hits) and
``telemetry["verification"]`` (scores, contenders, outcome), like
:class:`~luma_rag.answer.verify.VerifyingAnswerer` — the previous default, still reachable
with ``verified_answerer(answerer, VerifyConfig(...))``.

Example:
    >>> bot = ScoredVerifyingAnswerer(llava, VlmVerifier(llava), ScoredVerifyConfig(k_verify=3))
    >>> ans = bot.answer("What color is the small circle?", gate.query("a small circle"))
    >>> ans.decision.decision, ans.telemetry["verification"]["scores"]
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from luma_rag._checks import is_int
from luma_rag._config import ConfigBase, check
from luma_rag.answer.base import Answer, Answerer, answer_all
from luma_rag.answer.clarify import one_per_answer
from luma_rag.answer.gate import GateDecision
from luma_rag.answer.verify import _answer_from, _clarify, _pool, normalise_text
from luma_rag.errors import InvalidInputError
from luma_rag.results import Hit

__all__ = [
    "ACCEPT_GRID",
    "SESSION6_SCORED",
    "ScoredVerifyConfig",
    "ScoredVerifyingAnswerer",
    "choose_scored_config",
]

logger = logging.getLogger(__name__)


def _unit(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


@dataclass(frozen=True)
class ScoredVerifyConfig(ConfigBase):
    """Settings of :class:`ScoredVerifyingAnswerer`.

    Attributes:
        k_verify: How many top hits (retrieval order) are verified; ``>= 1``.
        accept: Yes-score a hit needs to be verified, in [0, 1].
        doubt: Yes-score from which a hit counts as a contender, in [0, ``accept``].
        max_options: Most items a clarifying question names; ``>= 2``.
        verify_clarify: Also verify the hits of a gate CLARIFY (an unstable ranking) and
            answer from them when they verify and agree.
        rescue_coverage: With ``verify_clarify``, a CLARIFY is verified only when the
            relevance test found at least this share of the query's content words in the
            store's vocabulary (``RelevanceVerdict.coverage``); a CLARIFY whose query was not
            checked so (no relevance test, no vocabulary) is then never verified. None: every
            relevant CLARIFY is verified. A yes/no check reads what the model knows ("a green
            apple on the left" is a green shape on the left to a model of shapes), so an
            unstable ranking is only verified into an answer when every word of the query is
            something the memory holds.
        gap: The verified hit answered from must beat every hit of the pool that is not a
            contender by at least this yes-score, in [0, 1] (0: no further condition than
            ``accept`` / ``doubt``).
        max_drop: The verified hit answered from may score at most this much below the top
            hit in retrieval (cosine), ``>= 0``; None: any rank in the pool.

    Example:
        >>> cfg = ScoredVerifyConfig(k_verify=5)
        >>> ScoredVerifyConfig.from_json(cfg.to_json()) == cfg
        True
    """

    k_verify: int = 3
    accept: float = 0.5
    doubt: float = 0.2
    max_options: int = 3
    verify_clarify: bool = True
    rescue_coverage: float | None = None
    gap: float = 0.0
    max_drop: float | None = None

    def __post_init__(self) -> None:
        check(
            is_int(self.k_verify) and self.k_verify >= 1,
            f"ScoredVerifyConfig.k_verify must be an int >= 1, got {self.k_verify!r}",
        )
        check(
            _unit(self.accept), f"ScoredVerifyConfig.accept must be in [0, 1], got {self.accept!r}"
        )
        check(
            _unit(self.doubt) and self.doubt <= self.accept,
            f"ScoredVerifyConfig.doubt must be in [0, accept={self.accept!r}], got {self.doubt!r}",
        )
        object.__setattr__(self, "accept", float(self.accept))
        object.__setattr__(self, "doubt", float(self.doubt))
        check(
            is_int(self.max_options) and self.max_options >= 2,
            f"ScoredVerifyConfig.max_options must be an int >= 2, got {self.max_options!r}",
        )
        check(
            isinstance(self.verify_clarify, bool),
            f"ScoredVerifyConfig.verify_clarify must be a bool, got {self.verify_clarify!r}",
        )
        check(
            self.rescue_coverage is None or _unit(self.rescue_coverage),
            "ScoredVerifyConfig.rescue_coverage must be None or in [0, 1], "
            f"got {self.rescue_coverage!r}",
        )
        check(_unit(self.gap), f"ScoredVerifyConfig.gap must be in [0, 1], got {self.gap!r}")
        object.__setattr__(self, "gap", float(self.gap))
        check(
            self.max_drop is None
            or (isinstance(self.max_drop, int | float) and not isinstance(self.max_drop, bool)
                and self.max_drop >= 0),
            f"ScoredVerifyConfig.max_drop must be None or >= 0, got {self.max_drop!r}",
        )  # fmt: skip
        for name in ("rescue_coverage", "max_drop"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))


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

    def rescuable(self, decision: GateDecision) -> bool:
        """Whether a gate CLARIFY may be verified (``verify_clarify``, ``rescue_coverage``)."""
        cfg = self.config
        if not cfg.verify_clarify:
            return False
        if cfg.rescue_coverage is None:
            return True
        verdict = decision.relevance
        coverage = None if verdict is None else verdict.coverage
        return coverage is not None and coverage >= cfg.rescue_coverage

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
        if not isinstance(question, str) or not question.strip():
            raise InvalidInputError(f"question must be a non-empty str, got {question!r}")
        if not isinstance(decision, GateDecision):
            raise InvalidInputError(f"decision must be a GateDecision, got {decision!r}")
        cfg = self.config
        if decision.decision == "not_in_memory" or (
            decision.decision == "clarify" and not self.rescuable(decision)
        ):
            return self.answerer.answer(question, decision)
        pool = _pool(decision, cfg.k_verify)
        if not pool:
            return self.answerer.answer(question, decision)
        score = dict(zip([h.id for h in pool], self.scores(question, pool), strict=True))
        verified = [h for h in pool if score[h.id] >= cfg.accept]
        contenders = [h for h in pool if score[h.id] >= cfg.doubt]
        info: dict[str, Any] = {
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
        if decision.decision == "answer" and len(contenders) == 1 and lead.id == top_id:
            info["outcome"] = "answered"
            reason = (
                f"{decision.reason}; the top hit is verified (yes-score {score[lead.id]:.2f}) "
                f"and no other of the top {len(pool)} fits (< {cfg.doubt:.2f})"
            )
            final = dataclasses.replace(_answer_from(decision, lead), reason=reason)
        else:
            info["outcome"] = "widened"
            reason = (
                f"verification: {len(contenders)} of the top {len(pool)} hits fit the question "
                f"(yes-scores {', '.join(f'{score[h.id]:.2f}' for h in contenders)}) and all "
                f"answer {said!r} (gate: {decision.decision}); answering from them"
            )
            final = dataclasses.replace(
                decision,
                decision="widen",
                k_used=len(contenders),
                evidence=(lead, *(h for h in contenders if h.id != lead.id)),
                reason=reason,
                clarification=None,
            )
        info["answered_from"] = lead.id
        out = answers[lead.id]
        telemetry = {**out.telemetry, "verified": ids, "verification": info}
        return dataclasses.replace(out, decision=final, telemetry=telemetry)


#: Session 6's score-gap path (every relevant CLARIFY verified, no gap, any rank).
SESSION6_SCORED: Final = ScoredVerifyConfig(rescue_coverage=None, gap=0.0, max_drop=None)

#: The default ``accept`` grid of :func:`choose_scored_config`, strictest first.
ACCEPT_GRID = (0.99, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5)


def choose_scored_config(
    answered: Callable[[ScoredVerifyConfig], Sequence[bool]],
    n_total: int,
    *,
    base: ScoredVerifyConfig | None = None,
    grid: Sequence[float] = ACCEPT_GRID,
    alpha: float = 0.1,
    delta: float = 0.1,
) -> dict[str, Any]:
    """Learn-then-Test for the score-gap path: the loosest ``accept`` whose risk is ≤ ``alpha``.

    Settings are tested in a fixed order, strictest ``accept`` first (``doubt`` kept at
    ``min(base.doubt, accept)``), with the fixed-sequence binomial test of
    :func:`~luma_rag.answer.confidence.fixed_sequence`: with probability ≥ ``1 - delta`` the
    chosen setting's risk (wrong answers among the ANSWER + WIDEN outcomes) on questions drawn
    like the calibration questions is ≤ ``alpha`` — or the result says that none is.

    Args:
        answered: ``answered(config)`` → one right/wrong flag per calibration question the
            path answered (ANSWER or WIDEN) with ``config``; e.g. a
            :class:`ScoredVerifyingAnswerer` over held-out (question, decision, expected
            answer) triples, its answerer cached so that each setting costs little.
        n_total: Number of calibration questions.
        base: The other settings (default :class:`ScoredVerifyConfig`).
        grid: ``accept`` values, strictest (highest) first, each in [0, 1].
        alpha: Target risk among answered questions, in (0, 1).
        delta: Failure probability of the guarantee, in (0, 1).

    Returns:
        ``{"feasible", "config" (the chosen ScoredVerifyConfig's dict, None when
        infeasible), "accept", "coverage", "risk", "n", "n_kept", "p_value", "alpha",
        "delta"}``.

    Raises:
        InvalidInputError: a grid that is not strictest-first in [0, 1], or α / δ outside (0, 1).
    """
    from luma_rag.answer.confidence import fixed_sequence

    for name, value in (("alpha", alpha), ("delta", delta)):
        if not (isinstance(value, int | float) and 0.0 < value < 1.0):
            raise InvalidInputError(f"{name} must be in (0, 1), got {value!r}")
    values = [float(g) for g in grid]
    if not values or any(not 0 <= g <= 1 for g in values) or values != sorted(values)[::-1]:
        raise InvalidInputError(
            f"grid must be accept values in [0, 1], highest first, got {grid!r}"
        )
    base = base if base is not None else ScoredVerifyConfig()
    configs = {g: dataclasses.replace(base, accept=g, doubt=min(base.doubt, g)) for g in values}
    steps = [(g, list(answered(configs[g]))) for g in values]
    out = fixed_sequence(steps, n_total=n_total, alpha=alpha, delta=delta)
    chosen = out.pop("setting")
    out["accept"] = chosen
    out["config"] = None if chosen is None else configs[chosen].to_dict()
    return out
