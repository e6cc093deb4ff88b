"""Scale-out backends: a Milvus collection for the index, S3-compatible storage for the media.

Nothing here imports pymilvus or minio at import time; each backend imports its client when
it is created (``pip install 'luma-rag[milvus,s3]'``).
"""

from __future__ import annotations

from luma_rag.backends.milvus import MilvusBackend, MilvusCandidates
from luma_rag.backends.milvus_config import MilvusConfig, is_milvus_uri
from luma_rag.backends.milvus_filters import MilvusFilter, to_milvus
from luma_rag.backends.s3 import S3Config, S3MediaStore, is_s3_uri

__all__ = [
    "MilvusBackend",
    "MilvusCandidates",
    "MilvusConfig",
    "MilvusFilter",
    "S3Config",
    "S3MediaStore",
    "is_milvus_uri",
    "is_s3_uri",
    "to_milvus",
]
