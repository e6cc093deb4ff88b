"""Composite queries: the combined radius is sound, the certificate holds, edits are found."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from luma_rag import Luma
from luma_rag.composite import Part, combine, combined_radius, composite_query
from luma_rag.errors import ConfigError, InvalidInputError


def _perturb(u: np.ndarray, dist: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector exactly ``dist`` (<= 2) from unit ``u``, in a random direction."""
    v = rng.standard_normal(u.size)
    v -= (v @ u) * u
    v /= np.linalg.norm(v)
    theta = 2.0 * math.asin(min(1.0, dist / 2.0))
    return math.cos(theta) * u + math.sin(theta) * v


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
    weights=st.lists(st.floats(-3, 3).filter(lambda w: abs(w) > 0.05), min_size=4, max_size=4),
    radii=st.lists(st.floats(0, 0.6), min_size=4, max_size=4),
)
def test_no_perturbation_within_the_parts_radii_moves_q_further_than_r(
    n: int, seed: int, weights: list[float], radii: list[float]
) -> None:
    rng = np.random.default_rng(seed)
    d = 12
    u = rng.standard_normal((n, d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    w, rho = np.array(weights[:n]), np.array(radii[:n])
    s = w @ u
    if np.linalg.norm(s) < 1e-3:
        return  # cancelling parts are refused (tested below)
    q, r = combine(u, w, rho)
    x = float(np.abs(w) @ rho) / float(np.linalg.norm(s))
    if n > 1 and x < 1:
        assert x - 1e-9 <= r <= math.sqrt(2) * x + 1e-5  # between x and √2·x, as proved
    for _ in range(20):
        # worst directions are near the tangent of the ball: push every part the same way
        up = np.stack([_perturb(u[i], rho[i] * rng.uniform(0.8, 1.0), rng) for i in range(n)])
        sp = w @ up
        if np.linalg.norm(sp) < 1e-12:
            continue  # q' undefined; only possible when x >= 1, where r = 2
        qp = sp / np.linalg.norm(sp)
        assert np.linalg.norm(qp - q.astype(np.float64)) <= r + 1e-5


def test_the_bound_is_nearly_attained_by_a_tangent_perturbation() -> None:
    """Two parts pushed sideways together reach close to r: the bound is not loose."""
    u = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]])
    w, rho = np.array([1.0, 1.0]), np.array([0.1, 0.1])
    q, r = combine(u, w, rho)
    side = np.array([0.0, 0.0, 1.0])  # orthogonal to both parts and to s
    up = np.stack([_perturb_toward(u[i], side, 0.1) for i in range(2)])
    moved = (w @ up) / np.linalg.norm(w @ up)
    assert np.linalg.norm(moved - q) <= r + 1e-6
    assert np.linalg.norm(moved - q) >= 0.9 * r


def _perturb_toward(u: np.ndarray, v: np.ndarray, dist: float) -> np.ndarray:
    theta = 2.0 * math.asin(dist / 2.0)
    return math.cos(theta) * u + math.sin(theta) * v


def test_radius_edge_cases() -> None:
    assert combined_radius([2.0], [0.3], 2.0) == pytest.approx(0.3, abs=1e-5)  # one part: ρ
    assert combined_radius([1.0, 1.0], [0.6, 0.6], 1.0) == 2.0  # x >= 1: vacuous
    assert combined_radius([1.0, -1.0], [0.0, 0.0], 0.5) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(InvalidInputError, match="cancel"):
        combine(np.eye(3)[[0, 0]], [1.0, -1.0], [0.1, 0.1])
    with pytest.raises(InvalidInputError, match="weights"):
        combine(np.eye(3)[:2], [1.0], [0.1, 0.1])
    with pytest.raises(InvalidInputError, match="exactly one"):
        Part(text="red", image="x.png")
    with pytest.raises(InvalidInputError, match="non-zero"):
        Part(text="red", weight=0.0)
    with pytest.raises(InvalidInputError, match="radius"):
        Part(text="red", radius=-1.0)


def test_safe1_of_a_composite_survives_perturbed_parts(make_store, make_vectors) -> None:
    """Whenever the composite is Safe@1, every perturbation of its parts keeps the top-1."""
    luma = make_store(dim=16)
    x = make_vectors(300, 16, seed=4, clusters=8, spread=0.6)
    ids = luma.add_vectors(x)
    rng = np.random.default_rng(0)
    certified = 0
    for trial in range(40):
        a, b = x[rng.integers(300)], x[rng.integers(300)]
        wa, wb, ra, rb = 1.0, float(rng.uniform(0.2, 1.5)), 0.02, 0.03
        res = composite_query(
            luma,
            [Part(vector=a, weight=wa, radius=ra), Part(vector=b, weight=wb, radius=rb)],
            k=3,
        )
        assert res.telemetry.rho > 0
        if not res.telemetry.safe1:
            continue
        certified += 1
        for _ in range(10):
            ap = _perturb(a.astype(np.float64) / np.linalg.norm(a), ra, rng)
            bp = _perturb(b.astype(np.float64) / np.linalg.norm(b), rb, rng)
            moved = luma.search(wa * ap + wb * bp, k=1, rho=0.0)
            assert moved.ids[0] == res.ids[0], trial
    assert certified > 0  # the test exercised the certified branch
    assert ids


# -- real models ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def edit_store(tmp_path_factory: pytest.TempPathFactory):
    from luma_rag.datasets.edits import colour_edit_pairs

    root = tmp_path_factory.mktemp("edits")
    pairs = colour_edit_pairs(root / "pairs", n=16, seed=11)
    luma = Luma.open(root / "store", encoder="luma-tiny")
    luma.ingest_images(
        [p for e in pairs for p in (e.source, e.target)],
        metadatas=[
            {"color": c, "shape": e.attributes.shape}
            for e in pairs
            for c in (e.attributes.color, e.new_color)
        ],
        ids=[i for e in pairs for i in (f"{e.id}-src", f"{e.id}-tgt")],
    )
    yield luma, pairs
    luma.close()


def test_edit_pairs_differ_only_in_colour(edit_store) -> None:
    from PIL import Image

    _, pairs = edit_store
    for e in pairs[:4]:
        assert e.new_color != e.attributes.color
        a = np.asarray(Image.open(e.source), dtype=np.int16)
        b = np.asarray(Image.open(e.target), dtype=np.int16)
        changed = np.abs(a - b).sum(axis=2) > 0
        assert 0 < changed.mean() < 0.5  # the shape's pixels, not the background


def test_one_part_composite_is_the_plain_query(edit_store) -> None:
    luma, pairs = edit_store
    plain = luma.query(image=pairs[0].source, k=5)
    comp = composite_query(luma, [Part(image=pairs[0].source, weight=2.0)], k=5)
    assert comp.ids == plain.ids
    assert comp.telemetry.rho == pytest.approx(luma.rho["image"], abs=1e-5)
    assert [h.score for h in comp.hits] == pytest.approx([h.score for h in plain.hits], abs=1e-5)


def test_a_colour_modifier_moves_the_image_query_to_the_edited_image(edit_store) -> None:
    luma, pairs = edit_store
    plain_right = comp_right = 0
    for e in pairs:
        plain = luma.query(image=e.source, k=1)
        comp = composite_query(
            luma,
            [
                Part(image=e.source),
                Part(text=f"a {e.attributes.color} shape", weight=-0.75),
                Part(text=f"a {e.new_color} shape", weight=0.75),
            ],
            k=1,
        )
        plain_right += plain.ids[0] == f"{e.id}-tgt"
        comp_right += comp.ids[0] == f"{e.id}-tgt"
        # three parts: the radius grows with the modifier's weight and ρ_text
        assert comp.telemetry.rho > luma.rho["image"]
    assert plain_right == 0  # the image alone finds itself
    assert comp_right > len(pairs) // 2


def test_luma_query_with_several_inputs_is_a_composite(edit_store) -> None:
    luma, pairs = edit_store
    e = pairs[0]
    via_query = luma.query(f"a {e.new_color} shape", image=e.source, weights={"text": 0.75}, k=4)
    direct = luma.query_parts(
        [Part(image=e.source), Part(text=f"a {e.new_color} shape", weight=0.75)], k=4
    )
    assert via_query.ids == direct.ids
    assert via_query.telemetry.rho == pytest.approx(direct.telemetry.rho)
    with pytest.raises(InvalidInputError, match="rho"):
        luma.query("red", image=e.source, rho=0.1)
    with pytest.raises(InvalidInputError, match="weights"):
        luma.query("red", weights={"image": 2.0})


def test_audio_part_needs_a_bridge(edit_store, tmp_path: Path) -> None:
    luma, _ = edit_store
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF")
    with pytest.raises(ConfigError, match="audio"):
        composite_query(luma, [Part(audio=wav), Part(text="red")])
    with pytest.raises(InvalidInputError, match="Part"):
        composite_query(luma, [])
