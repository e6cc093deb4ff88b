"""Checksummed, atomically written snapshots of arrays (index files, tier state).

A snapshot is one safetensors file whose metadata carries a SHA-256 of every tensor and a
free-form JSON header (itself checksummed). A reader may pass ``expect``: header fields that
must match (e.g. the store id and generation a derived file is bound to), else the snapshot is
refused as not belonging here. Written as temp file -> fsync -> rename -> fsync(dir), so a crash
leaves either the old snapshot or the new one. FAISS happily loads many corrupted index
files, so nothing is deserialised before its checksum matches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from luma_rag.errors import StoreCorruptedError
from luma_rag.store.vectors import _fsync_dir

__all__ = ["read_snapshot", "write_snapshot"]

logger = logging.getLogger(__name__)


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def write_snapshot(
    path: str | os.PathLike[str], arrays: dict[str, np.ndarray], header: dict[str, Any]
) -> None:
    """Atomically write ``arrays`` and a JSON ``header`` to ``path``."""
    from safetensors.numpy import save

    path = Path(path)
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    header_json = json.dumps(header, sort_keys=True)
    meta = {
        "header": header_json,
        "header_sha256": hashlib.sha256(header_json.encode()).hexdigest(),
        "sha256": json.dumps({k: _digest(v) for k, v in arrays.items()}, sort_keys=True),
    }
    data = save(arrays, metadata=meta)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def read_snapshot(
    path: str | os.PathLike[str], expect: Mapping[str, Any] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read and verify a snapshot written by :func:`write_snapshot`.

    Args:
        path: the snapshot file.
        expect: header fields the snapshot must carry with these exact values.

    Raises:
        FileNotFoundError: no snapshot at ``path``.
        StoreCorruptedError: unreadable, truncated, a checksum does not match, or a field of
            ``expect`` differs (the message names the field).
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open API
        header_json = meta["header"]
        header = json.loads(header_json)
        sums = json.loads(meta["sha256"])
        header_sum = meta.get("header_sha256")
    except StoreCorruptedError:
        raise
    except Exception as e:  # safetensors raises several foreign types on bad bytes
        raise StoreCorruptedError(f"{path}: snapshot unreadable ({type(e).__name__}: {e})") from e
    if not isinstance(header, dict) or not isinstance(sums, dict):
        raise StoreCorruptedError(f"{path}: snapshot header is malformed")
    if header_sum is not None and header_sum != hashlib.sha256(header_json.encode()).hexdigest():
        raise StoreCorruptedError(f"{path}: snapshot header fails its checksum")
    if set(sums) != set(arrays):
        raise StoreCorruptedError(
            f"{path}: snapshot lists tensors {sorted(sums)} but holds {sorted(arrays)}"
        )
    for k, arr in arrays.items():
        if _digest(arr) != sums[k]:
            raise StoreCorruptedError(f"{path}: checksum mismatch in tensor {k!r}")
    for name, want in (expect or {}).items():
        if header.get(name) != want:
            raise StoreCorruptedError(
                f"{path}: {name} is {header.get(name)!r} but {want!r} was expected; the file "
                "belongs to another store or an older state of this one"
            )
    return arrays, header
