"""Tests of luma_rag.safety: the Safe@k certificate is sound, and exact at the score level.

The property tests are derandomized (fixed hypothesis seed, no example database) so CI is
deterministic; every numpy draw is seeded from a hypothesis-drawn integer.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from luma_rag.errors import ConfigError, InvalidInputError
from luma_rag.safety import (
    Certificate,
    SafetyConfig,
    certify,
    completeness,
    perturbation_bound,
    score_rounding_error,
    smallest_safe_k,
)

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)

# Perturbed scores in the vector-level tests are recomputed dot products: they carry float64
# rounding (~d·1e-16) that the mathematical bound does not. Comparisons allow this much.
FLOAT_SLACK = 1e-12

Array = NDArray[np.float64]


# --------------------------------------------------------------------------- strategies


@st.composite
def ranked_lists(draw: st.DrawFn, min_n: int = 0, max_n: int = 10) -> tuple[Array, Array, int]:
    """Sorted-descending scores (ties included), nonnegative tau, and a k (may exceed n)."""
    n = draw(st.integers(min_n, max_n))
    top = draw(st.floats(-1.0, 1.0))
    gap = st.one_of(st.floats(0.0, 0.3), st.floats(0.0, 0.3), st.just(0.0))  # 1 in 3 ties
    gaps = draw(st.lists(gap, min_size=n, max_size=n))
    scores = top - np.cumsum(np.asarray(gaps, dtype=np.float64))
    # Mostly small bounds, some wide ones: a wide τ deep inside the top k (or far below it)
    # is what separates "weakest of the top k" from "the k-th".
    bound = st.one_of(st.just(0.0), st.floats(0.0, 0.05), st.floats(0.0, 0.05), st.floats(0.0, 0.4))
    tau = np.asarray(draw(st.lists(bound, min_size=n, max_size=n)), dtype=np.float64)
    k = draw(st.integers(1, n + 2))
    return scores, tau, k


def _unit(x: Array) -> Array:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _vector_case(seed: int, d: int, n: int, r: float, e_max: float) -> tuple[Array, Array, Array]:
    """A unit query, n unit items sorted by exact score, item radii. Shapes (d,), (n,d), (n,)."""
    rng = np.random.default_rng(seed)
    u = _unit(rng.normal(size=d))
    # Items at controlled cosines to u, so gaps are comparable to the radii.
    cos = rng.uniform(-1.0, 1.0, size=n)
    w = rng.normal(size=(n, d))
    w = _unit(w - np.outer(w @ u, u))
    v = _unit(cos[:, None] * u + np.sqrt(1.0 - cos[:, None] ** 2) * w)
    order = np.argsort(-(v @ u), kind="stable")
    e = rng.uniform(0.0, e_max, size=n)
    return u, v[order], e[order]


def _perturbed_scores(u: Array, v: Array, du: Array, dv: Array) -> Array:
    """⟨u + du, v_i + dv_i⟩ for every item; (d,), (n,d), (d,), (n,d) -> (n,)."""
    return (v + dv) @ (u + du)


def _query_perturbations(
    rng: np.random.Generator, u: Array, v: Array, r: float, k: int, lower: Array, upper: Array
) -> list[Array]:
    """Random and adversarial query perturbations, each of norm r (plus zero). Shape (d,)."""
    d = u.size
    n = v.shape[0]
    dirs: list[Array] = [u, -u, v[0], -v[0]]
    if n > k:
        weakest = int(np.argmin(lower[:k]))  # the top-k item that can fall furthest
        rival = k + int(np.argmax(upper[k:]))  # the outsider that can rise highest
        dirs += [v[rival], -v[weakest], v[rival] - v[weakest], v[k] - v[k - 1]]
        dirs.append(v[k:].sum(axis=0) - v[:k].sum(axis=0))
    dirs += list(rng.normal(size=(8, d)))
    out = [np.zeros(d)]
    for x in dirs:
        norm = np.linalg.norm(x)
        if norm > 1e-12:
            out.append(r * x / norm)
    return out


def _item_perturbations(
    rng: np.random.Generator, u: Array, du: Array, e: Array, k: int
) -> list[Array]:
    """Item perturbations, row i of norm <= e_i: adversarial (top-k pushed down along u+du,
    others up) and random directions at full and random length. Shape (n, d) each."""
    n, d = e.size, u.size
    a = u + du
    a = a / np.linalg.norm(a)
    sign = np.where(np.arange(n) < k, -1.0, 1.0)
    adversarial = (sign * e)[:, None] * a[None, :]
    full = e[:, None] * _unit(rng.normal(size=(n, d)))
    partial = full * rng.uniform(0.0, 1.0, size=(n, 1))
    return [adversarial, full, partial, np.zeros((n, d))]


# --------------------------------------------------------------- 1. score-level soundness


@PROPERTY
@given(case=ranked_lists(min_n=1), seed=st.integers(0, 2**32 - 1))
def test_score_level_certificate_is_sound_and_exact(
    case: tuple[Array, Array, int], seed: int
) -> None:
    """Safe@1/Safe@k ⇒ no scores within [s−τ, s+τ] change the top-1 / top-k set; and when the
    certificate says not safe, the extreme perturbation does break (or tie) it."""
    scores, tau, k = case
    n = scores.size
    cert = certify(scores, tau, k)
    rng = np.random.default_rng(seed)
    draws = scores + rng.uniform(-1.0, 1.0, size=(64, n)) * tau  # random, within the bounds

    # Safe@1: the adversarial extreme is top-1 at s1−τ1 and every other at s_j+τ_j.
    extreme1 = np.concatenate([scores[:1] - tau[:1], scores[1:] + tau[1:]])
    if cert.safe1:
        for p in [extreme1, *draws]:
            assert p[0] > p[1:].max(initial=-np.inf)
    else:  # n >= 2 and some competitor reaches s1 − τ1: top-1 is no longer unique
        assert extreme1[0] <= extreme1[1:].max()

    kk = min(k, n)
    extremek = np.concatenate([scores[:kk] - tau[:kk], scores[kk:] + tau[kk:]])
    if cert.safek:
        for p in [extremek, *draws]:
            assert p[:kk].min() > p[kk:].max(initial=-np.inf)
            assert set(np.argsort(-p, kind="stable")[:kk]) == set(range(kk))
    else:
        assert n > k
        assert extremek[:k].min() <= extremek[k:].max()


# --------------------------------------------------------------- 2. vector-level soundness


@PROPERTY
@given(
    seed=st.integers(0, 2**32 - 1),
    d=st.integers(4, 32),
    n=st.integers(1, 10),
    k=st.integers(1, 5),
    r=st.one_of(st.just(0.0), st.floats(0.0, 0.1)),
    e_max=st.one_of(st.just(0.0), st.floats(0.0, 0.1)),
)
def test_vector_level_certificate_is_sound(
    seed: int, d: int, n: int, k: int, r: float, e_max: float
) -> None:
    """The real claim: perturb the query by ‖Δu‖ ≤ r and each item by ‖Δv_i‖ ≤ e_i; every
    score stays within τ, and a Safe@1 / Safe@k top-1 / top-k set does not change."""
    u, v, e = _vector_case(seed, d, n, r, e_max)
    scores = v @ u
    tau = perturbation_bound(r, e, 2.0)
    cert = certify(scores, tau, k)
    kk = min(k, n)
    rng = np.random.default_rng(seed + 1)
    for du in _query_perturbations(rng, u, v, r, kk, scores - tau, scores + tau):
        assert np.linalg.norm(du) <= r * (1 + 1e-12)
        for dv in _item_perturbations(rng, u, du, e, kk):
            assert np.all(np.linalg.norm(dv, axis=1) <= e * (1 + 1e-12))
            p = _perturbed_scores(u, v, du, dv)
            assert np.all(np.abs(p - scores) <= tau + FLOAT_SLACK)  # the bound itself
            if cert.safe1:
                assert p[0] > p[1:].max(initial=-np.inf) - FLOAT_SLACK
            if cert.safek:
                assert p[:kk].min() > p[kk:].max(initial=-np.inf) - FLOAT_SLACK


def test_vector_level_cases_are_not_vacuous() -> None:
    """The generator of the vector-level property yields both safe and unsafe lists."""
    flags = []
    for seed in range(300):
        u, v, e = _vector_case(seed, d=16, n=6, r=0.05, e_max=0.05)
        cert = certify(v @ u, perturbation_bound(0.05, e), 2)
        flags.append((cert.safe1, cert.safek))
    safe1, safek = np.mean(flags, axis=0)
    assert 0.2 < safe1 < 0.9
    assert 0.2 < safek < 0.9


@PROPERTY
@given(
    seed=st.integers(0, 2**32 - 1),
    d=st.integers(2, 32),
    r=st.floats(0.0, 2.0),
    e=st.floats(0.0, 2.0),
)
def test_corrected_lemma_holds_for_any_perturbation(seed: int, d: int, r: float, e: float) -> None:
    """|⟨u+Δu, v+Δv⟩ − ⟨u, v⟩| ≤ ‖Δu‖ + ‖Δv‖ + ‖Δu‖‖Δv‖ for unit u, v, even for big radii."""
    rng = np.random.default_rng(seed)
    u, v = _unit(rng.normal(size=(2, d)))
    du = _unit(rng.normal(size=(16, d))) * rng.uniform(0, r, size=(16, 1))
    dv = _unit(rng.normal(size=(16, d))) * rng.uniform(0, e, size=(16, 1))
    du[0], dv[0] = r * v, e * u  # the aligned worst case
    change = np.abs(np.einsum("ij,ij->i", u + du, v + dv) - u @ v)
    nu, nv = np.linalg.norm(du, axis=1), np.linalg.norm(dv, axis=1)
    assert np.all(change <= nu + nv + nu * nv + FLOAT_SLACK)
    assert np.all(change <= perturbation_bound(r, np.full(16, e))[0] + FLOAT_SLACK)


# ------------------------------------------------------------ 3. the paper's dropped term


def test_paper_lemma_drops_a_term_that_matters() -> None:
    """u = v, Δu = r·u, Δv = e·u moves the score by r + e + r·e: more than the paper's r + e,
    exactly the corrected bound."""
    r, e = 0.5, 0.25
    u = np.array([1.0, 0.0, 0.0, 0.0])
    v = u.copy()
    moved = float((u + r * u) @ (v + e * u)) - float(u @ v)
    assert moved == pytest.approx(r + e + r * e)
    assert moved > r + e  # the paper's Lemma 1 is violated
    assert moved <= perturbation_bound(r, np.array([e]))[0] + FLOAT_SLACK
    # A certificate built on the paper's τ would call a score interval that moved score escapes.
    s = float(u @ v)
    assert not (s - (r + e) <= s + moved <= s + (r + e))


# ------------------------------------------------- 4. uniform τ is the paper's γ > 2(ε+ζ)


@PROPERTY
@given(
    ints=st.lists(st.integers(-(2**20), 2**20), min_size=2, max_size=12),
    eps=st.integers(0, 2**17),
    zeta=st.integers(0, 2**17),
    k=st.integers(1, 11),
)
def test_uniform_tau_reduces_to_paper_margins(ints: list[int], eps: int, zeta: int, k: int) -> None:
    """With r = 0 and e_i = ε + ζ for all i, τ = ε + ζ and Safe@1 ⇔ γ > 2(ε+ζ),
    Safe@k ⇔ δ_k > 2(ε+ζ). Dyadic values keep every float operation exact."""
    scale = 2.0**-20
    scores = np.sort(np.asarray(ints, dtype=np.float64) * scale)[::-1]
    radius = (eps + zeta) * scale
    tau = perturbation_bound(0.0, np.full(scores.size, radius))
    np.testing.assert_array_equal(tau, radius)
    cert = certify(scores, tau, k)
    assert cert.safe1 == (cert.margin_top2 > 2 * radius)
    if scores.size > k:
        assert cert.safek == (cert.delta_k > 2 * radius)
    else:
        assert cert.safek and math.isnan(cert.delta_k)


# --------------------------------------------------------- 5. multiplier, edges, validation


def test_perturbation_bound_formula_and_multiplier() -> None:
    e = np.array([0.0, 0.1, 0.3], dtype=np.float32)
    tau = perturbation_bound(0.2, e)
    assert tau.dtype == np.float64 and tau.shape == (3,)
    np.testing.assert_allclose(tau, 0.2 + e + 0.2 * e.astype(np.float64))
    np.testing.assert_allclose(perturbation_bound(0.2, e, 1.0), tau / 2)
    np.testing.assert_allclose(perturbation_bound(0.2, e, 3.0), tau * 1.5)
    assert perturbation_bound(0.2, np.empty(0)).shape == (0,)


@PROPERTY
@given(case=ranked_lists(min_n=1), small=st.floats(0.1, 4.0), factor=st.floats(1.0, 3.0))
def test_larger_multiplier_never_certifies_more(
    case: tuple[Array, Array, int], small: float, factor: float
) -> None:
    scores, e, k = case
    loose = certify(scores, perturbation_bound(0.01, e, small), k)
    strict = certify(scores, perturbation_bound(0.01, e, small * factor), k)
    assert loose.safe1 or not strict.safe1
    assert loose.safek or not strict.safek


@pytest.mark.parametrize(
    ("r", "e", "multiplier"),
    [
        (-0.1, [0.1], 2.0),
        (float("nan"), [0.1], 2.0),
        (float("inf"), [0.1], 2.0),
        (0.1, [-0.1], 2.0),
        (0.1, [float("nan")], 2.0),
        (0.1, [[0.1]], 2.0),
        (0.1, [0.1], 0.0),
        (0.1, [0.1], -1.0),
        (0.1, [0.1], float("nan")),
        (0.1, ["x"], 2.0),
    ],
)
def test_perturbation_bound_rejects_bad_input(r: float, e: list[float], multiplier: float) -> None:
    with pytest.raises(InvalidInputError):
        perturbation_bound(r, e, multiplier)


@pytest.mark.parametrize(
    ("scores", "tau", "k"),
    [
        ([0.1, 0.5], [0.0, 0.0], 1),  # not sorted descending
        ([0.5, float("nan")], [0.0, 0.0], 1),
        ([float("inf"), 0.5], [0.0, 0.0], 1),
        ([0.5, 0.1], [0.0], 1),  # shapes differ
        ([[0.5, 0.1]], [[0.0, 0.0]], 1),  # not 1-D
        ([0.5, 0.1], [0.0, -0.1], 1),  # negative tau
        ([0.5, 0.1], [0.0, float("nan")], 1),
        ([0.5, 0.1], [0.0, 0.0], 0),  # k < 1
        ([0.5, 0.1], [0.0, 0.0], -2),
        ([0.5, 0.1], [0.0, 0.0], 1.5),
        ([0.5, 0.1], [0.0, 0.0], True),
    ],
)
def test_certify_and_smallest_safe_k_reject_bad_input(
    scores: list[float], tau: list[float], k: int
) -> None:
    with pytest.raises(InvalidInputError):
        certify(np.asarray(scores), np.asarray(tau), k)
    with pytest.raises(InvalidInputError):
        smallest_safe_k(np.asarray(scores), np.asarray(tau), k)


def test_ties_are_not_safe() -> None:
    zeros = np.zeros(3)
    cert = certify(np.array([0.5, 0.5, 0.1]), zeros, 1)
    assert not cert.safe1 and cert.margin_top2 == 0.0 and cert.slack_1 == 0.0
    assert not certify(np.array([0.9, 0.5, 0.5]), zeros, 2).safek
    # The certified intervals touch: s1 − τ1 == s2 + τ2 is not safe either.
    assert not certify(np.array([0.75, 0.25]), np.array([0.25, 0.25]), 1).safe1
    # Exact distinct scores with τ = 0 are safe: the certificate is only as strong as the radii.
    assert certify(np.array([0.5, 0.4999, 0.1]), zeros, 1).safe1


def test_empty_and_single_candidate() -> None:
    empty = certify(np.empty(0), np.empty(0), 3)
    assert (empty.safe1, empty.safek, empty.n, empty.safe_prefix) == (False, False, 0, None)
    for x in (empty.margin_top2, empty.delta_k, empty.slack_1, empty.slack_k, empty.floor_k):
        assert math.isnan(x)
    assert smallest_safe_k(np.empty(0), np.empty(0), 5) is None

    one = certify(np.array([0.3]), np.array([0.9]), 4)
    assert one.safe1 and one.safek and one.safe_prefix == 1
    assert math.isnan(one.margin_top2) and math.isnan(one.delta_k)
    assert one.slack_1 == math.inf and one.floor_k == pytest.approx(-0.6)


def test_fewer_candidates_than_k() -> None:
    scores, tau = np.array([0.6, 0.55, 0.2]), np.full(3, 0.1)
    cert = certify(scores, tau, 5)
    assert not cert.safe1  # 0.6 − 0.1 > 0.55 + 0.1 fails
    assert cert.safek and cert.slack_k == math.inf and math.isnan(cert.delta_k)
    assert cert.safe_prefix == 2  # {0, 1} vs 0.2 + 0.1: 0.45 > 0.3
    assert cert.floor_k == pytest.approx(0.1)


def test_certificate_numbers_and_immutability() -> None:
    scores = np.array([0.9, 0.7, 0.65, 0.2])
    tau = np.array([0.05, 0.02, 0.04, 0.1])
    cert = certify(scores, tau, 3)
    assert isinstance(cert, Certificate)
    assert cert.safe1 and cert.safek and cert.k == 3 and cert.n == 4
    assert cert.margin_top2 == pytest.approx(0.2) and cert.delta_k == pytest.approx(0.45)
    assert cert.slack_1 == pytest.approx(0.85 - 0.72)
    assert cert.slack_k == pytest.approx(0.61 - 0.3)
    assert cert.floor_k == pytest.approx(0.61) and cert.safe_prefix == 1
    assert cert.tau.dtype == np.float64 and not cert.tau.flags.writeable
    tau[0] = 10.0  # the certificate holds its own copy
    assert cert.tau[0] == 0.05
    with pytest.raises(AttributeError):
        cert.safe1 = False  # type: ignore[misc]
    summary = json.loads(json.dumps(cert.to_dict(), allow_nan=False))
    assert summary["safek"] is True and summary["tau"] == pytest.approx([0.05, 0.02, 0.04, 0.1])
    edge = certify(np.array([0.3]), np.array([0.0]), 2).to_dict()
    assert edge["slack_1"] is None and edge["margin_top2"] is None


def _safe_by_definition(scores: Array, tau: Array, k: int) -> bool:
    """Safe@k straight from DESIGN.md, one k at a time (a reference, not vectorised)."""
    if scores.size == 0:
        return False
    top = min(float(scores[i] - tau[i]) for i in range(min(k, scores.size)))
    rest = [float(scores[j] + tau[j]) for j in range(k, scores.size)]
    return top > max(rest, default=-math.inf)


@PROPERTY
@given(case=ranked_lists(), k_max=st.integers(1, 13))
def test_certify_and_smallest_safe_k_match_the_definition(
    case: tuple[Array, Array, int], k_max: int
) -> None:
    scores, tau, k = case
    cert = certify(scores, tau, k)
    assert cert.safek == _safe_by_definition(scores, tau, k)
    assert cert.safe1 == _safe_by_definition(scores, tau, 1)
    assert cert.safek == (cert.slack_k > 0) and cert.safe1 == (cert.slack_1 > 0)
    brute = next((kp for kp in range(1, k_max + 1) if _safe_by_definition(scores, tau, kp)), None)
    loop = next((kp for kp in range(1, k_max + 1) if certify(scores, tau, kp).safek), None)
    assert smallest_safe_k(scores, tau, k_max) == brute == loop
    assert cert.safe_prefix == smallest_safe_k(scores, tau, k)


def test_safek_uses_the_weakest_top_item_and_the_strongest_outsider() -> None:
    """Not just the k-th against the (k+1)-th: a wide τ anywhere on either side counts."""
    zeros = np.zeros(4)
    wide_inside = np.array([0.5, 0.0, 0.0, 0.0])  # item 0 can fall to 0.4, below item 2
    assert not certify(np.array([0.9, 0.8, 0.5, 0.45]), wide_inside, 2).safek
    assert certify(np.array([0.9, 0.8, 0.5, 0.45]), zeros, 2).safek
    wide_outside = np.array([0.0, 0.0, 0.0, 0.6])  # item 3 can rise to 1.0, above them all
    assert not certify(np.array([0.95, 0.8, 0.5, 0.4]), wide_outside, 2).safek
    assert smallest_safe_k(np.array([0.95, 0.8, 0.5, 0.4]), wide_outside, 3) is None
    assert smallest_safe_k(np.array([0.95, 0.8, 0.5, 0.4]), wide_outside, 4) == 4


def test_completeness() -> None:
    assert completeness(0.5, np.empty(0))
    assert completeness(0.5, np.array([0.1, 0.49], dtype=np.float32))
    assert completeness(0.5, np.array([0.5]))  # a tie does not beat the k-th
    assert not completeness(0.5, np.array([0.1, 0.51]))
    assert not completeness(0.5, np.array([0.4]), kth_tau=0.2)
    assert completeness(0.5, np.array([0.2]), kth_tau=0.2)
    assert not completeness(0.5, np.array([np.inf]))  # an unbounded region
    # With the certificate's floor: Safe@k extended to outside items.
    cert = certify(np.array([0.9, 0.8, 0.3]), np.full(3, 0.05), 2)
    assert completeness(cert.floor_k, np.array([0.6, 0.74]))
    assert not completeness(cert.floor_k, np.array([0.76]))


@pytest.mark.parametrize(
    ("kth", "bounds", "kth_tau"),
    [
        (float("nan"), [0.1], 0.0),
        (float("inf"), [0.1], 0.0),
        (0.5, [float("nan")], 0.0),
        (0.5, [[0.1]], 0.0),
        (0.5, [0.1], -0.1),
        (0.5, [0.1], float("nan")),
    ],
)
def test_completeness_rejects_bad_input(kth: float, bounds: list[float], kth_tau: float) -> None:
    with pytest.raises(InvalidInputError):
        completeness(kth, np.asarray(bounds), kth_tau=kth_tau)


# ------------------------------------------------------------------------ 6. SafetyConfig


def test_safety_config_defaults_and_json_round_trip() -> None:
    assert SafetyConfig() == SafetyConfig(multiplier=2.0, rho=0.0)
    cfg = SafetyConfig(multiplier=3, rho=0.05)
    assert isinstance(cfg.multiplier, float) and cfg.multiplier == 3.0
    assert SafetyConfig.from_json(cfg.to_json()) == cfg
    assert SafetyConfig.from_dict(cfg.to_dict()) == cfg
    assert json.loads(cfg.to_json()) == {
        "multiplier": 3.0,
        "rho": 0.05,
        "complete_on_demand": True,
    }
    with pytest.raises(AttributeError):
        cfg.rho = 0.1  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"multiplier": 0.0},
        {"multiplier": -2.0},
        {"multiplier": float("nan")},
        {"multiplier": float("inf")},
        {"multiplier": "2"},
        {"multiplier": True},
        {"rho": -0.01},
        {"rho": float("nan")},
        {"rho": float("inf")},
        {"rho": None},
    ],
)
def test_safety_config_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SafetyConfig(**kwargs)  # type: ignore[arg-type]


def test_safety_config_rejects_unknown_fields_and_bad_json() -> None:
    with pytest.raises(ConfigError):
        SafetyConfig.from_dict({"multiplier": 2.0, "margin": 1.0})
    with pytest.raises(ConfigError):
        SafetyConfig.from_json("{not json")


# -- the shared-query-perturbation refinement ----------------------------------------------------


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    dim=st.integers(3, 12),
    n=st.integers(2, 8),
    k=st.integers(1, 4),
    r=st.floats(0.0, 0.6),
    e_max=st.floats(0.0, 0.2),
)
def test_refined_certificate_is_sound_and_never_stricter(seed, dim, n, k, r, e_max) -> None:
    from luma_rag.safety import refine_with_geometry

    rng = np.random.default_rng(seed)
    u = _unit_rows(rng.standard_normal(dim))
    v = _unit_rows(u + rng.uniform(0.2, 2.0) * rng.standard_normal((n, dim)))
    order = np.argsort(-(v @ u), kind="stable")
    v = v[order]
    s = v @ u
    e = rng.uniform(0.0, e_max, n)
    base = certify(s, perturbation_bound(r, e), k)
    cert = refine_with_geometry(base, s, v, r, e)
    # never stricter than the per-item test
    assert cert.safe1 >= base.safe1 and cert.safek >= base.safek
    kk = min(k, n)
    for _ in range(40):  # random and adversarial perturbations within the stated radii
        du = _unit_rows(rng.standard_normal(dim)) * r * rng.uniform(0.5, 1.0)
        if rng.random() < 0.5 and n > kk:  # push towards the best outsider, away from the top
            direction = v[kk] - v[kk - 1]
            du = r * direction / max(np.linalg.norm(direction), 1e-12)
        dv = _unit_rows(rng.standard_normal((n, dim))) * e[:, None]
        s2 = (v + dv) @ (u + du)
        top2 = set(np.argsort(-s2, kind="stable")[:kk].tolist())
        if cert.safe1:
            assert int(np.argmax(s2)) == 0
        if cert.safek:
            assert top2 == set(range(kk))


def test_refinement_certifies_a_clear_winner_the_per_item_test_cannot() -> None:
    from luma_rag.safety import refine_with_geometry

    u = np.array([1.0, 0.0, 0.0])
    v = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.6, 0.0, 0.8]])  # scores 1.0, 0.8, 0.6
    s = v @ u
    r = 0.15  # per-item: 1 - 0.15 > 0.8 + 0.15 fails; pairwise: 0.2 > 0.15 * ||v1 - v2|| holds
    base = certify(s, perturbation_bound(r, np.zeros(3)), 2)
    cert = refine_with_geometry(base, s, v, r, np.zeros(3))
    assert not base.safe1 and cert.safe1
    eta = score_rounding_error(3)  # float32 rounding allowance of each of the two scores
    assert cert.slack_1 == pytest.approx(0.2 - r * np.linalg.norm(v[0] - v[1]) - 2 * eta)
    assert cert.tau is base.tau and cert.floor_k == base.floor_k  # completeness inputs kept


def test_refinement_beyond_max_rows_keeps_the_per_item_verdict() -> None:
    """Large k: only the first max_rows prefixes are refined; the rest stay per-item (sound)."""
    from luma_rag.safety import refine_with_geometry

    rng = np.random.default_rng(7)
    v = rng.standard_normal((60, 8))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    q = v[0] + 0.05 * rng.standard_normal(8)
    q /= np.linalg.norm(q)
    s = np.sort(v @ q)[::-1]
    order = np.argsort(-(v @ q), kind="stable")
    tau = perturbation_bound(0.02, np.zeros(60))
    cert = certify(s, tau, 40)
    full = refine_with_geometry(cert, s, v[order], 0.02, np.zeros(60))
    capped = refine_with_geometry(cert, s, v[order], 0.02, np.zeros(60), max_rows=5)
    assert capped.safe1 == full.safe1 and capped.slack_1 == full.slack_1
    assert capped.safek == cert.safek and capped.slack_k == cert.slack_k  # per-item for k=40
    assert full.safek >= cert.safek  # the full refinement is never stricter
