"""Tests of luma_rag.answer.gate: ANSWER / WIDEN / CLARIFY on synthetic certificates and on
real stores, the re-query with k_max, clarifying questions and knowledge gaps."""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luma_rag import Luma, LumaConfig
from luma_rag.answer import (
    GateConfig,
    GatedRetriever,
    clarifying_question,
    decide,
    describe_hit,
    gated_query,
)
from luma_rag.errors import ConfigError, InvalidInputError
from luma_rag.results import Hit, QueryResult, Telemetry
from luma_rag.safety import certify, smallest_safe_k

# -- synthetic results --------------------------------------------------------------------------


def make_result(
    scores: Sequence[float] | np.ndarray,
    tau: float | Sequence[float] | np.ndarray,
    k: int,
    *,
    metadata: Sequence[dict[str, Any]] | None = None,
    texts: Sequence[str | None] | None = None,
    modalities: Sequence[str] | None = None,
) -> QueryResult:
    """A QueryResult as the engine builds it: certificate over all candidates, top-k hits."""
    n = len(scores)
    taus = np.full(n, tau, dtype=np.float64) if np.isscalar(tau) else np.asarray(tau, float)
    cert = certify(np.asarray(scores, dtype=np.float64), taus, k)
    hits = [
        Hit(
            id=f"item{i}",
            score=float(scores[i]),
            tier="hot",
            rank=i,
            modality=modalities[i] if modalities else "image",
            metadata=dict(metadata[i]) if metadata else {},
            text=texts[i] if texts else None,
            source=None,
        )
        for i in range(min(k, n))
    ]
    tel = Telemetry(
        margin_top2=cert.margin_top2,
        delta_k=cert.delta_k,
        epsilon=0.0,
        epsilon_items=0.0,
        zeta_mean=0.0,
        zeta_max=0.0,
        rho=float(taus[0]) if n else 0.0,
        safe1=cert.safe1,
        safek=cert.safek,
        safe_k_min=cert.safe_prefix,
        complete=True,
        k=k,
        n_candidates=n,
        latency_ms=0.1,
    )
    return QueryResult(hits=hits, telemetry=tel, certificate=cert)


def test_gate_config_validates_and_round_trips() -> None:
    cfg = GateConfig(k=3, k_max=7, max_options=4)
    assert GateConfig.from_json(cfg.to_json()) == cfg
    for bad in ({"k": 0}, {"k": 5, "k_max": 4}, {"k": True}, {"k": 2.0}, {"max_options": 1}):
        with pytest.raises(ConfigError):
            GateConfig(**bad)


def test_safe_at_1_answers_with_top_k_as_context() -> None:
    result = make_result([0.9, 0.5, 0.45, 0.4, 0.3, 0.2, 0.1], 0.05, k=5)
    d = decide(result, GateConfig(k=3, k_max=5))
    assert d.decision == "answer" and d.k_used == 1 and d.settled
    assert [h.id for h in d.evidence] == ["item0", "item1", "item2"]
    assert d.numbers.safe1 and d.numbers.safe_k == 1
    assert d.numbers.slack == pytest.approx((0.9 - 0.05) - (0.5 + 0.05))
    assert d.clarification is None
    json.dumps(d.to_dict())  # travels in document metadata


def test_widens_to_the_smallest_safe_k() -> None:
    scores = [0.80, 0.79, 0.78, 0.40, 0.39, 0.30, 0.20]
    d = decide(make_result(scores, 0.02, k=5), GateConfig(k=5, k_max=5))
    assert d.decision == "widen" and d.k_used == 3
    assert d.k_used == smallest_safe_k(scores, [0.02] * 7, 5)
    assert [h.id for h in d.evidence] == ["item0", "item1", "item2"]
    assert d.numbers.safe_k == 3 and not d.numbers.safe1
    assert d.numbers.slack == pytest.approx((0.78 - 0.02) - (0.40 + 0.02))
    assert d.numbers.delta_k == pytest.approx(0.78 - 0.40)


def test_widen_slack_is_exact_at_the_certified_k() -> None:
    scores = [0.80, 0.79, 0.78, 0.40, 0.30]
    d = decide(make_result(scores, 0.02, k=3), GateConfig(k=3, k_max=3))
    assert d.decision == "widen" and d.k_used == 3
    assert d.numbers.slack == pytest.approx(0.34)


def test_decision_matches_the_full_candidate_certificate() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(2, 14))
        scores = np.sort(rng.uniform(0, 1, n))[::-1]
        tau = rng.uniform(0, 0.1, n)
        cfg = GateConfig(k=4, k_max=8)
        d = decide(make_result(scores, tau, k=cfg.k_max), cfg)
        expected = smallest_safe_k(scores, tau, min(cfg.k_max, n - 1)) if n > 1 else None
        if expected == 1:
            assert d.decision == "answer"
        elif expected is None:
            assert d.decision == "clarify" and d.settled
        else:
            assert d.decision == "widen" and d.k_used == expected
            assert d.numbers.slack > 0


def test_result_fetched_with_small_k_is_not_settled() -> None:
    scores = [0.80, 0.79, 0.79, 0.78, 0.78, 0.77, 0.77, 0.30, 0.20, 0.10, 0.05]
    cfg = GateConfig(k=5, k_max=10)
    first = decide(make_result(scores, 0.02, k=5), cfg)
    assert first.decision == "clarify" and not first.settled
    assert "re-query with k=10" in first.reason
    second = decide(make_result(scores, 0.02, k=10), cfg)
    assert second.decision == "widen" and second.k_used == 7


def test_everything_close_clarifies_with_leading_candidates() -> None:
    scores = [0.80, 0.79, 0.79, 0.78, 0.78, 0.77]
    meta = [
        {"shape": "circle", "color": "red", "position": "left"},
        {"shape": "square", "color": "blue", "position": "top"},
        {"shape": "circle", "color": "green", "position": "top"},
        {"shape": "star", "color": "red", "position": "left"},
        {"shape": "star", "color": "red", "position": "right"},
        {"shape": "star", "color": "red", "position": "top"},
    ]
    d = decide(make_result(scores, 0.05, k=6, metadata=meta), GateConfig(k=6, k_max=6))
    assert d.decision == "clarify" and d.settled and d.k_used == 0
    assert [h.id for h in d.evidence] == ["item0", "item1", "item2"]
    assert d.clarification == (
        "Did you mean the red circle on the left, the blue square at the top or "
        "the green circle at the top?"
    )


def test_widening_to_every_candidate_is_vacuous() -> None:
    # A certificate over the returned hits only: Safe@n holds trivially and certifies nothing.
    d = decide(make_result([0.5, 0.5, 0.5], 0.01, k=3), GateConfig(k=3, k_max=10))
    assert d.decision == "clarify" and d.settled


def test_single_candidate_answers_and_empty_result_clarifies() -> None:
    assert decide(make_result([0.3], 0.05, k=5)).decision == "answer"
    empty = decide(make_result([], 0.05, k=5))
    assert empty.decision == "clarify" and empty.evidence == ()
    assert empty.clarification is not None and "nothing" in empty.clarification
    assert empty.numbers.to_dict()["slack"] is None


def test_more_hits_than_the_certificate_covers_is_refused() -> None:
    good = make_result([0.9, 0.5], 0.01, k=2)
    bad = QueryResult(good.hits, good.telemetry, certify([0.9], [0.01], 1))
    with pytest.raises(InvalidInputError, match="certificate covers 1"):
        decide(bad)


# -- clarifying questions -----------------------------------------------------------------------


def _hit(i: int, **fields: Any) -> Hit:
    fields.setdefault("modality", "image")
    return Hit(id=f"h{i}", score=0.5, tier="hot", rank=i, **fields)


def test_clarifying_question_names_the_attributes_that_differ() -> None:
    a = _hit(0, metadata={"shape": "circle", "color": "red", "position": "left", "size": "small"})
    b = _hit(1, metadata={"shape": "square", "color": "blue", "position": "top", "size": "small"})
    assert clarifying_question([a, b]) == (
        "Did you mean the red circle on the left or the blue square at the top?"
    )
    # Same shape and place: only the colour tells them apart; the noun stays as the head.
    c = _hit(2, metadata={"attributes": {"shape": "circle", "color": "blue", "position": "left"}})
    a2 = _hit(3, metadata={"attributes": {"shape": "circle", "color": "red", "position": "left"}})
    assert clarifying_question([a2, c]) == "Did you mean the red circle or the blue circle?"


def test_clarifying_question_falls_back_to_text_modality_and_ids() -> None:
    t = [_hit(0, text="a photo of a cat"), _hit(1, text="a  drawing of a cat")]
    assert clarifying_question(t) == "Did you mean “a photo of a cat” or “a drawing of a cat”?"
    m = [_hit(0), _hit(1, modality="audio")]
    assert clarifying_question(m) == "Did you mean the image or the audio clip?"
    same = [_hit(0, metadata={"id": "x"}), _hit(1, metadata={"id": "y"})]
    q = clarifying_question(same)
    assert "'h0'" in q and "'h1'" in q and q.startswith("Did you mean")
    assert clarifying_question([_hit(0, text="a red star")]) == "Did you mean “a red star”?"


def test_describe_hit_prefers_text_then_attributes_then_file() -> None:
    assert describe_hit(_hit(0, text=" a  red\ncircle ")) == "a red circle"
    meta = {"shape": "circle", "color": "red", "position": "left"}
    assert describe_hit(_hit(0, metadata=meta)) == "the red circle on the left"
    assert describe_hit(_hit(0, source="/data/img/cat.png")) == "cat.png"
    assert describe_hit(_hit(0)) == "item h0"


# -- real stores --------------------------------------------------------------------------------

DIM = 32


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _near(base: np.ndarray, count: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([_unit(base + spread * rng.standard_normal(DIM)) for _ in range(count)])


COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "pink", "white"]
SHAPES = ["circle", "square", "star", "cross"]


def _store_with_cluster(make_store: Any, make_vectors: Any, count: int) -> tuple[Luma, Any]:
    """40 background items, ``count`` near-duplicates around e0, one distinct item at e1."""
    luma = make_store(DIM)
    luma.add_vectors(make_vectors(40, DIM, seed=3), ids=[f"bg{i}" for i in range(40)])
    base = np.zeros(DIM)
    base[0] = 1.0
    cluster = _near(base, count, 0.01, seed=count)
    meta = [{"shape": SHAPES[i % 4], "color": COLORS[i % 8]} for i in range(count)]
    luma.add_vectors(cluster, meta, ids=[f"dup{i}" for i in range(count)], modality="image")
    distinct = np.zeros(DIM, dtype=np.float32)
    distinct[1] = 1.0
    luma.add_vectors(distinct[None], [{"shape": "hexagon"}], ids=["solo"], modality="image")
    return luma, base.astype(np.float32)


class CountingLuma:
    """Forwards to a store, counting searches (to observe the gate's re-query)."""

    def __init__(self, luma: Luma) -> None:
        self.luma = luma
        self.ks: list[int] = []

    def search(self, vector: Any, k: int, **kw: Any) -> QueryResult:
        self.ks.append(k)
        return self.luma.search(vector, k, **kw)

    def record_gap(self, query: str, detail: Any) -> int:
        return self.luma.record_gap(query, detail)


def test_store_distinct_query_answers_ambiguous_one_widens(
    make_store: Any, make_vectors: Any
) -> None:
    luma, base = _store_with_cluster(make_store, make_vectors, 2)
    gate = GatedRetriever(luma, GateConfig(k=5, k_max=10))
    solo = np.zeros(DIM, dtype=np.float32)
    solo[1] = 1.0
    d = gate.search(solo, question="the hexagon", rho=0.05)
    assert d.decision == "answer" and d.evidence[0].id == "solo"
    d = gate.search(base, question="the shape at e0", rho=0.05)
    assert d.decision == "widen" and d.k_used == 2
    assert {h.id for h in d.evidence} == {"dup0", "dup1"}
    assert luma.knowledge_gaps() == []


def test_store_requery_with_k_max_settles_a_wider_set(make_store: Any, make_vectors: Any) -> None:
    luma, base = _store_with_cluster(make_store, make_vectors, 4)
    counting = CountingLuma(luma)
    gate = GatedRetriever(counting, GateConfig(k=2, k_max=6))  # type: ignore[arg-type]
    d = gate.search(base, question="which shape?", rho=0.05)
    assert counting.ks == [2, 6]
    assert d.requeried and d.decision == "widen" and d.k_used == 4
    assert {h.id for h in d.evidence} == {f"dup{i}" for i in range(4)}
    counting.ks.clear()
    gate.search(np.eye(DIM, dtype=np.float32)[1], question="hexagon", rho=0.05)
    assert counting.ks == [2]  # Safe@1 at once: no re-query


def test_store_clarify_records_a_knowledge_gap(make_store: Any, make_vectors: Any) -> None:
    luma, base = _store_with_cluster(make_store, make_vectors, 8)
    gate = GatedRetriever(luma, GateConfig(k=3, k_max=5))
    d = gate.search(base, question="the shape near e0", rho=0.05)
    assert d.decision == "clarify" and d.requeried and d.settled
    assert d.gap_id is not None and len(d.evidence) == 3
    assert d.clarification is not None and d.clarification.startswith("Did you mean the ")
    named = {h.metadata["color"] for h in d.evidence}
    assert all(color in d.clarification for color in named)  # the colours tell them apart
    (gap,) = luma.knowledge_gaps()
    assert gap["query"] == "the shape near e0"
    detail = json.dumps(gap)
    assert all(h.id in detail for h in d.evidence) and "margin_top2" in detail


class TableEncoder:
    """A text encoder from a lookup table (unknown texts: seeded random unit vectors)."""

    name = "table"
    dim = DIM
    modalities = frozenset({"text"})

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def encode_text(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        self.calls = getattr(self, "calls", 0) + 1
        rows = []
        for t in texts:
            v = self.table.get(t)
            if v is None:
                v = np.random.default_rng(zlib.crc32(t.encode())).standard_normal(DIM)
            rows.append(_unit(np.asarray(v, dtype=np.float64)))
        return np.stack(rows)

    def encode_image(self, images: Sequence[Any], *, batch_size: int = 64) -> np.ndarray:
        raise NotImplementedError

    def encode_audio(self, clips: Sequence[Any], *, batch_size: int = 16) -> np.ndarray:
        raise NotImplementedError


def test_gated_text_query_through_an_encoder(tmp_path: Path, make_vectors: Any) -> None:
    e = np.eye(DIM)
    encoder = TableEncoder({"a red circle": e[0], "a circle or a square": e[2] + e[3]})
    with Luma.open(tmp_path / "s", LumaConfig(dim=DIM), encoder=encoder) as luma:  # type: ignore[arg-type]
        luma.set_rho("text", 0.05)
        luma.add_vectors(make_vectors(30, DIM, seed=5))
        luma.add_vectors(e[[0, 2, 3]], ids=["red", "sq", "ci"], texts=["red", "sq", "ci"])
        d = gated_query(luma, "a red circle")
        assert d.decision == "answer" and d.evidence[0].id == "red"
        # k = k_max = 1 fetches one hit; the gate re-queries for options to name.
        encoder.calls = 0
        d = gated_query(luma, "a circle or a square", config=GateConfig(k=1, k_max=1))
        assert d.decision == "clarify" and d.gap_id is not None and d.requeried
        assert encoder.calls == 1  # embedded once; the re-query searches by the same vector
        assert d.clarification in ("Did you mean “sq” or “ci”?", "Did you mean “ci” or “sq”?")
        assert luma.knowledge_gaps()[0]["query"] == "a circle or a square"
        assert math.isfinite(d.numbers.rho) and d.numbers.rho == pytest.approx(0.05)


def test_fetch_k_carries_the_deeper_ranking_without_changing_the_decision(
    make_store: Any, make_vectors: Any
) -> None:
    luma, base = _store_with_cluster(make_store, make_vectors, 2)
    plain = GatedRetriever(luma, GateConfig(k=3, k_max=5)).search(base, rho=0.05)
    counting = CountingLuma(luma)
    deep = GatedRetriever(counting, GateConfig(k=3, k_max=5, fetch_k=12)).search(  # type: ignore[arg-type]
        base, rho=0.05
    )
    assert counting.ks[-1] == 12 and len(deep.hits) == 12
    assert [h.id for h in deep.hits[: len(plain.hits)]] == [h.id for h in plain.hits]
    assert (deep.decision, deep.k_used, deep.evidence) == (
        plain.decision,
        plain.k_used,
        plain.evidence,
    )
    with pytest.raises(ConfigError, match="fetch_k"):
        GateConfig(k=5, fetch_k=4)


def test_gate_bounds_query_text_like_luma_query(tmp_path: Path, make_vectors: Any) -> None:
    from luma_rag._checks import MAX_ENCODED_CHARS

    seen: list[int] = []

    class Recording(TableEncoder):
        def encode_text(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
            seen.extend(len(t) for t in texts)
            return super().encode_text(texts, batch_size=batch_size)

    with Luma.open(tmp_path / "s", LumaConfig(dim=DIM), encoder=Recording({})) as luma:  # type: ignore[arg-type]
        luma.set_rho("text", 0.05)
        luma.add_vectors(make_vectors(10, DIM, seed=5))
        seen.clear()
        gated_query(luma, "x" * (MAX_ENCODED_CHARS * 3), record_gaps=False)
        assert seen == [MAX_ENCODED_CHARS]  # one encoder call, on the bounded prefix
