"""LangChain integration of LUMA-RAG: a multimodal retriever, a vector store, embeddings, and
the Safe@k answer gate as a chain.

>>> from langchain_luma import LumaEmbeddings, LumaRetriever, LumaVectorStore, build_gated_chain
"""

from __future__ import annotations

from langchain_luma.answerers import ChatModelAnswerer
from langchain_luma.embeddings import LumaEmbeddings
from langchain_luma.gated import build_gated_chain
from langchain_luma.retrievers import LumaRetriever
from langchain_luma.vectorstores import LumaVectorStore

__all__ = [
    "ChatModelAnswerer",
    "LumaEmbeddings",
    "LumaRetriever",
    "LumaVectorStore",
    "build_gated_chain",
]
