"""The engine contract (tests/unit/test_engine.py) run against the Milvus backend.

The tests that do not depend on LUMA's own hot/warm tiers are collected here again, with
``make_store`` and ``bad_input_store`` opening ``milvus://`` stores on the session's server;
the tier-specific ones (spill, promotion, PQ ζ) are replaced by Milvus versions below.
"""

from __future__ import annotations

import importlib.util
import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag import Luma, LumaConfig
from luma_rag.backends import MilvusBackend, MilvusConfig
from luma_rag.backends.servers import LocalServer
from luma_rag.errors import ConfigError, DimensionMismatchError, NotFoundError

_spec = importlib.util.spec_from_file_location(
    "engine_contract", Path(__file__).parents[1] / "unit" / "test_engine.py"
)
assert _spec is not None and _spec.loader is not None
contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract)

pytestmark = pytest.mark.timeout(300)

# the engine's own tests, re-collected here against Milvus
test_metadata_filters = contract.test_metadata_filters
test_filters_on_unknown_keys_or_bad_operators_raise = (
    contract.test_filters_on_unknown_keys_or_bad_operators_raise
)
test_closed_store_raises = contract.test_closed_store_raises
test_safe_k_telemetry_is_consistent = contract.test_safe_k_telemetry_is_consistent
test_bad_input_raises_typed_error_and_changes_nothing = (
    contract.test_bad_input_raises_typed_error_and_changes_nothing
)
_meta, _exact = contract._meta, contract._exact


def _drop(uri: str) -> None:
    be = MilvusBackend(MilvusConfig.from_uri(uri.partition("?")[0]))
    be.drop()
    be.close()


@pytest.fixture
def make_store(milvus_collection: Any) -> Iterator[Any]:
    """``make_store(dim, **LumaConfig fields)``: a Luma on an empty Milvus collection."""
    opened: list[Luma] = []

    def factory(dim: int = 32, *, name: str = "store", index: str = "HNSW", **fields: Any) -> Luma:
        fields.pop("warm", None)
        luma = Luma.open(milvus_collection(dim, index), LumaConfig(dim=dim, **fields))
        opened.append(luma)
        return luma

    yield factory
    for luma in opened:
        luma.close()


@pytest.fixture(scope="module")
def bad_input_store(milvus_server: LocalServer, make_vectors: Any) -> Iterator[Any]:
    x = make_vectors(400, contract.D, seed=9)
    uri = f"milvus://{milvus_server.endpoint}/bad_{uuid.uuid4().hex[:10]}"
    luma = Luma.open(uri, LumaConfig(dim=contract.D))
    ids = luma.add_vectors(x, metadata=[_meta(i) for i in range(400)])
    yield luma, x, ids
    luma.close()
    _drop(uri)


def test_contract_on_milvus(make_store: Any, make_vectors: Any) -> None:
    n = 1200
    vecs = make_vectors(n, 64, seed=0, clusters=32)
    luma = make_store(64, index="FLAT")
    ids: list[str] = []
    for start in range(0, n, 400):
        ids += luma.add_vectors(
            vecs[start : start + 400], metadata=[_meta(i) for i in range(start, start + 400)]
        )
    assert len(ids) == n == len(set(ids)) == luma.stats()["total"] == len(luma)
    index = {i: j for j, i in enumerate(ids)}
    for qi in range(0, n, 97):
        res = luma.search(vecs[qi], k=10)
        assert len(res.hits) == 10 and res.hits[0].id == ids[qi]
        assert res.hits[0].metadata == _meta(qi)
        exact = _exact(vecs, vecs[qi])
        want = np.argsort(-exact, kind="stable")[:10]
        assert [h.id for h in res.hits] == [ids[i] for i in want]  # FLAT: the true top 10
        for hit in res.hits:
            assert abs(hit.score - exact[index[hit.id]]) < 1e-5
        assert res.telemetry.complete  # FLAT bounds what Milvus did not return
        assert res.telemetry.zeta_max == 0.0 and isinstance(res.telemetry.safe1, bool)
    luma.delete(ids[:5])
    assert luma.stats()["total"] == n - 5
    for qi in range(5):
        assert ids[qi] not in luma.search(vecs[qi], k=10).ids
    res = luma.search(vecs[7], k=10, filters={"color": "green"})
    assert res.hits and all(h.metadata["color"] == "green" for h in res.hits)
    assert res.hits[0].id == ids[7]


def test_hnsw_never_claims_complete_without_a_bound(make_store: Any, make_vectors: Any) -> None:
    vecs = make_vectors(300, 32, seed=17)
    luma = make_store(32)  # HNSW
    luma.add_vectors(vecs)
    for q in vecs[:10]:
        res = luma.search(q, k=5)
        assert not res.telemetry.complete
        assert res.hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_delete_upsert_ids_and_reopen(
    make_store: Any, make_vectors: Any, milvus_server: LocalServer
) -> None:
    vecs = make_vectors(50, 32, seed=6)
    fresh = make_vectors(2, 32, seed=60)
    luma = make_store(32, name="reopen")
    ids = luma.add_vectors(
        vecs, metadata=[{"even": i % 2 == 0} for i in range(50)], texts=[f"t{i}" for i in range(50)]
    )
    assert luma.ids() == ids  # oldest first
    assert luma.ids({"even": True}) == ids[0::2]
    assert luma.add_vectors(fresh[:1], metadata=[{"v": 2}], ids=[ids[3]]) == [ids[3]]
    top = luma.search(fresh[0], k=1).hits[0]
    assert top.id == ids[3] and top.metadata == {"v": 2} and top.text is None
    assert luma.ids()[-1] == ids[3]  # an upsert is the newest write
    luma.delete([ids[1], ids[1], ids[2]])
    assert len(luma) == 48 and ids[1] not in luma and luma.get([ids[1]]) == []
    with pytest.raises(NotFoundError):
        luma.delete([ids[1]])
    uri = luma.path.as_posix().replace("milvus:/", "milvus://", 1)
    luma.set_rho("text", 0.03)
    luma.close()
    with Luma.open(uri) as again:  # config, ρ and items come back from Milvus
        assert again.config.dim == 32 and len(again) == 48
        assert again.search(vecs[0], k=1).ids == [ids[0]]
        assert again._store.get_kv("rho") == '{"text": 0.03}'
        with pytest.raises(DimensionMismatchError):
            Luma.open(uri, LumaConfig(dim=16))
    with pytest.raises(ConfigError):
        Luma.open(f"milvus://{milvus_server.endpoint}/")


def test_filtered_search_agrees_with_the_local_engine(
    make_store: Any, make_vectors: Any, tmp_path: Path
) -> None:
    vecs = make_vectors(300, 32, seed=7)
    metas = [_meta(i) for i in range(300)]
    remote = make_store(32)
    with Luma.open(tmp_path / "local", LumaConfig(dim=32)) as local:
        ids = local.add_vectors(vecs, metadata=metas)
        remote.add_vectors(vecs, metadata=metas, ids=ids)
        for filters, _ in contract.FILTERS:
            for q in vecs[:3]:
                a, b = (
                    local.search(q, k=10, filters=filters),
                    remote.search(q, k=10, filters=filters),
                )
                assert a.ids == b.ids
                assert [h.score for h in a.hits] == pytest.approx(
                    [h.score for h in b.hits], abs=1e-6
                )
                assert a.telemetry.complete == b.telemetry.complete  # both scanned exactly
                assert math.isclose(a.telemetry.margin_top2, b.telemetry.margin_top2, abs_tol=1e-6)
