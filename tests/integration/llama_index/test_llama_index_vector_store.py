"""``LumaVectorStore`` against a real on-disk store, in the style of LlamaIndex's store tests."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core.schema import ImageNode, MetadataMode, TextNode
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.vector_stores.lumarag import LumaVectorStore

from luma_rag import Luma, LumaConfig
from luma_rag.encoders import Encoder

DIM = 8  # the ``store`` fixture's dimension


def basis(i: int) -> list[float]:
    """The unit vector along axis ``i`` (DIM-d)."""
    return [1.0 if j == i else 0.0 for j in range(DIM)]


TELEMETRY_FIELDS = {
    "safe1",
    "safek",
    "margin_top2",
    "delta_k",
    "epsilon",
    "zeta_mean",
    "zeta_max",
    "complete",
    "tier",
    "score",
    "rank",
    "modality",
}


def _query(k: int = 5, **kwargs: Any) -> VectorStoreQuery:
    return VectorStoreQuery(query_embedding=basis(0), similarity_top_k=k, **kwargs)


def _ids(store: LumaVectorStore, filters: MetadataFilters | None = None, k: int = 5) -> list[str]:
    return store.query(_query(k, filters=filters)).ids or []


def _one(key: str, value: Any, op: FilterOperator) -> MetadataFilters:
    return MetadataFilters(filters=[MetadataFilter(key=key, value=value, operator=op)])


def test_class_and_fields(store: LumaVectorStore) -> None:
    assert isinstance(store, BasePydanticVectorStore)
    assert store.stores_text is True
    assert store.is_embedding_query is True  # no encoder: the retriever embeds queries
    assert store.dim == DIM
    assert isinstance(store.client, Luma)
    assert LumaVectorStore.class_name() == "LumaVectorStore"


class TestLumaVectorStoreSync:
    def test_add_returns_node_ids(
        self, store: LumaVectorStore, node_embeddings: list[TextNode]
    ) -> None:
        assert store.add(node_embeddings) == [n.node_id for n in node_embeddings]
        assert len(store.client) == 5

    def test_query_ranks_by_exact_cosine(
        self, store: LumaVectorStore, node_embeddings: list[TextNode]
    ) -> None:
        store.add(node_embeddings)
        res = store.query(_query(3))
        assert res.ids == ["n0", "n1", "n2"]
        expected = [float(np.dot(basis(0), n.embedding)) for n in node_embeddings[:3]]
        assert res.similarities == pytest.approx(expected, abs=1e-6)
        assert [n.node_id for n in res.nodes or []] == res.ids

    def test_nodes_round_trip(
        self, store: LumaVectorStore, node_embeddings: list[TextNode]
    ) -> None:
        store.add(node_embeddings)
        node = (store.query(_query(1)).nodes or [])[0]
        original = node_embeddings[0]
        assert isinstance(node, TextNode)
        assert node.text == original.text
        assert node.ref_doc_id == "doc-a"
        assert node.embedding is None
        user_meta = {k: v for k, v in node.metadata.items() if k != "luma"}
        assert user_meta == original.metadata

    def test_telemetry_in_node_metadata(
        self, store: LumaVectorStore, node_embeddings: list[TextNode]
    ) -> None:
        store.add(node_embeddings)
        res = store.query(_query(2))
        for rank, node in enumerate(res.nodes or []):
            tel = node.metadata["luma"]
            assert set(tel) >= TELEMETRY_FIELDS
            assert tel["rank"] == rank
            assert tel["score"] == pytest.approx((res.similarities or [])[rank])
            assert tel["tier"] == "hot"
            assert tel["margin_top2"] == pytest.approx(res.similarities[0] - res.similarities[1])
            # never in prompts or embeddings
            assert "luma" not in node.get_content(metadata_mode=MetadataMode.LLM)
            assert "luma" not in node.get_content(metadata_mode=MetadataMode.EMBED)

    def test_query_on_empty_store(self, store: LumaVectorStore) -> None:
        res = store.query(_query(3, filters=_one("author", "Ann", FilterOperator.EQ)))
        assert res.ids == [] and res.nodes == [] and res.similarities == []

    def test_top_k_larger_than_store(
        self, store: LumaVectorStore, node_embeddings: list[TextNode]
    ) -> None:
        store.add(node_embeddings[:2])
        assert store.query(_query(10)).ids == ["n0", "n1"]

    def test_doc_ids_and_node_ids(
        self, store: LumaVectorStore, node_embeddings: list[TextNode]
    ) -> None:
        store.add(node_embeddings)
        assert store.query(_query(5, doc_ids=["doc-b", "doc-c"])).ids == ["n2", "n3", "n4"]
        assert store.query(_query(5, node_ids=["n4", "n1"])).ids == ["n1", "n4"]
        both = _query(5, doc_ids=["doc-a"], node_ids=["n1", "n2"])
        assert store.query(both).ids == ["n1"]
        # an empty list restricts nothing (VectorIndexRetriever passes node_ids=[])
        assert store.query(_query(5, node_ids=[], doc_ids=[])).ids == [f"n{i}" for i in range(5)]

    @pytest.mark.parametrize(
        ("key", "value", "op", "expected"),
        [
            ("author", "Ann", FilterOperator.EQ, ["n0", "n1"]),
            ("author", "Ann", FilterOperator.NE, ["n2", "n3", "n4"]),
            ("year", 2021, FilterOperator.GT, ["n3", "n4"]),
            ("year", 2021, FilterOperator.GTE, ["n2", "n3", "n4"]),
            ("rating", 3.0, FilterOperator.LT, ["n2"]),
            ("rating", 3.0, FilterOperator.LTE, ["n1", "n2"]),
            ("author", ["Bob", "Cy"], FilterOperator.IN, ["n2", "n3", "n4"]),
            ("author", ["Bob", "Cy"], FilterOperator.NIN, ["n0", "n1"]),
            ("tags", "dog", FilterOperator.CONTAINS, ["n1"]),
            ("summary", "fox", FilterOperator.TEXT_MATCH, ["n1"]),
            ("summary", "fox", FilterOperator.TEXT_MATCH_INSENSITIVE, ["n0", "n1", "n4"]),
            ("tags", ["fox", "latin"], FilterOperator.ANY, ["n0", "n2"]),
            ("tags", ["fox", "animal"], FilterOperator.ALL, ["n0"]),
            ("author", "Nobody", FilterOperator.EQ, []),
        ],
        ids=lambda v: v.name if isinstance(v, FilterOperator) else None,
    )
    def test_filter_operators(
        self,
        store: LumaVectorStore,
        node_embeddings: list[TextNode],
        key: str,
        value: Any,
        op: FilterOperator,
        expected: list[str],
    ) -> None:
        store.add(node_embeddings)
        assert _ids(store, _one(key, value, op)) == expected

    @pytest.mark.parametrize(
        ("condition", "expected"),
        [("and", ["n3"]), ("or", ["n0", "n2", "n3"]), ("not", ["n1", "n4"])],
    )
    def test_filter_conditions(
        self,
        store: LumaVectorStore,
        node_embeddings: list[TextNode],
        condition: str,
        expected: list[str],
    ) -> None:
        store.add(node_embeddings)
        flt = MetadataFilters(
            filters=[
                MetadataFilter(key="rating", value=4.0, operator=FilterOperator.GTE),
                MetadataFilter(key="author", value="Bob", operator=FilterOperator.EQ),
            ],
            condition=condition,
        )
        assert _ids(store, flt) == expected

    def test_nested_filters(self, store: LumaVectorStore, node_embeddings: list[TextNode]) -> None:
        store.add(node_embeddings)
        flt = MetadataFilters(
            filters=[
                MetadataFilter(key="year", value=2020, operator=FilterOperator.GTE),
                MetadataFilters(
                    filters=[
                        MetadataFilter(key="author", value="Ann", operator=FilterOperator.EQ),
                        MetadataFilter(key="author", value="Cy", operator=FilterOperator.EQ),
                    ],
                    condition="or",
                ),
            ],
            condition="and",
        )
        assert _ids(store, flt) == ["n1", "n4"]

    def test_delete_by_ref_doc_id(
        self, store: LumaVectorStore, node_embeddings: list[TextNode]
    ) -> None:
        store.add(node_embeddings)
        store.delete("doc-a")
        assert _ids(store) == ["n2", "n3", "n4"]
        store.delete("doc-a")  # nothing left of it: no error
        store.delete("no-such-doc")
        assert len(store.client) == 3

    def test_delete_nodes(self, store: LumaVectorStore, node_embeddings: list[TextNode]) -> None:
        store.add(node_embeddings)
        store.delete_nodes(["n0", "unknown"])
        assert _ids(store) == ["n1", "n2", "n3", "n4"]
        store.delete_nodes(filters=_one("author", "Bob", FilterOperator.EQ))
        assert _ids(store) == ["n1", "n4"]
        # node_ids AND filters
        store.delete_nodes(["n1", "n4"], filters=_one("year", 2023, FilterOperator.EQ))
        assert _ids(store) == ["n1"]

    def test_delete_nodes_needs_ids_or_filters(
        self, store: LumaVectorStore, node_embeddings: list[TextNode]
    ) -> None:
        store.add(node_embeddings)
        with pytest.raises(ValueError, match="clear"):
            store.delete_nodes()
        with pytest.raises(ValueError, match="clear"):
            store.delete_nodes(filters=MetadataFilters(filters=[]))
        assert len(store.client) == 5

    def test_get_nodes(self, store: LumaVectorStore, node_embeddings: list[TextNode]) -> None:
        store.add(node_embeddings)
        got = store.get_nodes(["n3", "nope", "n1"])
        assert [n.node_id for n in got] == ["n3", "n1"]
        assert got[0].get_content() == node_embeddings[3].get_content()
        assert "luma" not in got[0].metadata
        by_filter = store.get_nodes(filters=_one("author", "Bob", FilterOperator.EQ))
        assert [n.node_id for n in by_filter] == ["n2", "n3"]
        both = store.get_nodes(["n0", "n2"], filters=_one("author", "Bob", FilterOperator.EQ))
        assert [n.node_id for n in both] == ["n2"]
        assert [n.node_id for n in store.get_nodes()] == [f"n{i}" for i in range(5)]

    def test_upsert_replaces_node(
        self, store: LumaVectorStore, node_embeddings: list[TextNode]
    ) -> None:
        store.add(node_embeddings)
        changed = TextNode(id_="n4", text="changed", embedding=basis(0), metadata={"v": 2})
        store.add([changed])
        assert len(store.client) == 5
        res = store.query(_query(1))
        assert res.ids in (["n4"], ["n0"])  # both at cosine 1
        assert store.get_nodes(["n4"])[0].get_content() == "changed"

    def test_clear(self, store: LumaVectorStore, node_embeddings: list[TextNode]) -> None:
        store.add(node_embeddings)
        store.clear()
        assert len(store.client) == 0
        assert _ids(store) == []
        store.add(node_embeddings[:1])  # still usable
        assert _ids(store) == ["n0"]

    def test_reopen(self, tmp_path: Path, node_embeddings: list[TextNode]) -> None:
        path = tmp_path / "reopen"
        first = LumaVectorStore(path, dim=DIM)
        first.add(node_embeddings)
        first.delete("doc-c")
        first.persist(str(tmp_path / "ignored.json"))
        first.close()
        again = LumaVectorStore.from_persist_dir(path)
        try:
            assert again.dim == DIM
            assert _ids(again) == ["n0", "n1", "n2", "n3"]
            assert again.get_nodes(["n2"])[0].metadata["author"] == "Bob"
        finally:
            again.close()

    def test_to_dict_from_dict_reopens(
        self, tmp_path: Path, node_embeddings: list[TextNode]
    ) -> None:
        first = LumaVectorStore(tmp_path / "ser", dim=DIM)
        first.add(node_embeddings)
        data = first.to_dict()
        first.close()
        again = LumaVectorStore.from_dict(data)
        try:
            assert again.path == data["path"] and again.dim == DIM
            assert _ids(again, k=1) == ["n0"]
        finally:
            again.close()

    def test_wraps_an_open_engine(self, tmp_path: Path, node_embeddings: list[TextNode]) -> None:
        with Luma.open(tmp_path / "engine", LumaConfig(dim=DIM)) as luma:
            store = LumaVectorStore(luma=luma)
            store.add(node_embeddings)
            store.close()  # the caller's engine stays open
            assert luma.search(basis(0), 1).hits[0].id == "n0"

    def test_reads_items_written_by_the_engine(self, store: LumaVectorStore) -> None:
        store.client.add_vectors(
            np.array([basis(0)]),
            [{"color": "red"}],
            ["raw"],
            modality="image",
            texts=["a red circle"],
            sources=["/data/red.png"],
        )
        node = (store.query(_query(1)).nodes or [])[0]
        assert isinstance(node, ImageNode)
        assert node.node_id == "raw"
        assert node.image_path == "/data/red.png"
        assert node.text == "a red circle"
        assert node.metadata["color"] == "red"
        assert node.metadata["luma"]["modality"] == "image"
        store.delete("some-doc")  # no LlamaIndex node, no ref_doc_id key: nothing to delete
        assert [n.node_id for n in store.get_nodes()] == ["raw"]


class TestLumaVectorStoreBadInput:
    @pytest.fixture(autouse=True)
    def _filled(self, store: LumaVectorStore, node_embeddings: list[TextNode]) -> None:
        store.add(node_embeddings)

    def _unchanged(self, store: LumaVectorStore) -> None:
        assert _ids(store) == [f"n{i}" for i in range(5)]

    @pytest.mark.parametrize(
        "query",
        [
            VectorStoreQuery(similarity_top_k=2),
            VectorStoreQuery(query_str="  ", similarity_top_k=2),
            VectorStoreQuery(query_embedding=[], similarity_top_k=2),
            VectorStoreQuery(query_embedding=basis(0), similarity_top_k=0),
            VectorStoreQuery(query_embedding=basis(0), similarity_top_k=-3),
            VectorStoreQuery(query_embedding=[1.0, 0.0], similarity_top_k=2),
            VectorStoreQuery(query_embedding=basis(0), mode=VectorStoreQueryMode.HYBRID),
            VectorStoreQuery(query_str="fox", similarity_top_k=2),  # no encoder
        ],
        ids=["empty", "blank", "no-dims", "k0", "k-neg", "wrong-dim", "hybrid", "no-encoder"],
    )
    def test_bad_queries(self, store: LumaVectorStore, query: VectorStoreQuery) -> None:
        with pytest.raises(ValueError):
            store.query(query)
        self._unchanged(store)

    def test_bad_filters(self, store: LumaVectorStore) -> None:
        bad = [
            _one("year", None, FilterOperator.GT),
            _one("author", "Ann", FilterOperator.IN),
            _one("tags", None, FilterOperator.IS_EMPTY),
            MetadataFilters(
                filters=[MetadataFilter.model_construct(key="a", value=1, operator="bogus")]
            ),
        ]
        for flt in bad:
            with pytest.raises(ValueError):
                store.query(_query(2, filters=flt))
            with pytest.raises(ValueError):
                store.delete_nodes(filters=flt)
        self._unchanged(store)

    def test_filter_on_unknown_key_returns_nothing(
        self, store: LumaVectorStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        flt = _one("autor", "Ann", FilterOperator.EQ)  # SimpleVectorStore: no nodes either
        with caplog.at_level(logging.WARNING):
            result = store.query(_query(2, filters=flt))
        assert result.ids == [] and result.nodes == [] and "matches no stored item" in caplog.text
        assert store.query(_query(2, filters=_one("author", "Ann", FilterOperator.EQ))).ids
        with pytest.raises(ValueError, match="hybrid and sparse modes need a keyword"):
            store.query(
                VectorStoreQuery(query_embedding=basis(0), mode=VectorStoreQueryMode.HYBRID)
            )

    def test_mmr_matches_simple_vector_store(
        self, store: LumaVectorStore, node_embeddings: list[TextNode]
    ) -> None:
        store.add(node_embeddings)
        simple = SimpleVectorStore()
        simple.add([n.model_copy(deep=True) for n in node_embeddings])
        lean = (np.asarray(basis(0)) + 0.6 * np.asarray(basis(1))).tolist()
        for threshold in (0.1, 0.5, 1.0):
            query = VectorStoreQuery(
                query_embedding=lean,
                similarity_top_k=3,
                mode=VectorStoreQueryMode.MMR,
            )
            ours = store.query(query, mmr_threshold=threshold)
            ref = simple.query(query, mmr_threshold=threshold)
            assert ours.ids == ref.ids, threshold
        plain = store.query(_query(3))
        assert (
            store.query(
                VectorStoreQuery(
                    query_embedding=basis(0), similarity_top_k=3, mode=VectorStoreQueryMode.MMR
                ),
                mmr_threshold=1.0,
            ).ids
            == plain.ids
        )
        with pytest.raises(ValueError, match="mmr_threshold"):
            store.query(VectorStoreQuery(query_embedding=basis(0), mode="mmr"), mmr_threshold=2)

    def test_bad_nodes_write_nothing(self, store: LumaVectorStore) -> None:
        cases = [
            [TextNode(id_="x", text="no embedding, no encoder")],
            [TextNode(id_="x", text="short", embedding=[1.0, 0.0])],
            [TextNode(id_="x", embedding=basis(1)), TextNode(id_="x", embedding=basis(2))],
            [TextNode(id_="x", embedding=basis(1), metadata={"bad": object()})],
            [TextNode(id_="x", embedding=basis(1), metadata={"nested": {"a": 1}})],
            [TextNode(id_="x", embedding=[0.0] * DIM)],
            # a good text node, then an image node with a NaN: the text is not written either
            [
                TextNode(id_="x", embedding=basis(1)),
                ImageNode(id_="y", image_path="a.png", embedding=[float("nan")] * DIM),
            ],
        ]
        flat = LumaVectorStore(luma=store.client, flat_metadata=True)
        for nodes in cases:
            with pytest.raises(ValueError):
                (flat if "nested" in nodes[0].metadata else store).add(nodes)
        assert "x" not in store.client and "y" not in store.client
        self._unchanged(store)

    def test_image_url_is_not_downloaded(self, tmp_path: Path, hash_encoder: Encoder) -> None:
        with LumaVectorStore(tmp_path / "s", encoder=hash_encoder) as store:
            with pytest.raises(ValueError, match="downloads nothing"):
                store.add([ImageNode(id_="u", image_url="https://example.com/cat.png")])
            assert len(store.client) == 0

    def test_dim_conflicts(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="disagrees"):
            LumaVectorStore(tmp_path / "a", dim=8, config=LumaConfig(dim=16))
        with pytest.raises(ValueError, match="path="):
            LumaVectorStore()
        with pytest.raises(ValueError, match=r"pass dim= \(the embedding size"):
            LumaVectorStore(tmp_path / "new")
        with pytest.raises(ValueError, match="holds no LUMA-RAG store"):
            LumaVectorStore.from_persist_dir(tmp_path / "missing")


@pytest.mark.asyncio
class TestLumaVectorStoreAsync:
    async def test_async_add_and_aquery(
        self, store: LumaVectorStore, node_embeddings: list[TextNode]
    ) -> None:
        assert await store.async_add(node_embeddings) == [n.node_id for n in node_embeddings]
        res = await store.aquery(_query(2, filters=_one("author", "Ann", FilterOperator.EQ)))
        assert res.ids == ["n0", "n1"]
        assert (res.nodes or [])[0].metadata["luma"]["rank"] == 0

    async def test_adelete_by_ref_doc_id(
        self, store: LumaVectorStore, node_embeddings: list[TextNode]
    ) -> None:
        await store.async_add(node_embeddings)
        await store.adelete("doc-b")
        assert (await store.aquery(_query(5))).ids == ["n0", "n1", "n4"]

    async def test_adelete_nodes_and_aget_nodes(
        self, store: LumaVectorStore, node_embeddings: list[TextNode]
    ) -> None:
        await store.async_add(node_embeddings)
        await store.adelete_nodes(filters=_one("year", 2021, FilterOperator.LTE))
        got = await store.aget_nodes(filters=_one("author", "Ann", FilterOperator.NE))
        assert [n.node_id for n in got] == ["n3", "n4"]
        assert [n.node_id for n in await store.aget_nodes(["n4", "n0"])] == ["n4"]

    async def test_aclear(self, store: LumaVectorStore, node_embeddings: list[TextNode]) -> None:
        await store.async_add(node_embeddings)
        await store.aclear()
        assert (await store.aquery(_query(5))).ids == []

    async def test_aquery_bad_input(self, store: LumaVectorStore) -> None:
        with pytest.raises(ValueError, match="similarity_top_k"):
            await store.aquery(_query(0))
