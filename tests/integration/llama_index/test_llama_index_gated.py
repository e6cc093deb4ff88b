"""``LumaGatedQueryEngine``: the answer gate (ANSWER / WIDEN / CLARIFY) as a LlamaIndex engine.

The store (``encoder_store``, embedding with :class:`HashEncoder`) holds a distinct "a purple
hexagon", two near-duplicate squares around the embedding of "a square" (a stable pair:
WIDEN), twelve near-duplicate circles around "a circle" (no stable set of ten or fewer:
CLARIFY), and 40 background vectors; its text and image ρ are 0.05.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llama_index.core.base.response.schema import (
    AsyncStreamingResponse,
    Response,
    StreamingResponse,
)
from llama_index.core.schema import MetadataMode, QueryBundle, TextNode
from llama_index.core.vector_stores.types import (
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)
from llama_index.vector_stores.lumarag import LumaEmbedding, LumaGatedQueryEngine, LumaVectorStore

from luma_rag.answer import GateConfig

COLORS = [
    "red", "blue", "green", "yellow", "purple", "orange",
    "pink", "white", "black", "grey", "brown", "cyan",
]  # fmt: skip
METADATA_KEYS = ("decision", "citations", "telemetry")


def _near(base: np.ndarray, count: int, seed: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    rows = [base + 0.01 * rng.standard_normal(base.size) for _ in range(count)]
    return [(v / np.linalg.norm(v)).tolist() for v in rows]


@pytest.fixture
def gated_store(encoder_store: LumaVectorStore, make_vectors: Any) -> LumaVectorStore:
    encoder = encoder_store.encoder
    assert encoder is not None
    circle, square = encoder.encode_text(["a circle", "a square"])
    background = make_vectors(40, encoder.dim, seed=3)
    nodes = [
        TextNode(id_=f"bg{i}", text=f"background {i}", embedding=v.tolist())
        for i, v in enumerate(background)
    ]
    nodes += [
        TextNode(id_=f"circle{i}", text=f"a {c} circle", metadata={"color": c}, embedding=e)
        for i, (c, e) in enumerate(zip(COLORS, _near(circle, len(COLORS), seed=1), strict=True))
    ]
    nodes += [
        TextNode(id_=f"square{i}", text=f"a {c} square", metadata={"color": c}, embedding=e)
        for i, (c, e) in enumerate(zip(["pale", "pastel"], _near(square, 2, seed=2), strict=True))
    ]
    hexagon = TextNode(
        id_="hexagon",
        text="a purple hexagon",
        metadata={"color": "purple"},
        excluded_embed_metadata_keys=["color"],
    )
    encoder_store.add([*nodes, hexagon])  # the hexagon is embedded by the store's encoder
    encoder_store.client.set_rho("text", 0.05)
    encoder_store.client.set_rho("image", 0.05)
    return encoder_store


@pytest.fixture
def engine(gated_store: LumaVectorStore) -> LumaGatedQueryEngine:
    return LumaGatedQueryEngine(gated_store)


def _check_response(response: Any, decision: str) -> dict[str, Any]:
    assert isinstance(response, Response)
    meta = response.metadata
    assert meta is not None and tuple(meta) == METADATA_KEYS
    assert meta["decision"]["decision"] == decision
    assert [n.node.node_id for n in response.source_nodes] == meta["decision"]["evidence"]
    assert [n.node.node_id for n in response.source_nodes] == [c["id"] for c in meta["citations"]]
    scores = [n.get_score() for n in response.source_nodes]
    assert scores == [c["score"] for c in meta["citations"]] == sorted(scores, reverse=True)
    for i, n in enumerate(response.source_nodes):
        luma = n.node.metadata["luma"]
        assert luma["citation"] == i + 1 and luma["decision"] == decision
        assert luma["score"] == n.score
        assert "luma" not in n.node.get_content(metadata_mode=MetadataMode.LLM)
    json.dumps(meta, allow_nan=False)
    return meta


def _gaps(store: LumaVectorStore, query: str) -> list[dict[str, Any]]:
    return [g for g in store.client.knowledge_gaps(limit=1000) if g["query"] == query]


# -- the three decisions ------------------------------------------------------------------------


def test_distinct_query_answers_with_exact_scores(
    engine: LumaGatedQueryEngine, gated_store: LumaVectorStore
) -> None:
    response = engine.query("a purple hexagon")
    meta = _check_response(response, "answer")
    assert response.response is not None
    assert response.response.startswith("Top match [1]: a purple hexagon")
    top = response.source_nodes[0]
    assert top.node.node_id == "hexagon" and top.score == pytest.approx(1.0, abs=1e-5)
    assert len(response.source_nodes) == GateConfig().k  # the answer's context
    plain = gated_store.query(VectorStoreQuery(query_str="a purple hexagon", similarity_top_k=5))
    assert [n.score for n in response.source_nodes] == plain.similarities  # exact cosines
    assert meta["telemetry"]["safe1"] is True and meta["telemetry"]["rho"] == pytest.approx(0.05)
    assert meta["decision"]["gap_id"] is None and _gaps(gated_store, "a purple hexagon") == []
    assert engine.get_prompts() == {}


def test_near_duplicates_widen_to_the_stable_pair(engine: LumaGatedQueryEngine) -> None:
    response = engine.query("a square")
    meta = _check_response(response, "widen")
    assert meta["decision"]["k_used"] == 2 and meta["telemetry"]["safe_k"] == 2
    assert {n.node.node_id for n in response.source_nodes} == {"square0", "square1"}
    assert "(Safe@2)" in str(response)


def test_near_duplicates_clarify_and_record_a_gap(
    engine: LumaGatedQueryEngine, gated_store: LumaVectorStore
) -> None:
    response = engine.query("a circle")
    meta = _check_response(response, "clarify")
    assert response.response == meta["decision"]["clarification"]
    assert str(response).startswith("Did you mean")
    assert all(n.node.node_id.startswith("circle") for n in response.source_nodes)
    (gap,) = _gaps(gated_store, "a circle")
    assert gap["gap"] == meta["decision"]["gap_id"]
    assert [c["id"] for c in gap["candidates"]] == meta["decision"]["evidence"]


def test_near_duplicates_never_answer_confidently(gated_store: LumaVectorStore) -> None:
    for config in (GateConfig(k=1, k_max=1), GateConfig(k=3, k_max=5), GateConfig(k=10, k_max=20)):
        engine = LumaGatedQueryEngine(gated_store, gate_config=config, record_gaps=False)
        for query in ("a square", "a circle"):
            response = engine.query(query)
            assert response.metadata is not None
            assert response.metadata["decision"]["decision"] in ("widen", "clarify")
    assert gated_store.client.knowledge_gaps() == []


@pytest.mark.asyncio
async def test_aquery_reaches_the_same_decisions(engine: LumaGatedQueryEngine) -> None:
    for query, decision in (("a purple hexagon", "answer"), ("a square", "widen")):
        response = await engine.aquery(query)
        _check_response(response, decision)
        assert str(response) == str(engine.query(query))
    meta = _check_response(await engine.aquery("a circle"), "clarify")
    assert meta["decision"]["gap_id"] is not None


# -- how the query is embedded, filters, ρ ------------------------------------------------------


def test_query_embeddings_filters_and_rho(
    engine: LumaGatedQueryEngine, gated_store: LumaVectorStore
) -> None:
    encoder = gated_store.encoder
    assert encoder is not None
    vector = encoder.encode_text(["a purple hexagon"])[0].tolist()
    bundle = QueryBundle("the hexagon, please", embedding=vector)
    _check_response(LumaGatedQueryEngine(gated_store, rho=0.05).query(bundle), "answer")
    noisy = LumaGatedQueryEngine(gated_store, rho=1.0, record_gaps=False)
    meta = _check_response(noisy.query("a purple hexagon"), "clarify")
    assert meta["telemetry"]["rho"] == 1.0 and gated_store.client.knowledge_gaps() == []
    red = MetadataFilters(filters=[MetadataFilter(key="color", value="red")])
    response = LumaGatedQueryEngine(gated_store, filters=red).query("a circle")
    _check_response(response, "answer")
    assert [n.node.node_id for n in response.source_nodes] == ["circle0"]


def test_an_embed_model_embeds_text_and_image_queries(
    gated_store: LumaVectorStore, tmp_path: Path
) -> None:
    embed = LumaEmbedding(encoder=gated_store.encoder)
    engine = LumaGatedQueryEngine(gated_store, embed_model=embed, rho=0.05, record_gaps=False)
    response = engine.query("a purple hexagon")
    _check_response(response, "answer")
    assert response.source_nodes[0].node.node_id == "hexagon"
    image = tmp_path / "square.png"
    image.write_text("a square")
    _check_response(engine.query(QueryBundle("", image_path=str(image))), "widen")


def test_an_image_query_records_its_gap_by_path(
    engine: LumaGatedQueryEngine, gated_store: LumaVectorStore, tmp_path: Path
) -> None:
    image = tmp_path / "query.png"
    image.write_text("a circle")  # HashEncoder: the picture of a circle
    meta = _check_response(engine.query(QueryBundle("", image_path=str(image))), "clarify")
    assert _gaps(gated_store, f"image query: {image}")[0]["gap"] == meta["decision"]["gap_id"]


def test_store_without_an_encoder(
    store: LumaVectorStore, node_embeddings: list[TextNode], gated_store: LumaVectorStore
) -> None:
    store.add(node_embeddings)
    engine = LumaGatedQueryEngine(store, rho=0.05)
    response = engine.query(QueryBundle("the fox", embedding=node_embeddings[0].embedding))
    _check_response(response, "answer")
    assert response.source_nodes[0].node.node_id == "n0"
    assert response.source_nodes[0].node.metadata["author"] == "Ann"  # the node, restored
    with pytest.raises(ValueError, match="no encoder to embed this query; pass embed_model="):
        engine.query("the fox")
    with pytest.raises(ValueError, match="empty query"):
        engine.query("  ")
    with pytest.raises(ValueError, match="rho must be"):
        LumaGatedQueryEngine(store, rho=-1.0)
    vague = engine.query(QueryBundle("", embedding=[1.0] * 8))  # no text: gap says "vector"
    _check_response(vague, "clarify")
    assert store.client.knowledge_gaps()[0]["query"] == "vector query"
    with pytest.raises(TypeError, match="LumaVectorStore"):
        LumaGatedQueryEngine(object())
    with pytest.raises(TypeError, match="answer"):
        LumaGatedQueryEngine(gated_store, answerer=object())


# -- streaming ----------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["a purple hexagon", "a square", "a circle"])
def test_streaming_pieces_join_to_the_answer(gated_store: LumaVectorStore, query: str) -> None:
    full = LumaGatedQueryEngine(gated_store, record_gaps=False).query(query)
    streaming = LumaGatedQueryEngine(gated_store, streaming=True, record_gaps=False)
    response = streaming.query(query)
    assert isinstance(response, StreamingResponse) and response.metadata is not None
    assert full.metadata is not None
    assert response.metadata["decision"] == full.metadata["decision"]
    assert response.metadata["citations"] == full.metadata["citations"]
    assert [n.node.node_id for n in response.source_nodes] == full.metadata["decision"]["evidence"]
    pieces = list(response.response_gen)
    assert len(pieces) >= 1 and "".join(pieces) == full.response
    telemetry = response.metadata["telemetry"]
    assert telemetry["streamed"] is True and telemetry["latency_ms"] >= 0.0
    json.dumps(response.metadata, allow_nan=False)


@pytest.mark.asyncio
async def test_async_streaming(gated_store: LumaVectorStore) -> None:
    engine = LumaGatedQueryEngine(gated_store, streaming=True)
    response = await engine.aquery("a square")
    assert isinstance(response, AsyncStreamingResponse) and response.metadata is not None
    assert response.metadata["decision"]["decision"] == "widen"
    pieces = [p async for p in response.async_response_gen()]
    assert len(pieces) == 2  # the EvidenceAnswerer's two WIDEN sentences
    full = LumaGatedQueryEngine(gated_store).query("a square")
    assert "".join(pieces) == full.response
    assert "latency_ms" in response.metadata["telemetry"]


# -- any LlamaIndex LLM as the answerer ---------------------------------------------------------


def test_an_llm_answers_with_the_decision_in_its_prompt(gated_store: LumaVectorStore) -> None:
    from llama_index.core.llms import MockLLM
    from llama_index.vector_stores.lumarag import LLMAnswerer

    engine = LumaGatedQueryEngine(gated_store, answerer=MockLLM(), record_gaps=False)
    assert isinstance(engine.answerer, LLMAnswerer)
    response = engine.query("a purple hexagon")  # MockLLM echoes its prompt
    text = str(response)
    assert "certified best match" in text and "Question: a purple hexagon" in text
    assert response.metadata is not None and response.metadata["telemetry"]["answerer"] == "MockLLM"
    assert "Do not answer the question" in str(engine.query("a circle"))
    streaming = LumaGatedQueryEngine(
        gated_store, answerer=MockLLM(), record_gaps=False, streaming=True
    )
    assert "Question: a square" in "".join(streaming.query("a square").response_gen)
    with pytest.raises(TypeError):
        LLMAnswerer(object())  # type: ignore[arg-type]
