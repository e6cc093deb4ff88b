"""Bad input raises ValueError / LumaError with a message, and the store does not change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_lumarag import LumaRetriever, LumaVectorStore

from luma_rag.errors import LumaError

BAD_QUERIES: list[tuple[str, dict[str, Any], str]] = [
    ("a red circle", {"modality": "smell"}, "unknown query modality"),
    ("holiday.png", {}, "no such file"),
    ("/no/such/clip.wav", {"modality": "audio"}, "no such file"),
    ("", {}, "empty"),
    ("   ", {}, "empty"),
    ("a red circle", {"k": 0}, "k must be an integer >= 1"),
    ("a red circle", {"k": -3}, "k must be an integer >= 1"),
    ("a red circle", {"k": True}, "k must be an integer >= 1"),
    ("a red circle", {"k": "2"}, "k must be an integer >= 1"),
    ("a red circle", {"filters": {"size": {"$gt": [1, 2]}}}, r"\$gt on key 'size'"),
    ("a red circle", {"filters": {"size": {"$lt": True}}}, r"\$lt on key 'size'"),
    ("a red circle", {"filters": {"size": {"$gte": None}}}, r"\$gte on key 'size'"),
    ("a red circle", {"filters": {"size": {"$between": 1}}}, "between"),
    ("a red circle", {"filter": {}, "filters": {}}, "not both"),
    ("a red circle", {"rho": -1.0}, "rho"),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LumaVectorStore]:
    embeddings = DeterministicFakeEmbedding(size=16)
    with LumaVectorStore(embeddings, path=tmp_path / "store") as vs:
        vs.add_texts(
            ["a red circle", "a blue square", "a green triangle"],
            [{"size": 3, "color": "red"}, {"size": 5, "color": "blue"}, {"size": 1}],
            ids=["c", "s", "t"],
        )
        yield vs


def snapshot(store: LumaVectorStore) -> tuple[Any, ...]:
    docs = store.get_by_ids(["c", "s", "t"])
    hits = store.similarity_search_with_score("a red circle", k=3)
    return len(store.luma), store.luma.stats()["total"], docs, hits


def check_error(exc: BaseException, match: str) -> None:
    assert isinstance(exc, ValueError | LumaError), type(exc)
    assert str(exc).strip()
    import re

    assert re.search(match, str(exc)), str(exc)


@pytest.mark.parametrize(("query", "kwargs", "match"), BAD_QUERIES)
def test_retriever_refuses(
    store: LumaVectorStore, query: str, kwargs: dict[str, Any], match: str
) -> None:
    retriever = LumaRetriever(luma=store.luma, embeddings=store.embeddings)
    before = snapshot(store)
    with pytest.raises((ValueError, LumaError)) as info:
        retriever.invoke(query, **kwargs)
    check_error(info.value, match)
    assert snapshot(store) == before


@pytest.mark.parametrize(("query", "kwargs", "match"), BAD_QUERIES[:6])
async def test_retriever_refuses_async(
    store: LumaVectorStore, query: str, kwargs: dict[str, Any], match: str
) -> None:
    retriever = LumaRetriever(luma=store.luma, embeddings=store.embeddings)
    with pytest.raises((ValueError, LumaError)) as info:
        await retriever.ainvoke(query, **kwargs)
    check_error(info.value, match)


def test_unknown_keyword_is_a_type_error(store: LumaVectorStore) -> None:
    retriever = LumaRetriever(luma=store.luma, embeddings=store.embeddings)
    with pytest.raises(TypeError, match="top_k"):
        retriever.invoke("a red circle", top_k=3)
    with pytest.raises(TypeError, match="top_k"):
        store.similarity_search("a red circle", top_k=3)


def test_image_query_needs_an_image_encoder(store: LumaVectorStore, tmp_path: Path) -> None:
    image = tmp_path / "q.png"
    image.write_bytes(b"\x89PNG")
    retriever = LumaRetriever(luma=store.luma, embeddings=store.embeddings)
    with pytest.raises(ValueError, match="cannot embed image queries"):
        retriever.invoke(str(image))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.similarity_search("a red circle", k=0), "k must be"),
        (lambda s: s.similarity_search("a", filter={"size": {"$gt": [1]}}), r"\$gt"),
        (lambda s: s.similarity_search_by_vector([0.0] * 16, k=1), "zero"),
        (lambda s: s.similarity_search_by_vector([1.0] * 6, k=1), "dim"),
        (lambda s: s.max_marginal_relevance_search("a", k=2, lambda_mult=2.0), "lambda_mult"),
        (lambda s: s.max_marginal_relevance_search("a", k=2, fetch_k=0), "fetch_k"),
        (lambda s: s.add_texts(["x", "y"], [{"a": 1}]), "metadatas"),
        (lambda s: s.add_texts(["x"], [{"a": object()}]), "JSON"),
        (lambda s: s.add_texts(["x", "y"], ids=["c", "c"]), "unique"),
        (lambda s: s.add_texts(["x"], ids=["c", "d"]), "ids"),
        (lambda s: s.add_texts(["x"], ids=[""]), "non-empty"),
        (lambda s: s.add_texts(["x"], [{"s": float("nan")}], ids=["c"]), "JSON"),
        (lambda s: s.delete(None), "needs the ids"),
        (lambda s: s.delete("c"), "list of ids"),
        (lambda s: s.get_by_ids("c"), "list of ids"),
        (lambda s: s.add_images(["missing.png"]), "cannot embed images"),
    ],
)
def test_vector_store_refuses(store: LumaVectorStore, call: Any, match: str) -> None:
    before = snapshot(store)
    with pytest.raises((ValueError, LumaError)) as info:
        call(store)
    check_error(info.value, match)
    assert snapshot(store) == before
