"""LangChain integration of LUMA-RAG: a multimodal retriever, a vector store, embeddings, and
the Safe@k answer gate as a chain.

>>> from langchain_lumarag import LumaEmbeddings, LumaRetriever, LumaVectorStore, build_gated_chain
"""

from __future__ import annotations

from langchain_lumarag.answerers import ChatModelAnswerer
from langchain_lumarag.embeddings import LumaEmbeddings
from langchain_lumarag.gated import build_gated_chain
from langchain_lumarag.retrievers import LumaRetriever
from langchain_lumarag.vectorstores import LumaVectorStore

__all__ = [
    "ChatModelAnswerer",
    "LumaEmbeddings",
    "LumaRetriever",
    "LumaVectorStore",
    "build_gated_chain",
]
