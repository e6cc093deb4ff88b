"""Tests of luma_rag.answer.calibrate (the gate's radius) and luma_rag.answer.consensus."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pytest

from luma_rag.answer.base import Answer
from luma_rag.answer.calibrate import (
    RadiusCalibrationConfig,
    binomial_cdf,
    calibrate_radius,
    critical_radius,
)
from luma_rag.answer.consensus import (
    ConsensusAnswerer,
    ConsensusConfig,
    contenders,
    normalise_answer,
)
from luma_rag.answer.gate import GateConfig, GateDecision, GatedRetriever, decide
from luma_rag.config import LumaConfig
from luma_rag.errors import ConfigError, InvalidInputError, LumaError
from luma_rag.results import Hit, QueryResult, Telemetry
from luma_rag.safety import certify, perturbation_bound

# -- calibration -----------------------------------------------------------------------------


def _synthetic(seed: int = 0, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Critical radii uniform on [0, 0.4]; a wrong top-1 gets rarer as the radius grows."""
    rng = np.random.default_rng(seed)
    radii = rng.uniform(0.0, 0.4, n)
    p_wrong = np.clip(0.6 - 2.5 * radii, 0.0, 1.0)  # 0 from ρ* = 0.24 up
    return radii, rng.random(n) >= p_wrong


def _empirical_smallest(radii: np.ndarray, ok: np.ndarray, alpha: float, step: float) -> float:
    """Brute force: the smallest grid ρ whose certified queries have risk <= alpha."""
    best = math.nan
    for rho in np.round(np.arange(0, 1.0 + 1e-9, step), 12)[::-1]:
        cert = radii > rho
        if cert.sum() >= math.ceil(1 / alpha) and (~ok[cert]).sum() <= alpha * cert.sum():
            best = float(rho)
    return best


def test_calibration_picks_the_smallest_rho_meeting_the_target() -> None:
    radii, ok = _synthetic()
    cfg = RadiusCalibrationConfig(alpha=0.1, delta=None, grid_step=0.01)
    cal = calibrate_radius(radii, ok, cfg)
    assert cal.feasible
    assert cal.rho == pytest.approx(_empirical_smallest(radii, ok, 0.1, 0.01))
    assert cal.risk <= 0.1
    below = radii > cal.rho - 0.01  # one grid step smaller misses the target
    assert (~ok[below]).mean() > 0.1
    assert cal.n_certified == int((radii > cal.rho).sum())
    assert cal.gate_config(GateConfig(k=3, k_max=6)) == GateConfig(k=3, k_max=6, rho=cal.rho)


def test_finite_sample_correction_is_more_conservative_and_holds_out_of_sample() -> None:
    radii, ok = _synthetic(0)
    plain = calibrate_radius(radii, ok, RadiusCalibrationConfig(alpha=0.1, delta=None))
    corrected = calibrate_radius(radii, ok, RadiusCalibrationConfig(alpha=0.1, delta=0.1))
    assert corrected.feasible and corrected.rho >= plain.rho
    assert corrected.p_value <= 0.1
    test_r, test_ok = _synthetic(1, 20000)  # fresh draw from the same distribution
    assert (~test_ok[test_r > corrected.rho]).mean() <= 0.1


@pytest.mark.parametrize("method", ["bonferroni", "fixed_sequence"])
def test_calibrated_rho_is_monotone_in_alpha_and_delta(method: str) -> None:
    radii, ok = _synthetic(2)
    rhos = [
        calibrate_radius(radii, ok, RadiusCalibrationConfig(alpha=a, delta=0.1, method=method)).rho
        for a in (0.3, 0.2, 0.1, 0.05)
    ]
    assert rhos == sorted(rhos)  # a stricter target never picks a smaller radius
    by_delta = [
        calibrate_radius(radii, ok, RadiusCalibrationConfig(alpha=0.1, delta=d, method=method)).rho
        for d in (0.3, 0.1, 0.01)
    ]
    assert by_delta == sorted(by_delta)


def test_infeasible_target_certifies_no_calibration_query() -> None:
    radii = np.array([0.3, 0.2, 0.1, 0.05] * 10)
    ok = np.array([False, True, False, True] * 10)  # wrong at the largest radii
    cal = calibrate_radius(radii, ok, RadiusCalibrationConfig(alpha=0.1))
    assert not cal.feasible
    assert cal.rho == pytest.approx(0.3) and cal.n_certified == 0
    assert math.isnan(cal.risk) and cal.to_dict()["risk"] is None


def test_always_safe_queries_are_allowed() -> None:
    radii = [math.inf] * 100 + [0.0] * 30
    cal = calibrate_radius(radii, [True] * 100 + [False] * 30, RadiusCalibrationConfig())
    assert cal.feasible and cal.n_certified == 100 and cal.n_errors == 0


@pytest.mark.parametrize(
    ("radii", "ok"),
    [
        ([], []),
        ([0.1, 0.2], [True]),
        ([0.1, float("nan")], [True, True]),
        ([0.1, -0.2], [True, True]),
        ([0.1, 0.2], [1, 0]),
        ([[0.1]], [[True]]),
        (["a", "b"], [True, True]),
    ],
)
def test_bad_calibration_input_raises_typed_errors(radii: list[object], ok: list[object]) -> None:
    with pytest.raises(InvalidInputError):
        calibrate_radius(radii, ok)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        {"alpha": 0.0},
        {"alpha": 1.0},
        {"alpha": True},
        {"delta": 0.0},
        {"delta": 1.5},
        {"min_certified": 0},
        {"tol": 0.0},
        {"max_rho": math.inf},
        {"grid_step": 2.0},
        {"method": "holm"},
    ],
)
def test_calibration_config_validates(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        RadiusCalibrationConfig(**bad)  # type: ignore[arg-type]
    cfg = RadiusCalibrationConfig(alpha=0.2, delta=None)
    assert RadiusCalibrationConfig.from_json(cfg.to_json()) == cfg


def test_gate_config_rho_validates_and_round_trips() -> None:
    cfg = GateConfig(rho=0.2)
    assert GateConfig.from_json(cfg.to_json()) == cfg and GateConfig().rho is None
    for bad in (-0.1, math.nan, math.inf, True, "0.1"):
        with pytest.raises(ConfigError):
            GateConfig(rho=bad)  # type: ignore[arg-type]


def test_binomial_cdf() -> None:
    assert binomial_cdf(0, 22, 0.1) == pytest.approx(0.9**22)
    assert binomial_cdf(-1, 5, 0.5) == 0.0 and binomial_cdf(5, 5, 0.5) == 1.0
    exact = sum(math.comb(50, i) * 0.1**i * 0.9 ** (50 - i) for i in range(4))
    assert binomial_cdf(3, 50, 0.1) == pytest.approx(exact)
    with pytest.raises(LumaError):
        binomial_cdf(1, 5, 1.5)


def test_critical_radius_bisects_a_monotone_predicate() -> None:
    assert critical_radius(lambda r: r < 0.123, tol=1e-6) == pytest.approx(0.123, abs=1e-6)
    assert critical_radius(lambda r: False) == 0.0
    assert critical_radius(lambda r: True) == math.inf


class _FakeEncoder:
    name, dim, modalities = "fake", 4, frozenset({"text"})

    def encode_text(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        self.encoded = getattr(self, "encoded", 0) + len(texts)
        return np.tile(np.float32([1, 0, 0, 0]), (len(texts), 1))


class _FakeLuma:
    """Records the kwargs the gate passes to query / search."""

    def __init__(self, result: QueryResult) -> None:
        self.result = result
        self.calls: list[dict[str, object]] = []
        self.encoder = _FakeEncoder()
        self.rho = {"text": 0.125}
        self.config = LumaConfig(dim=4)

    def query(self, *args: object, **kwargs: object) -> QueryResult:
        self.calls.append(kwargs)
        return self.result

    def search(self, *args: object, **kwargs: object) -> QueryResult:
        self.calls.append(kwargs)
        return self.result

    def record_gap(self, query: str, detail: object) -> int:
        return 1


def test_gated_retriever_passes_its_rho() -> None:
    fake = _FakeLuma(_result([0.9, 0.5, 0.4], 0.01, k=3))
    GatedRetriever(fake, GateConfig(k=3, k_max=3)).query("a circle")  # type: ignore[arg-type]
    assert fake.calls[-1]["rho"] == 0.125  # the store's own radius for text
    assert fake.encoder.encoded == 1  # embedded once, searched by vector
    GatedRetriever(fake, GateConfig(k=3, k_max=3, rho=0.2)).query("x")  # type: ignore[arg-type]
    assert fake.calls[-1]["rho"] == 0.2
    gate = GatedRetriever(fake, GateConfig(k=3, k_max=3, rho=0.2))  # type: ignore[arg-type]
    gate.search(np.ones(4))
    assert fake.calls[-1]["rho"] == 0.2
    gate.search(np.ones(4), rho=0.05)
    assert fake.calls[-1]["rho"] == 0.05


# -- consensus -------------------------------------------------------------------------------


def _result(scores: Sequence[float], rho: float, k: int) -> QueryResult:
    """A result whose τ comes from ρ (no item drift), hits for the top ``k``."""
    s = np.asarray(scores, dtype=np.float64)
    cert = certify(s, perturbation_bound(rho, np.zeros(s.size)), k)
    hits = [
        Hit(id=f"item{i}", score=float(s[i]), tier="hot", rank=i, modality="image")
        for i in range(min(k, s.size))
    ]
    tel = Telemetry(
        margin_top2=cert.margin_top2,
        delta_k=cert.delta_k,
        epsilon=0.0,
        epsilon_items=0.0,
        zeta_mean=0.0,
        zeta_max=0.0,
        rho=rho,
        safe1=cert.safe1,
        safek=cert.safek,
        safe_k_min=cert.safe_prefix,
        complete=True,
        k=k,
        n_candidates=int(s.size),
        latency_ms=0.1,
    )
    return QueryResult(hits=hits, telemetry=tel, certificate=cert)


class _FakeAnswerer:
    """Answers from the top evidence's id with a fixed table; counts calls."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.calls: list[GateDecision] = []

    def answer(self, question: str, decision: GateDecision) -> Answer:
        self.calls.append(decision)
        if decision.decision == "clarify":
            text = decision.clarification or "which one?"
        else:
            text = self.table[decision.evidence[0].id]
        return Answer(text, decision, [], {"model": "fake"})


def _as_answer(decision: GateDecision) -> GateDecision:
    """Force an ANSWER decision over the same hits (to test consensus apart from the gate)."""
    return dataclasses.replace(
        decision, decision="answer", k_used=1, evidence=decision.hits[:3], clarification=None
    )


def test_contenders_follow_the_bounds() -> None:
    # τ = 0.05 each: j contends when s_1 - s_j <= 0.1
    d = decide(_result([0.9, 0.85, 0.81, 0.7, 0.6], 0.05, k=5), GateConfig(k=5, k_max=5))
    lead, complete = contenders(d)
    assert [h.id for h in lead] == ["item0", "item1", "item2"] and complete
    lead, _ = contenders(d, ConsensusConfig(rho=0.0))
    assert [h.id for h in lead] == ["item0"]
    lead, _ = contenders(d, ConsensusConfig(rho=0.2))
    assert len(lead) == 5
    # the last returned hit contends and more candidates exist: incomplete
    d3 = decide(_result([0.9, 0.88, 0.87, 0.86], 0.05, k=3), GateConfig(k=3, k_max=3))
    assert contenders(d3)[1] is False


def test_consensus_answers_when_every_contender_agrees() -> None:
    d = _as_answer(decide(_result([0.9, 0.85, 0.5], 0.05, k=3), GateConfig(k=3, k_max=3)))
    bot = _FakeAnswerer({"item0": "Red.", "item1": "red", "item2": "blue"})
    ans = ConsensusAnswerer(bot).answer("What color is it?", d)
    assert ans.decision.decision == "answer" and ans.text == "Red."
    info = ans.telemetry["consensus"]
    assert info["agreed"] and info["contenders"] == 2
    assert info["answers"] == {"item0": "red", "item1": "red"}
    assert ans.telemetry["model"] == "fake"


def test_consensus_clarifies_when_contenders_disagree() -> None:
    d = _as_answer(decide(_result([0.9, 0.85, 0.5], 0.05, k=3), GateConfig(k=3, k_max=3)))
    bot = _FakeAnswerer({"item0": "red", "item1": "blue", "item2": "red"})
    ans = ConsensusAnswerer(bot).answer("What color is it?", d)
    assert ans.decision.decision == "clarify"
    assert [h.id for h in ans.decision.evidence] == ["item0", "item1"]
    assert ans.decision.clarification and ans.text == ans.decision.clarification
    assert not ans.telemetry["consensus"]["agreed"]


def test_consensus_checks_the_whole_widened_set() -> None:
    # τ = 0.02: not Safe@1 (0.9 vs 0.89), Safe@2 (0.87 vs 0.5)
    res = _result([0.9, 0.89, 0.5, 0.45], 0.02, k=4)
    d = decide(res, GateConfig(k=4, k_max=4))
    assert d.decision == "widen" and d.k_used == 2
    same = _FakeAnswerer({"item0": "two", "item1": "two", "item2": "one", "item3": "one"})
    assert ConsensusAnswerer(same).answer("How many?", d).decision.decision == "widen"
    split = _FakeAnswerer({"item0": "two", "item1": "one", "item2": "one", "item3": "one"})
    assert ConsensusAnswerer(split).answer("How many?", d).decision.decision == "clarify"
    off = ConsensusAnswerer(split, ConsensusConfig(check_widen=False))
    assert off.answer("How many?", d).decision.decision == "widen"


def test_consensus_treats_unreadable_answers_and_too_many_contenders_as_disagreement() -> None:
    d = _as_answer(decide(_result([0.9, 0.85, 0.84, 0.5], 0.05, k=4), GateConfig(k=4, k_max=4)))
    bot = _FakeAnswerer({"item0": "red", "item1": "red", "item2": "???"})
    assert ConsensusAnswerer(bot).answer("q", d).decision.decision == "clarify"
    agree = _FakeAnswerer({"item0": "red", "item1": "red", "item2": "red"})
    capped = ConsensusAnswerer(agree, ConsensusConfig(max_contenders=2))
    assert capped.answer("q", d).decision.decision == "clarify"
    assert ConsensusAnswerer(agree).answer("q", d).decision.decision == "answer"


def test_consensus_passes_clarify_through_and_validates() -> None:
    d = decide(_result([0.5, 0.5, 0.5], 0.05, k=3), GateConfig(k=3, k_max=3))
    assert d.decision == "clarify"
    bot = _FakeAnswerer({})
    assert ConsensusAnswerer(bot).answer("q", d).decision is d
    assert len(bot.calls) == 1
    with pytest.raises(InvalidInputError):
        ConsensusAnswerer(bot, max_options=1)
    for bad in ({"rho": -1.0}, {"multiplier": 0.0}, {"max_contenders": 0}, {"check_widen": 1}):
        with pytest.raises(ConfigError):
            ConsensusConfig(**bad)  # type: ignore[arg-type]
    assert normalise_answer("  The Red. ") == "red" and normalise_answer("...") is None
