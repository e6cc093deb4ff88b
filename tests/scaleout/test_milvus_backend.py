"""The Milvus backend against a real Milvus server: records, exact rerank, filters, certificate."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from luma_rag.backends import MilvusBackend, MilvusConfig, to_milvus
from luma_rag.backends.servers import LocalServer
from luma_rag.errors import ConfigError, DimensionMismatchError
from luma_rag.filters import matches

DIM = 16


def _unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def backend(milvus_uri: str) -> Iterator[MilvusBackend]:
    be = MilvusBackend(MilvusConfig.from_uri(milvus_uri, index="FLAT"), dim=DIM)
    yield be
    be.drop()
    be.close()


def test_uri_parsing() -> None:
    cfg = MilvusConfig.from_uri("milvus://127.0.0.1:19530/docs?index=IVF_PQ&nprobe=8")
    assert (cfg.address, cfg.collection, cfg.index, cfg.nprobe) == (
        "127.0.0.1:19530",
        "docs",
        "IVF_PQ",
        8,
    )
    assert cfg.uri == "milvus://127.0.0.1:19530/docs"
    for bad in ("milvus://127.0.0.1:19530/", "http://x:1/c", "milvus://h:1/bad-name"):
        with pytest.raises(ConfigError):
            MilvusConfig.from_uri(bad)
    with pytest.raises(ConfigError, match="nosuch"):
        MilvusConfig.from_uri("milvus://h:1/c?nosuch=1")


def test_upsert_get_delete_roundtrip(backend: MilvusBackend) -> None:
    v = _unit(5, 1)
    ids = [f"i{i}" for i in range(5)]
    backend.upsert(
        ids,
        v,
        [{"n": i} for i in range(5)],
        modality="text",
        texts=["t0", None, "t2", None, None],
        sources=[None, "s3://b/k", None, None, None],
    )
    assert backend.count() == 5
    got = backend.get(["i0", "i1", "nope"], vectors=True)
    assert set(got) == {"i0", "i1"}
    np.testing.assert_array_equal(got["i0"]["vec"], v[0])  # raw float32, bit for bit
    assert got["i0"]["text"] == "t0" and got["i1"]["text"] is None
    assert got["i1"]["source"] == "s3://b/k" and got["i0"]["modality"] == "text"
    backend.upsert(["i0"], v[1:2], [{"n": 99}])  # replace
    again = backend.get(["i0"], vectors=True)["i0"]
    assert again["meta"] == {"n": 99}
    np.testing.assert_array_equal(again["vec"], v[1])
    assert backend.count() == 5
    backend.delete(["i0", "i3", "absent"])
    assert backend.count() == 3
    assert set(backend.get(ids)) == {"i1", "i2", "i4"}


def test_dimension_is_checked(backend: MilvusBackend) -> None:
    with pytest.raises(DimensionMismatchError, match="16-d"):
        MilvusBackend(backend.config, dim=DIM + 1)
    reopened = MilvusBackend(backend.config)
    assert reopened.dim == DIM
    with pytest.raises(DimensionMismatchError):
        backend.upsert(["x"], np.zeros((1, 3), np.float32), [{}])


def test_missing_collection_without_dim(milvus_uri: str) -> None:
    with pytest.raises(ConfigError, match="pass dim"):
        MilvusBackend(MilvusConfig.from_uri(milvus_uri))


def test_flat_search_is_exact_and_complete(backend: MilvusBackend) -> None:
    v = _unit(300, 2)
    ids = [f"i{i}" for i in range(300)]
    backend.upsert(ids, v, [{"n": i, "even": i % 2 == 0} for i in range(300)])
    q = v[7]
    truth = np.argsort(-(v @ q), kind="stable")[:10]
    res = backend.search(q, 10, depth=20)
    assert res.ids[:10] == [ids[i] for i in truth]
    np.testing.assert_allclose(res.scores, v[[int(i[1:]) for i in res.ids]] @ q, rtol=0, atol=0)
    assert math.isfinite(res.outside_bound)
    assert res.outside_bound >= float((v @ q)[np.argsort(-(v @ q))[20]])  # sound bound
    filtered = backend.search(q, 5, filters={"even": True, "n": {"$gte": 100}})
    assert filtered.outside_bound == -math.inf  # small filtered set: scanned exactly
    want = [i for i in np.argsort(-(v @ q), kind="stable") if i % 2 == 0 and i >= 100]
    assert filtered.ids[:5] == [ids[i] for i in want[:5]]


def test_hnsw_is_not_certified_complete(milvus_uri: str) -> None:
    be = MilvusBackend(MilvusConfig.from_uri(milvus_uri, exact_scan_below=0), dim=DIM)
    try:
        v = _unit(50, 3)
        be.upsert([str(i) for i in range(50)], v, [{"n": i} for i in range(50)])
        res = be.search(v[0], 5)
        assert res.ids[0] == "0" and res.outside_bound == math.inf
        relaxed = be.search(v[0], 5, filters={"n": {"$text_match": "x"}})
        assert relaxed.ids == []  # exact semantics after the relaxed prefilter
    finally:
        be.drop()


def test_blobs(backend: MilvusBackend) -> None:
    assert backend.get_blob("bridge") is None
    data = np.random.default_rng(0).bytes(200_000)  # several chunks
    backend.put_blob("bridge", data)
    assert backend.get_blob("bridge") == data
    backend.put_blob("bridge", b"short")
    assert backend.get_blob("bridge") == b"short"
    backend.put_blob("bridge.x", b"other")
    assert backend.get_blob("bridge") == b"short"


# --------------------------------------------------------------- translator soundness on Milvus

_KEYS = ["a", "b.c", 'q"k', "é"]
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, 1.0, -1.5]),
    st.text(alphabet="aAbÉé %_'\"", max_size=3),
)


def _rows() -> list[dict[str, Any]]:
    rng = np.random.default_rng(11)
    pool: list[Any] = [
        None,
        True,
        False,
        0,
        1,
        -2,
        1.0,
        0.5,
        "a",
        "A",
        "ab",
        "é",
        "%",
        'q"',
        ["a", 1],
        [True, None],
        [],
        {"x": 1},
    ]
    rows: list[dict[str, Any]] = [{}]
    for _ in range(60):
        keys = rng.choice(len(_KEYS), size=int(rng.integers(0, 4)), replace=False)
        rows.append({_KEYS[int(k)]: pool[int(rng.integers(len(pool)))] for k in keys})
    return rows


_OPS = st.one_of(
    st.builds(lambda v: {"$eq": v}, _SCALARS),
    st.builds(lambda v: {"$ne": v}, _SCALARS),
    st.builds(
        lambda op, v: {op: v},
        st.sampled_from(["$gt", "$gte", "$lt", "$lte"]),
        st.one_of(st.integers(-3, 3), st.text(alphabet="aAé", max_size=2)),
    ),
    st.builds(lambda v: {"$in": v}, st.lists(_SCALARS, max_size=3)),
    st.builds(lambda v: {"$nin": v}, st.lists(_SCALARS, max_size=3)),
    st.builds(lambda v: {"$contains": v}, _SCALARS),
    st.builds(lambda v: {"$text_match": v}, st.text(alphabet="aAé", max_size=2)),
    st.builds(lambda v: {"$exists": v}, st.booleans()),
)
_FILTERS = st.recursive(
    st.builds(lambda k, v: {k: v}, st.sampled_from([*_KEYS, "zz"]), _OPS),
    lambda inner: st.one_of(
        st.builds(lambda fs: {"$and": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda fs: {"$or": fs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda f: {"$not": f}, inner),
    ),
    max_leaves=5,
)


@pytest.fixture(scope="module")
def filter_rows(milvus_server: LocalServer) -> Iterator[tuple[MilvusBackend, list[dict[str, Any]]]]:
    cfg = MilvusConfig(address=milvus_server.endpoint, collection="filter_soundness", index="FLAT")
    be = MilvusBackend(cfg, dim=DIM)
    rows = _rows()
    be.upsert([str(i) for i in range(len(rows))], _unit(len(rows), 4), rows)
    yield be, rows
    be.drop()


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(filters=_FILTERS)
def test_translation_is_sound_on_milvus(
    filter_rows: tuple[MilvusBackend, list[dict[str, Any]]], filters: dict[str, Any]
) -> None:
    """upper ⊇ {items the filter matches} ⊇ lower, and exact means equal, on the real server."""
    be, rows = filter_rows
    mf = to_milvus(filters)
    assert mf is not None
    want = {str(i) for i, r in enumerate(rows) if matches(r, filters)}
    upper = {r["id"] for r in be.select(mf.upper, 1000, vectors=False)}
    assert want <= upper, (mf.upper, sorted(want - upper))
    if mf.lower is not None:
        lower = {r["id"] for r in be.select(mf.lower, 1000, vectors=False)}
        assert lower <= want, (mf.lower, sorted(lower - want))
        if mf.exact:
            assert upper == want, (mf.upper, sorted(upper ^ want))
