"""``LumaVectorStore`` beyond the standard suite: persistence, engines, MMR, telemetry, images."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import VectorStoreRetriever
from langchain_lumarag import LumaEmbeddings, LumaRetriever, LumaVectorStore

from luma_rag import Luma, LumaConfig
from luma_rag.errors import DimensionMismatchError, StoreClosedError

TEXTS = ["a red circle", "a blue square", "a green triangle", "a yellow star"]
METAS = [{"n": i, "even": i % 2 == 0} for i in range(len(TEXTS))]


@pytest.fixture
def emb() -> DeterministicFakeEmbedding:
    return DeterministicFakeEmbedding(size=8)


def test_from_texts_persists_and_reopens(tmp_path: Path, emb: DeterministicFakeEmbedding) -> None:
    path = tmp_path / "store"
    store = LumaVectorStore.from_texts(TEXTS, emb, METAS, ids=list("abcd"), path=path)
    store.close()
    store.close()  # idempotent
    with LumaVectorStore(emb, path=path) as again:
        assert [d.page_content for d in again.get_by_ids(["d", "a"])] == [TEXTS[3], TEXTS[0]]
        doc, score = again.similarity_search_with_score(TEXTS[2], k=1)[0]
        assert (doc.id, doc.metadata, score) == ("c", METAS[2], pytest.approx(1.0, abs=1e-5))


def test_dimension_mismatch_is_actionable(tmp_path: Path, emb: DeterministicFakeEmbedding) -> None:
    path = tmp_path / "store"
    LumaVectorStore.from_texts(TEXTS, emb, path=path).close()
    with pytest.raises(DimensionMismatchError, match="holds 8-d vectors but the embeddings give"):
        LumaVectorStore(DeterministicFakeEmbedding(size=5), path=path)
    with pytest.raises(DimensionMismatchError, match="LumaConfig"):
        LumaVectorStore(emb, path=tmp_path / "other", config=LumaConfig(dim=7))
    with Luma.open(tmp_path / "third", LumaConfig(dim=4)) as luma:
        with pytest.raises(DimensionMismatchError, match="4-d"):
            LumaVectorStore(emb, luma=luma)
        with pytest.raises(ValueError, match="not both"):
            LumaVectorStore(emb, luma=luma, path=tmp_path / "x")
        with pytest.raises(ValueError, match="needs embeddings"):
            LumaVectorStore(luma=luma)


def test_a_given_engine_stays_open(tmp_path: Path, emb: DeterministicFakeEmbedding) -> None:
    with Luma.open(tmp_path / "s", LumaConfig(dim=8)) as luma:
        with LumaVectorStore(emb, luma=luma) as store:
            store.add_texts(TEXTS)
        assert len(luma) == 4  # still usable: the store did not close it
    owned = LumaVectorStore(emb, path=tmp_path / "t")
    owned.close()
    with pytest.raises(StoreClosedError):
        owned.similarity_search("x")


def test_config_is_used_when_creating(tmp_path: Path, emb: DeterministicFakeEmbedding) -> None:
    with LumaVectorStore(emb, path=tmp_path / "s", config=LumaConfig(dim=8, hot_budget=3)) as vs:
        vs.add_texts(TEXTS)
        assert vs.luma.config.hot_budget == 3
        assert len(vs.similarity_search("a red circle", k=4)) == 4


def test_search_variants(emb: DeterministicFakeEmbedding) -> None:
    with LumaVectorStore.from_texts(TEXTS, emb, METAS, ids=list("abcd")) as store:
        docs = store.similarity_search("a red circle", k=4, filter={"even": True})
        assert [d.id for d in docs] == ["a", "c"]
        docs = store.similarity_search("x", k=4, filters={"n": {"$in": [1, 3]}})
        assert {d.id for d in docs} == {"b", "d"}
        vec = emb.embed_query("a yellow star")
        assert store.similarity_search_by_vector(vec, k=1)[0].id == "d"
        scored = store.similarity_search_with_relevance_scores("a blue square", k=4)
        assert scored[0][0].id == "b" and scored[0][1] == pytest.approx(1.0, abs=1e-5)
        assert all(0.0 <= s <= 1.0 for _, s in scored)
        mmr = store.max_marginal_relevance_search("a red circle", k=3, fetch_k=4)
        assert mmr[0].id == "a" and len({d.id for d in mmr}) == 3
        assert store.add_texts([]) == []


def test_telemetry_on_request(emb: DeterministicFakeEmbedding) -> None:
    with LumaVectorStore.from_texts(TEXTS, emb, METAS) as store:
        plain = store.similarity_search("a red circle", k=2)
        assert set(plain[0].metadata) == {"n", "even"}
        rich = store.similarity_search("a red circle", k=2, telemetry=True, rho=0.0)
        assert rich[0].metadata["luma"]["rank"] == 0 and rich[0].metadata["safe1"] is True
        other = store.similarity_search("a red circle", k=2, telemetry=True, metadata_key="cert")
        assert "cert" in other[0].metadata and "luma" not in other[0].metadata


def test_as_retriever(emb: DeterministicFakeEmbedding) -> None:
    with LumaVectorStore.from_texts(TEXTS, emb, METAS, ids=list("abcd")) as store:
        retriever = store.as_retriever(search_kwargs={"k": 2})
        assert isinstance(retriever, VectorStoreRetriever)
        assert retriever.invoke("a green triangle")[0].id == "c"
        mmr = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 4})
        assert len(mmr.invoke("a green triangle")) == 2
        threshold = store.as_retriever(
            search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.99}
        )
        assert [d.id for d in threshold.invoke("a green triangle")] == ["c"]
        rich = store.as_retriever(search_kwargs={"k": 1, "telemetry": True})
        assert "safe1" in rich.invoke("a green triangle")[0].metadata
        # and the telemetry-first retriever over the same engine
        luma_retriever = LumaRetriever(luma=store.luma, embeddings=store.embeddings, k=1)
        assert luma_retriever.invoke("a green triangle")[0].id == "c"


def test_delete_ignores_unknown_ids(emb: DeterministicFakeEmbedding) -> None:
    with LumaVectorStore.from_texts(TEXTS, emb, ids=list("abcd")) as store:
        assert store.delete(["a", "zz", "a"]) is True
        assert {d.id for d in store.get_by_ids(list("abcd"))} == {"b", "c", "d"}


def test_luma_embeddings_and_images(tmp_path: Path, tiny_luma: Luma) -> None:
    from PIL import Image

    embeddings = LumaEmbeddings(encoder=tiny_luma.encoder)
    assert embeddings.embed_documents([]) == []
    assert len(embeddings.embed_query("a red circle")) == embeddings.dim
    red = tmp_path / "red.png"
    blue = tmp_path / "blue.png"
    Image.new("RGB", (64, 64), "red").save(red)
    Image.new("RGB", (64, 64), "blue").save(blue)
    assert len(embeddings.embed_image([red, blue])) == 2
    with LumaVectorStore(embeddings, path=tmp_path / "s") as store:
        ids = store.add_images([red, blue], [{"c": "red"}, {"c": "blue"}], captions=["red", None])
        docs = store.get_by_ids(ids)
        assert [d.page_content for d in docs] == ["red", str(blue)]
        hits = store.similarity_search("red", k=2, telemetry=True)
        assert {h.metadata["luma"]["modality"] for h in hits} == {"image"}
        assert {h.metadata["luma"]["source"] for h in hits} == {str(red), str(blue)}
        retriever = LumaRetriever(luma=store.luma, embeddings=embeddings, k=1)
        assert retriever.invoke(str(red))[0].id == ids[0]  # an image query through embed_image


def test_store_from_an_engine_with_an_encoder(tmp_path: Path, tiny_available: bool) -> None:
    if not tiny_available:
        pytest.skip("the packaged luma-tiny weights are not built here")
    with Luma.open(tmp_path / "s", encoder="luma-tiny") as luma:
        store = LumaVectorStore(luma=luma)
        assert isinstance(store.embeddings, LumaEmbeddings)
        store.add_texts(TEXTS, ids=list("abcd"))
        assert len(store.similarity_search("a shape", k=4)) == 4
        doc = store.similarity_search("a shape", k=1, telemetry=True)[0]
        assert doc.metadata["luma"]["rho"] == pytest.approx(luma.rho["text"])  # calibrated ρ
        assert len(LumaRetriever(luma=luma, k=2).invoke("a yellow star")) == 2
