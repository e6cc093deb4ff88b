"""LUMA-RAG for LlamaIndex: ``LumaVectorStore``, ``LumaEmbedding``, the filter translator and
``LumaGatedQueryEngine`` (the Safe@k answer gate as a query engine).

``llama_index.vector_stores.lumarag`` is a namespace-package portion, as LlamaIndex's own
integrations are: it installs beside ``llama-index-core`` without shadowing it.
"""

from llama_index.vector_stores.lumarag.answerers import LLMAnswerer
from llama_index.vector_stores.lumarag.base import LumaVectorStore
from llama_index.vector_stores.lumarag.embeddings import LumaEmbedding
from llama_index.vector_stores.lumarag.filters import to_luma_filter
from llama_index.vector_stores.lumarag.gated import LumaGatedQueryEngine

__all__ = [
    "LLMAnswerer",
    "LumaEmbedding",
    "LumaGatedQueryEngine",
    "LumaVectorStore",
    "to_luma_filter",
]
