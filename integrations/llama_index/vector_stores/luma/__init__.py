"""LUMA-RAG for LlamaIndex: ``LumaVectorStore``, ``LumaEmbedding`` and the filter translator.

``llama_index.vector_stores.luma`` is a namespace-package portion, as LlamaIndex's own
integrations are: it installs beside ``llama-index-core`` without shadowing it.
"""

from llama_index.vector_stores.luma.base import LumaVectorStore
from llama_index.vector_stores.luma.embeddings import LumaEmbedding
from llama_index.vector_stores.luma.filters import to_luma_filter

__all__ = ["LumaEmbedding", "LumaVectorStore", "to_luma_filter"]
