"""LangChain's standard retriever suite, run against ``LumaRetriever``."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.retrievers import BaseRetriever
from langchain_lumarag import LumaRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests

from luma_rag import Luma


class TestLumaRetrieverStandard(RetrieversIntegrationTests):
    """The engine's own encoder (the shipped tiny CLIP) embeds the queries."""

    params: dict[str, Any]

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _engine(cls, tiny_luma: Luma) -> None:
        cls.params = {"luma": tiny_luma}

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return LumaRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return self.params

    @property
    def retriever_query_example(self) -> str:
        return "a red circle"


class TestLumaRetrieverStandardWithEmbeddings(RetrieversIntegrationTests):
    """A store built by ``LumaVectorStore`` with other embeddings; they embed the queries."""

    params: dict[str, Any]

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _engine(cls, fake_luma: Luma, fake_embeddings: DeterministicFakeEmbedding) -> None:
        cls.params = {"luma": fake_luma, "embeddings": fake_embeddings}

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return LumaRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return self.params

    @property
    def retriever_query_example(self) -> str:
        return "a red circle"
