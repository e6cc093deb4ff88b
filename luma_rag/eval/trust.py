"""Issue #17's held-out evaluation: is the gate's ANSWER right, does it refuse what it cannot know?

On a LUMA-Shapes corpus generated with a seed nothing else uses, the test split is the store
(images + captions, the shipped tiny CLIP), and:

* **targeted questions** (:func:`~luma_rag.eval.gate_questions.questions`, full referents):
  per variant, the share of ANSWER / WIDEN / CLARIFY / NOT_IN_MEMORY, ANSWER accuracy with a
  95 % Wilson interval, WIDEN risk, coverage (ANSWER + WIDEN) and answered share per kind;
  the **no-gate baseline** answers every question from the top-1;
* **off-topic questions** (:data:`~luma_rag.eval.offtopic.OFF_TOPIC`, 60): the share that end
  without ANSWER or WIDEN; and the share of on-topic questions called NOT_IN_MEMORY;
* **risk–coverage**: the no-gate answers ordered by the raw margin γ = s1 − s2 (the best
  plain threshold) and by the certificate's slack; area under each curve (AURC) with a
  bootstrap 95 % interval, and the margin threshold's risk at the gate's coverage.

Variants: ``gate`` (certificate + completeness + relevance, readable answers), ``gate+lttρ``
(ρ and score floor chosen by :func:`luma_rag.risk_control.calibrate_gate` on the **val**
split, α = 0.1, δ = 0.1), ``gate+vlm-verify`` (the default yes/no verification,
:mod:`luma_rag.answer.verify_vlm`) and, for reference, ``gate+attr-verify`` (the LUMA-Shapes
attribute verifier with abstention, not the default path).

Command line::

    python -m luma_rag.datasets.shapes --out data/eval-trust --n 1200 --seed 7717
    python -m luma_rag.eval.trust --data data/eval-trust --questions 400 --seed 8081
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag.answer.base import Answerer
from luma_rag.answer.gate import GateConfig, GatedRetriever
from luma_rag.answer.readable import ReadableAnswerer
from luma_rag.answer.relevance_auto import store_relevance
from luma_rag.answer.verify import VerifyConfig, VerifyingAnswerer
from luma_rag.answer.verify_vlm import verified_answerer
from luma_rag.datasets.questions import QUESTION_KINDS
from luma_rag.eval.gate_questions import (
    CachedAnswerer,
    ScoringContext,
    default_answerer,
    gallery,
    questions,
    score,
    split_items,
)
from luma_rag.eval.offtopic import OFF_TOPIC
from luma_rag.risk_control import calibrate_gate

__all__ = ["aurc", "evaluate_trust", "main", "wilson"]

logger = logging.getLogger(__name__)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float | None, float | None]:
    """95 % Wilson score interval of ``k`` successes in ``n`` (None, None for n = 0)."""
    if n == 0:
        return None, None
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def aurc(confidence: np.ndarray, wrong: np.ndarray) -> float:
    """Area under the risk–coverage curve: answer the most confident first (mean risk)."""
    order = np.argsort(-confidence, kind="stable")
    errors = np.cumsum(wrong[order])
    return float(np.mean(errors / np.arange(1, len(order) + 1)))


def _aurc_table(conf: dict[str, np.ndarray], wrong: np.ndarray, reps: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    boot: dict[str, list[float]] = {name: [] for name in [*conf, "difference"]}
    n = len(wrong)
    for _ in range(reps):
        idx = rng.integers(n, size=n)
        vals = {name: aurc(c[idx], wrong[idx]) for name, c in conf.items()}
        for name, v in vals.items():
            boot[name].append(v)
        boot["difference"].append(vals["certificate_slack"] - vals["raw_margin"])
    out: dict[str, Any] = {}
    for name, values in boot.items():
        point = (
            aurc(conf[name], wrong)
            if name in conf
            else aurc(conf["certificate_slack"], wrong) - aurc(conf["raw_margin"], wrong)
        )
        out[name] = {"aurc": point, "ci95": [float(np.quantile(values, q)) for q in (0.025, 0.975)]}
    return out


def _risk_at(conf: np.ndarray, wrong: np.ndarray, coverage: float) -> float | None:
    m = round(coverage * len(wrong))
    if m == 0:
        return None
    order = np.argsort(-conf, kind="stable")[:m]
    return float(wrong[order].mean())


def _summary(records: list[Any]) -> dict[str, Any]:
    n = len(records)
    out: dict[str, Any] = {"n": n}
    for name in ("answer", "widen", "clarify", "not_in_memory"):
        part = [r for r in records if r.decision == name]
        right = sum(r.correct for r in part)
        out[name] = {"n": len(part), "share": len(part) / n if n else None}
        if name in ("answer", "widen") and part:
            out[name] |= {"right": right / len(part), "wilson95": wilson(right, len(part))}
    answered = [r for r in records if r.decision in ("answer", "widen")]
    out["coverage"] = len(answered) / n if n else None
    out["risk"] = float(np.mean([not r.correct for r in answered])) if answered else None
    out["answered_by_kind"] = {
        k: float(np.mean([r.decision in ("answer", "widen") for r in records if r.kind == k]))
        for k in QUESTION_KINDS
        if any(r.kind == k for r in records)
    }
    return out


def _variants(bot: CachedAnswerer, verify: bool) -> dict[str, Answerer]:
    if not verify:
        return {"gate": ReadableAnswerer(bot)}
    from luma_rag.datasets.verifier import AttributeVerifier, answerer_kind_accuracy

    acc = answerer_kind_accuracy(bot.inner)
    cfg = VerifyConfig(k_verify=10, abstain_unreliable=acc is not None)
    verifier = AttributeVerifier(bot, kind_accuracy=acc, min_accuracy=cfg.min_kind_accuracy)
    attr = VerifyingAnswerer(bot, verifier, cfg, kind_accuracy=acc)
    return {
        "gate": ReadableAnswerer(bot),
        "gate+vlm-verify": ReadableAnswerer(verified_answerer(bot, VerifyConfig(k_verify=10))),
        "gate+attr-verify": ReadableAnswerer(attr),
    }


def evaluate_trust(
    data_dir: str | Path,
    *,
    n_questions: int = 400,
    seed: int = 8081,
    answerer: Answerer | None = None,
    encoder: Any = "luma-tiny",
    bootstrap: int = 1000,
    verify: bool = True,
) -> dict[str, Any]:
    """Run the evaluation (module docstring); returns a JSON-able report.

    ``verify=False`` skips the two verification variants (each asks the answerer up to ten
    more questions per answered question).
    """
    started = time.perf_counter()
    items, val = split_items(data_dir, "test"), split_items(data_dir, "val")
    bot = CachedAnswerer(answerer or default_answerer())
    by_id = {it.id: it for it in items}
    with gallery(val, encoder, "luma-trust-val-") as luma_val:
        triples = [(q.retrieval_text, t.id, None) for t, q in questions(val, 300, seed + 1, "full")]
        cal = calibrate_gate(luma_val, triples, alpha=0.1, delta=0.1, verify_options=(False,))
    with gallery(items, encoder, "luma-trust-") as luma:
        relevance = store_relevance(luma)
        cfg = GateConfig(k=10, k_max=10)
        gates = {
            "gate": GatedRetriever(luma, cfg, record_gaps=False, relevance=relevance),
            "gate+lttρ": GatedRetriever(
                luma,
                GateConfig(k=10, k_max=10, rho=cal.rho),
                record_gaps=False,
                relevance=relevance.override(score_floor={"text": cal.score_floor})
                if relevance is not None and math.isfinite(cal.score_floor)
                else relevance,
            ),
        }
        answerers = _variants(bot, verify)
        records: dict[str, list[Any]] = {name: [] for name in [*answerers, "gate+lttρ"]}
        margins, slacks, base_wrong = [], [], []
        for target, q in questions(items, n_questions, seed, "full"):
            d = gates["gate"].query(q.retrieval_text)
            ctx = ScoringContext.of(q, target, d, bot, cfg.k, items, by_id)
            for name, ans in answerers.items():
                records[name].append(score(q, ans.answer(q.text, d), ctx))
            d2 = gates["gate+lttρ"].query(q.retrieval_text)
            records["gate+lttρ"].append(score(q, answerers["gate"].answer(q.text, d2), ctx))
            margins.append(d.numbers.margin_top2 if math.isfinite(d.numbers.margin_top2) else 0)
            slacks.append(d.numbers.slack if math.isfinite(d.numbers.slack) else -9.0)
            base_wrong.append(not records["gate"][-1].baseline_correct)
        off = [gates["gate"].query(text).decision for text in OFF_TOPIC]
    wrong = np.asarray(base_wrong, dtype=float)
    conf = {"raw_margin": np.asarray(margins), "certificate_slack": np.asarray(slacks)}
    gate_cov = _summary(records["gate"])["coverage"] or 0.0
    refused = sum(d not in ("answer", "widen") for d in off)
    return {
        "n_gallery": len(items),
        "n_questions": n_questions,
        "seed": seed,
        "relevance": None
        if relevance is None
        else {
            "score_floor": relevance.score_floor,
            "lexical_floor": relevance.lexical_floor,
            "n_pairs": relevance.n_pairs,
            "alpha": relevance.alpha,
        },
        "risk_control": cal.to_dict() | {"tested": len(cal.tested)},
        "variants": {name: _summary(recs) for name, recs in records.items()},
        "no_gate": {
            "n": len(wrong),
            "right": 1 - float(wrong.mean()),
            "wilson95": wilson(int((1 - wrong).sum()), len(wrong)),
        },
        "off_topic": {
            "n": len(off),
            "refused": refused / len(off),
            "wilson95": wilson(refused, len(off)),
            "decisions": {k: off.count(k) for k in sorted(set(off))},
        },
        "on_topic_called_off_topic": {
            "share": float(np.mean([r.decision == "not_in_memory" for r in records["gate"]])),
            "wilson95": wilson(
                sum(r.decision == "not_in_memory" for r in records["gate"]), len(records["gate"])
            ),
        },
        "risk_coverage": _aurc_table(conf, wrong, bootstrap)
        | {
            "gate_coverage": gate_cov,
            "margin_risk_at_gate_coverage": _risk_at(conf["raw_margin"], wrong, gate_cov),
            "note": "no-gate top-1 answers, ordered by each score",
        },
        "answerer_calls": bot.calls,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m luma_rag.eval.trust --data DIR [--questions N] [--seed S] [--out FILE]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a LUMA-Shapes corpus (test + val splits)")
    parser.add_argument("--questions", type=int, default=400)
    parser.add_argument("--seed", type=int, default=8081)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", default=None, help="write the JSON report here too")
    parser.add_argument("--no-verify", action="store_true", help="skip the verification variants")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    report = evaluate_trust(
        args.data,
        n_questions=args.questions,
        seed=args.seed,
        bootstrap=args.bootstrap,
        verify=not args.no_verify,
    )
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
