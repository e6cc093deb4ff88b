"""Learn-then-Test gate calibration (luma_rag.risk_control): risk ≤ α w.p. ≥ 1 − δ, honestly.

The validity test draws many calibration sets from a known distribution, calibrates on each,
and measures the chosen thresholds' true risk on a large fresh sample: the share of draws
whose true risk exceeds α must stay near δ or below.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from luma_rag.errors import InvalidInputError
from luma_rag.relevance import RelevanceModel
from luma_rag.risk_control import GateFeatures, choose_thresholds, gate_features


def _draw(n: int, rng: np.random.Generator) -> GateFeatures:
    """Wrong answers are likelier for fragile (small critical ρ) and low-score queries."""
    crit = rng.uniform(0, 0.5, n)
    top = rng.uniform(0.2, 0.9, n)
    verified = rng.random(n) < 0.7
    p_wrong = 0.5 * np.exp(-crit / 0.08) + 0.1 * (top < 0.4) + 0.05 * ~verified
    return GateFeatures(crit, top, np.ones(n, bool), verified, rng.random(n) >= p_wrong)


def _true_risk(cal, big: GateFeatures) -> float:  # type: ignore[no-untyped-def]
    ans = (big.critical_rho > cal.rho) & (big.top_score >= cal.score_floor)
    if cal.verify:
        ans &= big.verified
    return float((ans & ~big.correct).sum() / max(1, ans.sum()))


def test_chosen_thresholds_keep_the_risk_with_probability_one_minus_delta() -> None:
    rng = np.random.default_rng(4171)
    big = _draw(200_000, rng)
    alpha, delta, draws = 0.1, 0.1, 40
    floors = [-np.inf, 0.4]
    violations = feasible = 0
    for _ in range(draws):
        cal = choose_thresholds(_draw(600, rng), alpha=alpha, delta=delta, floor_grid=floors)
        if cal.feasible:
            feasible += 1
            violations += _true_risk(cal, big) > alpha
            assert cal.upper_bound >= cal.risk and cal.coverage > 0
    assert feasible >= draws // 2  # the target is reachable and usually found
    assert violations <= 2 * delta * draws  # δ = 0.1 → expect ≤ 4; allow sampling noise


def test_infeasible_is_reported_not_hidden() -> None:
    rng = np.random.default_rng(0)
    n = 300
    f = GateFeatures(rng.uniform(0, 0.5, n), rng.uniform(0, 1, n), np.ones(n, bool),
                     np.ones(n, bool), rng.random(n) < 0.5)  # fmt: skip
    cal = choose_thresholds(f, alpha=0.05, delta=0.1)
    assert not cal.feasible and "infeasible" in cal.reason
    assert cal.to_dict()["feasible"] is False
    with pytest.raises(InvalidInputError):
        choose_thresholds(f, alpha=0.0)
    with pytest.raises(InvalidInputError):
        GateFeatures(np.zeros(2), np.zeros(3), np.ones(2, bool), np.ones(2, bool), np.ones(2, bool))


def test_irrelevant_questions_are_never_answered() -> None:
    n = 400
    f = GateFeatures(
        np.full(n, np.inf),
        np.ones(n),
        np.arange(n) % 2 == 0,
        np.ones(n, bool),
        np.arange(n) % 2 == 0,
    )  # fmt: skip  (the irrelevant half is all wrong)
    cal = choose_thresholds(f, alpha=0.05, delta=0.1)
    assert cal.feasible and cal.n_wrong == 0 and cal.n_answered == n // 2


class _FakeStore:
    """Two items; the query's margin makes it Safe@1 below ρ = 0.1."""

    encoder = SimpleNamespace(encode_text=lambda texts: np.ones((len(texts), 2)))

    def search(self, vector: np.ndarray, k: int, rho: float = 0.0) -> SimpleNamespace:
        hits = [SimpleNamespace(id="a", score=0.9), SimpleNamespace(id="b", score=0.7)]
        return SimpleNamespace(hits=hits, telemetry=SimpleNamespace(safe1=rho < 0.1))


def test_gate_features_from_a_store() -> None:
    triples = [
        ("a red circle", "a", None),
        ("a blue star", "b", None),
        ("a red circle", "a", "red"),
    ]
    relevance = RelevanceModel(
        score_floor={}, vocabulary=frozenset({"red", "circle"}), lexical_floor=0.5
    )
    f = gate_features(_FakeStore(), triples, relevance=relevance,  # type: ignore[arg-type]
                      answer=lambda q, hits: ("It is red.", True))  # fmt: skip
    assert f.critical_rho == pytest.approx([0.1, 0.1, 0.1], abs=2e-3)
    assert f.correct.tolist() == [True, False, True]
    assert f.relevant.tolist() == [True, False, True]


def test_requiring_verification_can_make_the_gate_feasible() -> None:
    rng = np.random.default_rng(77)
    n = 600
    crit = rng.uniform(0, 0.5, n)
    verified = rng.random(n) < 0.6
    correct = np.where(verified, rng.random(n) < 0.99, rng.random(n) < 0.4)
    f = GateFeatures(crit, rng.uniform(0.5, 0.9, n), np.ones(n, bool), verified, correct)
    plain = choose_thresholds(f, alpha=0.1, delta=0.1, verify_options=(False,))
    assert not plain.feasible
    both = choose_thresholds(f, alpha=0.1, delta=0.1)
    assert both.feasible and both.verify and both.risk <= 0.1


def test_gate_features_search_texts_and_answer_matching() -> None:
    store = _FakeStore()
    seen: list[str] = []

    def spy(texts: list[str]) -> np.ndarray:
        seen.extend(texts)
        return np.ones((len(texts), 2))

    store.encoder = SimpleNamespace(encode_text=spy)  # type: ignore[misc]
    triples = [("What colour is the circle?", "a", "color:red")]
    f = gate_features(
        store,  # type: ignore[arg-type]
        triples,
        search_texts=["a circle"],
        answer=lambda q, hits: ("crimson", False),
        is_right=lambda text, exp: text == "crimson" and exp == "color:red",
    )
    assert seen == ["a circle"]
    assert f.correct.tolist() == [True] and f.verified.tolist() == [False]
    with pytest.raises(InvalidInputError, match="search_texts"):
        gate_features(store, triples, search_texts=[])  # type: ignore[arg-type]
