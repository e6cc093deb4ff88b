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
from typing import Any

from luma_rag.bridge import BridgeConfig, ProcrustesBridge
from luma_rag.errors import InvalidInputError, LumaError, StoreCorruptedError
from luma_rag.store.snapshot import read_snapshot, write_snapshot

__all__ = ["load_bridge", "save_bridge"]

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
    if header.get("format") != _FORMAT or header.get("format_version") != _FORMAT_VERSION:
        raise StoreCorruptedError(
            f"{path} is not a LUMA-RAG bridge file of format version {_FORMAT_VERSION} "
            f"(format={header.get('format')!r}, version={header.get('format_version')!r}); "
            "restore it from a backup or run repair_store to rebuild it"
        )
    try:
        config = BridgeConfig.from_json(str(header.get("config")))
    except (LumaError, TypeError, ValueError, AttributeError) as e:
        raise StoreCorruptedError(f"bridge file {path} has an invalid config: {e}") from e
    return ProcrustesBridge.from_state_dict(config, arrays)
