"""LangChain's standard vector store suite, run against ``LumaVectorStore``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_lumarag import LumaVectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests


class TestLumaVectorStoreStandard(VectorStoreIntegrationTests):
    """The framework's suite, with its own 6-d fake embeddings."""

    @pytest.fixture
    def vectorstore(self, tmp_path: Path) -> Iterator[VectorStore]:
        store = LumaVectorStore(self.get_embeddings(), path=tmp_path / "store")
        try:
            yield store
        finally:
            store.close()


class TestLumaVectorStoreStandardTemporary(VectorStoreIntegrationTests):
    """The same suite on a temporary store (no path), which close() deletes."""

    @pytest.fixture
    def vectorstore(self) -> Iterator[VectorStore]:
        store = LumaVectorStore(self.get_embeddings())
        path = store.luma.path
        try:
            yield store
        finally:
            store.close()
            assert not path.exists()
