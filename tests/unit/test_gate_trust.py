"""The gate you can trust: NOT_IN_MEMORY, completeness before ANSWER, and property trials on
real stores (HNSW and IVF-PQ tiers, near-duplicates, float32 ties, bridged items with
source_dim > target_dim): no ANSWER whose top-1 is not the store's exact top-1."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest

from luma_rag import BridgeConfig, Luma, LumaConfig
from luma_rag.answer import GateConfig, GatedRetriever, decide
from luma_rag.answer.base import Answer
from luma_rag.answer.decision import GateDecision
from luma_rag.answer.gate import NOT_IN_MEMORY_QUESTION
from luma_rag.answer.relevance_auto import store_relevance
from luma_rag.answer.scored import ScoredVerifyConfig, ScoredVerifyingAnswerer
from luma_rag.memory.hot import HotTierConfig
from luma_rag.memory.warm import WarmTierConfig
from luma_rag.relevance import RelevanceModel, RelevanceVerdict
from luma_rag.results import Hit
from tests.unit.test_gate import make_result

pytestmark = pytest.mark.timeout(300)


def test_irrelevant_evidence_is_never_answered_or_widened() -> None:
    result = make_result([0.9, 0.5, 0.4], 0.01, k=3)  # Safe@1: the gate would ANSWER
    assert decide(result).decision == "answer"
    verdict = RelevanceVerdict(False, "nothing in memory answers this: test", 0.9, 0.95)
    d = decide(result, GateConfig(k=3), verdict)
    assert d.decision == "not_in_memory" and d.evidence == () and d.k_used == 0
    assert d.clarification == NOT_IN_MEMORY_QUESTION and d.relevance is verdict
    assert d.to_dict()["relevance"]["relevant"] is False
    ok = decide(result, GateConfig(k=3), RelevanceVerdict(True, "relevant"))
    assert ok.decision == "answer"


def test_answer_needs_a_complete_candidate_set() -> None:
    result = make_result([0.9, 0.5, 0.4], 0.01, k=3)
    incomplete = dataclasses.replace(
        result, telemetry=dataclasses.replace(result.telemetry, complete=False, complete_at=0)
    )
    d = decide(incomplete, GateConfig(k=3))
    assert d.decision == "clarify" and "not proven complete" in d.reason
    at1 = dataclasses.replace(
        result, telemetry=dataclasses.replace(result.telemetry, complete=False, complete_at=1)
    )
    assert decide(at1, GateConfig(k=3)).decision == "answer"


def _bow(texts: list[str], dim: int = 32) -> np.ndarray:
    out = np.full((len(texts), dim), 1e-3)
    for i, t in enumerate(texts):
        for w in t.lower().split():
            out[i] += np.random.default_rng(zlib.crc32(w.encode())).standard_normal(dim)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_gate_says_not_in_memory_for_off_topic_questions(tmp_path) -> None:
    rng = np.random.default_rng(3)
    colours, shapes = ["red", "green", "blue", "pink"], ["circle", "star", "square", "hexagon"]
    texts = [f"a {rng.choice(colours)} {rng.choice(shapes)} on the left" for _ in range(80)]
    with Luma.open(tmp_path / "s", LumaConfig(dim=32)) as luma:
        luma.add_vectors(_bow(texts), texts=texts)
        model = store_relevance(luma, _bow, embedder="bow")
        assert model is not None and luma.calibration("relevance:bow") is not None
        assert store_relevance(luma, embedder="bow") == model  # loaded, not recalibrated
        gate = GatedRetriever(luma, GateConfig(k=3, k_max=5), relevance=model)
        q = "who won the 1998 world cup"
        d = gate.search(_bow([q])[0], question=q)
        assert d.decision == "not_in_memory" and d.gap_id is not None
        gaps = luma.knowledge_gaps()
        assert gaps and gaps[0]["query"] == q
        on = gate.search(_bow(["a red circle on the left"])[0], question="a red circle on the left")
        assert on.decision != "not_in_memory"
        assert on.numbers.rho_source == "unset"  # nobody calibrated rho for this embedder
    assert RelevanceModel().judge(q, "text", 0.5).relevant


def _exact_top(vectors: np.ndarray, q: np.ndarray) -> tuple[int, float]:
    s = vectors.astype(np.float64) @ q.astype(np.float64)
    return int(np.argmax(s)), float(s.max())


class _TrustsTheTop:
    """An adversarial verifier + answerer: every pool's first hit verifies (yes-score 1, read
    with probability 1), every other hit is rejected: the verification route to ANSWER fires
    whenever the rest of its conditions (the exact top-1) allow it."""

    def scores(self, pairs: list[tuple[str, Hit]]) -> list[float]:
        first = pairs[0][1].id if pairs else None
        return [1.0 if h.id == first else 0.0 for _, h in pairs]

    def answer(self, question: str, decision: GateDecision) -> Answer:
        return Answer("x", decision, [], {"answer_confidence": 1.0})


@pytest.mark.parametrize("tiers", ["hnsw", "ivfpq"])
def test_no_answer_whose_top1_is_not_the_exact_top1(tmp_path, tiers: str) -> None:
    """Near-duplicate clusters (copies 1e-7..1e-4 apart); queries moved towards a runner-up.
    Every decision also goes through the verified path with an adversarial verifier that
    trusts any top-1 (:class:`_TrustsTheTop`): its ANSWERs (certificate or verification
    route) must be the store's exact top-1 too."""
    rng = np.random.default_rng(20170 + (tiers == "ivfpq"))
    dim, n_base = 32, 700
    base = rng.standard_normal((n_base, dim))
    copies = base[rng.integers(0, n_base, 500)] + rng.standard_normal((500, dim)) * (
        10.0 ** rng.uniform(-7, -4, (500, 1))
    )
    vecs = np.vstack([base, copies]).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    hot = HotTierConfig(exact_below=0)  # HNSW from the first item: misses are not bounded
    if tiers == "ivfpq":
        cfg = LumaConfig(
            dim=dim, hot_budget=200, hot=hot, warm=WarmTierConfig(min_train=256, background=False)
        )
    else:
        cfg = LumaConfig(dim=dim, hot_budget=10_000, hot=hot)
    answers = routed = wrong_top = 0
    trusting = _TrustsTheTop()
    verified = ScoredVerifyingAnswerer(
        trusting, trusting, ScoredVerifyConfig(min_coverage=None, verified_top=0.5)
    )
    with Luma.open(tmp_path / tiers, cfg) as luma:
        ids = luma.add_vectors(vecs)
        stored = np.stack([it["vector"] for it in luma.get(ids)])
        gate = GatedRetriever(luma, GateConfig(k=3, k_max=5), record_gaps=False, relevance=None)
        for t in range(1200):
            i = int(rng.integers(len(vecs)))
            q = stored[i] + rng.standard_normal(dim) * rng.choice([0.0, 0.05, 0.3])
            if t % 3 == 0:  # move towards the exact runner-up
                s = stored.astype(np.float64) @ q
                j = int(np.argsort(-s)[1])
                q = q + (stored[j] - stored[int(np.argmax(s))]) * rng.uniform(0.3, 0.5)
            q = (q / np.linalg.norm(q)).astype(np.float32)
            rho = float(rng.choice([0.0, 1e-6, 0.01, 0.05]))
            d = gate.search(q, rho=rho)
            top, best = _exact_top(stored, q)

            def exact(hit_id: str, top: int = top, best: float = best, q: np.ndarray = q) -> bool:
                got = ids.index(hit_id)
                return got == top or float(stored[got].astype(np.float64) @ q) == best

            if d.decision == "answer":
                answers += 1
                assert exact(d.evidence[0].id)
            wrong_top += d.decision != "answer" and not exact(d.hits[0].id)
            out = verified.answer("what is it?", d)
            if out.decision.decision == "answer":
                routed += out.telemetry["verification"].get("route") == "verification"
                assert exact(out.decision.evidence[0].id), (d.numbers, d.reason)
    assert answers > 100  # the gate still answers
    assert routed > 15  # the verification route answered queries the certificate did not
    assert wrong_top > 50  # and many it must not answer: a top-1 the ANN tier got wrong


def test_bridged_items_keep_their_certified_top1_after_refits(tmp_path) -> None:
    """source_dim 48 > target_dim 24: stored items are renormalised projections; after the map
    moves, re-projecting every item with the new map must keep each certified top-1."""
    rng = np.random.default_rng(31)
    s_dim, t_dim = 48, 24
    cfg = LumaConfig(dim=t_dim, bridge=BridgeConfig(s_dim, t_dim, refresh_every=256))
    a = np.linalg.qr(rng.standard_normal((s_dim, s_dim)))[0][:, :t_dim]
    b = np.linalg.qr(rng.standard_normal((s_dim, s_dim)))[0][:, :t_dim]
    with Luma.open(tmp_path / "b", cfg) as luma:
        x = rng.standard_normal((256, s_dim))
        luma.add_bridge_pairs(x, x @ a)
        t1 = np.array(luma.bridge.transform)  # type: ignore[union-attr]
        src = rng.standard_normal((40, s_dim))
        null = np.linalg.svd(t1, full_matrices=True)[0][:, t_dim:]  # directions T drops
        src[:15] = rng.standard_normal((15, s_dim - t_dim)) @ null.T + 0.6 * src[:15]
        ids = luma.add_vectors(src, bridged=True)
        x2 = x + 0.02 * rng.standard_normal(x.shape)  # the same pairs, a little noise:
        luma.add_bridge_pairs(x2, x @ (0.99 * a + 0.01 * b))  # the map moves a little
        assert luma.bridge is not None and luma.bridge.version == 2
        now = luma.bridge.project(src).astype(np.float64)
        certified = 0
        for _ in range(1500):
            q = rng.standard_normal(t_dim)
            q = (q / np.linalg.norm(q)).astype(np.float32)
            res = luma.search(q, 3, rho=0.0)
            if res.telemetry.safe1 and res.telemetry.complete_at >= 1:
                certified += 1
                assert ids.index(res.hits[0].id) == int(np.argmax(now @ q.astype(np.float64)))
        assert certified > 20, (certified, luma.bridge.epsilon, luma.bridge.drift_since(1))
