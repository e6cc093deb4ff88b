"""Tests of luma_rag.safety.groups: Group-Safe@1 is sound, and it is what linking buys.

Soundness: whenever a group certificate is claimed, no perturbation within the bounds —
random, and the adversarial ones that move the query towards each rival and push the group's
items down and the rivals up — puts an item of another group on top. Derandomized hypothesis
(fixed seed, no example database), numpy draws seeded from hypothesis-drawn integers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from luma_rag.errors import InvalidInputError
from luma_rag.safety import certify, perturbation_bound, score_rounding_error
from luma_rag.safety.groups import certify_groups, group_labels

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)
FLOAT_SLACK = 1e-12  # float64 rounding of the recomputed perturbed scores
Array = NDArray[np.float64]


def _unit(x: Array) -> Array:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _case(seed: int, n: int, d: int, n_groups: int) -> tuple[Array, Array, list[int]]:
    """A unit query, n unit items sorted by score (some near-duplicates: one thing rendered
    twice), and a group label per item."""
    rng = np.random.default_rng(seed)
    u = _unit(rng.normal(size=d))
    base = _unit(rng.normal(size=(n_groups, d)) + rng.uniform(0, 3) * u)
    labels = rng.integers(0, n_groups, size=n)
    spread = rng.choice([0.0, 0.02, 0.2])
    v = _unit(base[labels] + spread * rng.normal(size=(n, d)))
    u, v = (x.astype(np.float32).astype(np.float64) for x in (u, v))  # stored as float32
    order = np.argsort(-(v @ u), kind="stable")
    return u, v[order], [int(g) for g in labels[order]]


def _perturbations(
    rng: np.random.Generator, u: Array, v: Array, r: float, e: Array, inside: NDArray[np.bool_]
) -> list[tuple[Array, Array]]:
    """(Δu, Δv) pairs: ‖Δu‖ <= r, ‖Δv_i‖ <= e_i; adversarial towards every rival, and random."""
    d = u.size
    dirs = [np.zeros(d), u, -u]
    for j in np.flatnonzero(~inside):
        for i in np.flatnonzero(inside):
            dirs.append(v[j] - v[i])
    dirs += list(rng.normal(size=(6, d)))
    out = []
    for x in dirs:
        norm = np.linalg.norm(x)
        du = r * x / norm if norm > 1e-12 else np.zeros(d)
        a = _unit(u + du) if np.linalg.norm(u + du) > 1e-12 else u
        sign = np.where(inside, -1.0, 1.0)
        out.append((du, (sign * e)[:, None] * a[None, :]))  # group down, rivals up
        out.append((du, e[:, None] * _unit(rng.normal(size=v.shape))))
    return out


@PROPERTY
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 9),
    n_groups=st.integers(1, 4),
    r=st.sampled_from([0.0, 0.01, 0.05, 0.2]),
    e_max=st.sampled_from([0.0, 0.01, 0.05]),
    pairwise=st.booleans(),
)
def test_a_certified_group_stays_on_top_under_every_perturbation(
    seed: int, n: int, n_groups: int, r: float, e_max: float, pairwise: bool
) -> None:
    d = 6
    u, v, labels = _case(seed, n, d, n_groups)
    rng = np.random.default_rng(seed + 1)
    e = rng.uniform(0.0, e_max, size=n)
    scores = (v.astype(np.float32) @ u.astype(np.float32)).astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    scores, v, e = scores[order], v[order], e[order]
    labels = [labels[i] for i in order]
    eta = score_rounding_error(d)
    tau = perturbation_bound(r, e) + eta
    cert = certify_groups(
        scores, tau, labels, vectors=v if pairwise else None, r=r, e=e, score_dtype=np.float32
    )
    inside = np.array([g == labels[0] for g in labels])
    assert cert.group == labels[0] and list(cert.members) == list(np.flatnonzero(inside))
    item = certify(scores, tau, 1)
    if item.safe1:  # item Safe@1 implies Group-Safe@1 (per item, same τ)
        assert cert.safe
    if not cert.safe:
        return
    assert cert.witness in cert.members
    for du, dv in _perturbations(rng, u, v, r, e, inside):
        moved = (v + dv) @ (u + du)
        best_in = moved[inside].max()
        best_out = moved[~inside].max(initial=-np.inf)
        assert best_in > best_out - FLOAT_SLACK


def test_group_margin_and_slack_per_item() -> None:
    # picture 0.80 and its caption 0.79 tie as items; the other thing is at 0.60
    scores, tau = [0.80, 0.79, 0.60], [0.05, 0.05, 0.05]
    assert not certify(scores, tau, 1).safe1
    cert = certify_groups(scores, tau, ["a", "a", "b"])
    assert cert.safe and cert.members == (0, 1) and cert.witness == 0
    assert cert.margin == pytest.approx(0.20)
    assert cert.slack == pytest.approx((0.80 - 0.05) - (0.60 + 0.05))
    # unlinked, the same list is not certified: the caption is a rival
    assert not certify_groups(scores, tau, ["a", "c", "b"]).safe


def test_a_group_is_refused_when_a_rival_can_overtake_it() -> None:
    """Group margin 0.06 against bounds 2 × 0.05: a query moved by 0.05 towards the rival
    and the group's items moved down flips the top group, so no certificate may be given."""
    u = np.array([1.0, 0.0, 0.0])
    theta = np.arccos([0.80, 0.74])
    v = np.stack([[np.cos(t), np.sin(t) * s, 0.0] for t, s in zip(theta, (1.0, -1.0), strict=True)])
    scores = v @ u
    r = 0.05
    tau = perturbation_bound(r, np.zeros(2)) + score_rounding_error(3)
    cert = certify_groups(scores, tau, ["a", "b"], vectors=v, r=r)
    assert not cert.safe and cert.slack < 0
    du = r * _unit(v[1] - v[0])
    moved = v @ (u + du)
    assert moved[1] > moved[0]  # the perturbation that the refusal protects against


def test_unlisted_candidates_count_as_rivals() -> None:
    scores, tau = [0.80, 0.79], [0.05, 0.05]
    assert certify_groups(scores, tau, ["a", "a"]).slack == math.inf
    assert not certify_groups(scores, tau, ["a", "a"], rival_ceiling=0.76).safe
    assert certify_groups(scores, tau, ["a", "a"], rival_ceiling=0.74).safe


def test_pairwise_never_loses_to_per_item() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        u, v, labels = _case(int(rng.integers(1 << 30)), 6, 8, 3)
        scores = v @ u
        tau = perturbation_bound(0.05, np.zeros(6)) + score_rounding_error(8, np.float64)
        plain = certify_groups(scores, tau, labels, score_dtype=np.float64)
        both = certify_groups(scores, tau, labels, vectors=v, r=0.05, score_dtype=np.float64)
        assert both.slack >= plain.slack


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="one group label per candidate"):
        certify_groups([0.5, 0.4], [0.0, 0.0], ["a"])
    with pytest.raises(InvalidInputError, match="descending"):
        certify_groups([0.4, 0.5], [0.0, 0.0], ["a", "b"])
    with pytest.raises(InvalidInputError, match="must agree"):
        certify_groups([0.5, 0.4], [0.0, 0.0], ["a", "b"], vectors=np.zeros((3, 2)), r=0.1)
    empty = certify_groups([], [], [])
    assert not empty.safe and empty.group is None and math.isnan(empty.slack)


def test_group_labels_link_by_metadata_value_else_by_id() -> None:
    labels = group_labels(
        ["p", "p-audio", "q", "r", "s"],
        [{"doc_id": "x"}, {"doc_id": "x"}, {"doc_id": ""}, {}, {"doc_id": 7}],
        "doc_id",
    )
    assert labels[0] == labels[1] == ("link", "x")
    assert labels[2] == ("id", "q") and labels[3] == ("id", "r") and labels[4] == ("link", "7")
    with pytest.raises(InvalidInputError):
        group_labels(["a"], [], "doc_id")
