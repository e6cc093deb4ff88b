"""The Milvus collections of a store: fields, the vector index, and its search parameters."""

from __future__ import annotations

import math
from typing import Any, Final

from luma_rag.backends.milvus_config import MilvusConfig
from luma_rag.errors import InvalidInputError

__all__ = ["SOURCE_MAX", "TEXT_MAX", "items_schema", "search_params", "state_schema"]

TEXT_MAX: Final = 65535
"""Longest text (bytes) a record holds (Milvus's VARCHAR limit)."""
SOURCE_MAX: Final = 4096
"""Longest source path / URI (bytes)."""


def items_schema(dim: int, config: MilvusConfig) -> tuple[Any, dict[str, Any]]:
    """The items collection: (schema, vector index spec)."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)  # the raw unit vector
    schema.add_field("modality", DataType.VARCHAR, max_length=64)
    schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX)
    schema.add_field("source", DataType.VARCHAR, max_length=SOURCE_MAX)
    schema.add_field("bridge_version", DataType.INT64)
    schema.add_field("crc", DataType.INT64)  # CRC32 of the float32 vector bytes
    schema.add_field("seq", DataType.INT64)  # write order: "oldest first" listings
    schema.add_field("meta", DataType.JSON)
    return schema, {"metric_type": "IP", **index_spec(dim, config)}


def state_schema(chunk_max: int) -> tuple[Any, dict[str, Any]]:
    """The state collection (named blobs in VARCHAR chunks): (schema, index spec)."""
    from pymilvus import DataType, MilvusClient

    state = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    state.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
    state.add_field("chunk", DataType.VARCHAR, max_length=chunk_max)
    state.add_field("vec", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs one vector field
    return state, {"index_type": "FLAT", "metric_type": "L2"}


def index_spec(dim: int, config: MilvusConfig) -> dict[str, Any]:
    """index_type and build params of the vector index (see MilvusConfig for the choice)."""
    if config.index == "HNSW":
        return {
            "index_type": "HNSW",
            "params": {"M": config.hnsw_m, "efConstruction": config.ef_construction},
        }
    if config.index == "IVF_PQ":
        if dim % config.pq_m:
            raise InvalidInputError(
                f"MilvusConfig.pq_m={config.pq_m} must divide the dimension {dim}; pick e.g. "
                f"{math.gcd(dim, 16)}"
            )
        return {
            "index_type": "IVF_PQ",
            "params": {"nlist": config.nlist, "m": config.pq_m, "nbits": 8},
        }
    return {"index_type": "FLAT", "params": {}}


def search_params(config: MilvusConfig, limit: int) -> dict[str, Any]:
    """Search parameters for ``limit`` results (HNSW's ef is at least ``limit``)."""
    if config.index == "HNSW":
        return {"metric_type": "IP", "params": {"ef": max(config.ef_search, limit)}}
    if config.index == "IVF_PQ":
        return {"metric_type": "IP", "params": {"nprobe": config.nprobe}}
    return {"metric_type": "IP", "params": {}}
