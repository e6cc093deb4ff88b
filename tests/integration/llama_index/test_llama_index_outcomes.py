"""``LumaGatedQueryEngine`` over a store with the shipped tiny CLIP: an off-topic question is
NOT_IN_MEMORY (its own outcome, no source nodes, the gate's words), and every response says
where its ρ came from (``rho_source``)."""

from __future__ import annotations

import itertools
from pathlib import Path

from llama_index.core.schema import TextNode
from llama_index.vector_stores.lumarag import LumaGatedQueryEngine, LumaVectorStore

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
