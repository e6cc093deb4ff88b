"""``LumaGatedQueryEngine`` over a store with the shipped tiny CLIP: an off-topic question is
NOT_IN_MEMORY (its own outcome, no source nodes, the gate's words), and every response says
where its ρ came from (``rho_source``)."""

from __future__ import annotations

import itertools
import zlib
from pathlib import Path

import numpy as np
import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import TextNode
from llama_index.vector_stores.lumarag import LumaGatedQueryEngine, LumaVectorStore

from luma_rag.rho import embedder_name

SIZES, COLORS = ("small", "large"), ("red", "blue", "green")
SHAPES, PLACES = ("circle", "square"), ("on the left", "at the top")


def test_off_topic_is_not_in_memory_and_rho_source_is_reported(tmp_path: Path) -> None:
    store = LumaVectorStore(str(tmp_path / "store"), encoder="luma-tiny")
    texts = [
        f"a {s} {c} {sh} {p}" for s, c, sh, p in itertools.product(SIZES, COLORS, SHAPES, PLACES)
    ]
    store.add([TextNode(id_=f"n{i}", text=t) for i, t in enumerate(texts)])  # 24: calibrates
    engine = LumaGatedQueryEngine(store)
    off = engine.query("who won the 1998 world cup?")
    meta = off.metadata
    assert meta is not None and meta["decision"]["decision"] == "not_in_memory"
    assert off.source_nodes == [] and meta["citations"] == []
    assert str(off.response).startswith("Nothing in memory answers this")
    assert meta["decision"]["numbers"]["rho_source"] == "calibrated"
    on = engine.query("a large blue square at the top")
    assert on.metadata is not None and on.metadata["decision"]["decision"] != "not_in_memory"
    assert on.metadata["telemetry"]["rho_source"] == "calibrated"
    assert all(n.node.metadata["luma"]["rho_source"] == "calibrated" for n in on.source_nodes)
    store.client.close()


class BagOfWordsEmbedding(BaseEmbedding):
    """A foreign LlamaIndex embedder (no model): the normalised sum of one seeded random vector
    per lower-cased word."""

    def _embed(self, text: str) -> list[float]:
        out = np.full(32, 1e-3)
        for word in text.lower().split():
            out += np.random.default_rng(zlib.crc32(word.encode())).standard_normal(32)
        return (out / np.linalg.norm(out)).tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed(text)


def test_a_foreign_embed_model_gets_a_calibrated_rho(tmp_path: Path) -> None:
    """Issue #17: a store embedded by the user's own ``BaseEmbedding`` ran at ρ = 0 (Safe@1
    vacuous). The gated engine measures ρ for that embedder on first use, persists it, and
    every response says so; an off-topic question is not answered."""
    embed = BagOfWordsEmbedding()
    store = LumaVectorStore(str(tmp_path / "store"), dim=32)
    texts = [
        f"a {s} {c} {sh} {p}" for s, c, sh, p in itertools.product(SIZES, COLORS, SHAPES, PLACES)
    ]
    store.add([
        TextNode(id_=f"n{i}", text=t, embedding=embed.get_text_embedding(t))
        for i, t in enumerate(texts)
    ])  # fmt: skip
    engine = LumaGatedQueryEngine(store, embed_model=embed, record_gaps=False)
    on = engine.query("a large blue square at the top")
    meta = on.metadata
    assert meta is not None and meta["telemetry"]["rho_source"] == "calibrated"
    rho = meta["telemetry"]["rho"]
    assert rho > 0  # never silently 0
    assert store.client.calibration(f"rho:{embedder_name(embed)}")["rho"] == pytest.approx(rho)
    off = engine.query("who won the 1998 world cup?").metadata
    assert off is not None and off["decision"]["decision"] not in ("answer", "widen")
    assert off["decision"]["numbers"]["rho_source"] == "calibrated"
    store.client.close()
