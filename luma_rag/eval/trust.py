"""Issue #17's held-out evaluation: is the gate's ANSWER right, does it refuse what it cannot know?

On a LUMA-Shapes corpus generated with a seed nothing else uses, the test split is the store
(images + captions, the shipped tiny CLIP), and:

* **targeted questions** (full referents; the store is queried with the referent, the
  answerer gets the question), since session 9 **well posed** by default
  (:func:`~luma_rag.eval.well_posed.question_set`: a question's referent singles out the
  asked value in the gallery; ambiguous draws are rejected, counted per kind and scored
  apart as the *ambiguous set*, whose right outcome is CLARIFY; ``--questions-mode as-drawn``
  gives the earlier set, ambiguous questions mixed in): per variant the
  share of ANSWER / WIDEN / CLARIFY / NOT_IN_MEMORY, ANSWER and WIDEN right with 95 % Wilson
  intervals, coverage (ANSWER + WIDEN) and answered share per kind; the **no-gate baseline**
  answers every question from the top-1;
* **off-topic questions** (:data:`~luma_rag.eval.offtopic.OFF_TOPIC`, 60), through every
  variant: the share that end without ANSWER or WIDEN; and the share of on-topic questions
  called NOT_IN_MEMORY;
* **risk–coverage**: each variant's risk against the best raw-margin threshold (γ = s1 − s2
  over the no-gate answers) at the same coverage, and the AURC of the no-gate answers ordered
  by γ, by the certificate's slack and (with verification) by the gate's trust score
  (:func:`~luma_rag.eval.trust_score.trust_score`: verification agreement × top-1 yes-score ×
  answer probability + slack), with bootstrap intervals (:mod:`luma_rag.eval.trust_report`,
  which also checks every target: PASS / MISS; the AURC target is checked on the trust
  score, the certificate-alone row is reported beside it).

Variants: ``gate`` (certificate + completeness + relevance, no verification); ``gate+verify``
— **the library's default path** and the one the targets are checked on
(:func:`~luma_rag.answer.verify_vlm.verified_answerer` with no config: the gate, then the top
``k_verify`` hits scored by the answerer's own P("yes") with the guards of
:class:`~luma_rag.answer.scored.ScoredVerifyConfig`'s defaults and its verification route to
ANSWER, referent taken from the question, no corpus parsing); ``gate+verify (session 7)``
— session 7's default, ANSWER by Safe@1 only (:data:`~luma_rag.answer.scored.SESSION7_SCORED`);
``gate+scored-verify (session 6)`` — the score-gap path without its guards
(:data:`~luma_rag.answer.scored.SESSION6_SCORED`); ``gate+yes-no-verify`` — the
default before it: yes/no strings over ``k_verify`` hits on the gate's ANSWER / WIDEN
(:class:`~luma_rag.answer.verify.VerifyConfig`); ``gate+verify+rescue`` (that path, also
turning a CLARIFY into a WIDEN over verified hits); ``gate+ltt`` (ρ, score floor and "require
verification" chosen by :func:`luma_rag.risk_control.calibrate_gate` on the **val** split at
α = δ = 0.1 — used only when feasible, else its best empirical thresholds, marked so).
``--attr-verify`` adds the LUMA-Shapes attribute verifier (not the default path).

Cost: the answerer is the expensive part. Calls are cached (the tiny LLaVA reads only the
question and the top image) and batched: all gate decisions first, then every yes/no check,
then every answer, each in batches (:meth:`~luma_rag.answer.llava.LlavaAnswerer.answer_many`).

Command line::

    python -m luma_rag.datasets.shapes --out data/eval-trust14813 --n 1200 --seed 14813
    python -m luma_rag.eval.trust --data data/eval-trust14813 --questions 400 --seed 14821
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag.answer.base import Answerer
from luma_rag.answer.scored import ScoredVerifyConfig
from luma_rag.datasets.questions import QUESTION_KINDS
from luma_rag.errors import InvalidInputError
from luma_rag.eval.gate_questions import CachedAnswerer, default_answerer
from luma_rag.eval.trust_corpus import RunSettings, run_corpus
from luma_rag.eval.trust_report import (
    aurc_table,
    equal_coverage,
    print_targets,
    summary,
    targets,
    wilson,
)
from luma_rag.eval.trust_variants import (
    DEFAULT_VARIANT,
    LEGACY_VARIANT,
    SESSION6_VARIANT,
    SESSION7_VARIANT,
)
from luma_rag.eval.well_posed import QUESTION_MODES, QuestionMode, ambiguous_summary

__all__ = [
    "DEFAULT_VARIANT",
    "LEGACY_VARIANT",
    "SESSION6_VARIANT",
    "SESSION7_VARIANT",
    "evaluate_trust",
    "main",
]

logger = logging.getLogger(__name__)


def _merged_questions(sets: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several corpora's question-set counts as one (counts add; distinct targets add, since
    each corpus's items are its own)."""
    out: dict[str, Any] = {"mode": sets[0]["mode"]}
    for key, value in sets[0].items():
        if isinstance(value, int):
            out[key] = sum(q[key] for q in sets)
        elif isinstance(value, dict):
            out[key] = {k: sum(q[key].get(k, 0) for q in sets) for k in value}
    return out


def evaluate_trust(
    data_dir: str | Path | Sequence[str | Path],
    *,
    n_questions: int = 400,
    seed: int = 14821,
    answerer: Answerer | None = None,
    encoder: Any = "luma-tiny",
    bootstrap: int = 1000,
    verify: bool = True,
    k_verify: int = 10,
    n_calibration: int = 600,
    attr_verify: bool = False,
    alpha: float = 0.1,
    delta: float = 0.1,
    scored: ScoredVerifyConfig | None = None,
    legacy: bool = True,
    calibrate: bool = True,
    question_mode: QuestionMode = "well-posed",
) -> dict[str, Any]:
    """Run the evaluation (module docstring); returns a JSON-able report with the targets.

    ``data_dir``: one corpus, or several, **pooled**: corpus ``i`` gets ``n_questions``
    questions drawn with seed ``seed + 1000 * i`` over its own store, every figure is computed
    over all of them together and ``corpora`` lists each corpus's own counts (pooling needs
    ``calibrate=False``: the calibrated variants are per corpus).
    ``answerer`` None: the shipped tiny LLaVA, cached on question + top image; another
    answerer is cached on the whole decision. ``verify=False`` runs the gate alone.
    ``scored``: the default path's settings (default :class:`ScoredVerifyConfig`: the
    library's); ``legacy``: also run the earlier paths (session 6's unguarded score-gap path,
    the ``k_verify`` yes/no strings and their rescue);
    ``calibrate``: also run the val-split calibrations and the variants that use them;
    ``question_mode``: ``"well-posed"`` (targeted questions single out their answer; the
    rejected ambiguous draws are scored apart, right outcome CLARIFY) or ``"as-drawn"`` (the
    generator before session 9), :func:`~luma_rag.eval.well_posed.question_set` — also for
    the val-split calibrations.

    Raises:
        InvalidInputError: No corpus, or several with ``calibrate=True``.
    """
    started = time.perf_counter()
    dirs = [data_dir] if isinstance(data_dir, str | Path) else list(data_dir)
    if not dirs:
        raise InvalidInputError("give at least one corpus directory")
    if len(dirs) > 1 and calibrate:
        raise InvalidInputError(
            "several corpora are pooled only without calibration (--no-calibration): "
            "the calibrated variants are chosen per corpus"
        )
    scored = scored if scored is not None else ScoredVerifyConfig()
    bot = CachedAnswerer(
        answerer or default_answerer(), top_only=answerer is None, clarify_text=True
    )
    settings = RunSettings(encoder, verify, k_verify, n_calibration, attr_verify, alpha, delta,
                           scored, legacy, calibrate, question_mode)  # fmt: skip
    runs = [run_corpus(d, n_questions, seed + 1000 * i, bot, settings) for i, d in enumerate(dirs)]
    names = list(runs[0].records)
    records = {n: [r for run in runs for r in run.records[n]] for n in names}
    unclear = {n: [r for run in runs for r in run.unclear[n]] for n in names}
    off_decisions = {n: [d for run in runs for d in run.off_decisions[n]] for n in names}
    wrong = np.asarray([w for run in runs for w in run.base_wrong], dtype=bool)
    margin = np.asarray([m for run in runs for m in run.margins])
    conf = {
        "raw_margin": margin,
        "certificate_slack": np.asarray([x for run in runs for x in run.slacks]),
    }
    if verify:
        conf["gate_score"] = np.asarray([x for run in runs for x in run.trusts])
    nim = sum(r.decision == "not_in_memory" for r in records["gate"])
    first, cal = runs[0].meta, runs[0].meta["cal"]
    n_t = len(records["gate"])
    report: dict[str, Any] = {
        "data": first["data"] if len(runs) == 1 else [run.meta["data"] for run in runs],
        "n_gallery": sum(run.meta["n_gallery"] for run in runs),
        "n_questions": n_t,
        "n_requested": n_questions * len(runs),
        "seed": seed,
        "questions": _merged_questions([run.meta["questions"] for run in runs]),
        "corpora": [
            {k: v for k, v in run.meta.items() if k not in ("cal", "confidence_floor")}
            | {"n_questions": len(run.records["gate"])}
            for run in runs
        ],
        "bootstrap": bootstrap,
        "k_verify": scored.k_verify if verify else k_verify,
        "k_verify_legacy": k_verify if legacy else None,
        "scored_verify": scored.to_dict(),
        "default": DEFAULT_VARIANT if verify else "gate",
        "answerer": "tiny LLaVA (luma-tiny-llava)" if answerer is None else type(answerer).__name__,
        "relevance": first["relevance"],
        "confidence_floor": first["confidence_floor"],
        "consensus_radius": first["consensus_radius"],
        "risk_control": {"feasible": None, "alpha": alpha, "delta": delta, "reason": "not run"}
        if cal is None
        else cal.to_dict() | {"tested": len(cal.tested), "n_val_items": first["n_val_items"]},
        "variants": {n: summary(r, QUESTION_KINDS) for n, r in records.items()},
        "ambiguous": {n: ambiguous_summary(r, wilson) for n, r in unclear.items()},
        "no_gate": {
            "n": len(wrong),
            "right": 1 - float(wrong.mean()),
            "wilson95": wilson(int((~wrong).sum()), len(wrong)),
        },
        "off_topic": {},
        "on_topic_called_off_topic": {
            "n": nim,
            "share": nim / n_t,
            "wilson95": wilson(nim, n_t),
        },
        "risk_coverage": aurc_table(conf, wrong.astype(float), bootstrap),
        "equal_coverage": {},
    }
    for name, decisions in off_decisions.items():
        refused = sum(d not in ("answer", "widen") for d in decisions)
        report["off_topic"][name] = {
            "n": len(decisions), "n_refused": refused, "refused": refused / len(decisions),
            "wilson95": wilson(refused, len(decisions)),
            "decisions": {k: decisions.count(k) for k in sorted(set(decisions))},
        }  # fmt: skip
        recs = records[name]
        answered = np.asarray([r.decision in ("answer", "widen") for r in recs])
        correct = np.asarray([r.correct for r in recs])
        report["equal_coverage"][name] = equal_coverage(answered, correct, margin, wrong, bootstrap)
    report["answerer_calls"] = bot.calls
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["load"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    report["targets"] = {name: targets(report, name) for name in names}
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m luma_rag.eval.trust --data DIR [--questions N] [--seed S] [--out FILE]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        required=True,
        nargs="+",
        help="a LUMA-Shapes corpus (test + val splits); several are pooled (--no-calibration)",
    )
    parser.add_argument("--questions", type=int, default=400)
    parser.add_argument("--seed", type=int, default=14821)
    parser.add_argument("--calibration", type=int, default=600, help="val-split questions for LTT")
    parser.add_argument("--k-verify", type=int, default=10, help="hits verified (the gate's k)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", default=None, help="write the JSON report here too")
    parser.add_argument("--readme", default=None, help="rewrite this README's generated table")
    parser.add_argument("--no-verify", action="store_true", help="skip the verification variants")
    parser.add_argument("--attr-verify", action="store_true", help="add the attribute verifier")
    parser.add_argument("--no-calibration", action="store_true", help="skip the val-split LTT")
    parser.add_argument("--no-legacy", action="store_true", help="skip the previous default")
    parser.add_argument("--scored-k", type=int, default=None, help="scored path's k_verify")
    parser.add_argument("--accept", type=float, default=None, help="scored path's accept")
    parser.add_argument("--doubt", type=float, default=None, help="scored path's doubt")
    parser.add_argument(
        "--questions-mode",
        choices=QUESTION_MODES,
        default="well-posed",
        help="well-posed targeted questions (default) or the as-drawn ones",
    )
    parser.add_argument("--alpha", type=float, default=0.1, help="calibration risk level")
    parser.add_argument("--delta", type=float, default=0.1, help="calibration failure chance")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    progress = logging.StreamHandler()
    progress.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(progress)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    report = evaluate_trust(
        args.data[0] if len(args.data) == 1 else args.data,
        n_questions=args.questions,
        seed=args.seed,
        bootstrap=args.bootstrap,
        verify=not args.no_verify,
        k_verify=args.k_verify,
        n_calibration=args.calibration,
        attr_verify=args.attr_verify,
        scored=ScoredVerifyConfig(**{
            k: v for k, v in (("k_verify", args.scored_k), ("accept", args.accept),
                              ("doubt", args.doubt)) if v is not None
        }),
        legacy=not args.no_legacy,
        calibrate=not args.no_calibration,
        question_mode=args.questions_mode,
        alpha=args.alpha,
        delta=args.delta,
    )  # fmt: skip
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    print_targets(report)
    if args.readme:
        from luma_rag.eval.trust_report import write_readme

        write_readme(report, args.readme)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
