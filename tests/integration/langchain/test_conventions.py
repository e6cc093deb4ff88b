"""Framework conventions (issue 15): unknown filter keys, de-duplication, relevance scores."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.runnables import RunnableLambda
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_lumarag import LumaRetriever, LumaVectorStore

from luma_rag import Luma
from luma_rag.errors import InvalidInputError

TEXTS = ["a red circle", "a blue square", "a green triangle", "a yellow star"]
METAS = [{"n": i, "color": c} for i, c in enumerate(["red", "blue", "green", "yellow"])]


@pytest.fixture
def store(tmp_path: Path) -> LumaVectorStore:
    emb = DeterministicFakeEmbedding(size=16)
    return LumaVectorStore.from_texts(TEXTS, emb, METAS, ids=list("abcd"), path=tmp_path / "s")


def test_unknown_filter_key_returns_nothing_like_in_memory(
    store: LumaVectorStore, caplog: pytest.LogCaptureFixture
) -> None:
    ref = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    ref.add_texts(TEXTS, METAS)
    flt = {"colour": "red"}  # a key no item has
    assert ref.similarity_search("circle", k=2, filter=lambda d: d.metadata.get("colour")) == []
    with caplog.at_level(logging.WARNING, logger="langchain_lumarag._query"):
        assert store.similarity_search("circle", k=2, filter=flt) == []
    assert "matches no stored item" in caplog.text
    assert store.similarity_search_with_score("circle", k=2, filter=flt) == []
    assert store.max_marginal_relevance_search("circle", k=2, filter=flt) == []
    assert len(store.similarity_search("circle", k=2, filter={"color": "red"})) == 1
    with pytest.raises(InvalidInputError):  # a malformed filter is still an error
        store.similarity_search("circle", k=2, filter={"color": {"$near": 1}})
    store.close()


def test_unknown_filter_key_on_an_empty_store(tmp_path: Path) -> None:
    with LumaVectorStore(DeterministicFakeEmbedding(size=8), path=tmp_path / "e") as empty:
        assert empty.similarity_search("x", k=3, filter={"anything": 1}) == []


def test_retriever_unknown_filter_key(
    fake_luma: Luma, fake_embeddings: DeterministicFakeEmbedding
) -> None:
    retriever = LumaRetriever(luma=fake_luma, embeddings=fake_embeddings, k=2)
    assert retriever.invoke("a red circle", filters={"no_such_key": 1}) == []
    assert len(retriever.invoke("a red circle", filters={"shape": "circle"})) == 1


def test_documents_of_one_item_compare_equal_across_queries(
    fake_luma: Luma, fake_embeddings: DeterministicFakeEmbedding
) -> None:
    retriever = LumaRetriever(luma=fake_luma, embeddings=fake_embeddings, k=3)
    first = retriever.invoke("a red circle")
    second = retriever.invoke("a blue square")
    common = {d.id for d in first} & {d.id for d in second}
    assert common, "the two queries should share an item for this test"
    for i in common:
        a = next(d for d in first if d.id == i)
        b = next(d for d in second if d.id == i)
        assert a.metadata["luma"] != b.metadata["luma"]  # per-query details differ ...
        assert a == b  # ... but it is the same document
    other = Document(id=first[0].id, page_content=first[0].page_content, metadata={"x": 1})
    assert first[0] != other


def test_multi_query_retriever_deduplicates(
    fake_luma: Luma, fake_embeddings: DeterministicFakeEmbedding
) -> None:
    multi_query = pytest.importorskip("langchain_classic.retrievers.multi_query")
    retriever = LumaRetriever(luma=fake_luma, embeddings=fake_embeddings, k=3)
    queries = RunnableLambda(lambda _: ["a red circle", "a red circle?", "a blue square"])
    multi = multi_query.MultiQueryRetriever(retriever=retriever, llm_chain=queries)
    docs = multi.invoke("red shapes")
    ids = [d.id for d in docs]
    assert len(ids) == len(set(ids)) and len(ids) >= 3


def test_relevance_scores_are_cosines_clipped(store: LumaVectorStore) -> None:
    scored = store.similarity_search_with_score("a red circle", k=4)
    relevance = store.similarity_search_with_relevance_scores("a red circle", k=4)
    for (doc, cos), (doc2, rel) in zip(scored, relevance, strict=True):
        assert doc.id == doc2.id and rel == pytest.approx(min(1.0, max(0.0, cos)), abs=1e-6)
    cut = 0.5
    kept = store.similarity_search_with_relevance_scores("a red circle", k=4, score_threshold=cut)
    assert [d.id for d, _ in kept] == [d.id for d, c in scored if c >= cut]
    store.close()
