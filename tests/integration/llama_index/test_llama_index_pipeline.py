"""``LumaEmbedding`` and ``LumaVectorStore`` inside LlamaIndex: index, retriever, query engine."""

from __future__ import annotations

import base64
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core import StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.schema import (
    ImageNode,
    NodeRelationship,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.vector_stores.lumarag import LumaEmbedding, LumaVectorStore


def _mixed_nodes(image_files: dict[str, str]) -> list[TextNode]:
    """Two text nodes and three image nodes, none embedded."""
    doc = {NodeRelationship.SOURCE: RelatedNodeInfo(node_id="doc-shapes")}
    texts = [
        TextNode(id_="t-tri", text="notes on the green triangle", relationships=doc),
        TextNode(id_="t-sq", text="why a blue square is blue", metadata={"topic": "square"}),
    ]
    images = [
        ImageNode(id_=f"i-{name}", image_path=path, metadata={"shape": name.split("_")[1]})
        for name, path in image_files.items()
    ]
    return [*texts, *images]


def test_embedding_is_multimodal(hash_encoder: Any, image_files: dict[str, str]) -> None:
    embed = LumaEmbedding(encoder=hash_encoder, embed_batch_size=2)
    assert isinstance(embed, MultiModalEmbedding)
    assert embed.model_name == "hash-test" and embed.dim == 32
    text = embed.get_text_embedding("a red circle")
    assert len(text) == 32 and np.linalg.norm(text) == pytest.approx(1.0, abs=1e-5)
    assert embed.get_query_embedding("a red circle") == pytest.approx(text)
    # the image of a red circle is the caption's point (see HashEncoder)
    assert embed.get_image_embedding(image_files["red_circle"]) == pytest.approx(text, abs=1e-6)
    raw = Path(image_files["red_circle"]).read_bytes()
    assert embed.get_image_embedding(BytesIO(raw)) == pytest.approx(text, abs=1e-6)
    batch = embed.get_image_embedding_batch(list(image_files.values()))
    assert len(batch) == 3
    assert ("image", 2) in hash_encoder.calls  # batched by embed_batch_size


@pytest.mark.asyncio
async def test_embedding_async(hash_encoder: Any, image_files: dict[str, str]) -> None:
    embed = LumaEmbedding(encoder=hash_encoder)
    text = await embed.aget_text_embedding("a blue square")
    assert await embed.aget_query_embedding("a blue square") == pytest.approx(text)
    image = await embed.aget_image_embedding(image_files["blue_square"])
    assert image == pytest.approx(text, abs=1e-6)


def test_embedding_rejects_a_non_encoder() -> None:
    with pytest.raises(ValueError, match="Encoder"):
        LumaEmbedding(encoder=object())  # type: ignore[arg-type]


class TestIndexOverStore:
    """Nodes added to the store, read through ``VectorStoreIndex.from_vector_store``."""

    @pytest.fixture
    def index(
        self, encoder_store: LumaVectorStore, hash_encoder: Any, image_files: dict[str, str]
    ) -> VectorStoreIndex:
        encoder_store.add(_mixed_nodes(image_files))
        return VectorStoreIndex.from_vector_store(
            encoder_store, embed_model=LumaEmbedding(encoder=encoder_store.encoder)
        )

    def test_store_embeds_images_with_the_image_tower(
        self, index: VectorStoreIndex, hash_encoder: Any
    ) -> None:
        assert ("image", 3) in hash_encoder.calls and ("text", 2) in hash_encoder.calls
        modalities = {n.node_id: n.metadata["luma"]["modality"] for n in _retrieve(index, 5)}
        assert modalities["i-red_circle"] == "image" and modalities["t-sq"] == "text"

    def test_text_query_finds_the_image(self, index: VectorStoreIndex) -> None:
        store = index.vector_store
        assert store.is_embedding_query is False  # the store embeds query text itself
        top = _retrieve(index, 2, "red circle")[0]
        assert isinstance(top.node, ImageNode)
        assert top.node.node_id == "i-red_circle"
        assert top.node.image_path.endswith("red_circle.png")
        assert top.node.metadata["shape"] == "circle"
        assert top.score == pytest.approx(top.node.metadata["luma"]["score"])
        assert {"safe1", "safek", "complete"} <= set(top.node.metadata["luma"])

    def test_image_query_by_embedding(
        self, index: VectorStoreIndex, image_files: dict[str, str]
    ) -> None:
        embed = LumaEmbedding(encoder=index.vector_store.encoder)
        query = QueryBundle(
            query_str="", embedding=embed.get_image_embedding(image_files["blue_square"])
        )
        hits = index.as_retriever(similarity_top_k=2).retrieve(query)
        assert hits[0].node.node_id == "i-blue_square"
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)

    def test_text_query_uses_the_calibrated_text_radius(self, index: VectorStoreIndex) -> None:
        # a foreign encoder is not calibrated on open: measure rho on the store's own texts
        index.vector_store.client.calibrate(["text"])
        tel = _retrieve(index, 1, "red circle")[0].node.metadata["luma"]
        assert tel["rho_source"] == "calibrated"
        assert tel["rho"] == pytest.approx(index.vector_store.client.rho["text"])
        assert tel["rho"] > 0

    def test_rho_through_vector_store_kwargs(
        self, index: VectorStoreIndex, image_files: dict[str, str]
    ) -> None:
        embed = LumaEmbedding(encoder=index.vector_store.encoder)
        vec = embed.get_image_embedding(image_files["red_circle"])
        retriever = index.as_retriever(similarity_top_k=1, vector_store_kwargs={"rho": 0.25})
        hit = retriever.retrieve(QueryBundle(query_str="", embedding=vec))[0]
        assert hit.node.metadata["luma"]["rho"] == 0.25

    def test_filters_through_the_retriever(self, index: VectorStoreIndex) -> None:
        from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

        flt = MetadataFilters(filters=[MetadataFilter(key="shape", value="triangle")])
        hits = index.as_retriever(similarity_top_k=3, filters=flt).retrieve("red circle")
        assert [h.node.node_id for h in hits] == ["i-green_triangle"]

    def test_query_engine_with_mock_llm(self, index: VectorStoreIndex) -> None:
        engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=2)
        response = engine.query("what is blue?")
        assert response.source_nodes
        assert all("luma" in s.node.metadata for s in response.source_nodes)
        assert "safe1" not in str(response)  # telemetry stays out of the prompt

    @pytest.mark.asyncio
    async def test_async_retrieve(self, index: VectorStoreIndex) -> None:
        hits = await index.as_retriever(similarity_top_k=1).aretrieve("green triangle")
        assert [h.node.node_id for h in hits] in (["i-green_triangle"], ["t-tri"])

    def test_delete_ref_doc_through_the_index(self, index: VectorStoreIndex) -> None:
        index.delete_ref_doc("doc-shapes")
        ids = {h.node.node_id for h in _retrieve(index, 10)}
        assert "t-tri" not in ids and len(ids) == 4


def test_index_embeds_and_inserts(tmp_path: Path, hash_encoder: Any) -> None:
    """No encoder in the store: the index embeds nodes and queries with LumaEmbedding."""
    store = LumaVectorStore(tmp_path / "plain", dim=hash_encoder.dim)
    assert store.is_embedding_query is True
    embed = LumaEmbedding(encoder=hash_encoder)
    index = VectorStoreIndex(
        [TextNode(id_=f"t{i}", text=t) for i, t in enumerate(["red circle", "blue square"])],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embed,
    )
    hits = index.as_retriever(similarity_top_k=2).retrieve("a blue square")
    assert [h.node.node_id for h in hits] == ["t1", "t0"]
    assert hits[0].node.metadata["luma"]["safe1"] in (True, False)
    store.close()


def test_storage_context_persist_and_reload(
    tmp_path: Path, hash_encoder: Any, image_files: dict[str, str]
) -> None:
    path, persist_dir = tmp_path / "store", tmp_path / "storage"
    embed = LumaEmbedding(encoder=hash_encoder)
    store = LumaVectorStore(path, encoder=hash_encoder)
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed)
    index.insert_nodes([TextNode(id_="t0", text="a yellow star"), TextNode(id_="t1", text="x")])
    store.add([ImageNode(id_="i", image=base64.b64encode(b"a yellow star").decode())])
    index.storage_context.persist(persist_dir=str(persist_dir))
    store.close()

    reopened = LumaVectorStore.from_persist_dir(path, encoder=hash_encoder)
    context = StorageContext.from_defaults(vector_store=reopened, persist_dir=str(persist_dir))
    again = load_index_from_storage(context, embed_model=embed)
    hits = again.as_retriever(similarity_top_k=3).retrieve("yellow star")
    assert sorted(h.node.node_id for h in hits[:2]) == ["i", "t0"]
    image = next(h.node for h in hits if h.node.node_id == "i")
    assert isinstance(image, ImageNode) and base64.b64decode(image.image) == b"a yellow star"
    reopened.close()


def _retrieve(index: VectorStoreIndex, k: int, text: str = "shapes") -> list:
    return index.as_retriever(similarity_top_k=k).retrieve(text)
