"""``LumaGatedQueryEngine`` with ``GateConfig(link_key="ref_doc_id")``: two chunks of one
document are one answer, not two rivals (luma_rag.answer.linked, Group-Safe@1)."""

from __future__ import annotations

from typing import Any

import numpy as np
from llama_index.core.schema import NodeRelationship, QueryBundle, RelatedNodeInfo, TextNode
from llama_index.vector_stores.lumarag import LumaGatedQueryEngine, LumaVectorStore

from luma_rag.answer import GateConfig


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def _chunk(node_id: str, doc: str, text: str, vector: np.ndarray) -> TextNode:
    return TextNode(
        id_=node_id,
        text=text,
        embedding=vector.tolist(),
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc)},
    )


def test_chunks_of_one_document_answer_together(store: LumaVectorStore, make_vectors: Any) -> None:
    dim = 8
    rng = np.random.default_rng(5)
    q = _unit(rng.standard_normal(dim))
    a, b = (_unit(x - (x @ q) * q) for x in rng.standard_normal((2, dim)))
    b = _unit(b - (b @ a) * a)

    def at(cos: float, side: np.ndarray) -> np.ndarray:
        return _unit(cos * q + np.sqrt(1.0 - cos**2) * side)

    background = [
        TextNode(id_=f"bg{i}", text=f"background {i}", embedding=v.tolist())
        for i, v in enumerate(make_vectors(30, dim, seed=4))
    ]
    store.add(
        [
            *background,
            _chunk("a1", "doc-a", "the first half of the manual", at(0.95, a)),
            _chunk("a2", "doc-a", "the second half of the manual", at(0.94, b)),
            _chunk("c1", "doc-c", "a cookbook", at(0.55, -a)),
        ]
    )
    bundle = QueryBundle("what does the manual say?", embedding=q.tolist())
    plain = LumaGatedQueryEngine(store, None, GateConfig(k=3, k_max=3), rho=0.05, record_gaps=False)
    assert plain.query(bundle).metadata["decision"]["decision"] != "answer"  # the chunks tie
    linked = LumaGatedQueryEngine(
        store, None, GateConfig(k=3, k_max=3, link_key="ref_doc_id"), rho=0.05, record_gaps=False
    )
    response = linked.query(bundle)
    decision = response.metadata["decision"]
    assert decision["decision"] == "answer"
    assert decision["evidence"][:2] == ["a1", "a2"]
    assert decision["numbers"]["group"] == "link:doc-a" and decision["numbers"]["group_safe"]
