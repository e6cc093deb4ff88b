"""Durable state: records and metadata (SQLite), raw vectors (fsync'd file), snapshots.

:class:`~luma_rag.store.local.LocalStore` owns one directory (the embedded backend; the
contract any backend meets is :class:`~luma_rag.store.base.StoreBackend`);
:func:`check_store` / :func:`repair_store` verify a directory and rebuild its derived files.
"""

from luma_rag.store.check import StoreReport, check_store, repair_store
from luma_rag.store.records import NewRecord, RecordStore, RecordTable
from luma_rag.store.snapshot import read_snapshot, write_snapshot
from luma_rag.store.vectors import VectorFile, row_crc

__all__ = [
    "NewRecord",
    "RecordStore",
    "RecordTable",
    "StoreReport",
    "VectorFile",
    "check_store",
    "read_snapshot",
    "repair_store",
    "row_crc",
    "write_snapshot",
]
