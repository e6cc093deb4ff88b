"""Learn-then-Test for the score-gap path (:mod:`luma_rag.answer.scored`): the loosest
``accept`` (or ``verified_top``, ``top_confidence``) whose risk is ≤ α with probability
≥ 1 − δ, or a plain statement that none is."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from luma_rag.answer.scored import ScoredVerifyConfig
from luma_rag.errors import InvalidInputError

__all__ = ["ACCEPT_GRID", "TUNABLE", "choose_scored_config"]


#: The default ``accept`` grid of :func:`choose_scored_config`, strictest first.
ACCEPT_GRID = (0.99, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5)
#: The settings :func:`choose_scored_config` can sweep (each a threshold in [0, 1] that
#: answers less the higher it is).
TUNABLE = ("accept", "verified_top", "top_confidence")


def choose_scored_config(
    answered: Callable[[ScoredVerifyConfig], Sequence[bool]],
    n_total: int,
    *,
    base: ScoredVerifyConfig | None = None,
    grid: Sequence[float] = ACCEPT_GRID,
    alpha: float = 0.1,
    delta: float = 0.1,
    param: str = "accept",
    min_share: float = 0.1,
) -> dict[str, Any]:
    """Learn-then-Test for the score-gap path: the loosest ``param`` whose risk is ≤ ``alpha``.

    Settings are tested in a fixed order, strictest ``param`` first (with ``accept``,
    ``doubt`` kept at ``min(base.doubt, accept)``), with the fixed-sequence binomial test of
    :func:`~luma_rag.answer.confidence.fixed_sequence`: with probability ≥ ``1 - delta`` the
    chosen setting's risk (wrong answers among the outcomes ``answered`` returns: ANSWER +
    WIDEN, or ANSWER alone for the ANSWER risk) on questions drawn like the calibration
    questions is ≤ ``alpha`` — or the result says that none is.

    Args:
        answered: ``answered(config)`` → one right/wrong flag per calibration question the
            path answered (ANSWER or WIDEN) with ``config``; e.g. a
            :class:`ScoredVerifyingAnswerer` over held-out (question, decision, expected
            answer) triples, its answerer cached so that each setting costs little.
        n_total: Number of calibration questions.
        base: The other settings (default :class:`ScoredVerifyConfig`).
        grid: ``param`` values, strictest (highest) first, each in [0, 1].
        alpha: Target risk among answered questions, in (0, 1).
        delta: Failure probability of the guarantee, in (0, 1).
        param: Which setting is swept: one of :data:`TUNABLE`.
        min_share: Settings that keep fewer answers than this share of ``n_total`` are
            skipped, not tested (label-free; e.g. 0 for the ANSWER risk, where ANSWERs are a
            small share of the questions).

    Returns:
        ``{"feasible", "config" (the chosen ScoredVerifyConfig's dict, None when
        infeasible), "param", ``param`` (the chosen value), "coverage", "risk", "n", "n_kept",
        "p_value", "alpha", "delta"}``.

    Raises:
        InvalidInputError: a grid that is not strictest-first in [0, 1], α / δ outside (0, 1),
            or a ``param`` that is not in :data:`TUNABLE`.
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
    if param not in TUNABLE:
        raise InvalidInputError(f"param must be one of {TUNABLE}, got {param!r}")
    base = base if base is not None else ScoredVerifyConfig()

    def setting(g: float) -> ScoredVerifyConfig:
        if param == "accept":
            return dataclasses.replace(base, accept=g, doubt=min(base.doubt, g))
        return dataclasses.replace(base, **{param: g})  # type: ignore[arg-type]

    configs = {g: setting(g) for g in values}
    steps = [(g, list(answered(configs[g]))) for g in values]
    out = fixed_sequence(steps, n_total=n_total, alpha=alpha, delta=delta, min_share=min_share)
    chosen = out.pop("setting")
    out["param"] = param
    out[param] = chosen
    out["config"] = None if chosen is None else configs[chosen].to_dict()
    return out
