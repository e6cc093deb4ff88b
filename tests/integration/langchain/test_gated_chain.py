"""``build_gated_chain``: the answer gate (ANSWER / WIDEN / CLARIFY) as one LangChain runnable.

One crafted 8-d store: a distinct hexagon at e1, two near-duplicate squares around e2 (a stable
pair: WIDEN) and twelve near-duplicate circles around e0 (no stable set of ten or fewer:
CLARIFY), over 40 background vectors. Queries are embedded from a lookup table.
"""

from __future__ import annotations

import json
import operator
import zlib
from collections.abc import Iterator, Sequence
from functools import reduce
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.utils import AddableDict
from langchain_lumarag import LumaRetriever, build_gated_chain
from langchain_lumarag.gated import LumaGatedChain

from luma_rag import Luma
from luma_rag.answer import Answer, EvidenceAnswerer, GateConfig, GateDecision
from luma_rag.errors import InvalidInputError

DIM = 8
E = np.eye(DIM)
COLORS = [
    "red", "blue", "green", "yellow", "purple", "orange",
    "pink", "white", "black", "grey", "brown", "cyan",
]  # fmt: skip
QUERIES = {"the hexagon": E[1], "a square": E[2], "a circle": E[0]}
KEYS = ("answer", "decision", "citations", "telemetry")


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


class TableEncoder:
    """Text from a lookup table (else a seeded random vector); an "image" is a file holding
    the text it depicts."""

    name = "table"
    dim = DIM
    modalities: frozenset[Literal["text", "image", "audio"]] = frozenset({"text", "image"})

    def encode_text(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        rows = []
        for t in texts:
            v = QUERIES.get(t)
            if v is None:
                v = np.random.default_rng(zlib.crc32(t.encode())).standard_normal(DIM)
            rows.append(_unit(np.asarray(v, dtype=np.float64)))
        return np.stack(rows)

    def encode_image(self, images: Sequence[Any], *, batch_size: int = 64) -> np.ndarray:
        return self.encode_text([Path(p).read_text() for p in images])

    def encode_audio(self, clips: Sequence[Any], *, batch_size: int = 16) -> np.ndarray:
        raise NotImplementedError


def _near(base: np.ndarray, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([_unit(base + 0.01 * rng.standard_normal(DIM)) for _ in range(count)])


@pytest.fixture(scope="module")
def luma(tmp_path_factory: pytest.TempPathFactory, make_vectors: Any) -> Iterator[Luma]:
    store = Luma.open(tmp_path_factory.mktemp("gated") / "store", encoder=TableEncoder())
    store.set_rho("text", 0.05)
    store.set_rho("image", 0.05)
    store.add_vectors(make_vectors(40, DIM, seed=3), ids=[f"bg{i}" for i in range(40)])
    circles = [{"shape": "circle", "color": c} for c in COLORS]
    store.add_vectors(
        _near(E[0], len(COLORS), seed=1),
        circles,
        ids=[f"circle{i}" for i in range(len(COLORS))],
        modality="image",
        texts=[f"a {c} circle" for c in COLORS],
    )
    store.add_vectors(
        _near(E[2], 2, seed=2),
        [{"shape": "square", "color": "pale"}, {"shape": "square", "color": "pastel"}],
        ids=["square0", "square1"],
        texts=["a pale square", "a pastel square"],
    )
    store.add_vectors(
        E[1:2].astype(np.float32),
        [{"shape": "hexagon", "color": "purple"}],
        ids=["hexagon"],
        texts=["a purple hexagon"],
    )
    yield store
    store.close()


@pytest.fixture(scope="module")
def chain(luma: Luma) -> LumaGatedChain:
    return build_gated_chain(LumaRetriever(luma=luma, k=4), EvidenceAnswerer())


def _answer_of(chunks: Sequence[dict[str, Any]]) -> str:
    return "".join(c["answer"] for c in chunks if "answer" in c)


def _gaps(luma: Luma, query: str) -> list[dict[str, Any]]:
    return [g for g in luma.knowledge_gaps(limit=1000) if g["query"] == query]


# -- the three decisions ------------------------------------------------------------------------


def test_distinct_query_answers_with_citations(chain: LumaGatedChain, luma: Luma) -> None:
    out = chain.invoke("the hexagon")
    assert list(out) == list(KEYS)
    assert out["decision"]["decision"] == "answer" and out["decision"]["k_used"] == 1
    assert out["answer"].startswith("Top match [1]: a purple hexagon")
    top = out["citations"][0]
    assert top["id"] == "hexagon" and top["rank"] == 1 and top["score"] == pytest.approx(1.0)
    assert len(out["citations"]) == 4  # the retriever's k: the answer's context
    assert out["decision"]["evidence"] == [c["id"] for c in out["citations"]]
    assert out["telemetry"]["safe1"] is True and out["telemetry"]["rho"] == pytest.approx(0.05)
    assert out["telemetry"]["answerer"] == "evidence"
    json.dumps(out, allow_nan=False)  # plain JSON-friendly values
    assert _gaps(luma, "the hexagon") == []


def test_near_duplicates_widen_to_the_stable_pair(chain: LumaGatedChain) -> None:
    out = chain.invoke("a square")
    assert out["decision"]["decision"] == "widen" and out["decision"]["k_used"] == 2
    assert {c["id"] for c in out["citations"]} == {"square0", "square1"}
    assert "(Safe@2)" in out["answer"] and "[1]" in out["answer"] and "[2]" in out["answer"]
    assert out["telemetry"]["safe1"] is False and out["telemetry"]["safe_k"] == 2
    json.dumps(out, allow_nan=False)


def test_near_duplicates_clarify_and_record_a_gap(chain: LumaGatedChain, luma: Luma) -> None:
    out = chain.invoke("a circle")
    decision = out["decision"]
    assert decision["decision"] == "clarify" and decision["k_used"] == 0
    assert out["answer"] == decision["clarification"]
    assert out["answer"].startswith("Did you mean")
    assert all(c["id"].startswith("circle") for c in out["citations"])
    assert all(c["text"].split()[1] in out["answer"] for c in out["citations"])  # the colours
    (gap,) = _gaps(luma, "a circle")
    assert gap["gap"] == decision["gap_id"]
    assert {c["id"] for c in gap["candidates"]} == {c["id"] for c in out["citations"]}
    json.dumps(out, allow_nan=False)


def test_near_duplicates_never_answer_confidently(luma: Luma) -> None:
    for config in (GateConfig(k=1, k_max=1), GateConfig(k=3, k_max=5), GateConfig(k=10, k_max=20)):
        chain = build_gated_chain(luma, gate_config=config, record_gaps=False)
        for query in ("a square", "a circle"):
            assert chain.invoke(query)["decision"]["decision"] in ("widen", "clarify")


# -- what the chain is built from ---------------------------------------------------------------


def test_an_engine_directly_with_its_calibrated_rho(luma: Luma) -> None:
    chain = build_gated_chain(luma)  # EvidenceAnswerer and GateConfig() by default
    out = chain.invoke("the hexagon")
    assert out["decision"]["decision"] == "answer" and len(out["citations"]) == 5
    assert out["telemetry"]["rho"] == pytest.approx(0.05)
    with pytest.raises(TypeError, match="LumaRetriever or an open"):
        build_gated_chain("./store")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="answer"):
        build_gated_chain(luma, object())  # type: ignore[arg-type]


def test_the_retrievers_rho_and_filters_are_used(luma: Luma) -> None:
    noisy = build_gated_chain(LumaRetriever(luma=luma, rho=1.0), record_gaps=False)
    out = noisy.invoke("the hexagon")
    assert out["decision"]["decision"] == "clarify" and out["telemetry"]["rho"] == 1.0
    assert _gaps(luma, "the hexagon") == []  # record_gaps=False
    red = build_gated_chain(LumaRetriever(luma=luma, filters={"color": "red"}))
    out = red.invoke("a circle")
    assert out["decision"]["decision"] == "answer"
    assert [c["id"] for c in out["citations"]] == ["circle0"]


def test_an_image_query_records_its_gap_by_path(
    chain: LumaGatedChain, luma: Luma, tmp_path: Path
) -> None:
    image = tmp_path / "query.png"
    image.write_text("a circle")  # TableEncoder: the picture of a circle
    out = chain.invoke(str(image))
    assert out["decision"]["decision"] == "clarify"
    assert _gaps(luma, f"image query: {image}")[0]["gap"] == out["decision"]["gap_id"]
    with pytest.raises(InvalidInputError, match="no such file"):
        chain.invoke(str(tmp_path / "missing.png"))


# -- streaming, async, composition --------------------------------------------------------------


@pytest.mark.parametrize("query", ["the hexagon", "a square", "a circle"])
def test_stream_chunks_add_up_to_the_output(chain: LumaGatedChain, query: str) -> None:
    out = chain.invoke(query)
    chunks = list(chain.stream(query))
    assert all(isinstance(c, AddableDict) for c in chunks)
    assert len([c for c in chunks if "answer" in c]) >= 2  # "" first, then the text
    assert _answer_of(chunks) == out["answer"]
    total = reduce(operator.add, chunks)
    assert list(total) == list(KEYS)
    assert total["citations"] == out["citations"]
    strip = {"gap_id"}  # every CLARIFY logs a new gap
    assert {k: v for k, v in total["decision"].items() if k not in strip} == {
        k: v for k, v in out["decision"].items() if k not in strip
    }
    assert total["telemetry"]["streamed"] is True
    assert total["telemetry"]["decision"] == out["decision"]["decision"]
    json.dumps(total, allow_nan=False)


async def test_ainvoke_and_astream(chain: LumaGatedChain) -> None:
    out = await chain.ainvoke("a square")
    assert out["decision"]["decision"] == "widen"
    assert out == {**chain.invoke("a square"), "telemetry": out["telemetry"]}
    chunks = [c async for c in chain.astream("a square")]
    assert _answer_of(chunks) == out["answer"]
    assert chunks[0]["decision"]["decision"] == "widen" and "telemetry" in chunks[-1]


class PlainAnswerer:
    """An answerer that cannot stream; records the questions it is asked."""

    name = "plain"

    def __init__(self) -> None:
        self.questions: list[str] = []

    def answer(self, question: str, decision: GateDecision) -> Answer:
        self.questions.append(question)
        return Answer(f"{decision.decision}: {question}", decision, [], {"answerer": self.name})


async def test_an_answerer_that_cannot_stream_yields_one_chunk(luma: Luma) -> None:
    answerer = PlainAnswerer()
    chain = build_gated_chain(LumaRetriever(luma=luma), answerer)
    out = chain.invoke("the hexagon")
    # the chain makes answers readable: an uncited ANSWER gets its inline citation [1]
    assert out == {"answer": "answer: the hexagon [1]", "decision": out["decision"],
                   "citations": [], "telemetry": {"answerer": "plain",
                                                  "readable": "citations_added"}}  # fmt: skip
    assert list(chain.stream("the hexagon")) == [out]
    assert [c async for c in chain.astream("the hexagon")] == [out]
    assert answerer.questions == ["the hexagon"] * 3


def test_composes_with_other_runnables(chain: LumaGatedChain) -> None:
    pick = chain | RunnableLambda(lambda out: out["decision"]["decision"])
    assert pick.batch(["the hexagon", "a square"]) == ["answer", "widen"]
    upstream = RunnableLambda(lambda q: q.lower()) | chain
    chunks = list(upstream.stream("A SQUARE"))
    assert _answer_of(chunks) == chain.invoke("a square")["answer"]


# -- any LangChain chat model as the answerer ---------------------------------------------------


def test_a_chat_model_answers_with_the_decision_in_its_prompt(luma: Luma) -> None:
    from langchain_core.language_models import FakeListChatModel
    from langchain_core.runnables import RunnableLambda
    from langchain_lumarag import ChatModelAnswerer

    prompts: list[str] = []

    def model(prompt: Any) -> str:
        prompts.append(str(prompt))
        return "It is purple [1]."

    chain = build_gated_chain(LumaRetriever(luma=luma, k=4), RunnableLambda(model))
    out = chain.invoke("the hexagon")
    assert out["answer"] == "It is purple [1]." and out["decision"]["decision"] == "answer"
    assert "certified best match" in prompts[-1] and "a purple hexagon" in prompts[-1]
    assert out["telemetry"]["answerer"] == "RunnableLambda"
    chain.invoke("a circle")  # CLARIFY: the model is told not to answer
    assert "Do not answer the question" in prompts[-1] and "Did you mean" in prompts[-1]
    chat = FakeListChatModel(responses=["Pale or pastel?"])
    streamed = build_gated_chain(LumaRetriever(luma=luma, k=4), chat, record_gaps=False)
    chunks = list(streamed.stream("a square"))
    # a WIDEN reply without citations gets its inline marks (ReadableAnswerer)
    assert _answer_of(chunks) == "Pale or pastel? [1]–[2]"
    with pytest.raises(TypeError):
        ChatModelAnswerer(object())  # type: ignore[arg-type]
