"""The ``Luma`` facade: the issue's contract, writes, reads, filters, errors, reopen, bridge."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest

from luma_rag import BridgeConfig, Luma, LumaConfig, SpillConfig, WarmTierConfig
from luma_rag.errors import (
    ConfigError,
    DimensionMismatchError,
    InvalidInputError,
    LumaError,
    NotFoundError,
    StoreClosedError,
)
from luma_rag.safety import SafetyConfig

pytestmark = pytest.mark.timeout(120)

COLORS = ("red", "green", "blue")


def _meta(i: int) -> dict[str, Any]:
    return {"n": i, "color": COLORS[i % 3], "size": i % 10, "tag": f"t{i % 7}"}


def _exact(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Exact cosine of every stored vector against ``q`` (both normalised here), float64."""
    x = x.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = q.astype(np.float64) / np.linalg.norm(q)
    return x @ q


def _fingerprint(
    luma: Luma, queries: np.ndarray, k: int = 10
) -> list[list[tuple[str, float, str]]]:
    return [[(h.id, round(h.score, 6), h.tier) for h in luma.search(q, k=k)] for q in queries]


# -- the contract --------------------------------------------------------------------------------


def test_contract(tmp_path, make_vectors):
    n = 2600
    vecs = make_vectors(n, 64, seed=0, clusters=32)
    cfg = LumaConfig(dim=64, hot_budget=300)  # everything else has sound defaults
    with Luma.open(tmp_path / "store", cfg) as luma:
        ids: list[str] = []
        for start in range(0, n, 400):
            stop = min(n, start + 400)
            metadata = [_meta(i) for i in range(start, stop)]
            ids += luma.add_vectors(vecs[start:stop], metadata=metadata)
            assert luma.stats()["hot"] <= 300
        assert len(ids) == n == len(set(ids)) and all(isinstance(i, str) for i in ids)
        luma.wait_idle()
        stats = luma.stats()
        assert stats["hot"] <= 300 and stats["hot"] + stats["warm"] == stats["total"] == n
        assert stats["warm_trained"]
        index = {i: j for j, i in enumerate(ids)}
        tiers_seen: set[str] = set()
        for qi in range(0, n, 53):
            res = luma.search(vecs[qi], k=10)
            assert len(res.hits) == 10
            h = res.hits[0]
            assert h.id == ids[qi] and h.score == pytest.approx(1.0, abs=1e-5)
            assert h.metadata == _meta(qi)
            exact = _exact(vecs, vecs[qi])
            for hit in res.hits:
                assert hit.tier in ("hot", "warm")
                assert abs(hit.score - exact[index[hit.id]]) < 1e-5
            scores = [hit.score for hit in res.hits]
            assert scores == sorted(scores, reverse=True)
            tiers_seen |= {hit.tier for hit in res.hits}
            t = res.telemetry
            for name in ("margin_top2", "delta_k", "epsilon", "zeta_mean", "zeta_max", "rho"):
                assert isinstance(getattr(t, name), float)
            assert t.margin_top2 == pytest.approx(scores[0] - scores[1], abs=1e-6)
            assert t.epsilon == 0.0 and t.rho == 0.0
            assert isinstance(t.safe1, bool) and isinstance(t.safek, bool)
            assert isinstance(t.complete, bool) and t.latency_ms > 0
        assert tiers_seen == {"hot", "warm"}

        luma.delete(ids[:5])
        assert luma.stats()["total"] == n - 5
        for qi in range(5):
            assert ids[qi] not in luma.search(vecs[qi], k=10).ids
        res = luma.search(vecs[7], k=10, filters={"color": "green"})
        assert res.hits and all(h.metadata["color"] == "green" for h in res.hits)
        assert res.hits[0].id == ids[7]


# -- adding in any order -------------------------------------------------------------------------


@pytest.mark.parametrize("order", list(itertools.permutations([1, 100, 300])))
def test_add_sizes_in_any_order(make_store, make_vectors, order):
    vecs = make_vectors(sum(order), 32, seed=1)
    luma = make_store(32, hot_budget=150)
    start = 0
    for size in order:
        ids = luma.add_vectors(vecs[start : start + size])
        assert len(ids) == size
        start += size
    assert luma.stats()["total"] == start
    assert luma.stats()["hot"] <= 150
    assert luma.search(vecs[-1], k=3).hits[0].score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.timeout(240)
def test_add_ten_thousand_with_small_batches_around(make_store, make_vectors):
    order = (1, 10_000, 300, 100)
    vecs = make_vectors(sum(order), 32, seed=2, clusters=64)
    luma = make_store(32, hot_budget=300)
    start = 0
    for size in order:
        luma.add_vectors(vecs[start : start + size])
        start += size
    stats = luma.stats()
    assert stats["total"] == start and stats["hot"] <= 300 and stats["warm_trained"]
    for qi in (0, 1, 5000, start - 1):
        assert luma.search(vecs[qi], k=5).hits[0].score == pytest.approx(1.0, abs=1e-5)


# -- tiers through the facade --------------------------------------------------------------------


def test_zeta_positive_once_pq_is_trained(make_store, make_vectors):
    vecs = make_vectors(700, 32, seed=3)
    # no exact rescan: a rescanned result scores every candidate exactly, so its ζ is 0
    luma = make_store(
        32,
        hot_budget=100,
        warm=WarmTierConfig(min_train=512, background=False),
        safety=SafetyConfig(complete_on_demand=False),
    )
    luma.add_vectors(vecs[:300])
    t = luma.search(vecs[0], k=10).telemetry
    assert not luma.stats()["warm_trained"]
    assert t.zeta_mean == 0.0 and t.zeta_max == 0.0  # flat warm tier: stored exactly
    luma.add_vectors(vecs[300:])
    assert luma.stats()["warm_trained"]
    seen_warm = 0
    for qi in range(0, 700, 35):
        res = luma.search(vecs[qi], k=10)
        t = res.telemetry
        if any(h.tier == "warm" for h in res.hits):
            seen_warm += 1
            assert math.isfinite(t.zeta_mean) and t.zeta_mean > 0
            assert t.zeta_max >= t.zeta_mean
    assert seen_warm > 5


def test_spill_keeps_frequently_hit_items_hot(make_store, make_vectors):
    vecs = make_vectors(500, 32, seed=4)
    luma = make_store(32, hot_budget=100)
    ids = luma.add_vectors(vecs[:100])
    favourites = list(range(0, 100, 10))
    for _ in range(4):
        for i in favourites:
            assert luma.search(vecs[i], k=1).hits[0].id == ids[i]
    for start in range(100, 500, 50):
        luma.add_vectors(vecs[start : start + 50])
    assert luma.stats()["hot"] <= 100 and luma.stats()["warm"] >= 400
    for i in favourites:
        hit = luma.search(vecs[i], k=1).hits[0]
        assert hit.id == ids[i] and hit.tier == "hot"


def test_promotion_applies_on_next_write(make_store, make_vectors):
    vecs = make_vectors(400, 32, seed=5)
    luma = make_store(32, hot_budget=100, spill=SpillConfig(promote_hits=3))
    ids = luma.add_vectors(vecs[:300])
    warm = [i for i in range(300) if luma.search(vecs[i], k=1).hits[0].tier == "warm"][:5]
    assert len(warm) == 5
    for _ in range(3):
        for i in warm:
            assert luma.search(vecs[i], k=1).hits[0].id == ids[i]
    assert {luma.search(vecs[i], k=1).hits[0].tier for i in warm} == {"warm"}  # not yet
    luma.add_vectors(vecs[300:301])  # the next write applies the queued promotions
    for i in warm:
        hit = luma.search(vecs[i], k=1).hits[0]
        assert hit.id == ids[i] and hit.tier == "hot"
    stats = luma.stats()
    assert stats["hot"] <= 100 and stats["hot"] + stats["warm"] == stats["total"] == 301


# -- delete and upsert ---------------------------------------------------------------------------


def test_delete_and_upsert(make_store, make_vectors):
    vecs = make_vectors(400, 32, seed=6)
    fresh = make_vectors(10, 32, seed=60)
    luma = make_store(32, hot_budget=100)
    ids = luma.add_vectors(vecs, metadata=[_meta(i) for i in range(400)])
    tiers = {i: luma.search(vecs[i], k=1).hits[0].tier for i in range(400)}
    hot_i = next(i for i in range(400) if tiers[i] == "hot")
    warm_i = next(i for i in range(400) if tiers[i] == "warm")

    # upsert: same id, new vector and metadata, in both tiers
    for j, i in enumerate((hot_i, warm_i)):
        assert luma.add_vectors(fresh[j : j + 1], metadata=[{"v": 2}], ids=[ids[i]]) == [ids[i]]
        top = luma.search(fresh[j], k=1).hits[0]
        assert top.id == ids[i] and top.score == pytest.approx(1.0, abs=1e-5)
        assert top.metadata == {"v": 2}
        assert luma.search(vecs[i], k=1).hits[0].id != ids[i]
        got = luma.get([ids[i]])[0]
        np.testing.assert_allclose(got["vector"], fresh[j], atol=1e-6)
    stats = luma.stats()
    assert stats["total"] == 400 == stats["hot"] + stats["warm"]

    # delete, including a repeated id; counts stay consistent
    gone = [ids[1], ids[warm_i], ids[2], ids[1]]
    luma.delete(gone)
    stats = luma.stats()
    assert stats["total"] == 397 == len(luma) == stats["hot"] + stats["warm"]
    for i in {1, 2, warm_i}:
        assert ids[i] not in luma
        assert ids[i] not in luma.search(vecs[i], k=20).ids
    assert luma.get([ids[1]]) == []
    with pytest.raises(NotFoundError):
        luma.delete([ids[1]])
    # re-adding a deleted id is an insert
    luma.add_vectors(vecs[1:2], ids=[ids[1]])
    assert luma.search(vecs[1], k=1).hits[0].id == ids[1]
    assert luma.stats()["total"] == 398


# -- filters -------------------------------------------------------------------------------------

FILTERS = [
    ({"color": "red"}, lambda m: m["color"] == "red"),
    ({"color": {"$in": ["red", "blue"]}}, lambda m: m["color"] in ("red", "blue")),
    ({"size": {"$gte": 3, "$lt": 6}}, lambda m: 3 <= m["size"] < 6),
    ({"color": "green", "size": {"$lte": 2}}, lambda m: m["color"] == "green" and m["size"] <= 2),
    ({"$or": [{"tag": "t1"}, {"n": {"$gt": 390}}]}, lambda m: m["tag"] == "t1" or m["n"] > 390),
    ({"n": {"$nin": [0, 1, 2]}, "tag": {"$ne": "t3"}}, lambda m: m["n"] > 2 and m["tag"] != "t3"),
]


@pytest.mark.parametrize("path", ["exact", "tiers"])
def test_metadata_filters(make_store, make_vectors, path):
    n = 400
    vecs = make_vectors(n, 32, seed=7)
    luma = make_store(32, hot_budget=100, exact_filter_below=4096 if path == "exact" else 0)
    ids = luma.add_vectors(vecs, metadata=[_meta(i) for i in range(n)])
    metas = [_meta(i) for i in range(n)]
    for filters, pred in FILTERS:
        match = np.array([pred(m) for m in metas])
        for qi in (0, 11, 202, 399):
            res = luma.search(vecs[qi], k=10, filters=filters)
            assert res.hits and all(pred(h.metadata) for h in res.hits)
            scores = _exact(vecs, vecs[qi])
            want = np.argsort(-np.where(match, scores, -np.inf), kind="stable")[:10]
            assert [h.id for h in res.hits] == [ids[i] for i in want]
            assert all(abs(h.score - scores[ids.index(h.id)]) < 1e-5 for h in res.hits)
            if path == "exact":
                assert res.telemetry.complete
    # a filter nothing matches: no hits, no error
    assert luma.search(vecs[0], k=5, filters={"color": "purple"}).hits == []


def test_filters_on_unknown_keys_or_bad_operators_raise(make_store, make_vectors):
    luma = make_store(32)
    vecs = make_vectors(20, 32, seed=8)
    luma.add_vectors(vecs, metadata=[_meta(i) for i in range(20)])
    for bad in ({"nope": 1}, {"color": {"$regex": "r"}}, {"size": {"$gt": [1]}}, {"$or": []}):
        with pytest.raises(InvalidInputError):
            luma.search(vecs[0], filters=bad)


# -- bad input: a typed error, and the store unchanged ----------------------------------------

D = 32
BAD_CALLS: dict[str, tuple[Any, type[LumaError]]] = {
    "nan": (lambda L, x, ids: L.add_vectors(np.full((1, D), np.nan)), InvalidInputError),
    "inf in one row": (
        lambda L, x, ids: L.add_vectors(np.vstack([x[:3], np.full((1, D), np.inf)])),
        InvalidInputError,
    ),
    "zero vector": (lambda L, x, ids: L.add_vectors(np.zeros((2, D))), InvalidInputError),
    "query zero": (lambda L, x, ids: L.search(np.zeros(D)), InvalidInputError),
    "query nan": (lambda L, x, ids: L.search(np.full(D, np.nan)), InvalidInputError),
    "wrong dim": (lambda L, x, ids: L.add_vectors(np.ones((2, D + 1))), DimensionMismatchError),
    "query wrong dim": (lambda L, x, ids: L.search(np.ones(D - 1)), DimensionMismatchError),
    "strings": (lambda L, x, ids: L.add_vectors([["a"] * D]), InvalidInputError),
    "object dtype": (
        lambda L, x, ids: L.add_vectors(np.array([[object()] * D])),
        InvalidInputError,
    ),
    "query string": (lambda L, x, ids: L.search("a red circle"), InvalidInputError),
    "3-D batch": (lambda L, x, ids: L.add_vectors(x[None, :4]), InvalidInputError),
    "1-D batch": (lambda L, x, ids: L.add_vectors(x[0]), InvalidInputError),
    "3-D query": (lambda L, x, ids: L.search(x[None, :1]), InvalidInputError),
    "batch to search": (lambda L, x, ids: L.search(x[:2]), InvalidInputError),
    "empty batch": (lambda L, x, ids: L.add_vectors(np.zeros((0, D))), InvalidInputError),
    "unknown id": (lambda L, x, ids: L.delete(["no-such-id"]), NotFoundError),
    "known + unknown ids": (lambda L, x, ids: L.delete([ids[0], "nope"]), NotFoundError),
    "delete a string": (lambda L, x, ids: L.delete(ids[0]), InvalidInputError),
    "k=0": (lambda L, x, ids: L.search(x[0], k=0), InvalidInputError),
    "k<0": (lambda L, x, ids: L.search(x[0], k=-3), InvalidInputError),
    "k=True": (lambda L, x, ids: L.search(x[0], k=True), InvalidInputError),
    "k float": (lambda L, x, ids: L.search(x[0], k=2.0), InvalidInputError),
    "metadata set": (
        lambda L, x, ids: L.add_vectors(x[:2], metadata=[{}, {"s": {1, 2}}]),
        InvalidInputError,
    ),
    "metadata nan": (
        lambda L, x, ids: L.add_vectors(x[:1], metadata=[{"v": float("nan")}]),
        InvalidInputError,
    ),
    "metadata object": (
        lambda L, x, ids: L.add_vectors(x[:1], metadata=[{"o": object()}]),
        InvalidInputError,
    ),
    "metadata count": (lambda L, x, ids: L.add_vectors(x[:3], metadata=[{}]), InvalidInputError),
    "metadata dict": (lambda L, x, ids: L.add_vectors(x[:1], metadata={"a": 1}), InvalidInputError),
    "metadata int keys": (
        lambda L, x, ids: L.add_vectors(x[:1], metadata=[{1: "a"}]),
        InvalidInputError,
    ),
    "duplicate ids": (lambda L, x, ids: L.add_vectors(x[:2], ids=["a", "a"]), InvalidInputError),
    "non-string ids": (lambda L, x, ids: L.add_vectors(x[:2], ids=[1, 2]), InvalidInputError),
    "id count": (lambda L, x, ids: L.add_vectors(x[:2], ids=["a"]), InvalidInputError),
    "negative rho": (lambda L, x, ids: L.search(x[0], rho=-0.1), InvalidInputError),
    "nan rho": (lambda L, x, ids: L.search(x[0], rho=float("nan")), InvalidInputError),
    "bool rho": (lambda L, x, ids: L.search(x[0], rho=True), InvalidInputError),
    "empty modality": (lambda L, x, ids: L.add_vectors(x[:1], modality=""), InvalidInputError),
    "bridged without bridge": (lambda L, x, ids: L.add_vectors(x[:1], bridged=True), ConfigError),
    "filter unknown key": (
        lambda L, x, ids: L.search(x[0], filters={"missing": 1}),
        InvalidInputError,
    ),
}


@pytest.fixture(scope="module")
def bad_input_store(tmp_path_factory, make_vectors):
    x = make_vectors(400, D, seed=9)
    cfg = LumaConfig(dim=D, hot_budget=100, warm=WarmTierConfig(min_train=256, background=False))
    luma = Luma.open(tmp_path_factory.mktemp("bad") / "store", cfg)
    ids = luma.add_vectors(x, metadata=[_meta(i) for i in range(400)])
    luma.wait_idle()  # a background graph rebuild is maintenance, not a change of content
    yield luma, x, ids
    luma.close()


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_raises_typed_error_and_changes_nothing(bad_input_store, case):
    luma, x, ids = bad_input_store
    call, error = BAD_CALLS[case]
    queries = x[[0, 150, 399]]
    luma.wait_idle()
    before = (luma.stats(), _fingerprint(luma, queries), [luma.get([i]) for i in ids[:2]])
    with pytest.raises(error) as info:
        call(luma, x, ids)
    assert isinstance(info.value, LumaError)
    after = (luma.stats(), _fingerprint(luma, queries), [luma.get([i]) for i in ids[:2]])
    assert after[0] == before[0] and after[1] == before[1]
    for a, b in zip(after[2], before[2], strict=True):
        assert a[0]["metadata"] == b[0]["metadata"]
        np.testing.assert_array_equal(a[0]["vector"], b[0]["vector"])
    assert len(luma) == 400


# -- open, reopen, close -------------------------------------------------------------------------


def test_reopen_gives_identical_results(tmp_path, make_vectors):
    vecs = make_vectors(900, 32, seed=10)
    cfg = LumaConfig(dim=32, hot_budget=100, warm=WarmTierConfig(min_train=256, background=False))
    queries = make_vectors(12, 32, seed=11)
    with Luma.open(tmp_path / "s", cfg) as luma:
        luma.add_vectors(vecs, metadata=[_meta(i) for i in range(900)])
        luma.delete([luma.search(vecs[3], k=1).hits[0].id])
        before = _fingerprint(luma, queries)
        stats = luma.stats()
        meta = luma.search(vecs[5], k=1).hits[0].metadata
    for config in (cfg, None):  # with the same config, and with the stored one
        with Luma.open(tmp_path / "s", config) as luma:
            assert _fingerprint(luma, queries) == before
            for key in ("hot", "warm", "total", "warm_trained"):
                assert luma.stats()[key] == stats[key]
            assert luma.search(vecs[5], k=1).hits[0].metadata == meta


def test_open_errors(tmp_path, make_vectors):
    with pytest.raises(ConfigError):
        Luma.open(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()
    with Luma.open(tmp_path / "s", LumaConfig(dim=32)) as luma:
        luma.add_vectors(make_vectors(5, 32))
    with pytest.raises(DimensionMismatchError):
        Luma.open(tmp_path / "s", LumaConfig(dim=64))
    with Luma.open(tmp_path / "s") as luma:  # still fine, config from the store
        assert luma.config.dim == 32 and len(luma) == 5


def test_closed_store_raises(make_store, make_vectors):
    vecs = make_vectors(10, 32)
    luma = make_store(32)
    ids = luma.add_vectors(vecs)
    luma.close()
    luma.close()  # idempotent
    for call in (
        lambda: luma.search(vecs[0]),
        lambda: luma.add_vectors(vecs[:1]),
        lambda: luma.delete(ids[:1]),
        lambda: luma.get(ids[:1]),
    ):
        with pytest.raises(StoreClosedError):
            call()


# -- Safe@k telemetry ----------------------------------------------------------------------------


@pytest.mark.parametrize("rho", [0.0, 0.005, 0.02, 0.1])
def test_safe_k_telemetry_is_consistent(make_store, make_vectors, rho):
    vecs = make_vectors(400, 32, seed=12)
    luma = make_store(32, hot_budget=100)
    luma.add_vectors(vecs)
    queries = np.vstack([vecs[:20], make_vectors(20, 32, seed=13)])
    for q in queries:
        res = luma.search(q, k=5, rho=rho)
        t = res.telemetry
        s = [h.score for h in res.hits]
        assert t.rho == rho and t.k == 5
        # exact scores, no drift. The per-item test (τ = ρ each) certifies iff γ > 2ρ; the
        # shared-perturbation test needs s1 - sj > ρ·||v1 - vj|| for every j: never stricter.
        if t.margin_top2 > 2 * rho + 1e-9:
            assert t.safe1
        if t.safe1:
            v = {h.id: luma.get([h.id])[0]["vector"] for h in res.hits[:2]}
            gap = float(np.linalg.norm(v[res.hits[0].id] - v[res.hits[1].id]))
            assert t.margin_top2 > rho * gap - 1e-6
        if t.safek:
            assert t.delta_k > 0 and t.safe_k_min is not None
            assert t.safe_k_min <= 5
        assert t.margin_top2 == pytest.approx(s[0] - s[1], abs=1e-6)
        assert t.delta_k >= 0
    for q in vecs[:20]:  # self-queries on distinct vectors are Safe@1 with ρ = 0
        assert luma.search(q, k=5, rho=0.0).telemetry.safe1
        assert not luma.search(q, k=5, rho=1.0).telemetry.safe1  # a huge radius: never safe


# -- the bridge ----------------------------------------------------------------------------------


def _semi_orthogonal(rows: int, cols: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((cols, cols)))
    return q[:rows].astype(np.float64)  # (rows, cols) with orthonormal rows


def _unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def test_bridge_path(tmp_path, make_vectors):
    cfg = LumaConfig(dim=32, bridge=BridgeConfig(source_dim=24, target_dim=32, refresh_every=64))
    t1 = _semi_orthogonal(24, 32, seed=1)
    q, r = np.linalg.qr(np.eye(32) + 0.05 * np.random.default_rng(2).standard_normal((32, 32)))
    t2 = t1 @ (q * np.sign(np.diag(r)))  # the map drifts a little (a rotation near identity)
    pairs = make_vectors(128, 24, seed=14, clusters=128)
    items = make_vectors(40, 24, seed=15, clusters=40)  # well separated: drift is not confusion
    later = make_vectors(10, 24, seed=16, clusters=10)
    with Luma.open(tmp_path / "b", cfg) as luma:
        with pytest.raises(InvalidInputError):  # not fitted yet
            luma.add_vectors(items[:1], bridged=True)
        assert luma.add_bridge_pairs(pairs[:64], _unit(pairs[:64] @ t1)) == [0.0]
        ids = luma.add_vectors(items, metadata=[{"batch": 1}] * 40, bridged=True)
        for i in (0, 17, 39):
            res = luma.search(items[i], k=3, bridged=True)
            assert res.hits[0].id == ids[i] and res.hits[0].score == pytest.approx(1, abs=1e-4)
            assert res.telemetry.epsilon == 0.0 and res.telemetry.epsilon_items == 0.0
            # the stored vector is the projection through the known map
            assert luma.search(_unit(items[i : i + 1] @ t1)[0], k=1).hits[0].id == ids[i]
        with pytest.raises(DimensionMismatchError):
            luma.search(items[0][:20], bridged=True)

        eps = luma.add_bridge_pairs(pairs[64:], _unit(pairs[64:] @ t2))
        assert len(eps) == 1 and eps[0] > 0
        res = luma.search(items[3], k=3, bridged=True)
        assert res.hits[0].id == ids[3]
        assert res.telemetry.epsilon == pytest.approx(eps[0])  # ε_q: the bridge's drift
        assert res.telemetry.epsilon_items == pytest.approx(eps[0])  # items from before it
        new = luma.add_vectors(later, metadata=[{"batch": 2}] * 10, bridged=True)
        only_new = luma.search(later[0], k=3, bridged=True, filters={"batch": 2})
        assert only_new.hits[0].id == new[0]
        assert only_new.telemetry.epsilon_items == 0.0  # projected with the current map
        plain = luma.search(_unit(items[3:4] @ t1)[0], k=3)  # a target-space query: no ε_q
        assert plain.hits[0].id == ids[3]
        assert plain.telemetry.epsilon == 0.0 and plain.telemetry.epsilon_items > 0
        version = luma.stats()["bridge_version"]
    with Luma.open(tmp_path / "b") as luma:  # the bridge state survives a reopen
        assert luma.stats()["bridge_version"] == version == 2
        res = luma.search(items[3], k=3, bridged=True)
        assert res.hits[0].id == ids[3] and res.telemetry.epsilon_items > 0


@pytest.mark.parametrize("warm", ["flat", "ivfpq"])
def test_complete_means_the_true_top_k(make_store, make_vectors, warm):
    n = 900
    vecs = make_vectors(n, 32, seed=17, clusters=24)
    config = WarmTierConfig(
        min_train=256 if warm == "ivfpq" else 4096,
        background=False,
        nprobe_fraction=0.3,
        min_nprobe=1,
    )
    luma = make_store(32, hot_budget=100, warm=config)
    ids = luma.add_vectors(vecs)
    queries = np.vstack([vecs[::45], make_vectors(20, 32, seed=18, clusters=24)])
    completes = 0
    for q in queries:
        for k in (1, 5):
            res = luma.search(q, k=k)
            if warm == "flat":  # every tier exact: nothing outside can beat the k-th
                assert res.telemetry.complete
            if res.telemetry.complete:
                completes += 1
                exact = _exact(vecs, q)
                kth = float(np.sort(exact)[-k])
                got = {ids.index(h.id) for h in res.hits}
                assert all(exact[i] >= kth - 1e-5 for i in got), "complete, but not the top k"
    assert completes > 0


def test_ids_lists_all_or_filtered(tmp_path) -> None:
    import numpy as np

    from luma_rag import Luma, LumaConfig

    vecs = np.random.default_rng(3).standard_normal((6, 8)).astype("float32")
    with Luma.open(tmp_path / "s", LumaConfig(dim=8)) as luma:
        ids = luma.add_vectors(vecs, metadata=[{"even": i % 2 == 0} for i in range(6)])
        assert sorted(luma.ids()) == sorted(ids)
        assert sorted(luma.ids({"even": True})) == sorted(ids[0::2])


def test_telemetry_times_each_stage(tmp_path, make_vectors) -> None:
    x = make_vectors(300, D, seed=21)
    cfg = LumaConfig(dim=D, hot_budget=100, warm=WarmTierConfig(min_train=256, background=False))
    with Luma.open(tmp_path / "s", cfg) as luma:
        luma.add_vectors(x)
        tel = luma.search(x[0], k=5).telemetry
    assert list(tel.stages_ms) == [
        "bridge",
        "candidates",
        "certify",
        "rescan",  # the exact rescan a Safe@1 query gets when its candidates are not complete
        "complete",
        "records",
    ]
    assert all(v >= 0.0 for v in tel.stages_ms.values())
    assert tel.stages_ms["bridge"] == 0.0  # not bridged
    assert sum(tel.stages_ms.values()) <= tel.latency_ms
    assert json.loads(json.dumps(tel.to_dict()))["stages_ms"].keys() == tel.stages_ms.keys()


def test_a_backend_plugs_into_the_facade(tmp_path, make_vectors) -> None:
    """Luma.from_backend runs the same pipeline and certificate on any StoreBackend."""
    from luma_rag.store.local import LocalStore

    vecs = make_vectors(300, 32, seed=5)
    cfg = LumaConfig(dim=32, hot_budget=100)
    with Luma.open(tmp_path / "a", cfg) as direct:
        ids = direct.add_vectors(vecs, ids=[f"i{i}" for i in range(300)])
        want = direct.search(vecs[3], k=5)
    (tmp_path / "b").mkdir()
    with Luma.from_backend(LocalStore(tmp_path / "b", cfg)) as wrapped:
        assert wrapped.add_vectors(vecs, ids=ids) == ids
        got = wrapped.search(vecs[3], k=5)
    assert got.ids == want.ids
    assert [h.score for h in got.hits] == [h.score for h in want.hits]
    assert got.telemetry.safe1 == want.telemetry.safe1


def test_filtered_exact_scan_and_tier_search_share_one_rerank(tmp_path, make_vectors) -> None:
    """A filter matching everything (exact scan) and no filter rank and score identically."""
    vecs = make_vectors(200, 16, seed=6)
    with Luma.open(tmp_path / "s", LumaConfig(dim=16, hot_budget=1000, rerank_depth=200)) as luma:
        luma.add_vectors(vecs, metadata=[{"all": True} for _ in range(200)])
        for q in vecs[:5]:
            plain = luma.search(q, k=10)
            scanned = luma.search(q, k=10, filters={"all": True})
            assert plain.ids == scanned.ids
            assert [h.score for h in plain.hits] == [h.score for h in scanned.hits]
            assert scanned.telemetry.complete
