"""Choosing the score-gap path's settings on the dev corpus, from cached VLM calls.

Three disjoint parts of the dev corpus (seed 6262; :mod:`luma_rag.eval.trust_dev`):

* **learn** (galleries cut from its train split): every setting of :data:`GRID` is replayed
  and the settings whose risk, ANSWER risk and per-kind coverage meet the targets with some
  room are ranked by coverage — this picks the *structure* (``doubt``, ``gap``,
  ``max_drop``, ``rescue_coverage``);
* **calibrate** (its val split): Learn-then-Test over ``accept`` for that structure
  (:func:`~luma_rag.answer.scored.choose_scored_config`, α = δ = 0.1);
* **check** (its test split and the off-topic questions): the chosen setting's figures.

Never run on the held-out pair.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

from luma_rag.answer.base import Answer, Answerer
from luma_rag.answer.scored import ScoredVerifyConfig, ScoredVerifyingAnswerer, choose_scored_config
from luma_rag.eval.gate_questions import CachedAnswerer
from luma_rag.eval.trust_dev import DevCase, figures, replay, stage

__all__ = ["GRID", "errors", "ok", "search", "select"]

logger = logging.getLogger(__name__)

#: The settings tried on the learn part (``doubt > accept`` combinations skipped).
GRID: Final[dict[str, tuple[Any, ...]]] = {
    "accept": (0.5, 0.7, 0.9),
    "doubt": (0.1, 0.2, 0.35),
    "gap": (0.0, 0.4, 0.6),
    "max_drop": (None, 0.03),
    "rescue_coverage": (None, 0.75, 1.0),
}


def ok(fig: dict[str, Any], *, risk: float = 0.07, answer_risk: float = 0.05,
       kind_share: float = 0.2) -> bool:  # fmt: skip
    """Whether figures meet the targets with room: risk, ANSWER risk, answered per kind."""
    ans = fig["answer"]
    return (
        fig["risk"] is not None
        and fig["risk"] <= risk
        and (ans["n"] == 0 or ans["wrong"] / ans["n"] <= answer_risk)
        and all(v >= kind_share for k, v in fig["answered_by_kind"].items() if k != "shape")
    )


def search(
    cases: Sequence[DevCase], rule: Callable[[ScoredVerifyConfig], Answerer], k: int,
    base: ScoredVerifyConfig | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Every :data:`GRID` setting's figures on ``cases``: ``[{"config", "figures", "ok"}]``,
    the ones that pass :func:`ok` first, then by coverage."""
    base = base or ScoredVerifyConfig(k_verify=k)
    rows = []
    names = list(GRID)
    for values in itertools.product(*(GRID[n] for n in names)):
        setting = dict(zip(names, values, strict=True))
        if setting["doubt"] > setting["accept"]:
            continue
        cfg = dataclasses.replace(base, **setting)
        fig = figures(cases, replay(cases, rule(cfg)), k)
        rows.append({"config": cfg.to_dict(), "figures": fig, "ok": ok(fig)})
    rows.sort(key=lambda r: (not r["ok"], -(r["figures"]["coverage"] or 0.0)))
    return rows


def select(
    bot: CachedAnswerer, checker: Any, learn: Sequence[DevCase], calibrate: Sequence[DevCase],
    k: int, alpha: float = 0.1, delta: float = 0.1,
) -> dict[str, Any]:  # fmt: skip
    """The structure that does best on ``learn``, its ``accept`` by LTT on ``calibrate``."""

    def rule(cfg: ScoredVerifyConfig) -> Answerer:
        return ScoredVerifyingAnswerer(bot, checker, cfg)

    rows = search(learn, rule, k)
    best = ScoredVerifyConfig(**rows[0]["config"])
    on = [c for c in calibrate if not c.off_topic]

    def answered(cfg: ScoredVerifyConfig) -> list[bool]:
        out = replay(on, rule(cfg))
        return [c.right(a.text) for c, a in zip(on, out, strict=True)
                if a.decision.decision in ("answer", "widen")]  # fmt: skip

    ltt = choose_scored_config(answered, len(on), base=best, alpha=alpha, delta=delta)
    return {"learn_top": rows[:5], "learn_n": len(learn), "structure": best.to_dict(), "ltt": ltt}


def errors(cases: Sequence[DevCase], answers: Sequence[Answer], k: int) -> list[dict[str, Any]]:
    """One row per wrong ANSWER / WIDEN: the question, its stage, the hits' yes-scores."""
    out = []
    for c, a in zip(cases, answers, strict=True):
        where = stage(c, a, k)
        if where is None:
            continue
        info = a.telemetry.get("verification") or {}
        out.append({
            "stage": where, "question": c.text, "decision": a.decision.decision,
            "gate": c.decision.decision, "answer": a.text, "target": c.target,
            "good": sorted(c.good), "top": [h.id for h in c.decision.hits[:k]],
            "scores": info.get("scores"), "answered_from": info.get("answered_from"),
            "coverage": None if c.decision.relevance is None else c.decision.relevance.coverage,
        })  # fmt: skip
    return out
