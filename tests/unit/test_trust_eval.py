"""The held-out trust evaluation (luma_rag.eval.trust / trust_report): its report, targets
and README block, on a small generated corpus with an oracle stand-in for the VLM."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag.answer.base import Answer
from luma_rag.answer.gate import GateDecision
from luma_rag.datasets.manifest import ShapeItem
from luma_rag.datasets.questions import answer_of
from luma_rag.datasets.verifier import question_kind
from luma_rag.errors import InvalidInputError
from luma_rag.eval.trust_report import (
    README_BEGIN,
    README_END,
    equal_coverage,
    markdown,
    wilson,
    write_readme,
)

pytest.importorskip("torch")


class Oracle:
    """Reads the corpus: "yes" to every yes/no check of a hit whose id is in ``shown``, else
    "no"; answers a question with the top hit's true value; batches via ``answer_many``."""

    def __init__(self, items: list[ShapeItem], shown: set[str]) -> None:
        self.attrs = {it.id: it.attributes for it in items}
        self.shown = shown
        self.batches: list[int] = []

    def answer(self, question: str, decision: GateDecision) -> Answer:
        top = decision.evidence[0].id if decision.evidence else None
        if decision.decision == "clarify" or top not in self.attrs:
            return Answer(decision.clarification or "?", decision, [], {})
        if question.startswith("Does this image show"):
            return Answer("yes" if top in self.shown else "no", decision, [], {})
        kind = question_kind(question) or "color"
        return Answer(answer_of(self.attrs[top], kind), decision, [], {})

    def answer_many(self, requests: list[tuple[str, GateDecision]]) -> list[Answer]:
        self.batches.append(len(requests))
        return [self.answer(q, d) for q, d in requests]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ShapeItem]]:
    from luma_rag.datasets import generate, load_manifest

    root = tmp_path_factory.mktemp("shapes-trust")
    return root, load_manifest(generate(root, n=200, seed=4242))


def test_trust_report_and_targets(corpus: tuple[Path, list[ShapeItem]], tmp_path: Path) -> None:
    from luma_rag.eval.trust import DEFAULT_VARIANT, LEGACY_VARIANT, evaluate_trust

    root, items = corpus
    rng = np.random.default_rng(0)
    shown = {it.id for it in items if rng.random() < 0.5}
    oracle = Oracle(items, shown)
    report = evaluate_trust(root, n_questions=30, seed=4343, answerer=oracle, bootstrap=20,
                            n_calibration=20, k_verify=3)  # fmt: skip
    assert oracle.batches and max(oracle.batches) > 3  # checks went out in batches
    variants = report["variants"]
    assert {"gate", DEFAULT_VARIANT, LEGACY_VARIANT, "gate+verify+rescue", "gate+ltt"} <= set(
        variants
    )
    qs = report["questions"]
    assert qs["mode"] == "well-posed" and report["n_questions"] == qs["n_targeted"] > 0
    for v in variants.values():
        shares = [v[k]["share"] for k in ("answer", "widen", "clarify", "not_in_memory")]
        assert math.isclose(sum(shares), 1.0) and v["n"] == report["n_questions"]
    for name, amb in report["ambiguous"].items():  # the rejected draws, scored apart
        assert amb["n"] == qs["n_ambiguous"] == sum(qs["ambiguous_by_kind"].values())
        decided = amb["clarify"]["n"] + amb["not_in_memory"]["n"]
        decided += sum(amb[d]["n_target_value"] + amb[d]["n_other"] for d in ("answer", "widen"))
        assert decided == amb["n"], name
    # yes/no verification only ever demotes an ANSWER (the default path may also certify one
    # by verification); rescue only adds WIDENs
    assert variants[LEGACY_VARIANT]["answer"]["n"] <= variants["gate"]["answer"]["n"]
    assert variants["gate+verify+rescue"]["coverage"] >= variants[LEGACY_VARIANT]["coverage"]
    assert report["off_topic"][DEFAULT_VARIANT]["n"] == 60
    rows = report["targets"][DEFAULT_VARIANT]
    assert {r["status"] for r in rows} <= {"PASS", "MISS", "n/a"} and len(rows) == 13
    assert [r["target"] for r in rows if "AURC" in r["target"]] == [
        "AURC gate score − raw margin",
        "AURC certificate − raw margin (reported)",
    ]
    rc = report["risk_coverage"]
    assert rc["gate_score_difference"]["aurc"] == pytest.approx(
        rc["gate_score"]["aurc"] - rc["raw_margin"]["aurc"]
    )
    assert report["risk_control"]["n"] == 20
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_BEGIN}\nSTALE-TABLE\n{README_END}\noutro\n")
    write_readme(report, readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "STALE-TABLE" not in text
    assert all(f"| {name}" in text for name in variants)
    assert "**PASS**" in text or "**MISS**" in text
    assert markdown(report) in text
    readme.write_text("no markers")
    with pytest.raises(InvalidInputError, match="marker"):
        write_readme(report, readme)


def test_trust_report_without_calibration_or_legacy(
    corpus: tuple[Path, list[ShapeItem]], tmp_path: Path
) -> None:
    """The quick run (no val-split calibration, no previous default) still reports every
    target, the calibration row as not run, and the default path's settings."""
    from luma_rag.answer.scored import ScoredVerifyConfig
    from luma_rag.eval.trust import DEFAULT_VARIANT, LEGACY_VARIANT, evaluate_trust

    root, items = corpus
    oracle = Oracle(items, {it.id for it in items})
    report = evaluate_trust(root, n_questions=20, seed=4344, answerer=oracle, bootstrap=10,
                            scored=ScoredVerifyConfig(k_verify=2), legacy=False,
                            calibrate=False)  # fmt: skip
    assert set(report["variants"]) == {"gate", DEFAULT_VARIANT}
    assert report["questions"]["mode"] == "well-posed"
    assert LEGACY_VARIANT not in report["off_topic"]
    assert report["k_verify"] == 2 and report["scored_verify"]["k_verify"] == 2
    rows = {r["target"]: r for r in report["targets"][DEFAULT_VARIANT]}
    assert next(r for t, r in rows.items() if t.startswith("calibrate_gate"))["status"] == "n/a"
    readme = tmp_path / "README.md"
    readme.write_text(f"{README_BEGIN}\n{README_END}\n")
    write_readme(report, readme)
    assert f"| {DEFAULT_VARIANT}" in readme.read_text()


def test_equal_coverage_compares_at_the_same_coverage() -> None:
    n = 200
    rng = np.random.default_rng(1)
    margin = rng.random(n)
    base_wrong = rng.random(n) < 0.5  # the margin says nothing
    correct = ~base_wrong
    answered = correct & (rng.random(n) < 0.6)  # a variant that answers only right ones
    out: dict[str, Any] = equal_coverage(answered, correct, margin, base_wrong, 200)
    assert out["risk"] == 0.0 and out["margin_risk"] > 0.3
    assert out["ci95"][1] < 0
    lo, hi = wilson(19, 20)
    assert lo is not None and hi is not None and lo < 0.95 < hi
    assert wilson(0, 0) == (None, None)


def test_aurc_table_compares_each_score_with_the_raw_margin() -> None:
    """A score that knows which answers are wrong orders better than a margin that does not:
    its difference is negative with a bootstrap interval under 0; without a gate score only
    the certificate's row is made."""
    from luma_rag.eval.trust_report import aurc, aurc_table

    rng = np.random.default_rng(5)
    wrong = (rng.random(300) < 0.3).astype(float)
    noise = rng.random(300)
    conf = {"raw_margin": noise, "certificate_slack": noise - 0.1, "gate_score": 1 - wrong + noise}
    out = aurc_table(conf, wrong, 50)
    assert out["gate_score"]["aurc"] == pytest.approx(aurc(conf["gate_score"], wrong))
    assert out["gate_score_difference"]["ci95"][1] < 0
    assert out["difference"]["aurc"] == pytest.approx(0.0)  # slack = margin − const: same order
    del conf["gate_score"]
    assert "gate_score_difference" not in aurc_table(conf, wrong, 5)


def test_trust_score_ranks_agreeing_verified_sure_answers_first() -> None:
    from luma_rag.answer.scored import ScoredVerifyConfig
    from luma_rag.eval.trust_score import trust_score
    from tests.unit.test_verify_scored_route import Confident, _gated

    def scores(pairs: list[tuple[str, Any]]) -> list[float]:
        return [{"a": 0.2, "b": 0.8, "c": 0.7, "d": 0.6, "e": 0.1}[h.id] for _, h in pairs]

    q = "What color is the big blue square?"
    doubt = ScoredVerifyConfig().doubt
    agree = trust_score(q, _gated("bda"), Confident(0.5), scores, doubt=doubt)
    assert agree == pytest.approx(0.8 * 0.5 + 1.0)  # A y1 c + slack (the fake's slack is 1)
    differ = trust_score("What color is the small red circle?", _gated("acb"), Confident(),
                         scores, doubt=doubt)  # fmt: skip
    assert differ == pytest.approx(1.0)  # 'a' and 'c' answer red / pink: no agreement
    alone = trust_score(q, _gated("be"), Confident(), scores, k=2, doubt=doubt)
    assert alone == pytest.approx(0.8 + 1.0)  # 'e' is no contender
    empty = dataclasses.replace(_gated("b"), hits=())
    assert trust_score(q, empty, Confident(), scores) == -math.inf


def test_trust_report_pools_corpora(
    corpus: tuple[Path, list[ShapeItem]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Several corpora pool into one report: each its own store and question seed, every
    count the sum of the single-corpus runs; pooling refuses the per-corpus calibrations."""
    from luma_rag.datasets import generate, load_manifest
    from luma_rag.eval.trust import DEFAULT_VARIANT, evaluate_trust

    root, items = corpus
    other = tmp_path_factory.mktemp("shapes-trust-b")
    items_b = load_manifest(generate(other, n=200, seed=4246))
    oracle = Oracle(items + items_b, {it.id for it in items + items_b})
    kw: dict[str, Any] = {"n_questions": 15, "answerer": oracle, "bootstrap": 10,
                          "legacy": False, "calibrate": False}  # fmt: skip
    single_a = evaluate_trust(root, seed=4350, **kw)
    single_b = evaluate_trust(other, seed=5350, **kw)
    pooled = evaluate_trust([root, other], seed=4350, **kw)
    assert [c["data"] for c in pooled["corpora"]] == [str(root), str(other)]
    assert [c["seed"] for c in pooled["corpora"]] == [4350, 5350]
    assert pooled["n_questions"] == single_a["n_questions"] + single_b["n_questions"]
    assert pooled["n_gallery"] == single_a["n_gallery"] + single_b["n_gallery"]
    for name in ("gate", DEFAULT_VARIANT):
        for decision in ("answer", "widen", "clarify", "not_in_memory"):
            counts = [r["variants"][name][decision]["n"] for r in (single_a, single_b, pooled)]
            assert counts[2] == counts[0] + counts[1], (name, decision)
        assert pooled["off_topic"][name]["n"] == 120
    assert pooled["questions"]["n_targeted"] == pooled["n_questions"]
    assert "pooled over 2 corpora" in markdown(pooled)
    with pytest.raises(InvalidInputError, match="calibration"):
        evaluate_trust([root, other], seed=4350, n_questions=5, answerer=oracle, calibrate=True)
    with pytest.raises(InvalidInputError, match="at least one"):
        evaluate_trust([], answerer=oracle, calibrate=False)
