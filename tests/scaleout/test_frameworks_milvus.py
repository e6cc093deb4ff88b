"""LangChain's standard suites and the LlamaIndex store tests on Milvus, with media in S3.

The stores open ``milvus://…?media=s3`` URIs on the session's servers; the LlamaIndex tests
are the ones in tests/integration/llama_index, re-collected with Milvus-backed fixtures.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore
from langchain_lumarag import LumaRetriever
from langchain_lumarag import LumaVectorStore as LangChainStore
from langchain_tests.integration_tests import (
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)
from llama_index.vector_stores.lumarag import LumaVectorStore as LlamaStore

from luma_rag import Luma, LumaConfig
from luma_rag.backends import MilvusBackend, MilvusConfig
from luma_rag.backends.servers import LocalServer

pytestmark = pytest.mark.timeout(300)

LLAMA = Path(__file__).parents[1] / "integration" / "llama_index"


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _uri(server: LocalServer, prefix: str) -> str:
    return f"milvus://{server.endpoint}/{prefix}_{uuid.uuid4().hex[:10]}?media=s3"


def _drop(uri: str) -> None:
    be = MilvusBackend(MilvusConfig.from_uri(uri.partition("?")[0]))
    be.drop()
    be.close()


# -- LangChain -------------------------------------------------------------------------------------


class TestLangChainVectorStoreOnMilvus(VectorStoreIntegrationTests):
    """The framework's vector store suite against a Milvus collection (media store: S3)."""

    @pytest.fixture
    def vectorstore(
        self, milvus_server: LocalServer, s3_env: dict[str, Any]
    ) -> Iterator[VectorStore]:
        uri = _uri(milvus_server, "lc")
        store = LangChainStore(self.get_embeddings(), path=uri)
        try:
            yield store
        finally:
            store.close()
            _drop(uri)


class TestLangChainRetrieverOnMilvus(RetrieversIntegrationTests):
    """The retriever suite; the engine's own tiny CLIP embeds documents and queries."""

    params: dict[str, Any]

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _engine(cls, milvus_server: LocalServer, s3_server: LocalServer) -> Iterator[None]:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in s3_server.env.items():
                mp.setenv(key, value)
            uri = _uri(milvus_server, "lcr")
            luma = Luma.open(uri, encoder="luma-tiny")
        luma.ingest_texts(["a red circle", "a blue square", "a green triangle", "a yellow star"])
        cls.params = {"luma": luma}
        yield
        luma.close()
        _drop(uri)

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return LumaRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return self.params

    @property
    def retriever_query_example(self) -> str:
        return "a red circle"


# -- LlamaIndex ------------------------------------------------------------------------------------

_llama_fixtures = _load(LLAMA / "conftest.py", "llama_milvus_fixtures")
_llama_store_tests = _load(LLAMA / "test_llama_index_vector_store.py", "llama_milvus_store_tests")

node_embeddings = _llama_fixtures.node_embeddings
hash_encoder = _llama_fixtures.hash_encoder
image_files = _llama_fixtures.image_files
test_class_and_fields = _llama_store_tests.test_class_and_fields
TestLlamaIndexStoreOnMilvus = _llama_store_tests.TestLumaVectorStoreSync
TestLlamaIndexBadInputOnMilvus = _llama_store_tests.TestLumaVectorStoreBadInput
TestLlamaIndexAsyncOnMilvus = _llama_store_tests.TestLumaVectorStoreAsync


@pytest.fixture
def store(milvus_collection: Any, s3_env: dict[str, Any]) -> Iterator[LlamaStore]:
    """An empty 8-d Milvus-backed store (the LlamaIndex tests' ``store``)."""
    dim = _llama_store_tests.DIM
    luma = Luma.open(milvus_collection(dim, media=True), LumaConfig(dim=dim))
    yield LlamaStore(luma=luma)
    luma.close()


def test_llama_index_image_node_media_lands_in_s3(
    milvus_collection: Any,
    s3_env: dict[str, Any],
    image_files: dict[str, str],
    hash_encoder: Any,
) -> None:
    """An image ingested through the Milvus store is uploaded; the hit names the object."""
    from luma_rag.backends import S3Config, S3MediaStore

    with Luma.open(milvus_collection(hash_encoder.dim, media=True), encoder=hash_encoder) as luma:
        luma.ingest(image=image_files["red_circle"], caption="a red circle")
        hit = luma.query("a red circle", k=1).hits[0]
        assert hit.source is not None and hit.source.startswith("s3://luma-media/media/")
        media = S3MediaStore(S3Config.from_env())
        assert media.get_bytes(hit.source) == Path(image_files["red_circle"]).read_bytes()
        assert luma._store.media_url(hit.source).startswith(s3_env["LUMA_S3_ENDPOINT"])
