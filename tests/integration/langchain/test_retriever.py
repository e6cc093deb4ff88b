"""``LumaRetriever``: documents, telemetry in metadata, call-time arguments, construction."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_lumarag import LumaRetriever, LumaVectorStore

from luma_rag import Luma

LUMA_KEYS = {
    "complete_at",  # issue #17: the prefix no outside item can overtake
    "rho_source",  # issue #17: "calibrated", "user" or "unset"
    "id",
    "modality",
    "source",
    "score",
    "rank",
    "tier",
    "safe1",
    "safek",
    "safe_k_min",
    "margin_top2",
    "delta_k",
    "epsilon",
    "epsilon_items",
    "zeta_mean",
    "zeta_max",
    "rho",
    "complete",
    "k",
    "n_candidates",
    "latency_ms",
    "stages_ms",
    "notes",
}
Shapes = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def retriever(fake_luma: Luma, fake_embeddings: DeterministicFakeEmbedding) -> LumaRetriever:
    return LumaRetriever(luma=fake_luma, embeddings=fake_embeddings, k=3)


def test_documents_carry_content_ids_and_user_metadata(
    retriever: LumaRetriever, shapes: Shapes
) -> None:
    docs = retriever.invoke("a blue square")
    assert len(docs) == 3
    top = docs[0]
    assert top.page_content == "a blue square"  # the fake embeddings are exact for a seen text
    by_text = dict(shapes)
    for doc in docs:
        assert doc.id is not None and doc.id == doc.metadata["luma"]["id"]
        for key, value in by_text[doc.page_content].items():
            assert doc.metadata[key] == value


def test_telemetry_is_nested_and_flags_copied(retriever: LumaRetriever) -> None:
    docs = retriever.invoke("a blue square")
    for rank, doc in enumerate(docs):
        details = doc.metadata["luma"]
        assert set(details) == LUMA_KEYS
        assert details["rank"] == rank
        assert details["modality"] == "text"
        assert details["tier"] in ("hot", "warm")
        assert details["k"] == 3
        assert {"candidates", "certify"} <= details["stages_ms"].keys()
        for key in ("score", "safe1", "safek"):
            assert doc.metadata[key] == details[key]
        json.dumps(doc.metadata, allow_nan=False)  # a chain can log or serialise it
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    assert docs[0].metadata["score"] == pytest.approx(1.0, abs=1e-5)
    assert docs[0].metadata["luma"]["margin_top2"] > 0
    # one query, one certificate: every document carries the same one
    assert len({d.metadata["safe1"] for d in docs}) == 1


def test_user_keys_are_never_clobbered(
    tmp_path: Path, fake_embeddings: DeterministicFakeEmbedding
) -> None:
    with LumaVectorStore(fake_embeddings, path=tmp_path / "s") as store:
        store.add_texts(["x", "y"], [{"score": "mine", "safe1": "mine too"}, {}], ids=["x", "y"])
        retriever = LumaRetriever(luma=store.luma, embeddings=fake_embeddings, k=2)
        docs = {d.id: d for d in retriever.invoke("x")}
        assert docs["x"].metadata["score"] == "mine"
        assert docs["x"].metadata["safe1"] == "mine too"
        assert isinstance(docs["x"].metadata["luma"]["score"], float)
        assert docs["x"].metadata["safek"] == docs["x"].metadata["luma"]["safek"]
        assert isinstance(docs["y"].metadata["score"], float)


def test_namespace_collision_warns_and_is_configurable(
    tmp_path: Path, fake_embeddings: DeterministicFakeEmbedding
) -> None:
    with LumaVectorStore(fake_embeddings, path=tmp_path / "s") as store:
        store.add_texts(["x"], [{"luma": "user data"}], ids=["x"])
        retriever = LumaRetriever(luma=store.luma, embeddings=fake_embeddings, k=1)
        with pytest.warns(UserWarning, match="metadata_key="):
            doc = retriever.invoke("x")[0]
        assert doc.metadata["luma"]["id"] == "x"
        other = LumaRetriever(
            luma=store.luma, embeddings=fake_embeddings, k=1, metadata_key="retrieval"
        )
        doc = other.invoke("x")[0]
        assert doc.metadata["luma"] == "user data"
        assert doc.metadata["retrieval"]["id"] == "x"


def test_call_time_arguments(retriever: LumaRetriever) -> None:
    assert len(retriever.invoke("a red circle", k=1)) == 1
    assert len(retriever.invoke("a red circle", k=5)) == 5
    docs = retriever.invoke("a red circle", filters={"size": {"$gte": 5}})
    assert {d.metadata["shape"] for d in docs} == {"square", "star"}
    docs = retriever.invoke("a red circle", filter={"color": "green"})  # LangChain's name
    assert [d.metadata["shape"] for d in docs] == ["triangle"]
    docs = retriever.invoke("a red circle", rho=1.0)
    assert docs[0].metadata["luma"]["rho"] == 1.0
    # s1 - sj = <q, v1 - vj> <= ||v1 - vj||, so a radius of 1 can never certify a winner
    assert not docs[0].metadata["safe1"]
    assert len(retriever.invoke("a red circle")) == 3  # defaults untouched


def test_constructor_defaults(fake_luma: Luma, fake_embeddings: DeterministicFakeEmbedding) -> None:
    retriever = LumaRetriever(
        luma=fake_luma, embeddings=fake_embeddings, k=5, filters={"size": {"$lt": 3}}, rho=0.0
    )
    docs = retriever.invoke("a red circle")
    assert {d.metadata["shape"] for d in docs} == {"triangle", "hexagon"}
    assert retriever.invoke("a red circle", filters=None, k=4)[3].metadata["luma"]["rank"] == 3


async def test_ainvoke_matches_invoke(retriever: LumaRetriever) -> None:
    sync = retriever.invoke("a green triangle", k=2)
    docs = await retriever.ainvoke("a green triangle", k=2)
    assert [d.id for d in docs] == [d.id for d in sync]
    assert docs[0].metadata["luma"]["k"] == 2


async def test_concurrent_ainvoke(retriever: LumaRetriever, shapes: Shapes) -> None:
    import asyncio

    texts = [t for t, _ in shapes]
    results = await asyncio.gather(*(retriever.ainvoke(t, k=1) for t in texts * 4))
    assert [r[0].page_content for r in results] == texts * 4


def test_batch(retriever: LumaRetriever) -> None:
    out = retriever.batch(["a red circle", "a yellow star"])
    assert [docs[0].page_content for docs in out] == ["a red circle", "a yellow star"]


def test_construction_errors(
    fake_luma: Luma, fake_embeddings: DeterministicFakeEmbedding, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="exactly one of luma="):
        LumaRetriever()
    with pytest.raises(ValueError, match="exactly one of luma="):
        LumaRetriever(luma=fake_luma, store_path=tmp_path, embeddings=fake_embeddings)
    with pytest.raises(ValueError, match="encoder= applies to store_path="):
        LumaRetriever(luma=fake_luma, encoder="luma-tiny", embeddings=fake_embeddings)
    with pytest.raises(ValueError, match="has no encoder"):
        LumaRetriever(luma=fake_luma)
    for bad in ({"k": 0}, {"k": -2}, {"rho": -0.1}, {"rho": float("nan")}, {"modality": "x"}):
        with pytest.raises(ValueError):
            LumaRetriever(luma=fake_luma, embeddings=fake_embeddings, **bad)
    with pytest.raises(ValueError):
        LumaRetriever(luma=fake_luma, embeddings=fake_embeddings, top_k=3)  # type: ignore[call-arg]


def test_store_path_opens_and_closes_an_engine(tmp_path: Path, tiny_luma: Luma) -> None:
    path = tmp_path / "own"
    Luma.open(path, encoder="luma-tiny").close()
    with LumaRetriever(store_path=path) as retriever:
        assert retriever.luma is not None and retriever.luma.encoder is not None
        assert retriever.invoke("anything") == []
    with pytest.raises(Exception, match="closed"):
        retriever.invoke("anything")


def test_tiny_encoder_text_query(tiny_luma: Luma, shapes: Shapes) -> None:
    retriever = LumaRetriever(luma=tiny_luma, k=5)
    docs = retriever.invoke("a red circle")
    assert len(docs) == 5
    assert {d.page_content for d in docs} == {t for t, _ in shapes}
    assert all(d.metadata["luma"]["modality"] == "text" for d in docs)
    assert docs[0].metadata["luma"]["rho"] == pytest.approx(tiny_luma.rho["text"])


async def test_tiny_encoder_image_query(tiny_luma: Luma, tmp_path: Path) -> None:
    from PIL import Image

    image = tmp_path / "query.png"
    Image.new("RGB", (64, 64), "red").save(image)
    retriever = LumaRetriever(luma=tiny_luma, k=2)
    by_suffix = retriever.invoke(str(image))
    assert len(by_suffix) == 2
    by_path = retriever.invoke(image)  # type: ignore[arg-type]  # an os.PathLike works too
    explicit = await retriever.ainvoke(image.as_uri(), modality="image")
    assert [d.id for d in by_path] == [d.id for d in explicit] == [d.id for d in by_suffix]


def test_tiny_audio_query_without_an_audio_encoder(tiny_luma: Luma, tmp_path: Path) -> None:
    clip = tmp_path / "query.wav"
    clip.write_bytes(b"RIFF")
    with pytest.raises(ValueError, match="audio"):
        LumaRetriever(luma=tiny_luma).invoke(str(clip))
