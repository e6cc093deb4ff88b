"""LCEL: ``retriever | format_docs | prompt | chat model`` runs sync and async."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_lumarag import LumaRetriever

from luma_rag import Luma

PROMPT = ChatPromptTemplate.from_template("Answer from this context only:\n\n{context}")


def format_docs(docs: Sequence[Document]) -> str:
    return "\n\n".join(doc.page_content for doc in docs)


@pytest.fixture(params=["embeddings", "tiny"])
def retriever(
    request: pytest.FixtureRequest, fake_luma: Luma, fake_embeddings: DeterministicFakeEmbedding
) -> LumaRetriever:
    if request.param == "tiny":
        return LumaRetriever(luma=request.getfixturevalue("tiny_luma"), k=2)
    return LumaRetriever(luma=fake_luma, embeddings=fake_embeddings, k=2)


def test_chain_invoke(retriever: LumaRetriever) -> None:
    # A one-variable prompt takes the formatted string as is (mypy sees dict input only).
    llm = FakeListChatModel(responses=["A red circle."])
    chain = retriever | format_docs | PROMPT | llm  # type: ignore[operator]
    out = chain.invoke("which shape is red?")
    assert isinstance(out, AIMessage) and out.content == "A red circle."
    prompt_value = (retriever | format_docs | PROMPT).invoke("a red circle")  # type: ignore[operator]
    text = prompt_value.to_string()
    context = format_docs(retriever.invoke("a red circle"))
    assert context and context in text


async def test_chain_ainvoke(retriever: LumaRetriever) -> None:
    chain = (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | ChatPromptTemplate.from_template("Context: {context}\nQuestion: {question}")
        | FakeListChatModel(responses=["A blue square."])
        | StrOutputParser()
    )
    assert await chain.ainvoke("which shape is blue?") == "A blue square."
    assert chain.invoke("which shape is blue?") == "A blue square."


def test_chain_acts_on_the_certificate(
    fake_luma: Luma, fake_embeddings: DeterministicFakeEmbedding
) -> None:
    """The gate in miniature: answer when Safe@1 holds, else ask the user to clarify."""

    def gate(docs: list[Document]) -> str:
        if docs and docs[0].metadata["safe1"]:
            return f"ANSWER from {docs[0].page_content}"
        return "CLARIFY: " + " or ".join(d.page_content for d in docs)

    retriever = LumaRetriever(luma=fake_luma, embeddings=fake_embeddings, k=2, rho=0.0)
    chain = retriever | RunnableLambda(gate)
    assert chain.invoke("a red circle") == "ANSWER from a red circle"
    # by default ρ is calibrated for these (hash) embeddings: any perturbation moves them
    # completely, so nothing is certified — never the vacuous ρ = 0
    calibrated = LumaRetriever(luma=fake_luma, embeddings=fake_embeddings, k=2)
    assert (calibrated | RunnableLambda(gate)).invoke("a red circle").startswith("CLARIFY")
    noisy = LumaRetriever(luma=fake_luma, embeddings=fake_embeddings, k=2, rho=1.0)
    assert (noisy | RunnableLambda(gate)).invoke("a red circle").startswith("CLARIFY")
