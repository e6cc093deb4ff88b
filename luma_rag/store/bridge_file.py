"""The bridge's file: a checksummed, atomically written snapshot of its state and config.

The arrays are :meth:`~luma_rag.bridge.ProcrustesBridge.state_dict`; the header carries the
format, the :class:`~luma_rag.bridge.BridgeConfig` and whatever binding the store adds (its id
and generation). Written and verified by :mod:`luma_rag.store.snapshot`, so a crash leaves the
old file or the new one and damage is a :class:`~luma_rag.errors.StoreCorruptedError`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from luma_rag.bridge import BridgeConfig, ProcrustesBridge
from luma_rag.errors import InvalidInputError, LumaError, StoreCorruptedError
from luma_rag.store.snapshot import read_snapshot, write_snapshot

if TYPE_CHECKING:
    from luma_rag.store.records import RecordStore

__all__ = ["load_bridge", "open_bound_bridge", "save_bridge"]

logger = logging.getLogger(__name__)

_FORMAT = "luma-rag.bridge"
_FORMAT_VERSION = 2


def save_bridge(
    bridge: ProcrustesBridge,
    path: str | os.PathLike[str],
    binding: Mapping[str, Any] | None = None,
) -> None:
    """Write ``bridge`` atomically to ``path`` (conventionally ``bridge.safetensors``).

    Args:
        bridge: the bridge to persist.
        path: destination file.
        binding: extra header fields a reader can require with ``expect`` (store id, ...).
    """
    header = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "config": bridge.config.to_json(),
        **(binding or {}),
    }
    write_snapshot(path, bridge.state_dict(), header)


def load_bridge(
    path: str | os.PathLike[str], expect: Mapping[str, Any] | None = None
) -> ProcrustesBridge:
    """Read a bridge written by :func:`save_bridge`.

    Args:
        path: file written by :func:`save_bridge`.
        expect: header fields that must match (see :func:`~luma_rag.store.read_snapshot`).

    Raises:
        InvalidInputError: no file at ``path``.
        StoreCorruptedError: truncated, corrupt, fails a checksum, another format, a binding
            that differs from ``expect``, or an inconsistent state.
    """
    try:
        arrays, header = read_snapshot(path, expect)
    except FileNotFoundError as e:
        raise InvalidInputError(f"cannot read bridge file {path}: no such file") from e
    except StoreCorruptedError:
        if expect and expect.get("bridge_generation"):  # the store has bound bridge files
            raise
        legacy = _load_v1(Path(path))  # written before files were bound to their store
        if legacy is not None:
            return legacy
        arrays, header = read_snapshot(path)  # an unbound format-2 file (same transition)
        if "store_id" in header:
            raise
        logger.warning("%s is not bound to its store (an older version wrote it); accepted", path)
    if header.get("format") != _FORMAT or header.get("format_version") != _FORMAT_VERSION:
        raise StoreCorruptedError(
            f"{path} is not a LUMA-RAG bridge file of format version {_FORMAT_VERSION} "
            f"(format={header.get('format')!r}, version={header.get('format_version')!r}); "
            "restore it from a backup"
        )
    try:
        config = BridgeConfig.from_json(str(header.get("config")))
    except (LumaError, TypeError, ValueError, AttributeError) as e:
        raise StoreCorruptedError(f"bridge file {path} has an invalid config: {e}") from e
    return ProcrustesBridge.from_state_dict(config, arrays)


def open_bound_bridge(
    path: Path,
    config: BridgeConfig,
    store_id: str,
    records: RecordStore,
    read_only: bool,
) -> ProcrustesBridge:
    """The store's bridge file, bound to ``store_id`` and the recorded bridge generation.

    The record counts every bridge update (kv ``bridge_generation``); the file carries the
    count it was written at. No file and no update yet: a fresh bridge.

    Raises:
        StoreCorruptedError: the file is missing although updates were recorded, damaged, from
            another store, or older than the record (a lost bridge cannot be rebuilt: the
            pairs that fitted it are not kept).
    """
    gen = int(records.get_kv("bridge_generation") or 0)
    if not path.exists():
        if gen:
            raise StoreCorruptedError(
                f"{path} is missing but the store recorded {gen} bridge updates; restore it "
                "from a backup (audio items cannot be searched consistently without it)"
            )
        return ProcrustesBridge(config)
    try:
        return load_bridge(path, {"store_id": store_id, "bridge_generation": gen})
    except StoreCorruptedError:
        # A crash after the file was written but before the record counted it.
        bridge = load_bridge(path, {"store_id": store_id, "bridge_generation": gen + 1})
        if not read_only:
            records.set_kv("bridge_generation", str(gen + 1))
        return bridge


def _load_v1(path: Path) -> ProcrustesBridge | None:
    """A bridge file of format 1 (before binding), verified by its own digest; else None."""
    import hashlib
    import json

    import numpy as np
    import safetensors.numpy
    from safetensors import SafetensorError

    try:
        data = path.read_bytes()
        tensors = safetensors.numpy.load(data)
        meta = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])["__metadata__"]
        if meta.get("format") != _FORMAT or meta.get("format_version") != "1":
            return None
        h = hashlib.sha256(str(meta["config"]).encode())
        for name in sorted(tensors):
            a = np.ascontiguousarray(tensors[name], dtype=tensors[name].dtype.newbyteorder("<"))
            h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
            h.update(a.tobytes())
        if h.hexdigest() != meta.get("sha256"):
            return None
        bridge = ProcrustesBridge.from_state_dict(BridgeConfig.from_json(meta["config"]), tensors)
    except (
        SafetensorError,
        LumaError,
        OSError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
    ) as e:
        logger.debug("%s is not a readable format-1 bridge file (%s)", path, e)
        return None
    logger.warning("%s is a format-1 bridge file (not bound to its store); accepted", path)
    return bridge
