"""Choosing the score-gap path's settings on the dev corpus, from cached VLM calls.

Three parts of the dev corpus (seed 6262; :mod:`luma_rag.eval.trust_dev`):

* **learn** (its val split, question seed 6364): every setting of :data:`GRID` is replayed
  and the settings whose risk, ANSWER risk and per-kind coverage meet the targets with some
  room are ranked by coverage;
* **calibrate** (the same val gallery, other questions: seed 6370): the **ANSWER risk** of the
  verification route is controlled by Learn-then-Test (:func:`answer_ltt`: the fixed
  sequence over ``verified_top``, strictest first, α = 0.05, δ = 0.1,
  :func:`~luma_rag.answer.scored_ltt.choose_scored_config`); with ``--grid``, the structure
  the learn part ranks first is tested alone too (one hypothesis: its binomial p-value for
  ANSWER + WIDEN risk > α must be ≤ δ, α = δ = 0.1), with the fixed sequence over ``accept``;
* **check** (its test split and the off-topic questions): the figures.

The train split is not used: its shape/colour combinations are the ones the tiny models were
trained on (val and test hold unseen ones, as the held-out corpus does), so every rule is
nearly error-free there and it cannot tell them apart.

Never run on the held-out pair. Command line (fills the VLM cache, prints the report)::

    python -m luma_rag.datasets.shapes --out data/dev6262 --n 1200 --seed 6262
    python -m luma_rag.eval.trust_dev_search --data data/dev6262 --out data/dev6262/run.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from luma_rag.answer.base import Answer, Answerer
from luma_rag.answer.confidence import fixed_sequence
from luma_rag.answer.scored import (
    SESSION6_SCORED,
    SESSION7_SCORED,
    ScoredVerifyConfig,
    ScoredVerifyingAnswerer,
)
from luma_rag.answer.scored_ltt import choose_scored_config
from luma_rag.answer.verify import VerifyConfig, VerifyingAnswerer
from luma_rag.answer.verify_vlm import VlmVerifier
from luma_rag.eval.gate_questions import CachedAnswerer, default_answerer
from luma_rag.eval.trust_dev import (
    DEV_TEST_SEED,
    DevCase,
    VlmCache,
    collect,
    figures,
    model_tag,
    prefill,
    replay,
    stage,
)

__all__ = [
    "GRID",
    "VERIFIED_TOP_GRID",
    "answer_ltt",
    "errors",
    "main",
    "ok",
    "plan",
    "run",
    "search",
    "select",
]

logger = logging.getLogger(__name__)

#: The settings tried on the learn part (``doubt > accept`` combinations skipped).
GRID: Final[dict[str, tuple[Any, ...]]] = {
    "accept": (0.5, 0.7, 0.9),
    "doubt": (0.2, 0.35, 0.5),
    "gap": (0.0, 0.5),
    "max_drop": (None, 0.03),
    "min_coverage": (1.0,),  # None lets off-topic questions through (structural, not tuned)
    "certified_top": (False, True),
    "verified_top": (None, 0.5),
}
#: ``verified_top`` values the ANSWER-risk Learn-then-Test walks, strictest first.
VERIFIED_TOP_GRID: Final = (0.9, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5)


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
    """Every :data:`GRID` setting's figures on ``cases``: ``[{"config", "figures", "ok",
    "safe"}]``, the ones that pass :func:`ok` first, then those that pass it but for the
    per-kind coverage (``safe``), each by coverage."""
    base = base or ScoredVerifyConfig(k_verify=k)
    rows: list[dict[str, Any]] = []
    names = list(GRID)
    for values in itertools.product(*(GRID[n] for n in names)):
        setting = dict(zip(names, values, strict=True))
        if setting["doubt"] > setting["accept"]:
            continue
        cfg = dataclasses.replace(base, **setting)
        fig = figures(cases, replay(cases, rule(cfg)), k)
        safe = ok(fig, kind_share=0.0)
        rows.append({"config": cfg.to_dict(), "figures": fig, "ok": ok(fig), "safe": safe})
    rows.sort(key=lambda r: (not r["ok"], not r["safe"], -(r["figures"]["coverage"] or 0.0)))
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
    # one hypothesis, chosen on learn alone: its risk on calibrate, binomial test at δ
    single = fixed_sequence([(best.accept, answered(best))], n_total=len(on), alpha=alpha,
                            delta=delta)  # fmt: skip
    return {
        "learn_top": rows[:5], "learn_n": len(learn), "structure": best.to_dict(),
        "ltt": ltt, "ltt_single": single,
    }  # fmt: skip


def answer_ltt(
    bot: CachedAnswerer, checker: Any, calibrate: Sequence[DevCase], *,
    base: ScoredVerifyConfig | None = None, alpha: float = 0.05, delta: float = 0.1,
) -> dict[str, Any]:  # fmt: skip
    """The loosest ``verified_top`` whose **ANSWER** risk (wrong ANSWERs among ANSWERs, WIDENs
    not counted) on ``calibrate``'s targeted questions is ≤ ``alpha`` with probability
    ≥ 1 − ``delta`` (:func:`~luma_rag.answer.scored_ltt.choose_scored_config` over
    :data:`VERIFIED_TOP_GRID`; a setting is skipped only when it keeps too few ANSWERs for an
    error-free sample to pass), or ``feasible: False``."""
    on = [c for c in calibrate if not c.off_topic]

    def answered(cfg: ScoredVerifyConfig) -> list[bool]:
        out = replay(on, ScoredVerifyingAnswerer(bot, checker, cfg))
        return [c.right(a.text) for c, a in zip(on, out, strict=True)
                if a.decision.decision == "answer"]  # fmt: skip

    return choose_scored_config(
        answered, len(on), base=base or ScoredVerifyConfig(), grid=VERIFIED_TOP_GRID,
        alpha=alpha, delta=delta, param="verified_top", min_share=0.0,
    )  # fmt: skip


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


#: ``min_confidence`` values reported beside the default path's.
CONFIDENCE_FLOORS: Final = (0.0, 0.5, 0.7, 0.95)


def _none(_question: str) -> None:
    return None


def plan(test: int, cal: int, learn: int, galleries: int) -> dict[str, tuple[int, int]]:
    """``{gallery: (questions, seed)}``: the test split (seed 6363), the val split to learn on
    (6364) and to calibrate on (6370), ``galleries`` cut from the train split (6365, ...; for
    comparison only)."""
    out = {"test": (test, DEV_TEST_SEED), "val": (learn, DEV_TEST_SEED + 1),
           "val@cal": (cal, DEV_TEST_SEED + 7)}  # fmt: skip
    for i in range(galleries):
        out[f"train-{i}"] = (learn, DEV_TEST_SEED + 2 + i)
    return out


def run(
    data_dir: str | Path, galleries: dict[str, tuple[int, int]], *, k: int = 3,
    answerer: Answerer | None = None, cache: str | Path | None = None, chunk: int = 40,
    grid: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Collect, prefill (cached), choose ``verified_top`` by the ANSWER-risk Learn-then-Test
    (:func:`answer_ltt`; with ``grid``, also the :data:`GRID` search and its test), and report
    the chosen setting beside the default, session 7's and session 6's paths and the gate
    alone on each part. ``answerer`` None: the shipped tiny LLaVA."""
    cases = collect(data_dir, galleries)
    bot = CachedAnswerer(answerer or default_answerer(), top_only=True, clarify_text=True)
    store = VlmCache(bot, cache or Path(data_dir) / "vlm-cache.json", model_tag(bot))
    logger.info("trust_dev: %d cached calls read", store.load())
    checker = VlmVerifier(bot)
    for i in range(0, len(cases), chunk):  # test first: what is checked comes first
        prefill(bot, checker, cases[i : i + chunk], k)
        store.save()
        logger.info("trust_dev: %d/%d cases, %d calls", i + chunk, len(cases), bot.calls)
    part = {
        "test": [c for c in cases if c.gallery == "test"],
        "learn": [c for c in cases if c.gallery == "val"],
        "calibrate": [c for c in cases if c.gallery == "val@cal"],
        "train": [c for c in cases if c.gallery.startswith("train-")],
    }
    part = {name: cases for name, cases in part.items() if cases}
    report: dict[str, Any] = {"plan": galleries, "k": k}
    if grid:  # asks the model for what the cache lacks (other contenders, the yes/no path)
        report |= select(bot, checker, part["learn"], part["calibrate"], k)
    ltt = answer_ltt(bot, checker, part["calibrate"])
    report["answer_ltt"] = ltt
    report["calls"] = bot.calls
    final = ScoredVerifyConfig(**ltt["config"]) if ltt["feasible"] else ScoredVerifyConfig()
    report["chosen_config"] = final.to_dict()
    rules: dict[str, Answerer] = {
        "gate": bot,
        "default": ScoredVerifyingAnswerer(bot, checker, ScoredVerifyConfig()),
        "session 7": ScoredVerifyingAnswerer(bot, checker, SESSION7_SCORED),
        "scored (session 6)": ScoredVerifyingAnswerer(bot, checker, SESSION6_SCORED),
        "chosen": ScoredVerifyingAnswerer(bot, checker, final),
    }
    if grid:  # session 5's yes/no strings over VerifyConfig().k_verify hits: many uncached calls
        rules["yes-no (session 5)"] = VerifyingAnswerer(bot, checker, VerifyConfig(), kind_of=_none)
    for floor in CONFIDENCE_FLOORS:  # the answerer's own probability of its answer
        cfg = dataclasses.replace(ScoredVerifyConfig(), min_confidence=floor)
        rules[f"default, min_confidence {floor}"] = ScoredVerifyingAnswerer(bot, checker, cfg)
    on_val = [c for c in part["calibrate"] if not c.off_topic]
    default = rules["default"]
    kept = [c.right(a.text) for c, a in zip(on_val, replay(on_val, default), strict=True)
            if a.decision.decision in ("answer", "widen")]  # fmt: skip
    report["ltt_default"] = fixed_sequence([(ScoredVerifyConfig().accept, kept)],
                                           n_total=len(on_val), alpha=0.1, delta=0.1)  # fmt: skip
    for name, rule in rules.items():
        for split, subset in part.items():
            answers = replay(subset, rule)
            report.setdefault(name, {})[split] = figures(subset, answers, k)
            if split == "test":
                report[name]["test_errors"] = errors(subset, answers, k)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m luma_rag.eval.trust_dev_search --data DIR [--test N] [--cal N] ...``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="the dev corpus (seed 6262)")
    parser.add_argument("--test", type=int, default=200, help="questions on the test split")
    parser.add_argument("--cal", type=int, default=1000, help="val questions to test on (LTT)")
    parser.add_argument("--learn", type=int, default=200, help="val questions to learn on")
    parser.add_argument("--train-galleries", type=int, default=0, help="train-split galleries")
    parser.add_argument("--k", type=int, default=3, help="hits verified per question")
    parser.add_argument("--cache", default=None, help="default: DATA/vlm-cache.json")
    parser.add_argument("--out", default=None, help="write the JSON report here")
    parser.add_argument("--grid", action="store_true", help="also search GRID on the learn part")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    galleries = plan(args.test, args.cal, args.learn, args.train_galleries)
    report = run(args.data, galleries, k=args.k, cache=args.cache, grid=args.grid)
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
