"""A gate calibrated to a risk the user chooses: Learn-then-Test over (ρ, relevance floor, verify).

Given held-out ``(question, relevant item id, answer)`` triples from *any* corpus, pick the
gate's thresholds so that the share of wrong ANSWERs is at most ``α`` with probability at
least ``1 − δ`` over the calibration draw (Learn-then-Test, Angelopoulos et al. 2021):

1. Per triple, measure once what every candidate threshold needs: the query's **critical
   radius** ρ* (largest ρ with Safe@1, by bisection; Safe@1 is monotone in ρ), its **top
   score** and relevance verdict, whether the answerer's evidence was **verified**, and
   whether the answer is **right** (the answer text contains the expected answer, or — for
   triples without one — the top-1 is the relevant item).
2. A candidate ``λ = (ρ, score floor, verify)`` ANSWERs a triple when ``ρ* > ρ``, the top
   score reaches the floor, the relevance test passes, and (if ``verify``) the evidence was
   verified. Its risk is the wrong share among the answered.
3. Each candidate's null "risk > α" is tested with the exact binomial p-value
   ``P(Bin(n_λ, α) <= errors_λ)`` on its ``n_λ`` answered triples. Within each family
   (one score floor × verify setting) candidates are tested in fixed sequence from the
   largest ρ (strictest) down, stopping at the first non-rejection (candidates answering too
   few triples to be rejected even with no error are skipped — a label-free choice, as in
   ``answer.calibrate``); families are combined by
   Bonferroni (level ``δ / families``). This controls the chance of accepting any candidate
   whose true risk exceeds α at ``δ``.
4. Among accepted candidates the one answering the most triples is chosen. If none is
   accepted the result says **infeasible**, with the best empirical candidate for reference
   — it is not silently used.

Only the scalar features are recomputed per candidate: each triple is searched ~15 times
(bisection), never per candidate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from luma_rag.answer.calibrate import binomial_cdf, critical_radius
from luma_rag.errors import InvalidInputError

if TYPE_CHECKING:
    from luma_rag.engine import Luma
    from luma_rag.relevance import RelevanceModel

__all__ = [
    "GateFeatures",
    "GateRiskCalibration",
    "calibrate_gate",
    "choose_thresholds",
    "gate_features",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateFeatures:
    """Per-triple quantities every candidate threshold is evaluated from (arrays of shape (n,)).

    Attributes:
        critical_rho: float64, largest ρ with Safe@1 (0: never; inf: always).
        top_score: float64, best hit's score (-inf: no hit).
        relevant: bool, the relevance test (grounding) passed.
        verified: bool, the answerer's yes/no check confirmed the evidence (True when no
            verifier was used).
        correct: bool, the answer (or top-1) is right.
    """

    critical_rho: np.ndarray
    top_score: np.ndarray
    relevant: np.ndarray
    verified: np.ndarray
    correct: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.correct)
        for name in ("critical_rho", "top_score", "relevant", "verified"):
            if len(getattr(self, name)) != n:
                raise InvalidInputError(f"GateFeatures.{name} must have {n} entries")


@dataclass(frozen=True)
class GateRiskCalibration:
    """Chosen gate thresholds and the evidence for them.

    Attributes:
        feasible: Some candidate was accepted at level δ.
        rho, score_floor, verify: The chosen thresholds (for reference only when infeasible).
        alpha, delta: The target.
        n: Calibration triples. n_answered / n_wrong: of the chosen candidate.
        risk: Empirical wrong share among its ANSWERs. upper_bound: one-sided (1 − δ)
            Clopper–Pearson bound on that risk. p_value: of its binomial test.
        coverage: Share of triples it ANSWERs.
        reason: One sentence.
        tested: Per tested candidate: thresholds, n_answered, n_wrong, p_value, accepted.
    """

    feasible: bool
    rho: float
    score_floor: float
    verify: bool
    alpha: float
    delta: float
    n: int
    n_answered: int
    n_wrong: int
    risk: float
    upper_bound: float
    p_value: float
    coverage: float
    reason: str
    tested: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (non-finite numbers become None)."""
        out = asdict(self)
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in out.items()
        }


def _upper_bound(errors: int, n: int, delta: float) -> float:
    """Smallest p with ``P(Bin(n, p) <= errors) <= δ`` (one-sided Clopper–Pearson), by bisection."""
    if n == 0:
        return 1.0
    lo, hi = errors / n, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if binomial_cdf(errors, n, mid) > delta:
            lo = mid
        else:
            hi = mid
    return hi


def choose_thresholds(
    features: GateFeatures,
    *,
    alpha: float = 0.05,
    delta: float = 0.1,
    rho_grid: Sequence[float] | None = None,
    floor_grid: Sequence[float] | None = None,
    verify_options: Sequence[bool] = (False, True),
) -> GateRiskCalibration:
    """Learn-then-Test over the grid (module docstring). Pure.

    Args:
        features: Per-triple features (:func:`gate_features`).
        alpha: Target ANSWER risk, in ``(0, 1)``. delta: Allowed failure probability.
        rho_grid: Candidate radii (default 0 … 0.5 by 0.025).
        floor_grid: Candidate top-score floors (default: -inf and the 25 % quantile of the
            top scores — label-free, so they do not spoil the test; every extra floor costs
            power through the Bonferroni split).
        verify_options: Whether to try requiring verification.

    Returns:
        The :class:`GateRiskCalibration`.
    """
    if not (0 < alpha < 1 and 0 < delta < 1):
        raise InvalidInputError(f"alpha and delta must be in (0, 1), got {alpha}, {delta}")
    f = features
    n = len(f.correct)
    if n == 0:
        raise InvalidInputError("choose_thresholds needs at least one calibration triple")
    rhos = sorted({float(r) for r in (rho_grid or np.round(np.arange(0, 0.5001, 0.025), 4))})[::-1]
    finite = f.top_score[np.isfinite(f.top_score)]
    floors = (
        [float(x) for x in floor_grid]
        if floor_grid is not None
        else [-math.inf, float(np.quantile(finite, 0.25))]
        if finite.size
        else [-math.inf]
    )
    families = [(fl, v) for fl in floors for v in verify_options]
    level = delta / len(families)
    least = max(1, math.ceil(math.log(level) / math.log1p(-alpha)))  # fewest testable ANSWERs
    tested: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    for floor, verify in families:
        for rho in rhos:  # strictest first: fixed-sequence within the family
            ans = (f.critical_rho > rho) & (f.top_score >= floor) & f.relevant
            if verify:
                ans &= f.verified
            n_ans, n_wrong = int(ans.sum()), int((ans & ~f.correct).sum())
            if n_ans < least:  # cannot be rejected even with no error; label-free, so skip
                continue
            p = binomial_cdf(n_wrong, n_ans, alpha)
            row = {"rho": rho, "score_floor": floor, "verify": verify, "n_answered": n_ans,
                   "n_wrong": n_wrong, "p_value": p, "accepted": p <= level}  # fmt: skip
            tested.append(row)
            if not row["accepted"]:
                break
            if best is None or n_ans > best["n_answered"]:
                best = row
    feasible = best is not None
    if best is None and not tested:
        tested.append({"rho": 0.0, "score_floor": -math.inf, "verify": False, "n_answered": 0,
                       "n_wrong": 0, "p_value": 1.0, "accepted": False})  # fmt: skip
    if best is None:  # report the best empirical candidate, clearly marked infeasible
        best = max(tested, key=lambda r: (r["n_wrong"] <= alpha * r["n_answered"], r["n_answered"]))
    n_ans, n_wrong = best["n_answered"], best["n_wrong"]
    reason = (
        f"ANSWER risk <= {alpha:g} with probability >= {1 - delta:g}: rho {best['rho']:g}, "
        f"score floor {best['score_floor']:.3g}, verify {best['verify']} answers {n_ans}/{n}"
        if feasible
        else f"infeasible: no threshold keeps ANSWER risk <= {alpha:g} at confidence "
        f"{1 - delta:g} on {n} triples (best empirical: {n_wrong}/{n_ans} wrong); the gate "
        "should not ANSWER at this risk on this corpus"
    )
    result = GateRiskCalibration(
        feasible=feasible,
        rho=float(best["rho"]),
        score_floor=float(best["score_floor"]),
        verify=bool(best["verify"]),
        alpha=alpha,
        delta=delta,
        n=n,
        n_answered=n_ans,
        n_wrong=n_wrong,
        risk=n_wrong / n_ans if n_ans else math.nan,
        upper_bound=_upper_bound(n_wrong, n_ans, delta),
        p_value=float(best["p_value"]),
        coverage=n_ans / n,
        reason=reason,
        tested=tested,
    )
    logger.info("gate risk calibration: %s", reason)
    return result


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace(".", " ").replace(",", " ").split())


def gate_features(
    luma: Luma,
    triples: Sequence[tuple[str, str, str | None]],
    *,
    relevance: RelevanceModel | None = None,
    answer: Callable[[str, Any], tuple[str, bool]] | None = None,
    search_texts: Sequence[str] | None = None,
    is_right: Callable[[str, str], bool] | None = None,
    max_rho: float = 2.0,
    tol: float = 1e-3,
) -> GateFeatures:
    """Measure the per-triple features on an open store with a text encoder.

    Args:
        luma: The store (its encoder embeds the questions).
        triples: ``(question, relevant item id, expected answer or None)``.
        relevance: Relevance model (default: none, every query relevant).
        answer: ``answer(question, hits) -> (answer text, verified)``: the text an ANSWER
            from the top hit gives, and whether the default verified path
            (:func:`~luma_rag.answer.verify_vlm.verified_answerer`) keeps that ANSWER (its
            top-1 passed the yes/no check and the verified hits agree); default: no
            answerer, correctness is "the top-1 is the relevant item".
        search_texts: The text searched for each triple (default: its question), e.g. a
            retrieval rewrite of the question.
        is_right: ``is_right(answer text, expected) -> bool``; default: the expected answer's
            words appear in the answer (case and punctuation ignored).
        max_rho, tol: Bisection range and precision of the critical radius.

    Returns:
        The :class:`GateFeatures`.
    """
    encoder = luma.encoder
    if encoder is None:
        raise InvalidInputError("gate_features needs a store with an encoder attached")
    if not triples:
        raise InvalidInputError("gate_features needs at least one (question, item id, answer)")
    if search_texts is not None and len(search_texts) != len(triples):
        raise InvalidInputError(
            f"search_texts has {len(search_texts)} entries for {len(triples)} triples"
        )
    searched = [t[0] for t in triples] if search_texts is None else list(search_texts)
    crit, top, rel, ver, ok = [], [], [], [], []
    for (question, item_id, expected), text in zip(triples, searched, strict=True):
        vector = np.asarray(encoder.encode_text([text])[0])
        first = luma.search(vector, 5, rho=0.0)
        hits = first.hits
        top.append(hits[0].score if hits else -math.inf)
        verdict = relevance.judge(text, "text", top[-1] if hits else None) if relevance else None
        rel.append(verdict.relevant if verdict is not None else bool(hits))

        def safe_at(rho: float, v: np.ndarray = vector) -> bool:
            return bool(luma.search(v, 2, rho=rho).telemetry.safe1)

        crit.append(critical_radius(safe_at, tol=tol, max_rho=max_rho) if hits else 0.0)
        if answer is not None and expected:
            text, verified = answer(question, hits)
            ver.append(verified)
            ok.append(
                is_right(text, expected)
                if is_right is not None
                else _normalise(expected) in _normalise(text)
            )
        else:
            ver.append(True)
            ok.append(bool(hits) and hits[0].id == item_id)
    return GateFeatures(
        np.asarray(crit, dtype=np.float64),
        np.asarray(top, dtype=np.float64),
        np.asarray(rel, dtype=bool),
        np.asarray(ver, dtype=bool),
        np.asarray(ok, dtype=bool),
    )


def calibrate_gate(
    luma: Luma,
    triples: Sequence[tuple[str, str, str | None]],
    *,
    alpha: float = 0.05,
    delta: float = 0.1,
    relevance: RelevanceModel | None = None,
    answer: Callable[[str, Any], tuple[str, bool]] | None = None,
    search_texts: Sequence[str] | None = None,
    is_right: Callable[[str, str], bool] | None = None,
    **grid: Any,
) -> GateRiskCalibration:
    """Choose ρ, the relevance floor and verification so that ANSWER risk ≤ α w.p. ≥ 1 − δ.

    :func:`gate_features` then :func:`choose_thresholds`; see the module docstring. Use
    triples disjoint from anything the calibrated gate is evaluated on. With ``answer``
    (the answerer's own yes/no verification, e.g.
    :func:`~luma_rag.answer.verify_vlm.verified_answerer`) the grid includes "require
    verification" (``verify_options``, default both), so a gate whose certificate alone is
    too risky can still be feasible when it answers only verified evidence.

    Returns:
        The :class:`GateRiskCalibration` (``feasible=False``: no thresholds meet the target;
        its thresholds are then the best empirical ones, for reference only).
    """
    features = gate_features(
        luma,
        triples,
        relevance=relevance,
        answer=answer,
        search_texts=search_texts,
        is_right=is_right,
    )
    return choose_thresholds(features, alpha=alpha, delta=delta, **grid)
