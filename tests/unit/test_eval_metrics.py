"""Hand-computed values for luma_rag.eval.metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from luma_rag.errors import InvalidInputError
from luma_rag.eval.metrics import coverage_risk, latency_summary, mrr, ndcg_at_k, recall_at_k

T, F = True, False


def b(*xs: bool) -> np.ndarray:
    return np.array(xs, dtype=bool)


# q0: first relevant at rank 1; q1: at rank 0 and 2; q2: none.
RANKED = [b(F, T, F), b(T, F, T), b(F, F, F)]


def test_recall_at_k() -> None:
    assert recall_at_k(RANKED, 1) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, 2) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, 3) == pytest.approx(2 / 3)


def test_recall_k_larger_than_list_uses_whole_list() -> None:
    assert recall_at_k(RANKED, 100) == pytest.approx(2 / 3)
    assert recall_at_k([b()], 5) == 0.0  # empty result list: no hit


def test_mrr() -> None:
    assert mrr(RANKED) == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert mrr([b(F, F, F, T)]) == pytest.approx(0.25)


def test_no_relevant_item_scores_zero_everywhere() -> None:
    none = [b(F, F)]
    assert recall_at_k(none, 2) == 0.0
    assert mrr(none) == 0.0
    assert ndcg_at_k(none, 2) == 0.0
    assert ndcg_at_k(none, 2, n_relevant=[0]) == 0.0


def test_ndcg_hand_computed() -> None:
    # q0: DCG = 1/log2(3); IDCG (1 relevant) = 1  -> 0.63093
    # q1: DCG = 1 + 1/log2(4) = 1.5; IDCG (2) = 1 + 1/log2(3) = 1.63093 -> 0.91972
    q0 = 1 / math.log2(3)
    q1 = 1.5 / (1 + 1 / math.log2(3))
    assert ndcg_at_k(RANKED, 3) == pytest.approx((q0 + q1 + 0) / 3)
    assert ndcg_at_k(RANKED[:1], 3) == pytest.approx(0.6309297535714575)


def test_ndcg_cutoff_and_collection_relevance() -> None:
    # k=1: q1 perfect; q0 has its relevant item at rank 1, outside the cut
    assert ndcg_at_k(RANKED[:2], 1) == pytest.approx(0.5)
    # 3 relevant in the collection, list finds 1 at rank 0: 1 / (1 + 1/log2 3 + 1/2)
    ideal = 1 + 1 / math.log2(3) + 0.5
    assert ndcg_at_k([b(T, F, F)], 3, n_relevant=[3]) == pytest.approx(1 / ideal)
    # k beyond the list: ideal is still capped at min(n_relevant, k)
    assert ndcg_at_k([b(T)], 10) == pytest.approx(1.0)
    assert ndcg_at_k([b(T)], 10, n_relevant=[2]) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_ranking_input_validation() -> None:
    with pytest.raises(InvalidInputError):
        recall_at_k([], 1)
    with pytest.raises(InvalidInputError):
        recall_at_k(RANKED, 0)
    with pytest.raises(InvalidInputError):
        recall_at_k(b(T, F), 1)  # a single list, not a list of lists
    with pytest.raises(InvalidInputError):
        mrr([np.array([0.0, 1.0])])  # graded, not bool
    with pytest.raises(InvalidInputError):
        ndcg_at_k(RANKED, 3, n_relevant=[1])
    with pytest.raises(InvalidInputError):
        ndcg_at_k([b(T, T)], 3, n_relevant=[1])


def test_accepts_2d_array() -> None:
    assert recall_at_k(np.array([[F, T], [F, F]]), 2) == pytest.approx(0.5)


def test_coverage_risk() -> None:
    out = coverage_risk(b(T, T, F, F, T), b(T, F, T, F, T))
    assert out["coverage"] == pytest.approx(3 / 5)
    assert out["precision"] == pytest.approx(2 / 3)
    assert out["risk"] == pytest.approx(1 / 3)
    assert out["n"] == 5 and out["n_flagged"] == 3


def test_coverage_risk_nothing_flagged() -> None:
    out = coverage_risk(b(F, F), b(T, T))
    assert out["coverage"] == 0.0
    assert math.isnan(out["precision"]) and math.isnan(out["risk"])


def test_coverage_risk_validation() -> None:
    with pytest.raises(InvalidInputError):
        coverage_risk(b(T), b(T, F))
    with pytest.raises(InvalidInputError):
        coverage_risk(b(), b())
    with pytest.raises(InvalidInputError):
        coverage_risk(np.array([1, 0]), b(T, F))


def test_latency_summary() -> None:
    out = latency_summary(np.arange(1, 101, dtype=float))  # 1..100 ms
    assert out["p50"] == pytest.approx(50.5)
    assert out["p95"] == pytest.approx(95.05)
    assert out["p99"] == pytest.approx(99.01)
    assert out["mean"] == pytest.approx(50.5)
    assert out["max"] == 100.0 and out["n"] == 100
    one = latency_summary([7.0])
    assert one["p50"] == one["p99"] == 7.0


def test_latency_summary_validation() -> None:
    for bad in ([], [1.0, float("nan")], [-1.0], [[1.0]]):
        with pytest.raises(InvalidInputError):
            latency_summary(bad)


def test_lazy_experiment_names() -> None:
    import luma_rag.eval as ev

    assert set(ev.__all__) >= {"recall_at_k", "run_baseline"}
    with pytest.raises(AttributeError):
        _ = ev.no_such_name  # type: ignore[attr-defined]
