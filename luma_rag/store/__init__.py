"""Durable state: records and metadata (SQLite), raw vectors (fsync'd file), snapshots."""

from luma_rag.store.records import NewRecord, RecordStore, RecordTable
from luma_rag.store.snapshot import read_snapshot, write_snapshot
from luma_rag.store.vectors import VectorFile, row_crc

__all__ = [
    "NewRecord",
    "RecordStore",
    "RecordTable",
    "VectorFile",
    "read_snapshot",
    "row_crc",
    "write_snapshot",
]
