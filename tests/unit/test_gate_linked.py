"""Tests of the gate over linked items (GateConfig.link_key, luma_rag.answer.linked): a
picture and its spoken caption are one answer, not two rivals; the answer shows the picture."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from luma_rag import Luma
from luma_rag.answer import EvidenceAnswerer, GateConfig, GatedRetriever
from luma_rag.errors import ConfigError

DIM = 32


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x)).astype(np.float32)


def _store(make_store: Any, make_vectors: Any, rival_gap: float) -> tuple[Luma, np.ndarray]:
    """Background items; one thing stored twice (its spoken caption scores a hair above its
    picture); another thing ``rival_gap`` below them. Returns the store and the query."""
    luma = make_store(DIM)
    luma.add_vectors(make_vectors(40, DIM, seed=3))
    rng = np.random.default_rng(0)
    q = _unit(rng.standard_normal(DIM))
    side = rng.standard_normal(DIM)
    side = _unit(side - (side @ q) * q)

    def at(cos: float, direction: np.ndarray) -> np.ndarray:
        return _unit(cos * q + np.sqrt(1 - cos**2) * direction)

    picture = at(0.90, side)
    across = rng.standard_normal(DIM)
    across = _unit(across - (across @ q) * q - (across @ side) * side)
    caption = at(0.905, across)  # another rendering: close in score, not in space
    rival = at(0.90 - rival_gap, -side)
    luma.add_vectors(
        np.stack([picture, rival]),
        [{"doc_id": "thing"}, {"doc_id": "other"}],
        ids=["thing", "other"],
        modality="image",
        texts=["a red star", "a blue disc"],
    )
    luma.add_vectors(
        caption[None],
        [{"doc_id": "thing"}],
        ids=["thing-audio"],
        modality="audio",
        texts=["a red star (spoken)"],
    )
    return luma, q


def test_link_key_is_validated_and_round_trips() -> None:
    cfg = GateConfig(link_key="doc_id")
    assert GateConfig.from_json(cfg.to_json()) == cfg
    for bad in ("", 3, ["doc_id"]):
        with pytest.raises(ConfigError, match="link_key"):
            GateConfig(link_key=bad)  # type: ignore[arg-type]


def test_linked_renderings_answer_and_the_picture_leads(make_store: Any, make_vectors: Any) -> None:
    luma, q = _store(make_store, make_vectors, rival_gap=0.4)
    plain = GatedRetriever(luma, GateConfig(k=3, k_max=5)).search(q, question="q", rho=0.05)
    assert plain.decision != "answer"  # item level: the picture and its caption tie
    assert [h.id for h in plain.hits[:2]] == ["thing-audio", "thing"]
    gate = GatedRetriever(luma, GateConfig(k=3, k_max=5, link_key="doc_id"))
    d = gate.search(q, question="q", rho=0.05)
    assert d.decision == "answer" and d.k_used == 1
    assert [h.id for h in d.evidence[:2]] == ["thing", "thing-audio"]  # the picture first
    assert d.numbers.group_safe and not d.numbers.safe1
    assert d.numbers.group == "link:thing"
    assert d.numbers.group_margin == pytest.approx(d.hits[0].score - 0.5, abs=0.02)
    assert d.numbers.group_slack > 0 and "Group-Safe@1" in d.reason
    json.dumps(d.to_dict())
    text = EvidenceAnswerer().answer("q", d).text
    assert "Group-Safe@1" in text and text.startswith("Top match [1]: a red star (image")


def test_a_close_rival_group_still_clarifies_one_option_each(
    make_store: Any, make_vectors: Any
) -> None:
    luma, q = _store(make_store, make_vectors, rival_gap=0.01)
    gate = GatedRetriever(luma, GateConfig(k=2, k_max=2, link_key="doc_id"), record_gaps=False)
    d = gate.search(q, question="q", rho=0.05)
    assert d.decision == "clarify"
    assert d.numbers.group_safe is False and d.numbers.group_slack < 0
    assert [h.id for h in d.evidence] == ["thing", "other"]  # the caption is not an option
    assert d.clarification is not None and "red star (spoken)" not in d.clarification
    assert "doc_id" not in d.clarification and "thing" not in d.clarification


def test_not_in_memory_is_never_overruled(make_store: Any, make_vectors: Any) -> None:
    from luma_rag.relevance import RelevanceModel

    luma, q = _store(make_store, make_vectors, rival_gap=0.4)
    floor = RelevanceModel(score_floor={"text": 0.99}, source="user")
    gate = GatedRetriever(luma, GateConfig(link_key="doc_id"), relevance=floor)
    d = gate.search(q, question="q", rho=0.05)
    assert d.decision == "not_in_memory" and d.numbers.group_safe is None
