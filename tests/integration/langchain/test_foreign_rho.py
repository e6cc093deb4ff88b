"""Foreign embeddings: ρ calibrated on first use (never silently 0), the gate's NOT_IN_MEMORY."""

from __future__ import annotations

from pathlib import Path

from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_lumarag import LumaRetriever, LumaVectorStore, build_gated_chain

TEXTS = [
    f"a {c} {s} on the {p}"
    for c in ("red", "green", "blue")
    for s in ("circle", "square")
    for p in ("left", "right")
]


def test_foreign_embeddings_get_a_calibrated_rho_and_refuse_off_topic(tmp_path: Path) -> None:
    embeddings = DeterministicFakeEmbedding(size=16)
    with LumaVectorStore(embeddings, path=tmp_path / "s") as store:
        store.add_texts(TEXTS)
        docs = store.similarity_search("a red circle on the left", k=2, telemetry=True)
        details = docs[0].metadata["luma"]
        # a hash embedder moves completely under any perturbation: a large, honest ρ
        assert details["rho_source"] == "calibrated" and details["rho"] > 0.5
        assert store.luma.calibration("rho:DeterministicFakeEmbedding") is not None
        retriever = LumaRetriever(luma=store.luma, embeddings=embeddings, k=2)
        got = retriever.invoke("a blue square on the right")[0].metadata["luma"]
        assert got["rho_source"] == "calibrated" and got["rho"] == details["rho"]
        chain = build_gated_chain(retriever)
        out = chain.invoke("what is the boiling point of water?")
        assert out["decision"]["decision"] == "not_in_memory"
        assert out["answer"].startswith("Nothing in memory answers this")
        assert out["citations"] == []
        on = chain.invoke("a red circle on the left")
        assert on["decision"]["decision"] != "not_in_memory"
        assert on["decision"]["numbers"]["rho_source"] == "calibrated"
