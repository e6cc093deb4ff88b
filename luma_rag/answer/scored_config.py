"""Settings of the score-gap verification (:class:`ScoredVerifyConfig`) and the earlier
defaults kept reachable (:data:`SESSION6_SCORED`, :data:`SESSION7_SCORED`).

The rules they steer are in :mod:`luma_rag.answer.scored`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from luma_rag._checks import is_int
from luma_rag._config import ConfigBase, check

__all__ = ["SESSION6_SCORED", "SESSION7_SCORED", "ScoredVerifyConfig"]


def _unit(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


@dataclass(frozen=True)
class ScoredVerifyConfig(ConfigBase):
    """Settings of :class:`~luma_rag.answer.scored.ScoredVerifyingAnswerer`.

    Attributes:
        k_verify: How many top hits (retrieval order) are verified; ``>= 1``.
        accept: Yes-score a hit needs to be verified, in [0, 1].
        doubt: Yes-score from which a hit counts as a contender, in [0, ``accept``].
        max_options: Most items a clarifying question names; ``>= 2``.
        verify_clarify: Also verify the hits of a gate CLARIFY (an unstable ranking) and
            answer from them when they verify and agree.
        min_coverage: Least share of the query's content words the store knows (the
            relevance test's ``coverage``) for the path to answer at all (module docstring);
            a CLARIFY with no such check is not verified. None: no such condition.
        gap: The verified hit answered from must beat every hit of the pool that is not a
            contender by at least this yes-score, in [0, 1] (0: no further condition than
            ``accept`` / ``doubt``).
        max_drop: The verified hit answered from may score at most this much below the top
            hit in retrieval (cosine), ``>= 0``; None: any rank in the pool.
        min_confidence: Least probability the answerer gives its own answer
            (``telemetry["answer_confidence"]``, which
            :class:`~luma_rag.answer.llava.LlavaAnswerer` reports) for it to be given, in
            [0, 1]; below it → CLARIFY. An answerer that reports none is not held to it.
        certified_top: A gate ANSWER (Safe@1 and complete: no item can overtake its top hit
            within the bounds) whose top hit verifies is answered from that hit, whatever the
            other hits score; False: other contenders must agree with it.
        verified_top: The **verification route to ANSWER** ("certified by verification"):
            whatever the certificate said (ANSWER, WIDEN, or a grounded CLARIFY), the store's
            top-1 is ANSWERed when it is proven to be the store's exact top-1
            (``numbers.top_exact``, or complete at 1), its yes-score is ``>= verified_top`` (and
            ``>= accept``) and the highest of the pool, every contender gives the same answer
            (``exclusive``: there is no other contender at all), and the answerer's own
            probability of that answer is ``>= top_confidence``. In [0, 1]; None: off (the
            certificate's Safe@1 is then the only route to ANSWER).
        exclusive: The verification route needs the top-1 to be the **only** contender
            (every other hit of the pool under ``doubt``); False (default): other contenders
            may remain when they all give the top-1's answer (the answer is exclusive, not
            the item).
        top_confidence: Least answer probability of the verification route, in [0, 1]; an
            answerer that reports none is not held to it (nor to ``min_confidence``).
        bounded: The verification route needs a hit of the pool that does **not** fit
            (under ``doubt``): when all ``k_verify`` hits fit, items beyond the pool may fit
            too and answer otherwise (the question may be ambiguous past what was checked).
        answer_confidence: Least answer probability of **any** ANSWER (the certificate's
            route too; below it → CLARIFY), in [0, 1]; None: ``min_confidence`` only.

    Example:
        >>> ScoredVerifyConfig.from_json(ScoredVerifyConfig(k_verify=5).to_json()).k_verify
        5
    """

    k_verify: int = 3
    accept: float = 0.5
    doubt: float = 0.35
    max_options: int = 3
    verify_clarify: bool = True
    min_coverage: float | None = 1.0
    gap: float = 0.0
    max_drop: float | None = None
    certified_top: bool = False
    min_confidence: float = 0.9
    verified_top: float | None = 0.5
    exclusive: bool = False
    top_confidence: float = 0.99
    bounded: bool = True
    answer_confidence: float | None = 0.99

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
        for flag in ("verify_clarify", "certified_top", "exclusive", "bounded"):
            value = getattr(self, flag)
            check(
                isinstance(value, bool), f"ScoredVerifyConfig.{flag} must be a bool, got {value!r}"
            )
        for name in ("min_coverage", "verified_top", "answer_confidence"):
            value = getattr(self, name)
            check(
                value is None or _unit(value),
                f"ScoredVerifyConfig.{name} must be None or in [0, 1], got {value!r}",
            )
        for name in ("gap", "min_confidence", "top_confidence"):
            value = getattr(self, name)
            check(_unit(value), f"ScoredVerifyConfig.{name} must be in [0, 1], got {value!r}")
            object.__setattr__(self, name, float(value))
        check(
            self.max_drop is None
            or (isinstance(self.max_drop, int | float) and not isinstance(self.max_drop, bool)
                and self.max_drop >= 0),
            f"ScoredVerifyConfig.max_drop must be None or >= 0, got {self.max_drop!r}",
        )  # fmt: skip
        for name in ("min_coverage", "max_drop", "verified_top", "answer_confidence"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))


#: Session 6's score-gap path (every relevant CLARIFY verified, no gap, any rank, no
#: verification route to ANSWER).
SESSION6_SCORED: Final = ScoredVerifyConfig(
    accept=0.5, doubt=0.2, min_coverage=None, gap=0.0, max_drop=None, min_confidence=0.0,
    verified_top=None, answer_confidence=None,
)  # fmt: skip
#: Session 7's default (the guarded path; ANSWER only through the certificate's Safe@1).
SESSION7_SCORED: Final = ScoredVerifyConfig(verified_top=None, answer_confidence=None)
